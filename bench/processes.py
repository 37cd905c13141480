"""The servers a bench starts: wait until one answers ready, stop one without leaving it behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests


def wait_ready(url: str, log: Path, timeout_s: float = 180.0, poll_s: float = 0.5) -> None:
    """Until `url` answers 200; exit the bench naming the server's log if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(poll_s)
    sys.exit(f"{url} did not answer ready within {timeout_s:.0f} s; see {log}")


def stop(proc: subprocess.Popen | None, timeout_s: float = 15.0) -> None:
    """SIGTERM (servers drain and close their logs), SIGKILL if it overstays."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
