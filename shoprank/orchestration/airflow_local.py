"""`make airflow`: the whole Airflow 3 (api-server with the UI, scheduler, dag-processor, triggerer;
`airflow standalone` starts them) on this machine, over the project's DAGs and a SQLite metadata DB
under `<home>/airflow`, in its own process group, so `make airflow-stop` stops every process of it.

The login is fixed (`admin` / `admin`, written to the simple auth manager's password file) and the
port comes from AIRFLOW_PORT (default 8080). Logs: `<home>/airflow/standalone.log` for the
processes, `<home>/airflow/logs/` for every task try (also in the UI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from shoprank.orchestration.airflow_env import airflow_env
from shoprank.settings import Settings

USER, PASSWORD = "admin", "admin"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class LocalAirflow:
    home: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "standalone.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "standalone.log"


def local_airflow(settings: Settings, port: int | None = None) -> LocalAirflow:
    return LocalAirflow(settings.home / "airflow", port or int(os.environ.get("AIRFLOW_PORT", DEFAULT_PORT)))


def standalone_env(settings: Settings, where: LocalAirflow) -> dict[str, str]:
    passwords = where.home / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({USER: PASSWORD}))
    env = airflow_env(settings)
    env.update({
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "AIRFLOW__API__PORT": str(where.port),
        "AIRFLOW__API__HOST": "127.0.0.1",  # loopback only
        "AIRFLOW__API__BASE_URL": where.url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{where.url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    })
    return env


def running_pid(where: LocalAirflow) -> int | None:
    try:
        pid = int(where.pid_file.read_text())
        os.killpg(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _reap(pid: int) -> None:
    """Collect the leader if this process started it and it has exited: until then it is a zombie,
    and its group still answers, so a stop would wait its whole grace period for nothing."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its own parent (or init) collects it
        pass


def healthy(where: LocalAirflow, timeout_s: float = 2.0) -> bool:
    try:
        body = requests.get(f"{where.url}/api/v2/monitor/health", timeout=timeout_s).json()
    except (requests.RequestException, ValueError):
        return False
    return all(body.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler", "triggerer",
                                                                          "dag_processor"))


def start(settings: Settings, port: int | None = None, wait_s: float = 300.0,
          log=lambda line: print(line, file=sys.stderr)) -> LocalAirflow:
    """Start Airflow unless it runs already; return once every component reports healthy."""
    where = local_airflow(settings, port)
    where.home.mkdir(parents=True, exist_ok=True)
    if running_pid(where) is None:
        env = standalone_env(settings, where)
        with where.log_file.open("ab") as out:
            process = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"], env=env,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        where.pid_file.write_text(str(process.pid))
        log(f"starting Airflow (pid {process.pid}, log {where.log_file})")
    deadline = time.monotonic() + wait_s
    while not healthy(where):
        if running_pid(where) is None:
            raise RuntimeError(f"Airflow exited while starting; see {where.log_file}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Airflow not healthy after {wait_s:.0f}s; see {where.log_file}")
        time.sleep(2)
    return where


def processes(where: LocalAirflow) -> list[int]:
    """Every live process started for this Airflow home, found by its environment (a task process
    that left the process group is found too)."""
    marker = f"AIRFLOW_HOME={where.home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop(settings: Settings, port: int | None = None, wait_s: float = 60.0) -> bool:
    """Stop every process of the local Airflow (the whole process group); False if none ran."""
    where = local_airflow(settings, port)
    pid = running_pid(where)
    if pid is None:
        where.pid_file.unlink(missing_ok=True)
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        _reap(pid)
        if running_pid(where) is None:
            break
        time.sleep(0.5)
    if running_pid(where) is not None:
        os.killpg(pid, signal.SIGKILL)
        time.sleep(1)
    for straggler in processes(where):
        try:
            os.kill(straggler, signal.SIGKILL)
        except OSError:
            pass
    where.pid_file.unlink(missing_ok=True)
    return True
