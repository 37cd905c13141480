"""Two nightly runs at once: the second fails at once, says who holds the lock, and changes nothing."""

import os
import subprocess
import sys
import time

from shoprank.locks import StoreLock
from shoprank.settings import load_settings
from shoprank.storage import open_store


def _run_cli(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shoprank.cli", "run", "--source", "tafeng", *extra],
                          capture_output=True, text=True, timeout=120, env={**os.environ})


def test_a_second_run_fails_clearly_while_one_is_running(home):
    store = open_store(load_settings().store)
    with StoreLock(store, "night-run", "night 2000-11-01..2001-03-01 (the first one)"):
        before = sorted(store.list(""))
        done = _run_cli()
        assert done.returncode == 75, done.stderr
        assert "lock 'night-run'" in done.stderr and "(the first one)" in done.stderr and "lease left" in done.stderr
        assert sorted(store.list("")) == before  # the second run touched nothing
        started = time.monotonic()
        waited = _run_cli("--wait-for-lock", "2")
        assert waited.returncode == 75 and "waited 2 s" in waited.stderr and time.monotonic() - started >= 2
