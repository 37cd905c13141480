"""Start a model server over the model base path: the real `tensorflow_model_server` binary when it
is on PATH, otherwise shoprank's TF-Serving-compatible server, as a child process either way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from shoprank.serving.model_server import model_config
from shoprank.serving.model_server.client import RestClient
from shoprank.serving.model_server.versions import model_versions
from shoprank.settings import load_settings
from shoprank.storage import open_for


def model_config_file(base_path: str, names: list[str]) -> str:
    """The base path's `models.config` (what push and rollback maintain), created for models that
    have versions but no entry yet (served: their newest version, no labels)."""
    store = open_for(load_settings(), "models", root=base_path)
    for name in names:
        if model_config.served_versions(store, name) is None and model_versions(store, name):
            model_config.update(store, name, model_versions(store, name)[-1:], {})
    return store.uri(model_config.CONFIG_FILE)


def start_model_server(base_path: str, rest_port: int, grpc_port: int, names: list[str],
                       log_path: Path | None = None, wait_seconds: float = 120.0,
                       batching_file: Path | None = None) -> subprocess.Popen:
    """Start the server, wait until every named model is AVAILABLE, return the process.

    `batching_file`: TF Serving batching parameters; the server batches requests when it is given."""
    binary = shutil.which("tensorflow_model_server")
    if binary:
        cmd = [binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
               f"--model_config_file={model_config_file(base_path, names)}", "--model_config_file_poll_wait_seconds=1",
               "--file_system_poll_wait_seconds=1"]
        if batching_file is not None:
            cmd += ["--enable_batching=true", f"--batching_parameters_file={batching_file}"]
    else:
        cmd = [sys.executable, "-m", "shoprank.cli", "serve-models", "--base-path", base_path,
               "--rest-port", str(rest_port), "--grpc-port", str(grpc_port)]
        if batching_file is not None:
            cmd += ["--enable-batching", "--batching-parameters-file", str(batching_file)]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    client = RestClient(f"http://127.0.0.1:{rest_port}")
    try:
        for name in names:
            client.wait_ready(name, timeout=wait_seconds)
    except Exception:
        proc.terminate()
        raise
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM (the server drains and exits), SIGKILL only if it overstays `timeout`; the exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
