"""The local services the tests use, and the one way a test that lacks one is skipped: naming what
is missing and the command that installs it (`make test` installs them itself where it may:
.ci/services.sh)."""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = {"redis-server": "redis-server", "chromium": "chromium", "java": "openjdk-17-jre-headless",
            "postgres": "postgresql"}


def install_hint(binary: str) -> str:
    return (f"`make services` installs it as root, or: sudo apt-get install -y {PACKAGES[binary]}"
            if binary in PACKAGES else "no package registry here offers it")


def require(binary: str, purpose: str) -> str:
    """The binary's path, or skip the test saying what is missing and how to install it."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not on PATH, so cannot {purpose}: {install_hint(binary)}")
    return path


def postgres_missing(url: str, err: Exception) -> None:
    """Skip a Postgres test: no server at `url` (`make test` starts a scratch one)."""
    started = "SHOPRANK_TEST_POSTGRES" in os.environ
    why = ("the scratch Postgres that `make test` started does not answer" if started
           else f"no Postgres started for the tests; {install_hint('postgres')}, then run `make test`")
    pytest.skip(f"no Postgres at {url} ({type(err).__name__}): {why}")
