"""What the rendered Kubernetes overlays must contain, and the plumbing from
`terraform output` to the overlay files (infra/scripts/cluster_env.py)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import cluster_env
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
K8S_ROOT = INFRA / "k8s"


EXAMPLES = INFRA / "scripts" / "examples"
ENVS = ("dev", "prod")


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH: cannot run kubectl kustomize to render the overlays")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S_ROOT / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def find(docs: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    for d in docs:
        meta = d["metadata"]
        if d["kind"] == kind and (meta["name"] == name or meta["name"].startswith(name + "-")):
            if namespace is None or meta.get("namespace") == namespace:
                return d
    raise AssertionError(f"{kind}/{name} not rendered")


@pytest.fixture(scope="module", params=ENVS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def test_tf_serving_deployment(rendered) -> None:
    env, docs = rendered
    dep = find(docs, "Deployment", "tf-serving")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("tensorflow/serving:2.21.0")
    args = " ".join(container["args"])
    if env == "prod":
        assert "--enable_batching=true" in args  # GPU serving always batches; CPU as benchmarked (test_batching)
    for flag in (
        "--model_config_file=",
        "--batching_parameters_file=",
        "--rest_api_port=8501",
        "--port=8500",
    ):
        assert flag in args
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/ranker/labels/stable"
    assert "livenessProbe" in container and "startupProbe" in container
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["serviceAccountName"] == "tf-serving"
    env_names = {e["name"] for e in container["env"]}
    assert {"S3_ENDPOINT", "AWS_REGION"} <= env_names


def test_tf_serving_polls_the_model_config_that_push_writes(rendered) -> None:
    """No pinned versions in the manifests: TF Serving reads `<model base path>/models.config`, the file
    shoprank push/rollback rewrite (shoprank/serving/model_server/model_config.py), and re-reads it on a timer."""
    env, docs = rendered
    (container,) = find(docs, "Deployment", "tf-serving")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--model_config_file=$(SHOPRANK_MODEL_BASE_PATH)/models.config" in args
    assert any(a.startswith("--model_config_file_poll_wait_seconds=") for a in args)
    assert not any(a.startswith("--allow_version_labels_for_unavailable_models") for a in args)  # two-step moves
    base_path = next(e for e in container["env"] if e["name"] == "SHOPRANK_MODEL_BASE_PATH")
    assert base_path["valueFrom"]["configMapKeyRef"]["key"] == "SHOPRANK_MODEL_BASE_PATH"
    cm = find(docs, "ConfigMap", "tf-serving-config", "shoprank")
    assert "models.config" not in cm["data"] and "max_batch_size" in cm["data"]["batching.config"]
    assert "models.config" in (K8S_ROOT / "install.sh").read_text()  # seeded before the first push


def test_hpa_and_pdb(rendered) -> None:
    env, docs = rendered
    for name in ("tf-serving", "online-api"):
        hpa = find(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1
        find(docs, "PodDisruptionBudget", name)


def test_gpu_serving_only_where_enabled(rendered) -> None:
    env, docs = rendered
    pod = find(docs, "Deployment", "tf-serving")["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    tolerations = pod.get("tolerations", [])
    if env == "prod":
        assert limits.get("nvidia.com/gpu") == 1
        assert pod["containers"][0]["image"].startswith("tensorflow/serving:2.21.0-gpu@sha256:")
        assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in tolerations)
        assert pod["nodeSelector"]["shoprank.io/pool"] == "gpu"
    else:
        assert "nvidia.com/gpu" not in limits and not tolerations


def test_online_api_runs_the_cluster_profile(rendered) -> None:
    env, docs = rendered
    (container,) = find(docs, "StatefulSet", "online-api")["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["shoprank", "serve-api"]
    # it must listen on the pod address: probes and the Service never reach a loopback-only server
    assert command[command.index("--host") + 1] == "0.0.0.0" and command[command.index("--port") + 1] == "8080"
    assert container["image"].startswith("ghcr.io/shoprank/shoprank:0.1.0@sha256:")
    cm_name = container["envFrom"][0]["configMapRef"]["name"]
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name)
    secret_keys = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert set(cluster_env.PROFILE_KEYS) <= set(cm["data"]) | secret_keys
    assert secret_keys == {*cluster_env.SECRET_KEYS, "SHOPRANK_RATE_LIMIT_REDIS"}  # rate limits shared in Redis
    assert cm["data"]["SHOPRANK_PROFILE"] == "cluster"
    assert cm["data"]["SHOPRANK_MODEL_SERVER_URL"] == "http://tf-serving:8501"
    assert cm["data"]["SHOPRANK_MODEL_SERVER_GRPC"] == "tf-serving:8500"


def test_online_api_probes_ask_the_api_whether_it_can_answer(rendered) -> None:
    env, docs = rendered
    sts = find(docs, "StatefulSet", "online-api")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env_values = {e["name"]: e.get("value") for e in container["env"]}
    # /readyz answers on the internal port only (settings.internal_port); /healthz stays on the public one
    assert ports == {"http": 8080, "internal": 9090} and env_values["SHOPRANK_INTERNAL_PORT"] == "9090"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "internal"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    assert pod["terminationGracePeriodSeconds"] >= 10
    workers = int(container["command"][container["command"].index("--workers") + 1])
    assert workers <= int(str(container["resources"]["limits"]["cpu"]).rstrip("m") or 1)  # a worker per CPU at most


def test_tf_serving_exports_prometheus_metrics_and_the_benchmarked_batching(rendered) -> None:
    from shoprank.serving.model_server.batching import (
        DEFAULT_BATCHING_FILE,
        load_batching_parameters,
        parse_batching_parameters,
    )

    env, docs = rendered
    config = find(docs, "ConfigMap", "tf-serving-config")["data"]
    assert 'path: "/monitoring/prometheus/metrics"' in config["monitoring.config"]
    assert parse_batching_parameters(config["batching.config"]) == load_batching_parameters(DEFAULT_BATCHING_FILE)
    (container,) = find(docs, "Deployment", "tf-serving")["spec"]["template"]["spec"]["containers"]
    assert "--monitoring_config_file=/etc/tf-serving/monitoring.config" in container["args"]


def _api_pod(docs: list[dict]) -> tuple[dict, dict]:
    pod = find(docs, "StatefulSet", "online-api")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _mounted_file(pod: dict, container: dict, path: str) -> tuple[dict, str]:
    """The pod volume a file path lies on, and the file's key inside it."""
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return volume, path.removeprefix(mount["mountPath"].rstrip("/") + "/")


def test_online_api_holds_no_private_key_and_reads_the_registry_read_only(rendered) -> None:
    """The API verifies tokens with public keys (a ConfigMap of Ed25519 public keys), checks API keys
    against their hashes and signs request ids with its own secret; it gets neither the
    pseudonymisation key nor the token signing key, in any form."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    env, docs = rendered
    pod, container = _api_pod(docs)
    values = {e["name"]: e.get("value") for e in container["env"]}
    assert not [n for n in values if "PSEUDONYM" in n or "SIGNING" in n]
    assert not [v for v in pod["volumes"] if "pseudonym" in str(v) or "signing" in str(v)]
    assert not [d for d in docs if "pseudonym-key" in str(d) or "token-signing" in str(d)]
    keys = values["SHOPRANK_TOKEN_PUBLIC_KEYS"].split(",")
    assert len(keys) == 2
    for path in keys:
        volume, key = _mounted_file(pod, container, path)
        config = find(docs, "ConfigMap", volume["configMap"]["name"], "shoprank")
        assert isinstance(load_pem_public_key(config["data"][key].encode()), Ed25519PublicKey)
    synced = find(docs, "ExternalSecret", "shoprank-api-secrets", "shoprank")
    remote = {item["secretKey"]: item["remoteRef"]["key"] for item in synced["spec"]["data"]}
    for setting, secret in (("SHOPRANK_API_KEYS_FILE", "api-keys"), ("SHOPRANK_REQUEST_ID_KEY", "request-id-key")):
        volume, key = _mounted_file(pod, container, values[setting])
        assert volume["secret"]["secretName"] == synced["spec"]["target"]["name"]
        assert f"shoprank-{env}/{secret}-" in remote[key]
    assert all(m.get("readOnly") for m in container["volumeMounts"]
               if m["name"] in ("api-secrets", "token-public-keys"))
    registry = {d["metadata"]["namespace"]: next(x["remoteRef"]["key"] for x in d["spec"]["data"]
                                                 if x["secretKey"] == "SHOPRANK_FEAST_REGISTRY")
                for d in docs if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == "shoprank-connections"}
    assert "/feast-registry-reader-" in registry["shoprank"]  # the API: read-only role
    assert "/feast-registry-" in registry["kubeflow"] and "reader" not in registry["kubeflow"]  # the pipeline writes
    connections = find(docs, "ExternalSecret", "shoprank-connections", "shoprank")
    rate = next(x["remoteRef"]["key"] for x in connections["spec"]["data"]
                if x["secretKey"] == "SHOPRANK_RATE_LIMIT_REDIS")
    assert f"shoprank-{env}/rate-limits-redis-" in rate


def test_only_the_shops_port_is_served_and_the_internal_one_is_for_monitoring(rendered) -> None:
    """/metrics, /docs, /openapi.json and /readyz answer on 9090: no Service the shop reaches exposes it,
    and the NetworkPolicy admits it from the monitoring namespace only (probes come from the node)."""
    env, docs = rendered
    api_services = [d for d in docs if d["kind"] == "Service"
                    and d["spec"].get("selector") == {"app.kubernetes.io/name": "online-api"}]
    traffic = [d for d in api_services if d["spec"].get("clusterIP") != "None"]
    assert [d["metadata"]["name"] for d in traffic] == ["online-api"]
    assert [p["port"] for p in traffic[0]["spec"]["ports"]] == [8080]
    assert traffic[0]["spec"]["ports"][0]["targetPort"] == "http"
    (headless,) = [d for d in api_services if d["spec"].get("clusterIP") == "None"]
    assert find(docs, "StatefulSet", "online-api")["spec"]["serviceName"] == headless["metadata"]["name"]
    policy = find(docs, "NetworkPolicy", "online-api", "shoprank")["spec"]
    by_port = {p["port"]: rule for rule in policy["ingress"] for p in rule["ports"]}
    assert set(by_port) == {8080, 9090}
    assert by_port[9090]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_event_log_is_on_a_retained_encrypted_volume_per_pod(rendered) -> None:
    """POST /events is acknowledged once in the pod's log: the log is on the pod's own claim (gp3,
    encrypted with the compute zone's key), kept when the set scales down or is deleted, and the
    autoscaler and the disruption budget act on the StatefulSet's pods."""
    env, docs = rendered
    sts = find(docs, "StatefulSet", "online-api")
    pod, container = _api_pod(docs)
    log = next(e["value"] for e in container["env"] if e["name"] == "SHOPRANK_EVENT_LOG")
    mount = next(m for m in container["volumeMounts"] if log.startswith(m["mountPath"] + "/"))
    (claim,) = [t for t in sts["spec"]["volumeClaimTemplates"] if t["metadata"]["name"] == mount["name"]]
    assert mount["name"] not in {v["name"] for v in pod["volumes"]}
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    storage = find(docs, "StorageClass", claim["spec"]["storageClassName"])
    tf_env = dict(line.split("=", 1) for line in
                  (K8S_ROOT / "overlays" / env / "generated" / "terraform.env").read_text().splitlines())
    assert storage["provisioner"] == "ebs.csi.aws.com" and storage["parameters"]["type"] == "gp3"
    assert storage["parameters"]["encrypted"] == "true"
    assert storage["parameters"]["kmsKeyId"] == tf_env["COMPUTE_KMS_KEY_ARN"]
    assert storage["volumeBindingMode"] == "WaitForFirstConsumer"  # the volume is made in its pod's zone
    assert find(docs, "HorizontalPodAutoscaler", "online-api")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    pdb = find(docs, "PodDisruptionBudget", "online-api")
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["template"]["metadata"]["labels"]
    if env == "dev":
        assert sts["spec"]["replicas"] == 1


def test_the_api_rolls_its_log_into_served_of_the_features_bucket(rendered) -> None:
    """served/ holds pseudonyms only and lives in the features bucket: the cluster profile points
    served_root there, and the API's IRSA role (access.json online_api) may write it."""
    from shoprank.zones import access, data_class

    env, docs = rendered
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("shoprank-cluster-env")
              and d["metadata"].get("namespace") == "shoprank")
    assert re.fullmatch(rf"s3://shoprank-{env}-features-\d+", cm["data"]["SHOPRANK_SERVED_ROOT"])
    api = access()["roles"]["online_api"]
    assert {"served/", "features/privacy/", "locks/"} <= set(api["write"]["features"])
    assert data_class("served/events/x.parquet") == "pseudonymised"
    assert access()["prefixes"]["served/"]["bucket"] == "features"


def test_secrets_come_from_secrets_manager_not_from_git(rendered) -> None:
    env, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"], "no Secret may be committed; use ExternalSecret"
    for es in (d for d in docs if d["kind"] == "ExternalSecret"):
        keys = [item["remoteRef"]["key"] for item in es["spec"].get("data", [])]
        keys += [item["extract"]["key"] for item in es["spec"].get("dataFrom", [])]
        assert keys and all(key.startswith("arn:aws:secretsmanager:") for key in keys)


def test_platform_is_pointed_at_the_zones(rendered) -> None:
    env, docs = rendered
    launcher = find(docs, "ConfigMap", "kfp-launcher", "kubeflow")
    assert (
        launcher["data"]["defaultPipelineRoot"].startswith("s3://")
        and "-pipelines-" in launcher["data"]["defaultPipelineRoot"]
    )
    assert "vpce.amazonaws.com" in launcher["data"]["providers"]
    for sa in ("pipeline-runner", "ml-pipeline", "tf-serving", "online-api"):
        role = find(docs, "ServiceAccount", sa)["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert role.startswith("arn:aws:iam::") and f"shoprank-{env}-" in role
    edge = find(docs, "Service", "airflow-edge-api", "airflow")
    assert edge["spec"]["ports"][0]["nodePort"] == 30080
    assert edge["spec"]["loadBalancerSourceRanges"] != ["0.0.0.0/0"]
    assert not [d for d in docs if d["metadata"]["name"] == "terraform-outputs"], "local-config leaked"


# --- terraform output -> overlay files ---------------------------------------
def example(env: str) -> dict:
    return json.loads((EXAMPLES / f"{env}.tf-output.json").read_text())


@pytest.mark.parametrize("env", ENVS)
def test_generated_overlay_files_are_up_to_date(env: str) -> None:
    files = cluster_env.render(example(env))
    for rel, content in files.items():
        path = K8S_ROOT / "overlays" / env / "generated" / rel
        assert path.read_text() == content, (
            f"{path.relative_to(REPO_ROOT)} is stale: run python infra/scripts/cluster_env.py "
            f"--env {env} --tf-output infra/scripts/examples/{env}.tf-output.json"
        )


def test_cluster_env_routes_secret_arns_to_external_secrets() -> None:
    files = cluster_env.render(example("prod"))
    plain = dict(line.split("=", 1) for line in files["cluster.env"].splitlines())
    assert not set(cluster_env.SECRET_KEYS) & set(plain)
    assert plain["S3_ENDPOINT"] == plain["AWS_ENDPOINT_URL_S3"].removeprefix("https://")
    tf_env = dict(line.split("=", 1) for line in files["terraform.env"].splitlines())
    online = {c: tf_env[f"FEAST_ONLINE_STORE_{c.upper()}_SECRET_ARN"] for c in cluster_env.REDIS_CLIENTS}
    assert all(arn.startswith("arn:aws:secretsmanager:") and f"/feast-online-store-{c}-" in arn
               for c, arn in online.items())
    assert len(set(online.values())) == len(online)  # each client its own Redis user and secret
    stores = {ns: tf_env[f"EXTERNAL_SECRETS_{ns.upper()}_ROLE_ARN"] for ns in cluster_env.SECRET_NAMESPACES}
    assert all(arn.endswith(f"-external-secrets-{ns}") for ns, arn in stores.items())


def test_cluster_env_rejects_secret_values_and_missing_keys() -> None:
    outputs = example("dev")
    leaked = copy.deepcopy(outputs)
    leaked["shoprank_cluster_env"]["value"]["SHOPRANK_FEAST_ONLINE_STORE"] = (
        "redis:6379,ssl=true,password=hunter2"
    )
    with pytest.raises(cluster_env.OutputError, match="never a secret value"):
        cluster_env.render(leaked)
    missing = copy.deepcopy(outputs)
    del missing["shoprank_cluster_env"]["value"]["SHOPRANK_KFP_HOST"]
    with pytest.raises(cluster_env.OutputError, match="SHOPRANK_KFP_HOST"):
        cluster_env.render(missing)


def test_cluster_env_refuses_private_zone_keys_and_anything_but_public_keys() -> None:
    outputs = example("dev")
    leaked = copy.deepcopy(outputs)
    leaked["secret_arns"]["value"]["pseudonym-key"] = "arn:aws:secretsmanager:eu-west-1:0:secret:x/pseudonym-key-A"
    with pytest.raises(cluster_env.OutputError, match="private-zone keys"):
        cluster_env.render(leaked)
    private = copy.deepcopy(outputs)
    private["token_public_keys"]["value"] = [
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"]
    with pytest.raises(cluster_env.OutputError, match="token_public_keys"):
        cluster_env.render(private)
    files = cluster_env.render(outputs)
    assert files["token-public-keys/key-1.pem"] == files["token-public-keys/key-2.pem"]  # one key: both slots
    rotating = copy.deepcopy(outputs)
    rotating["token_public_keys"]["value"].append(example("prod")["token_public_keys"]["value"][0])
    files = cluster_env.render(rotating)
    assert files["token-public-keys/key-1.pem"] != files["token-public-keys/key-2.pem"]


def test_cluster_env_cli(tmp_path: Path) -> None:
    code = cluster_env.main(
        ["--env", "dev", "--tf-output", str(EXAMPLES / "dev.tf-output.json"), "--out", str(tmp_path)]
    )
    assert code == 0
    assert (tmp_path / "cluster.env").read_text().startswith("AWS_ENDPOINT_URL_S3=")


def test_the_event_roll_alerts_are_rendered_and_watch_metrics_the_api_exports(rendered) -> None:
    import re

    from shoprank.serving.api.metrics import ApiMetrics

    _, docs = rendered
    rule = find(docs, "PrometheusRule", "shoprank-event-roll", namespace="shoprank")
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == {"ShoprankEventRollStalled", "ShoprankEventRollQuarantined",
                                           "ShoprankEventRollFailing"}
    exported = {m.name for m in ApiMetrics().registry.collect()}
    for r in rules:
        (metric,) = re.findall(r"shoprank_[a-z_]+", r["expr"])
        assert metric in exported, f"{r['alert']} watches {metric}, which /metrics does not export"
        assert r["annotations"]["runbook"].startswith("docs/operations.md#")


# --- hardening: images, NetworkPolicies, SecretStores, as rendered ----------------
DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def images(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["image"]] if isinstance(node.get("image"), str) else []
        return found + [i for k, v in node.items() if k != "image" for i in images(v)]
    if isinstance(node, list):
        return [i for v in node for i in images(v)]
    return []


def test_every_rendered_image_is_pinned_by_digest(rendered) -> None:
    env, docs = rendered
    found = images(docs)
    assert found and all(DIGEST_REF.match(image) for image in found), found
    job = subprocess.run([shutil.which("kubectl"), "kustomize", str(K8S_ROOT / "jobs" / "feature-job")],
                         capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, job.stderr
    assert all(DIGEST_REF.match(image) for image in images(list(yaml.safe_load_all(job.stdout))))


def test_the_digest_check_fails_on_a_mutable_tag() -> None:
    deployment = {"spec": {"template": {"spec": {"containers": [{"image": "tensorflow/serving:2.21.0"}]}}}}
    assert not all(DIGEST_REF.match(image) for image in images(deployment))


def test_public_namespaces_deny_egress_but_what_they_need(rendered) -> None:
    env, docs = rendered
    tf_env = dict(line.split("=", 1) for line in
                  (K8S_ROOT / "overlays" / env / "generated" / "terraform.env").read_text().splitlines())
    policies = {(d["metadata"]["namespace"], d["metadata"]["name"]): d["spec"] for d in docs
                if d["kind"] == "NetworkPolicy"}
    for ns in ("shoprank", "airflow", "kubeflow"):
        deny = [s for (n, _), s in policies.items() if n == ns and s["podSelector"] == {}
                and "Egress" in s["policyTypes"] and not s.get("egress")]
        assert deny, f"{ns}: no default-deny egress"
        https = policies[(ns, "allow-aws-endpoints")]["egress"][0]
        assert [p["ipBlock"]["cidr"] for p in https["to"]] == [tf_env["COMPUTE_VPC_CIDR"], tf_env["DATA_ZONE_CIDR"]]
        assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
        stores = policies[(ns, "allow-data-stores")]["egress"][0]
        assert [p["ipBlock"]["cidr"] for p in stores["to"]] == [tf_env["DATA_ZONE_CIDR"]]
        assert {p["port"] for p in stores["ports"]} == {5432, 6379}
        dns = policies[(ns, "allow-dns")]["egress"][0]
        assert {"port": 53, "protocol": "UDP"} in dns["ports"]
    # only the online API talks to the data stores in the app's namespace
    assert policies[("shoprank", "allow-data-stores")]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "online-api"}}


def test_each_namespace_reads_its_own_secrets_through_its_own_store(rendered) -> None:
    env, docs = rendered
    assert not [d for d in docs if d["kind"] in ("ClusterSecretStore", "ClusterExternalSecret")]
    stores = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "SecretStore"}
    assert set(stores) == {"shoprank", "airflow", "kubeflow"}
    for ns, store in stores.items():
        account = store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"]
        sa = find(docs, "ServiceAccount", account, ns)
        assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
            f"shoprank-{env}-external-secrets-{ns}")
        assert store["spec"]["provider"]["aws"]["region"] == "eu-west-1"
    online = {}
    for es in (d for d in docs if d["kind"] == "ExternalSecret"):
        ns = es["metadata"]["namespace"]
        assert es["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": stores[ns]["metadata"]["name"]}
        for item in es["spec"].get("data", []):
            if item["secretKey"] == "SHOPRANK_FEAST_ONLINE_STORE":
                online[ns] = item["remoteRef"]["key"]
    client = {"shoprank": "api", "airflow": "airflow", "kubeflow": "kfp"}
    assert {ns: f"/feast-online-store-{client[ns]}-" in arn for ns, arn in online.items()} == {
        ns: True for ns in client}
