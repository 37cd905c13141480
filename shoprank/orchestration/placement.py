"""Where the pipeline's train task runs on the cluster: image, resources, GPU node group.

Pure parsing of the settings (`train_*`, `gpu_node_selector`, `gpu_toleration`) into what Kubernetes
needs; `pipelines/nightly.py` applies it to the task with kfp-kubernetes. A malformed value is an
error that names the setting and the expected form, raised when the pipeline is compiled, not a pod
that never schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoprank.settings import Settings

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class Toleration:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class TrainPlacement:
    image: str  # empty: the components' base image
    cpu: str
    memory: str
    gpus: int
    node_selector: tuple[str, str] | None  # (label key, value); None without GPUs
    toleration: Toleration | None


def _selector(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"setting gpu_node_selector (SHOPRANK_GPU_NODE_SELECTOR) must be `label=value`, "
                         f"got {text!r}")
    return key.strip(), value.strip()


def _toleration(text: str) -> Toleration:
    taint, sep, effect = text.rpartition(":")
    key, eq, value = taint.partition("=")
    if not sep or not eq or not key.strip() or effect not in EFFECTS:
        raise ValueError(f"setting gpu_toleration (SHOPRANK_GPU_TOLERATION) must be `key=value:Effect` with "
                         f"Effect one of {EFFECTS} (the GPU nodes' taint), got {text!r}")
    return Toleration(key.strip(), value.strip(), effect)


def train_placement(settings: Settings) -> TrainPlacement:
    try:
        gpus = int(settings.train_gpus)
    except ValueError:
        raise ValueError(f"setting train_gpus (SHOPRANK_TRAIN_GPUS) must be a whole number, "
                         f"got {settings.train_gpus!r}") from None
    if gpus < 0:
        raise ValueError(f"setting train_gpus (SHOPRANK_TRAIN_GPUS) must be >= 0, got {gpus}")
    on_gpu = gpus > 0
    return TrainPlacement(image=settings.train_image, cpu=settings.train_cpu, memory=settings.train_memory,
                          gpus=gpus, node_selector=_selector(settings.gpu_node_selector) if on_gpu else None,
                          toleration=_toleration(settings.gpu_toleration) if on_gpu else None)
