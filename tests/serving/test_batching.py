"""Server-side batching with TF Serving's parameters: merged calls give each caller its own rows,
a full queue sheds load at once, a failing batch fails every caller in it, and the parameter file
is the one the cluster's TF Serving reads."""

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from shoprank.features.derived import model_inputs
from shoprank.serving.model_server.batching import (
    DEFAULT_BATCHING_FILE,
    BatchingParameters,
    BatchScheduler,
    QueueFull,
    load_batching_parameters,
    parse_batching_parameters,
)
from shoprank.serving.model_server.client import GrpcClient
from shoprank.serving.model_server.server import ModelServer
from tests.conftest import tiny_examples

INFRA_BATCHING = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "base" / "tf-serving" / "batching.config"


def test_parameter_file_is_tf_servings_format_and_infra_uses_the_benchmarked_one():
    params = parse_batching_parameters("max_batch_size { value: 512 }\nbatch_timeout_micros { value: 500 }\n"
                                       "# a comment\nnum_batch_threads { value: 2 }\n"
                                       "max_enqueued_batches { value: 8 }\npad_variable_length_inputs: true\n")
    assert params == BatchingParameters(512, 500, 2, 8, True)
    assert parse_batching_parameters(params.to_text()) == params
    assert load_batching_parameters(INFRA_BATCHING) == load_batching_parameters(DEFAULT_BATCHING_FILE)
    with pytest.raises(ValueError, match="unknown field 'max_batch'"):
        parse_batching_parameters("max_batch { value: 1 }")
    with pytest.raises(ValueError, match="max_batch_size must be an integer"):
        parse_batching_parameters("max_batch_size { value: lots }")
    with pytest.raises(ValueError, match="num_batch_threads must be >= 1"):
        parse_batching_parameters("num_batch_threads { value: 0 }")
    with pytest.raises(ValueError, match="cannot read"):
        parse_batching_parameters("max_batch_size = 5")


def test_concurrent_calls_are_merged_and_each_gets_its_own_rows():
    seen = []

    def run(batch):
        seen.append(len(batch["x"]))
        time.sleep(0.01)
        return {"y": batch["x"] * 2.0, "z": batch["x"] + 1.0}

    scheduler = BatchScheduler(run, BatchingParameters(max_batch_size=64, batch_timeout_micros=20_000,
                                                       num_batch_threads=1, max_enqueued_batches=100))
    requests_ = [np.arange(n, dtype=np.float32) + 100 * n for n in range(1, 17)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda x: scheduler.submit({"x": x}), requests_))
    for x, out in zip(requests_, results, strict=True):
        np.testing.assert_array_equal(out["y"], x * 2.0)
        np.testing.assert_array_equal(out["z"], x + 1.0)
    assert max(seen) > 16 and sum(seen) == sum(len(x) for x in requests_) and max(seen) <= 64
    assert scheduler.submit({"x": np.ones(100, np.float32)})["y"].shape == (100,)  # over the limit: runs alone
    scheduler.close()


def test_a_full_queue_sheds_load_and_a_failing_batch_fails_its_callers():
    release = threading.Event()

    def run(batch):
        release.wait(5)
        if (batch["x"] < 0).any():
            raise ValueError("negative rows")
        return {"y": batch["x"]}

    scheduler = BatchScheduler(run, BatchingParameters(max_batch_size=4, batch_timeout_micros=0,
                                                       num_batch_threads=1, max_enqueued_batches=1))
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(scheduler.submit, {"x": np.ones(4, np.float32)})
        time.sleep(0.2)  # taken by the batch thread, blocked in run
        queued = pool.submit(scheduler.submit, {"x": -np.ones(4, np.float32)})
        time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(QueueFull, match="queue is full"):
            scheduler.submit({"x": np.ones(4, np.float32)})
        assert time.monotonic() - started < 0.5  # shed at once, not after waiting
        release.set()
        assert running.result(5)["y"].shape == (4,)
        with pytest.raises(ValueError, match="negative rows"):
            queued.result(5)
    scheduler.close()


def test_batching_model_server_answers_like_the_unbatched_one(tmp_path, tiny_model_dir):
    base = tmp_path / "models"
    shutil.copytree(tiny_model_dir, base / "ranker" / "1")
    params = BatchingParameters(max_batch_size=256, batch_timeout_micros=20_000, num_batch_threads=1,
                                max_enqueued_batches=16)
    batched = ModelServer(str(base), rest_port=0, grpc_port=0, batching=params).start()
    plain = ModelServer(str(base), rest_port=0, grpc_port=0).start()
    try:
        batches = [model_inputs(tiny_examples(8 + i, seed=i)) for i in range(12)]
        client, reference = GrpcClient(f"127.0.0.1:{batched.grpc_port}"), GrpcClient(f"127.0.0.1:{plain.grpc_port}")
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(lambda x: client.predict("ranker", x)["score"], batches))
        for inputs, scores in zip(batches, got, strict=True):
            np.testing.assert_allclose(scores, reference.predict("ranker", inputs)["score"], rtol=1e-5)
        text = requests.get(f"http://127.0.0.1:{batched.rest_port}/monitoring/prometheus/metrics", timeout=5).text
        sizes = [line for line in text.splitlines()
                 if line.startswith(":tensorflow:serving:batching_session:processed_batch_size_count")]
        merged = float(sizes[0].split()[-1])
        assert 1 <= merged < len(batches)  # fewer model calls than requests
    finally:
        batched.stop()
        plain.stop()


def test_the_deployment_batches_as_the_serving_bench_chose():
    import json

    import yaml

    from shoprank.serving.api.coalesce import Coalescer

    results = INFRA_BATCHING.parents[4] / "bench" / "results" / "serving.json"
    if not results.exists():
        pytest.skip("no bench/results/serving.json yet (make bench-serving)")
    chosen = json.loads(results.read_text())["batching"]
    deployment = yaml.safe_load((INFRA_BATCHING.parent / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert ("--enable_batching=true" in container["args"]) == (chosen["chosen"] != "off")
    deployed = load_batching_parameters(INFRA_BATCHING)
    if chosen["parameters"] is not None:
        assert deployed == BatchingParameters(**chosen["parameters"])
    # the API never merges more rows into one Predict than one batch may hold (TF Serving refuses those)
    assert Coalescer(None).max_rows <= deployed.max_batch_size
