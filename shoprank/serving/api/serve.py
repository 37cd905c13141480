"""Run the online API under uvicorn, with as many worker processes as asked for.

Each worker is a separate process with its own recommender (item table, gRPC channel), so the API
uses every core it is given; Prometheus samples of all workers are merged through a shared
multiprocess directory that lives as long as the server.

Two listening sockets, one set of workers: the public port (the shop's front end and backend) and
the internal port (`internal_port`: /metrics, /docs, /openapi.json, /readyz for the operator, the
probes and Prometheus). Every worker accepts on both and the app answers each path on its own port
only (`app.PortSplit`), so the internal routes cannot be reached through the public Service.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve_api(host: str, port: int, workers: int = 1, internal_port: int | None = None) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from shoprank.settings import load_settings

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    internal = load_settings().internal_port if internal_port is None else internal_port
    if internal == port:
        raise ValueError(f"the internal port must differ from the public one ({port}); 0 serves both on one")
    # every worker reads its settings from the environment: it must split on the port bound here
    os.environ["SHOPRANK_INTERNAL_PORT"] = str(internal)
    # Fresh for this server (an inherited directory would mix in another process's samples); set
    # before any worker imports prometheus_client, so every worker writes its samples there.
    metrics_dir = tempfile.mkdtemp(prefix="shoprank-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = metrics_dir
    config = uvicorn.Config("shoprank.serving.api.app:create_app", factory=True, host=host, port=port,
                            workers=workers, loop="uvloop", http="httptools", access_log=False,
                            timeout_graceful_shutdown=5,
                            timeout_keep_alive=75,  # longer than a load balancer's idle timeout (60 s on AWS)
                            log_level="warning")
    sockets = [_listen(host, port)] + ([_listen(host, internal)] if internal else [])
    try:
        if workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            uvicorn.Server(config).run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
