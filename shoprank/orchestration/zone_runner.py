"""Run a private-zone task in its own process, with the private zone's settings and nothing else.

Why: on the cluster the private tasks are Airflow tasks on queue `private-data`, which only the edge
workers in the private zone (role `data_prep`) pull; the pseudonymisation key and the credentials
for `raw/` and `curated/` exist only there. `airflow dags test` and the CLI run every task in one
process, so locally this runner starts each private task as a child process whose environment is
the private zone's: the caller's environment without credentials, plus `private.env` from the
settings' `zone_env_dir` (the local enforcement mode writes one per zone). A process already in the
private zone (`SHOPRANK_ZONE=private`, as the edge workers are) runs the task in place.

The child reports its result, or its error's type and a message safe to show, through a JSON file,
so the caller can tell a gate failure (not worth a retry) from a crash. What the child prints (the
gate's summary with sample rows, a traceback naming a raw value) goes to a log in the private zone's
home, never to the caller's output: on the cluster the caller's task log is read in the public zone.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shoprank.settings import REPO_ROOT, Settings, load_settings

ZONE_VAR = "SHOPRANK_ZONE"
PRIVATE_QUEUE = "private-data"  # the Airflow queue only the private zone's edge workers pull
#: The tasks that run in the private zone, by name: module and function.
PRIVATE_TASKS: dict[str, str] = {
    "stage": "shoprank.orchestration.private:stage",
    "validate": "shoprank.orchestration.private:validate",
    "publish": "shoprank.orchestration.private:publish",
    "pseudonymise_night": "shoprank.orchestration.private:pseudonymise_night",
    "pseudonymise_hour": "shoprank.orchestration.private:pseudonymise_hour",
    "validate_and_publish_hour": "shoprank.orchestration.private:validate_and_publish_hour",
    "apply_erasure_requests": "shoprank.orchestration.erasure:apply_requests",
}
#: What a process of one zone never inherits from another: cloud credentials (every way botocore
#: finds them), the pseudonymisation key, the token signing key.
ZONE_BOUND_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                   "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                   "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                   "SHOPRANK_PSEUDONYM_KEY", "SHOPRANK_PSEUDONYM_KEY_DIR", "SHOPRANK_PSEUDONYM_KEY_SECRET_ARN",
                   "SHOPRANK_TOKEN_SIGNING_KEY")


class PrivateTaskFailed(RuntimeError):
    """A private task ended with an error; `kind` is its exception's class name (`GateFailed`,
    `LockHeld`, ...), `message` what it said."""

    def __init__(self, task: str, kind: str, message: str) -> None:
        super().__init__(f"private task {task} failed: {kind}: {message}")
        self.task, self.kind, self.message = task, kind, message


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped; values may be single- or double-quoted)."""
    values = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def zone_environment(zone: str, settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process of `zone`: `base` (default: this process's) without any zone's
    credentials or key, plus the zone's env file where the settings name a `zone_env_dir`."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in ZONE_BOUND_VARS}
    if settings.zone_env_dir:
        path = Path(settings.resolve(settings.zone_env_dir)) / f"{zone}.env"
        if not path.is_file():
            raise FileNotFoundError(f"no {zone}.env in the zone env folder {path.parent} (setting zone_env_dir)")
        env.update(read_env_file(path))
    elif base is None and zone == "private":
        # No enforcement: one machine, one set of credentials; the child still gets its own process.
        env.update({k: os.environ[k] for k in ZONE_BOUND_VARS if k in os.environ})
    env[ZONE_VAR] = zone
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def _function(task: str):
    if task not in PRIVATE_TASKS:
        raise ValueError(f"unknown private task {task!r}; expected one of {sorted(PRIVATE_TASKS)}")
    module, name = PRIVATE_TASKS[task].split(":")
    return getattr(importlib.import_module(module), name)


def safe_message(err: BaseException, log: Path | None) -> str:
    """What may be shown outside the private zone about a private task's error: for a gate failure,
    the failing checks by name; otherwise the error's type only. The whole story (samples, values,
    the traceback) is in the private log."""
    where = f"; the private zone's log: {log}" if log else ""
    result = getattr(err, "result", None)
    if type(err).__name__ == "GateFailed" and result is not None:
        failing = sorted({f"{f.table}.{f.check}" for f in result.failures})
        return f"the gate refused the batch: {len(failing)} failing check(s) {failing}{where}"
    return f"{type(err).__name__} in the private task{where}"


def private_log(task: str, settings: Settings) -> Path:
    """Where a private task's output goes: the private zone's home."""
    folder = settings.home / "logs" / "private"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{task}-{os.getpid()}.log"


def run_private(task: str, settings: Settings | None = None, **kwargs: Any) -> dict:
    """Run private task `task` with `kwargs` (JSON values) in the private zone; its result (which a
    private task keeps free of raw data: counts, keys, paths). Raises PrivateTaskFailed."""
    if os.environ.get(ZONE_VAR) == "private":
        try:
            return _function(task)(**kwargs)
        except Exception as err:
            raise PrivateTaskFailed(task, type(err).__name__, safe_message(err, None)) from err
    _function(task)  # an unknown task is the caller's mistake: said here, not in a child's log
    settings = settings or load_settings()
    with tempfile.TemporaryDirectory(prefix=f"shoprank-{task}-") as scratch:
        result_file = Path(scratch) / "result.json"
        done = subprocess.run([sys.executable, "-m", __name__, task, json.dumps(kwargs), str(result_file)],
                              env=zone_environment("private", settings), check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        outcome = json.loads(result_file.read_text()) if result_file.exists() else None
    if outcome is None:
        raise PrivateTaskFailed(task, "Crashed", f"exit status {done.returncode} and no result (its output is in "
                                                 f"the private zone's logs/private/)")
    if "error" in outcome:
        raise PrivateTaskFailed(task, outcome["error"], outcome["message"])
    print(f"private task {task} done: {json.dumps(outcome['result'], default=str)}", flush=True)
    return outcome["result"]


def private_night(arguments: dict[str, Any], settings: Settings | None = None) -> dict:
    """The private stage of one night, each task in the private zone: stage the interval, gate it,
    publish it to `curated/`, pseudonymise it into the nightly crossing. Returns the last task's
    result (`crossing`: the manifest key the public pipeline starts from)."""
    interval = {"start": arguments["interval_start"], "end": arguments["interval_end"]}
    run_private("stage", settings, source=arguments["source"], source_path=arguments["source_path"], **interval)
    run_private("validate", settings, **interval)
    run_private("publish", settings, **interval)
    return run_private("pseudonymise_night", settings, n_snapshots=arguments["n_snapshots"],
                       source=arguments["source"], **interval)


def main(argv: list[str]) -> int:
    """The child: run the task with its output in the private log; the result or a safe error."""
    import contextlib
    import traceback

    task, arguments, result_file = argv
    log = private_log(task, load_settings())
    with open(log, "w", buffering=1) as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        for fd in (1, 2):  # what libraries write below Python (logging handlers, native code) too
            os.dup2(out.fileno(), fd)
        try:
            result, code = {"result": _function(task)(**json.loads(arguments))}, 0
        except Exception as err:  # reported to the parent, which decides what it means
            traceback.print_exc()
            result, code = {"error": type(err).__name__, "message": safe_message(err, log)}, 1
    Path(result_file).write_text(json.dumps(result, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
