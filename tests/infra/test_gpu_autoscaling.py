"""The GPU capacity the hybrid cloud bursts to: spot first, scaled from zero, on-demand as the fallback.

Held together here because the pieces live in three places and only work as one: the node groups
(Terraform), the autoscaler's priority expander (its Helm values, which match the groups by name)
and its IAM role, and the pods that select the groups (the train task, GPU serving).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
import zone_rules

INFRA = Path(__file__).resolve().parents[2] / "infra"
VALUES = INFRA / "k8s" / "platform" / "cluster-autoscaler" / "values.yaml"


def _public_compute():
    return zone_rules.load(zone_rules.module_dir(zone_rules.TF_ROOT, "public_compute"))


def _priority(group_name: str) -> int:
    """The priority the expander gives an autoscaling group (the highest whose pattern matches, as it does)."""
    priorities = yaml.safe_load(yaml.safe_load(VALUES.read_text())["expanderPriorities"])
    return max((int(p) for p, patterns in priorities.items() if any(re.search(x, group_name) for x in patterns)),
               default=0)


def test_spot_scales_from_zero_and_on_demand_is_the_fallback():
    cfg = _public_compute()
    groups = cfg.locals["gpu_groups"]
    by_capacity = {g["capacity"]: g for g in groups.values()}
    assert set(by_capacity) == {"SPOT", "ON_DEMAND"}
    spot = by_capacity["SPOT"]
    assert spot["scaling"]["min"] == 0 and spot["scaling"]["desired"] == 0
    node_group = cfg.of_type("aws_eks_node_group")["gpu"]
    assert node_group["for_each"] == "${local.gpu_groups}" and node_group["capacity_type"] == "${each.value.capacity}"
    # both groups: the pool the train task selects and the taint only GPU pods tolerate
    assert node_group["labels"]["shoprank.io/pool"] == "gpu"
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in zone_rules.blocks(node_group, "taint")


def test_the_expander_tries_spot_first_then_on_demand_then_cpu():
    groups = _public_compute().locals["gpu_groups"]
    # EKS names a managed node group's autoscaling group eks-<node group name>-<uuid>
    asg = {g["capacity"]: "eks-" + g["name"].replace("${var.name_prefix}", "shoprank-prod") + "-4ec8b0f2"
           for g in groups.values()}
    spot, on_demand, cpu = _priority(asg["SPOT"]), _priority(asg["ON_DEMAND"]), _priority("eks-shoprank-prod-cpu-1a2b")
    assert spot > on_demand > cpu > 0
    args = yaml.safe_load(VALUES.read_text())["extraArgs"]
    assert args["expander"] == "priority" and args["max-node-provision-time"] == "5m"


def test_the_autoscaler_resizes_only_this_clusters_groups_and_is_installed_pinned():
    text = (INFRA / "terraform" / "modules" / "public_compute" / "irsa.tf").read_text()
    policy = text[text.index('data "aws_iam_policy_document" "cluster_autoscaler"'):]
    resize = policy[policy.index('sid       = "ResizeOwnGroups"'):]
    resize = resize[:resize.index('values   = ["owned"]')]  # the resize statement up to its condition's value
    assert "autoscaling:SetDesiredCapacity" in resize and 'test     = "StringEquals"' in resize
    assert '"aws:ResourceTag/k8s.io/cluster-autoscaler/${aws_eks_cluster.this.name}"' in resize
    assert "eks:DescribeNodegroup" in policy  # scale from zero reads the managed groups' labels and taints
    lines = (INFRA / "k8s" / "platform" / "versions.env").read_text().splitlines()
    versions = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    install = (INFRA / "k8s" / "install.sh").read_text()
    assert re.match(r"^\d+\.\d+\.\d+$", versions["CLUSTER_AUTOSCALER_CHART_VERSION"])
    assert '--version "$CLUSTER_AUTOSCALER_CHART_VERSION"' in install and "cluster_autoscaler_role_arn" in install
    for env in ("dev", "prod"):
        outputs = json.loads((INFRA / "scripts" / "examples" / f"{env}.tf-output.json").read_text())
        assert outputs["cluster_autoscaler_role_arn"]["value"].endswith(f"shoprank-{env}-cluster-autoscaler")


def test_gpu_serving_stays_on_on_demand_nodes():
    patch = (INFRA / "k8s" / "components" / "gpu-serving" / "kustomization.yaml").read_text()
    selector = yaml.safe_load(next(p["patch"] for p in yaml.safe_load(patch)["patches"]
                                   if "nodeSelector" in p["patch"]))["spec"]["template"]["spec"]["nodeSelector"]
    # the label value the HCL gives the on-demand group: lower(replace("ON_DEMAND", "_", "-"))
    assert selector == {"shoprank.io/pool": "gpu", "shoprank.io/capacity": "on-demand"}
