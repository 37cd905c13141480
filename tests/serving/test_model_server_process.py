"""`shoprank serve-models` as a real process: SIGTERM lets in-flight requests finish, refuses new
ones, and the process is gone within five seconds."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from shoprank.features.derived import model_inputs
from shoprank.serving.model_server.client import GrpcClient, ModelServerError, RestClient
from tests.conftest import free_port, tiny_examples


def test_sigterm_drains_in_flight_requests_and_exits_within_five_seconds(tmp_path, tiny_model_dir):
    base = tmp_path / "models"
    shutil.copytree(tiny_model_dir, base / "ranker" / "1")
    slow = tmp_path / "slow-batching.config"  # each request waits 1.5 s for company: it is in flight at SIGTERM
    slow.write_text("max_batch_size { value: 100000 }\nbatch_timeout_micros { value: 1500000 }\n"
                    "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 10 }\n")
    rest, grpc_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "shoprank.cli", "serve-models", "--base-path", str(base),
                             "--rest-port", str(rest), "--grpc-port", str(grpc_port), "--enable-batching",
                             "--batching-parameters-file", str(slow)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        RestClient(f"http://127.0.0.1:{rest}").wait_ready("ranker", timeout=90)
        client = GrpcClient(f"127.0.0.1:{grpc_port}", timeout=10)
        outcome: dict = {}

        def in_flight():
            try:
                outcome["scores"] = client.predict("ranker", model_inputs(tiny_examples(5, seed=1)))["score"]
            except ModelServerError as err:
                outcome["error"] = err

        worker = threading.Thread(target=in_flight)
        worker.start()
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(ModelServerError) as refused:  # new work is refused while draining
            GrpcClient(f"127.0.0.1:{grpc_port}", timeout=2).predict("ranker", model_inputs(tiny_examples(2)))
        assert refused.value.reason == "unavailable"
        code = proc.wait(timeout=5.5)
        gone = time.monotonic() - sent
        worker.join(5)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["scores"].shape == (5,)  # the in-flight request was answered
        assert code == 0 and gone <= 5.0, f"exit {code} after {gone:.1f}s"
        assert "stopping, 1 requests in flight" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
