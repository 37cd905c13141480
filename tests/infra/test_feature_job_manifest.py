"""The Spark feature job's manifest agrees with the code it runs and the infra it runs on: its
arguments parse with the job's own parser, it reads the nightly crossing the private stage writes, it
runs as the service account whose IRSA role (access.json, as Terraform reads it) may read and write
exactly those paths, on the CPU node group's label."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
import zone_rules

K8S_ROOT = Path(__file__).resolve().parents[2] / "infra" / "k8s"
JOB = K8S_ROOT / "jobs" / "feature-job"


def _rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH: cannot render the job with kubectl kustomize")
    done = subprocess.run([kubectl, "kustomize", str(JOB)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _app() -> dict:
    (app,) = [d for d in _rendered() if d["kind"] == "SparkApplication"]
    return app


def test_the_arguments_are_the_jobs_own_and_name_the_features_steps_files():
    from shoprank.features.engine.job import build_parser
    from shoprank.layout import crossing_prefix

    spec = _app()["spec"]
    # the submitter names the night's end and its crossing batch (`features.crossing.latest_crossing`)
    filled = [a.replace("REPLACE-END", "2026-12-03").replace("REPLACE-BATCH", "20261203T010000-abc-night")
              for a in spec["arguments"]]
    args = build_parser().parse_args(filled)
    assert args.engine == "spark" and args.master is None  # the operator's spark-submit sets the master
    bucket = "s3a://REPLACE-features-bucket/"
    batch = f"{bucket}{crossing_prefix('nightly')}/20261203T010000-abc-night"
    assert args.interactions == f"{batch}/interactions.parquet" and args.items == f"{batch}/catalogue.parquet"
    assert args.out.startswith(bucket + "features/engine/")
    assert spec["sparkConf"]["spark.sql.session.timeZone"] == "UTC"  # the queries compare UTC instants


def test_the_launcher_is_mounted_where_spark_submit_looks():
    docs = _rendered()
    (launcher,) = [d for d in docs if d["kind"] == "ConfigMap"]
    spec = _app()["spec"]
    (volume,) = spec["volumes"]
    assert volume["configMap"]["name"] == launcher["metadata"]["name"]
    (mount,) = spec["driver"]["volumeMounts"]
    assert spec["mainApplicationFile"] == f"local://{mount['mountPath']}/run.py"
    assert "from shoprank.features.engine.job import main" in launcher["data"]["run.py"]


def test_driver_and_executors_run_as_the_account_whose_role_reads_and_writes_those_paths():
    workload = zone_rules.compute_workloads(zone_rules.TF_ROOT)["feature_job"]
    spec = _app()["spec"]
    assert spec["driver"]["serviceAccount"] == spec["executor"]["serviceAccount"] == "feature-job"
    assert workload["namespace"] == _app()["metadata"]["namespace"]
    assert workload["service_accounts"] == ["feature-job"]
    assert workload["read"] == {"features": ["features/"]}
    assert workload["write"] == {"features": ["features/engine/"]}
    assert not workload["secrets"]
    base = yaml.safe_load_all((K8S_ROOT / "base" / "feature-job" / "serviceaccount.yaml").read_text())
    (account,) = [d for d in base if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["name"] == "feature-job"


def test_pods_land_on_the_cpu_node_group():
    cfg = zone_rules.load(zone_rules.module_dir(zone_rules.TF_ROOT, "public_compute"))
    cpu = cfg.of_type("aws_eks_node_group")["cpu"]
    labels = zone_rules.first(cpu, "labels") if isinstance(cpu.get("labels"), list) else cpu["labels"]
    spec = _app()["spec"]
    for role in ("driver", "executor"):
        assert spec[role]["nodeSelector"].items() <= labels.items(), role


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_overlay_gives_the_account_its_terraform_role(env):
    import json

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH")
    done = subprocess.run([kubectl, "kustomize", str(K8S_ROOT / "overlays" / env)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    (account,) = [d for d in yaml.safe_load_all(done.stdout)
                  if d and d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "feature-job"]
    outputs = json.loads((K8S_ROOT.parent / "scripts" / "examples" / f"{env}.tf-output.json").read_text())
    expected = outputs["workload_role_arns"]["value"]["feature_job"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == expected


def _yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_kfp_steps_may_run_the_job_and_nothing_more():
    """The features step (shoprank/features/engine/spark_application.py) creates, watches and deletes the
    SparkApplication and reads its driver's log, as the account every KFP step runs as; the Role grants
    exactly the calls the runner makes, in the job's namespace."""
    from shoprank.features.engine import spark_application

    docs = _yaml_docs(K8S_ROOT / "base" / "feature-job" / "submitter.yaml")
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    namespace = _app()["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == set(spark_application.PERMISSIONS)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    # the account the KFP manifests run every pipeline step as (platform/kubeflow-pipelines)
    accounts = _yaml_docs(K8S_ROOT / "platform" / "kubeflow-pipelines" / "serviceaccounts.yaml")
    runner = next(a for a in accounts if a["kind"] == "ServiceAccount" and a["metadata"]["name"] == "pipeline-runner")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": runner["metadata"]["name"],
                                    "namespace": runner["metadata"]["namespace"]}]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_overlay_installs_what_the_features_step_submits_against(env):
    """The step creates only the SparkApplication: the launcher it mounts and the Role that lets the step
    create it come with the overlay."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH")
    done = subprocess.run([kubectl, "kustomize", str(K8S_ROOT / "overlays" / env)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    namespace = _app()["metadata"]["namespace"]
    spec = _app()["spec"]

    def one(kind: str, name: str) -> dict:
        (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
                    and d["metadata"].get("namespace") == namespace]
        return found

    launcher = one("ConfigMap", spec["volumes"][0]["configMap"]["name"])
    assert launcher["data"]["run.py"] == next(d for d in _rendered() if d["kind"] == "ConfigMap")["data"]["run.py"]
    one("Role", "feature-job-submitter")
    assert one("RoleBinding", "feature-job-submitter")["subjects"][0]["namespace"] == "kubeflow"
    assert not [d for d in docs if d["kind"] == "SparkApplication"], "the overlay must not run the job itself"
