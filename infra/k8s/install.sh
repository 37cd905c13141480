#!/usr/bin/env bash
# Cluster installs for one environment, in order, after the three Terraform
# applies (private_data -> public_compute -> link). Run from the repository
# root with kubectl/helm pointed at the cluster (private API endpoint: from
# the VPC, e.g. an SSM session).
#
#   infra/k8s/install.sh dev|prod
#
# Versions are pinned in infra/k8s/platform/versions.env.
set -euo pipefail

ENV_NAME="${1:?usage: infra/k8s/install.sh dev|prod}"
case "$ENV_NAME" in dev | prod) ;; *) echo "usage: infra/k8s/install.sh dev|prod" >&2 && exit 2 ;; esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TF_ZONE="$ROOT/infra/terraform/zones/public_compute"
# One initialised working directory per environment (relative to -chdir), so
# the outputs are read from this environment's state, never another's.
export TF_DATA_DIR=".terraform/$ENV_NAME"
OVERLAY="$ROOT/infra/k8s/overlays/$ENV_NAME"
# shellcheck source=platform/versions.env
source "$ROOT/infra/k8s/platform/versions.env"

# 0. Overlay files from Terraform outputs (the `cluster` profile, IRSA, ARNs).
terraform -chdir="$TF_ZONE" init -input=false -reconfigure \
  -backend-config="../../envs/$ENV_NAME/public_compute.backend.hcl" >/dev/null
terraform -chdir="$TF_ZONE" output -json > "/tmp/shoprank-$ENV_NAME-tf-output.json"
python3 "$ROOT/infra/scripts/cluster_env.py" --env "$ENV_NAME" --tf-output "/tmp/shoprank-$ENV_NAME-tf-output.json"
# shellcheck disable=SC1090
source <(sed 's/^/export /' "$OVERLAY/generated/terraform.env")
aws eks update-kubeconfig --name "$CLUSTER_NAME" --region "$AWS_REGION"

# 1. External Secrets Operator. It has no AWS role of its own: each namespace's SecretStore reads the
#    data zone's Secrets Manager with that namespace's IRSA role (the overlay's service accounts).
helm repo add external-secrets https://charts.external-secrets.io >/dev/null
helm repo add apache-airflow https://airflow.apache.org >/dev/null
helm repo add spark-operator https://kubeflow.github.io/spark-operator >/dev/null
helm repo add autoscaler https://kubernetes.github.io/autoscaler >/dev/null
helm repo update >/dev/null
helm upgrade --install external-secrets external-secrets/external-secrets \
  --namespace external-secrets --create-namespace \
  --version "$EXTERNAL_SECRETS_CHART_VERSION" \
  -f "$ROOT/infra/k8s/platform/external-secrets/values.yaml" \
  --wait

# 2. Kubeflow Pipelines, pinned upstream manifests.
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"

# 2b. TF Serving reads its model config beside the models; push and rollback write it.
#     Before the first push there is none: seed an empty one (never overwrite).
MODEL_BASE_PATH="$(sed -n 's/^SHOPRANK_MODEL_BASE_PATH=//p' "$OVERLAY/generated/cluster.env")"
if ! aws s3 ls "$MODEL_BASE_PATH/models.config" >/dev/null 2>&1; then
  printf '# Seeded by infra/k8s/install.sh; shoprank push/rollback rewrite it.\nmodel_config_list {\n}\n' |
    aws s3 cp - "$MODEL_BASE_PATH/models.config"
fi

# 3. shoprank overlay: cluster profile, SecretStores and ExternalSecrets, IRSA, NetworkPolicies,
#    KFP launcher, TF Serving, online API, Airflow edge entry point.
kubectl apply -k "$OVERLAY"
kubectl -n airflow wait --for=condition=Ready externalsecret/airflow-metadata --timeout=120s

# 4. Airflow (metadata DB in the data zone; edge workers in the data zone).
AIRFLOW_SET=()
for component in scheduler workers apiServer triggerer dagProcessor; do
  AIRFLOW_SET+=(--set-string "$component.serviceAccount.annotations.eks\.amazonaws\.com/role-arn=$AIRFLOW_ROLE_ARN")
done
ACCOUNT_ID="$(cut -d: -f5 <<<"$AIRFLOW_ROLE_ARN")"
helm upgrade --install airflow apache-airflow/airflow \
  --namespace airflow \
  --version "$AIRFLOW_CHART_VERSION" \
  -f "$ROOT/infra/k8s/platform/airflow/values.yaml" \
  --set-string "airflowVersion=$AIRFLOW_VERSION" \
  --set-string "defaultAirflowRepository=$SHOPRANK_IMAGE" \
  --set-string "defaultAirflowTag=$SHOPRANK_IMAGE_TAG" \
  --set-string "defaultAirflowDigest=$SHOPRANK_IMAGE_DIGEST" \
  --set-string "config.logging.remote_base_log_folder=cloudwatch://arn:aws:logs:$AWS_REGION:$ACCOUNT_ID:log-group:$AIRFLOW_LOG_GROUP" \
  "${AIRFLOW_SET[@]}" \
  --wait --timeout 15m

# 5. Spark operator: runs the feature job in the shoprank namespace (the nightly's features step
#    creates one SparkApplication per run; infra/k8s/jobs/feature-job is the same spec by hand), as the
#    feature-job service account the overlay created with its IRSA role.
helm upgrade --install spark-operator spark-operator/spark-operator \
  --namespace spark-operator --create-namespace \
  --version "$SPARK_OPERATOR_CHART_VERSION" \
  -f "$ROOT/infra/k8s/platform/spark-operator/values.yaml" \
  --wait

# 6. Cluster autoscaler: the GPU node groups scale from zero, spot first, on-demand as the fallback
#    (priority expander; platform/cluster-autoscaler/values.yaml), with its own IRSA role.
CA_ROLE_ARN="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["cluster_autoscaler_role_arn"]["value"])' \
  "/tmp/shoprank-$ENV_NAME-tf-output.json")"
helm upgrade --install cluster-autoscaler autoscaler/cluster-autoscaler \
  --namespace kube-system \
  --version "$CLUSTER_AUTOSCALER_CHART_VERSION" \
  -f "$ROOT/infra/k8s/platform/cluster-autoscaler/values.yaml" \
  --set-string "autoDiscovery.clusterName=$CLUSTER_NAME" \
  --set-string "awsRegion=$AWS_REGION" \
  --set-string "rbac.serviceAccount.annotations.eks\.amazonaws\.com/role-arn=$CA_ROLE_ARN" \
  --wait

kubectl -n shoprank rollout status deployment/tf-serving --timeout=15m
kubectl -n shoprank rollout status deployment/online-api --timeout=5m
echo "shoprank $ENV_NAME: cluster installs done"
