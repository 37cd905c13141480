"""Run the online API under uvicorn, with as many worker processes as asked for.

Each worker is a separate process with its own recommender (item table, gRPC channel), so the API
uses every core it is given; Prometheus samples of all workers are merged through a shared
multiprocess directory that lives as long as the server.
"""

from __future__ import annotations

import os
import shutil
import tempfile


def serve_api(host: str, port: int, workers: int = 1) -> int:
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # Fresh for this server (an inherited directory would mix in another process's samples); set
    # before any worker imports prometheus_client, so every worker writes its samples there.
    metrics_dir = tempfile.mkdtemp(prefix="shoprank-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = metrics_dir
    try:
        uvicorn.run("shoprank.serving.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                    loop="uvloop", http="httptools", access_log=False, timeout_graceful_shutdown=5,
                    timeout_keep_alive=75,  # longer than a load balancer's idle timeout (60 s on AWS)
                    log_level="warning")
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
