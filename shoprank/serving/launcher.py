"""Start a model server over the model base path: the real `tensorflow_model_server` binary when it
is on PATH, otherwise shoprank's TF-Serving-compatible server, as a child process either way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from shoprank.serving.client import RestClient
from shoprank.serving.repository import model_versions, read_labels
from shoprank.storage import open_store


def model_config_file(base_path: str, names: list[str]) -> Path:
    """TF Serving's model config (text proto) with version labels from labels.json."""
    store = open_store(base_path)
    lines = ["model_config_list {"]
    for name in names:
        labels = read_labels(store, name)
        versions = sorted(set(labels.values())) or model_versions(store, name)[-1:]
        lines.append("  config {")
        lines.append(f'    name: "{name}"\n    base_path: "{store.uri(name)}"\n    model_platform: "tensorflow"')
        lines.append("    model_version_policy { specific { " + " ".join(f"versions: {v}" for v in versions) + " } }")
        for label, version in sorted(labels.items()):
            lines.append(f'    version_labels {{ key: "{label}" value: {version} }}')
        lines.append("  }")
    lines.append("}")
    path = Path(tempfile.mkdtemp(prefix="tfserving-")) / "models.config"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_model_server(base_path: str, rest_port: int, grpc_port: int, names: list[str],
                       log_path: Path | None = None, wait_seconds: float = 120.0,
                       batching_file: Path | None = None) -> subprocess.Popen:
    """Start the server, wait until every named model is AVAILABLE, return the process.

    `batching_file`: TF Serving batching parameters; the server batches requests when it is given."""
    binary = shutil.which("tensorflow_model_server")
    if binary:
        cmd = [binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
               f"--model_config_file={model_config_file(base_path, names)}", "--file_system_poll_wait_seconds=5",
               "--allow_version_labels_for_unavailable_models=true"]
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
