"""The environment of one real night on the small Ta Feng slice, shared by the tests that run one
(through `airflow dags test`, or through a live Airflow)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def small_night_env(mp: pytest.MonkeyPatch, home: Path, key: str) -> None:
    """A clean SHOPRANK_* environment: its own home and pseudonym key, blessing rules a 4k-customer
    slice can meet (it need not beat popularity), and model-server ports nobody else uses."""
    for name in list(os.environ):
        if name.startswith("SHOPRANK_") and name != "SHOPRANK_TAFENG_ZIP":
            mp.delenv(name)
    mp.setenv("SHOPRANK_HOME", str(home))
    mp.setenv("SHOPRANK_PSEUDONYM_KEY", key)
    rules = home.parent / "lenient-rules.toml"
    rules.write_text("min_metric = 0.0\nmin_auc = 0.0\nmin_gain_over_baseline = -1.0\n")
    mp.setenv("SHOPRANK_BLESSING_RULES", str(rules))
    mp.setenv("SHOPRANK_MODEL_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    mp.setenv("SHOPRANK_MODEL_SERVER_GRPC", f"127.0.0.1:{free_port()}")


@contextmanager
def as_zone(env_file: Path, *names: str):
    """This process with a zone's settings for the block (its credentials, home and key): what a
    test reads or writes inside it, it does as that zone's processes would. `names`: only those of
    the zone's settings, added to this process's (the API's pseudonymisation key, say)."""
    import boto3

    from shoprank.orchestration.zone_runner import ZONE_BOUND_VARS, read_env_file

    values = read_env_file(env_file)
    boto3.DEFAULT_SESSION = None  # the default session keeps the credentials it first found
    mp = pytest.MonkeyPatch()
    for name in ZONE_BOUND_VARS if not names else ():  # a whole zone: none of the other's secrets
        mp.delenv(name, raising=False)
    for name, value in values.items():
        if not names or name in names:
            mp.setenv(name, value)
    try:
        yield values
    finally:
        mp.undo()
        boto3.DEFAULT_SESSION = None
