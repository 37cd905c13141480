#!/usr/bin/env python3
"""Turn `terraform output -json` of the public_compute zone (one environment) into the files of a
kustomize overlay (infra/k8s/overlays/<env>/generated/).

    TF_DATA_DIR=.terraform/prod terraform -chdir=infra/terraform/zones/public_compute \
        init -reconfigure -backend-config=../../envs/prod/public_compute.backend.hcl
    TF_DATA_DIR=.terraform/prod terraform -chdir=infra/terraform/zones/public_compute \
        output -json > /tmp/prod.json
    python infra/scripts/cluster_env.py --env prod --tf-output /tmp/prod.json

Writes:
    cluster.env                      non-secret keys of `shoprank_cluster_env`
                                     (ConfigMap shoprank-cluster-env)
    terraform.env                    IRSA role ARNs, Secrets Manager ARNs, region,
                                     compute VPC and data-zone CIDRs (local-config
                                     ConfigMap `terraform-outputs`, used by
                                     replacements)
    kfp-launcher/defaultPipelineRoot KFP pipeline root on S3
    kfp-launcher/providers           KFP S3 provider (link endpoint, IRSA)
    token-public-keys/key-{1,2}.pem  the public keys the online API verifies shopper
                                     tokens with (ConfigMap shoprank-token-public-keys);
                                     key-2 repeats key-1 outside a signing-key rotation

Secret VALUES never pass through here: SHOPRANK_FEAST_ONLINE_STORE and
SHOPRANK_FEAST_REGISTRY arrive as Secrets Manager ARNs and end up as
ExternalSecret remote keys; each namespace gets its own connection strings
(its own Redis user) from `secret_arns`, through its own SecretStore, whose
service account carries that namespace's IRSA role. The pseudonymisation key and the
token signing key are never among them: an output that names one is refused.
Standard library only.

TF Serving's model config is not generated here: it lives beside the models
(`$SHOPRANK_MODEL_BASE_PATH/models.config`), where push and rollback write it and
TF Serving polls it (infra/k8s/install.sh seeds an empty one before the first push).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

# Keys the shoprank `cluster` settings profile reads.
PROFILE_KEYS = (
    "SHOPRANK_PROFILE",
    "SHOPRANK_STORE_ROOT",
    "SHOPRANK_RAW_ROOT",
    "SHOPRANK_MODEL_BASE_PATH",
    "SHOPRANK_SERVED_ROOT",
    "SHOPRANK_FEAST_ONLINE_STORE",
    "SHOPRANK_FEAST_REGISTRY",
    "SHOPRANK_KFP_HOST",
    "SHOPRANK_MODEL_SERVER_URL",
    "SHOPRANK_MODEL_SERVER_GRPC",
    "AWS_REGION",
)
# Keys whose Terraform value is a Secrets Manager ARN (resolved in-cluster).
SECRET_KEYS = ("SHOPRANK_FEAST_ONLINE_STORE", "SHOPRANK_FEAST_REGISTRY")
# Namespaces with their own SecretStore (Terraform workload external_secrets_<namespace>).
SECRET_NAMESPACES = ("shoprank", "airflow", "kubeflow")
# Feast online-store clients, each with its own Redis user and secret (feast-online-store-<client>).
REDIS_CLIENTS = ("api", "airflow", "kfp")
# The online API's own secrets (ExternalSecrets shoprank-connections and shoprank-api-secrets).
API_SECRETS = ("rate-limits-redis", "api-keys", "request-id-key")
# Secrets of the private zone only: the cluster must never be able to name them.
PRIVATE_ZONE_SECRETS = ("pseudonym", "signing")
PUBLIC_KEY_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?")
OVERLAYS = Path(__file__).resolve().parents[1] / "k8s" / "overlays"


class OutputError(ValueError):
    """The Terraform outputs do not have what the overlay needs."""


def _value(outputs: dict, name: str):
    if name not in outputs:
        raise OutputError(f"terraform output {name!r} is missing")
    out = outputs[name]
    # `terraform output -json` wraps each output as {"value": ..., "type": ...}.
    return out["value"] if isinstance(out, dict) and "value" in out and "type" in out else out


def render(outputs: dict) -> dict[str, str]:
    """Return {relative path: content} for the overlay's generated/ folder."""
    env = dict(_value(outputs, "shoprank_cluster_env"))
    missing = [k for k in PROFILE_KEYS if k not in env]
    if missing:
        raise OutputError(f"shoprank_cluster_env lacks {missing}")
    for key in SECRET_KEYS:
        if not str(env[key]).startswith("arn:"):
            raise OutputError(f"{key} must be a Secrets Manager ARN, never a secret value")
    if env["SHOPRANK_PROFILE"] != "cluster":
        raise OutputError("SHOPRANK_PROFILE must be 'cluster'")

    endpoint_url = env.get("AWS_ENDPOINT_URL_S3", "")
    s3_host = urlparse(endpoint_url).netloc if endpoint_url else ""
    plain = {k: v for k, v in env.items() if k not in SECRET_KEYS}
    if s3_host:
        plain["S3_ENDPOINT"] = s3_host  # TF Serving's S3 filesystem wants a host

    roles = _value(outputs, "workload_role_arns")
    secrets = _value(outputs, "secret_arns")
    leaked = sorted(k for k, arn in secrets.items() if any(w in f"{k} {arn}" for w in PRIVATE_ZONE_SECRETS))
    if leaked:
        raise OutputError(f"secret_arns names private-zone keys {leaked}: they never reach the cluster")
    public_keys = list(_value(outputs, "token_public_keys"))
    if not 1 <= len(public_keys) <= 2 or not all(PUBLIC_KEY_PEM.fullmatch(k) for k in public_keys):
        raise OutputError("token_public_keys must be one or two PEM public keys (never a private key)")
    tf_env = {
        "SERVING_ROLE_ARN": roles["serving"],
        "ONLINE_API_ROLE_ARN": roles["online_api"],
        "TRAINING_ROLE_ARN": roles["training"],
        "KFP_ROLE_ARN": roles["kfp"],
        "AIRFLOW_ROLE_ARN": roles["airflow"],
        "FEATURE_JOB_ROLE_ARN": roles["feature_job"],
        **{f"EXTERNAL_SECRETS_{ns.upper()}_ROLE_ARN": roles[f"external_secrets_{ns}"] for ns in SECRET_NAMESPACES},
        **{f"FEAST_ONLINE_STORE_{client.upper()}_SECRET_ARN": secrets[f"feast-online-store-{client}"]
           for client in REDIS_CLIENTS},
        "FEAST_REGISTRY_SECRET_ARN": env["SHOPRANK_FEAST_REGISTRY"],
        # the online API reads the registry through the read-only role
        "FEAST_REGISTRY_READER_SECRET_ARN": secrets["feast-registry-reader"],
        **{f"{name.upper().replace('-', '_')}_SECRET_ARN": secrets[name] for name in API_SECRETS},
        "COMPUTE_KMS_KEY_ARN": _value(outputs, "compute_kms_key_arn"),
        "AIRFLOW_METADATA_SECRET_ARN": secrets["airflow-metadata"],
        "AWS_REGION": env["AWS_REGION"],
        "DATA_ZONE_CIDR": _value(outputs, "data_zone_cidr"),
        "COMPUTE_VPC_CIDR": _value(outputs, "compute_vpc_cidr"),
        "AIRFLOW_LOG_GROUP": _value(outputs, "airflow_log_group"),
        "CLUSTER_NAME": _value(outputs, "cluster_name"),
    }

    region = env["AWS_REGION"]
    providers = "\n".join(
        [
            "s3:",
            "  default:",
            f"    endpoint: {s3_host or 's3.' + region + '.amazonaws.com'}",
            "    disableSSL: false",
            f"    region: {region}",
            "    forcePathStyle: true",
            "    credentials:",
            "      fromEnv: true",
        ]
    )

    def dotenv(d: dict) -> str:
        return "".join(f"{k}={d[k]}\n" for k in sorted(d))

    return {
        "cluster.env": dotenv(plain),
        "terraform.env": dotenv(tf_env),
        "kfp-launcher/defaultPipelineRoot": _value(outputs, "kfp_pipeline_root"),
        "kfp-launcher/providers": providers + "\n",
        "token-public-keys/key-1.pem": _pem(public_keys[0]),
        "token-public-keys/key-2.pem": _pem(public_keys[-1]),
    }


def _pem(key: str) -> str:
    return key if key.endswith("\n") else key + "\n"


def write(files: dict[str, str], target: Path) -> None:
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="overlay name (dev, prod)")
    parser.add_argument(
        "--tf-output", required=True, help="file with `terraform output -json`, or - for stdin"
    )
    parser.add_argument("--out", help="target folder (default: infra/k8s/overlays/<env>/generated)")
    args = parser.parse_args(argv)

    raw = sys.stdin.read() if args.tf_output == "-" else Path(args.tf_output).read_text()
    try:
        files = render(json.loads(raw))
    except OutputError as exc:
        print(f"cluster_env: {exc}", file=sys.stderr)
        return 2
    target = Path(args.out) if args.out else OVERLAYS / args.env / "generated"
    write(files, target)
    print(f"wrote {', '.join(sorted(files))} to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
