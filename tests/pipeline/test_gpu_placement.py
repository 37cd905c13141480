"""The train task lands on the GPU nodes infra/ declares: the toleration for their taint and their
node group's label, read from the Terraform HCL, are what the compiled pipeline asks for."""

from __future__ import annotations

import sys

import pytest
import yaml

from pipelines.nightly import COMPILED, compile_pipeline
from shoprank.orchestration.placement import train_placement
from shoprank.settings import REPO_ROOT, load_settings

sys.path.insert(0, str(REPO_ROOT / "infra" / "policy"))
import zone_rules  # noqa: E402 - infra/policy is not a package

EFFECT = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def gpu_node_group() -> dict:
    """The EKS node group whose instances carry an `nvidia.com/gpu` taint, from infra/."""
    cfg = zone_rules.load(zone_rules.module_dir(zone_rules.TF_ROOT, "public_compute"))
    groups = [body for body in cfg.of_type("aws_eks_node_group").values()
              if any(t.get("key") == "nvidia.com/gpu" for t in zone_rules.blocks(body, "taint"))]
    assert len(groups) == 1, f"expected one GPU node group in infra/, found {len(groups)}"
    return groups[0]


def train_platform(spec_path, executor: str = "exec-train") -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all(spec_path.read_text()))
    pipeline, platform = docs[0], docs[1]
    placed = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
    return pipeline["deploymentSpec"]["executors"][executor]["container"], placed


def test_the_compiled_training_tasks_tolerate_the_taint_and_select_the_node_group_of_infra():
    group = gpu_node_group()
    taint = zone_rules.first(group, "taint")
    for executor in ("exec-train", "exec-sequence-model"):  # the ranker's and the sequence model's training
        container, k8s = train_platform(COMPILED, executor)
        assert k8s["tolerations"] == [{"key": taint["key"], "operator": "Equal", "value": str(taint["value"]),
                                       "effect": EFFECT[taint["effect"]]}], executor
        assert k8s["nodeSelector"]["labels"].items() <= group["labels"].items(), executor
        accelerator = container["resources"]["accelerator"]
        assert (accelerator["resourceCount"], accelerator["resourceType"]) == ("1", "nvidia.com/gpu"), executor
        assert (container["resources"]["resourceCpuLimit"],
                container["resources"]["resourceMemoryLimit"]) == ("8", "32G"), executor
    # only the two training tasks ask for the GPU nodes
    platform = list(yaml.safe_load_all(COMPILED.read_text()))[1]
    assert sorted(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == [
        "exec-sequence-model", "exec-train"]


def test_image_resources_and_placement_follow_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPRANK_TRAIN_IMAGE", "registry.example/shoprank-gpu:1.2")
    monkeypatch.setenv("SHOPRANK_TRAIN_GPUS", "2")
    monkeypatch.setenv("SHOPRANK_GPU_TOLERATION", "gpu-only=yes:NoExecute")
    monkeypatch.setenv("SHOPRANK_GPU_NODE_SELECTOR", "pool = a100")
    container, k8s = train_platform(compile_pipeline(tmp_path / "nightly.yaml"))
    assert container["image"] == "registry.example/shoprank-gpu:1.2"
    assert container["resources"]["accelerator"]["resourceCount"] == "2"
    assert k8s["tolerations"] == [{"key": "gpu-only", "operator": "Equal", "value": "yes", "effect": "NoExecute"}]
    assert k8s["nodeSelector"]["labels"] == {"pool": "a100"}


@pytest.mark.parametrize(("name", "value", "message"), [
    ("gpu_toleration", "nvidia.com/gpu=true", "must be `key=value:Effect`"),
    ("gpu_toleration", "nvidia.com/gpu=true:NoScheduleX", "must be `key=value:Effect`"),
    ("gpu_node_selector", "gpu", "must be `label=value`"),
    ("train_gpus", "one", "must be a whole number"),
])
def test_a_malformed_placement_setting_names_the_setting_and_the_form(name, value, message):
    with pytest.raises(ValueError, match=message) as caught:
        train_placement(load_settings(**{name: value}))
    assert f"SHOPRANK_{name.upper()}" in str(caught.value)


def test_without_gpus_the_task_asks_for_no_gpu_node():
    placed = train_placement(load_settings(train_gpus="0", gpu_toleration="broken"))
    assert placed.gpus == 0 and placed.toleration is None and placed.node_selector is None
