"""Policy tests of the hybrid-cloud split: every zone rule of
infra/policy/zone_rules.py holds on the real Terraform code, access
declarations (infra/policy/access.json) and manifests, and each rule
demonstrably fails when a violation is injected into a copy of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zone_rules as zr


def assert_holds(errors: list[str]) -> None:
    assert errors == [], "zone rule violated:\n" + "\n".join(errors)


# --- Each rule holds on the real code ---------------------------------------
def test_r1_private_zone_has_no_internet_path(tf_root: Path) -> None:
    assert_holds(zr.private_zone_has_no_internet_path(tf_root))


def test_r2_every_bucket_is_encrypted_versioned_and_closed(tf_root: Path) -> None:
    assert_holds(zr.every_bucket_is_locked_down(tf_root))


def test_r3_raw_data_has_retention(tf_root: Path) -> None:
    assert_holds(zr.raw_data_has_retention(tf_root))


def test_r4_only_pseudonymised_data_crosses(tf_root: Path) -> None:
    assert_holds(zr.only_pseudonymised_data_crosses(tf_root))


def test_r5_no_public_database(tf_root: Path) -> None:
    assert_holds(zr.databases_are_private_and_encrypted(tf_root))


def test_r6_no_public_zone_role_can_read_raw(tf_root: Path) -> None:
    assert_holds(zr.public_zone_cannot_read_raw(tf_root))


def test_r7_training_and_serving_grants_are_scoped(tf_root: Path) -> None:
    assert_holds(zr.workload_grants_are_scoped(tf_root))


def test_r8_gpu_nodes_are_tainted(tf_root: Path) -> None:
    assert_holds(zr.gpu_nodes_are_tainted(tf_root))


def test_r9_link_is_narrow(tf_root: Path) -> None:
    assert_holds(zr.link_is_narrow(tf_root))


def test_r10_layout_remote_state_and_pins(tf_root: Path) -> None:
    assert_holds(zr.layout_state_and_pins(tf_root))


def test_r11_variables_are_typed_and_validated(tf_root: Path) -> None:
    assert_holds(zr.variables_are_typed_and_validated(tf_root))


def test_r12_cluster_profile_is_output(tf_root: Path) -> None:
    assert_holds(zr.cluster_profile_is_output(tf_root))


def test_r13_pseudonym_key_is_scoped(tf_root: Path) -> None:
    assert_holds(zr.pseudonym_key_is_scoped(tf_root))


def test_r14_registry_roles_are_least_privilege(tf_root: Path) -> None:
    assert_holds(zr.registry_roles_are_least_privilege(tf_root))


def test_r15_access_declarations_are_consistent(tf_root: Path) -> None:
    assert_holds(zr.access_declarations_are_consistent(tf_root))


def test_r16_raw_outputs_stay_on_private_workers(tf_root: Path) -> None:
    assert_holds(zr.raw_outputs_stay_on_private_workers(tf_root))


def test_r17_kfp_root_is_pseudonymised_and_expires(tf_root: Path) -> None:
    assert_holds(zr.kfp_root_is_pseudonymised_and_expires(tf_root))


def test_r18_app_secrets_use_their_own_users(tf_root: Path) -> None:
    assert_holds(zr.app_secrets_use_their_own_users(tf_root))


def test_r19_images_are_pinned_by_digest(tf_root: Path) -> None:
    assert_holds(zr.images_are_pinned_by_digest(tf_root))


def test_r20_network_policy_is_enforced(tf_root: Path) -> None:
    assert_holds(zr.network_policy_is_enforced(tf_root))


def test_r21_endpoint_policies_are_scoped(tf_root: Path) -> None:
    assert_holds(zr.endpoint_policies_are_scoped(tf_root))


def test_r22_secret_stores_are_namespaced(tf_root: Path) -> None:
    assert_holds(zr.secret_stores_are_namespaced(tf_root))


def test_r23_private_keys_stay_in_the_private_zone(tf_root: Path) -> None:
    assert_holds(zr.private_keys_stay_in_the_private_zone(tf_root))


def test_r24_online_api_event_log_is_durable(tf_root: Path) -> None:
    assert_holds(zr.online_api_event_log_is_durable(tf_root))


def test_every_rule_is_tested() -> None:
    tested = {name.split("_")[1].upper() for name in globals() if re.match(r"test_r\d+_", name)}
    assert tested == {name.split()[0] for name in zr.RULES}


# --- Each rule can fail: inject a violation into a copy ---------------------
def inject(root: Path, rel: str, old: str | None, new: str) -> None:
    path = root / rel
    text = path.read_text() if path.exists() else ""
    if old is None:
        path.write_text(text + "\n" + new + "\n")
    else:
        assert old in text, f"fixture drift: {old!r} not found in {rel}"
        path.write_text(text.replace(old, new, 1))


ACCESS = "../policy/access.json"
# The online API's read grant on the features bucket, an anchor for injections.
API_FEATURES_READ = ('"features": ["features/derived/", "features/privacy/", "features/merchandising/", "served/", '
                     '"locks/"], "models": ["models/"]}')
SHOPRANK_DIGEST = dict(
    line.split("=", 1) for line in (zr.TF_ROOT.parent / "k8s" / "platform" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)["SHOPRANK_IMAGE_DIGEST"]

VIOLATIONS = [
    pytest.param(
        zr.private_zone_has_no_internet_path,
        "modules/private_data/network.tf",
        None,
        'resource "aws_internet_gateway" "oops" {\n  vpc_id = aws_vpc.this.id\n}',
        "aws_internet_gateway.oops",
        id="R1-internet-gateway-in-private-zone",
    ),
    pytest.param(
        zr.private_zone_has_no_internet_path,
        "modules/private_data/network.tf",
        None,
        'resource "aws_route" "egress" {\n  route_table_id = aws_route_table.private.id\n'
        '  destination_cidr_block = "0.0.0.0/0"\n  vpc_peering_connection_id = "pcx-1"\n}',
        "default route",
        id="R1-default-route-in-private-zone",
    ),
    pytest.param(
        zr.every_bucket_is_locked_down,
        "modules/secure_bucket/main.tf",
        'sse_algorithm     = "aws:kms"',
        'sse_algorithm     = "AES256"',
        "not encrypted with a customer-managed KMS key",
        id="R2-bucket-without-kms",
    ),
    pytest.param(
        zr.every_bucket_is_locked_down,
        "modules/secure_bucket/main.tf",
        'status = "Enabled"\n  }\n}',
        'status = "Suspended"\n  }\n}',
        "is not versioned",
        id="R2-bucket-unversioned",
    ),
    pytest.param(
        zr.every_bucket_is_locked_down,
        "modules/public_compute/network.tf",
        None,
        'resource "aws_s3_bucket" "scratch" {\n  bucket = "scratch"\n}',
        "created outside modules/secure_bucket",
        id="R2-bucket-outside-secure-module",
    ),
    pytest.param(
        zr.every_bucket_is_locked_down,
        "modules/secure_bucket/main.tf",
        "restrict_public_buckets = true",
        "restrict_public_buckets = false",
        "does not block all public access",
        id="R2-bucket-public",
    ),
    pytest.param(
        zr.raw_data_has_retention,
        "modules/private_data/buckets.tf",
        'kms = "restricted", expiration_days = var.raw_retention_days',
        'kms = "restricted", expiration_days = null',
        "raw bucket has no expiration",
        id="R3-raw-kept-forever",
    ),
    pytest.param(
        zr.only_pseudonymised_data_crosses,
        "modules/private_data/buckets.tf",
        "raw       = { crosses_link = false",
        "raw       = { crosses_link = true",
        "raw bucket is marked as crossing",
        id="R4-raw-crosses-link",
    ),
    pytest.param(
        zr.only_pseudonymised_data_crosses,
        "modules/private_data/buckets.tf",
        'prefix      = "features/crossing/"',
        'prefix      = ""',
        "access.json declares only ['curated/features/crossing/'] exportable",
        id="R4-export-whole-curated-bucket",
    ),
    pytest.param(
        zr.only_pseudonymised_data_crosses,
        "modules/private_data/buckets.tf",
        'prefix      = "features/crossing/"',
        'prefix      = "features/"',
        "exportable",
        id="R4-export-more-than-the-crossing",
    ),
    pytest.param(
        zr.only_pseudonymised_data_crosses,
        "modules/private_data/buckets.tf",
        'prefix      = "features/crossing/"',
        'prefix      = "state/"',
        "also copies 'state/', declared raw",
        id="R4-export-a-raw-prefix",
    ),
    pytest.param(
        zr.databases_are_private_and_encrypted,
        "modules/private_data/databases.tf",
        "publicly_accessible                 = false",
        "publicly_accessible                 = true",
        "publicly_accessible = false",
        id="R5-public-postgres",
    ),
    pytest.param(
        zr.databases_are_private_and_encrypted,
        "modules/private_data/databases.tf",
        "transit_encryption_enabled = true",
        "transit_encryption_enabled = false",
        "transit_encryption_enabled",
        id="R5-redis-without-tls",
    ),
    pytest.param(
        zr.databases_are_private_and_encrypted,
        "modules/private_data/databases.tf",
        "user_group_ids = [aws_elasticache_user_group.feast.user_group_id]",
        'auth_token = random_password.redis_user["api"].result',
        "shared AUTH token",
        id="R5-redis-back-to-one-auth-token",
    ),
    pytest.param(
        zr.public_zone_cannot_read_raw,
        ACCESS,
        '"service_accounts": ["tf-serving"],\n      "read": {"models": ["models/"]},',
        '"service_accounts": ["tf-serving"],\n      "read": {"models": ["models/"], "raw": ["raw/"]},',
        "bucket 'raw'",
        id="R6-serving-reads-raw",
    ),
    pytest.param(
        zr.public_zone_cannot_read_raw,
        ACCESS,
        API_FEATURES_READ,
        API_FEATURES_READ.replace('"features/derived/", ', '"features/derived/", "curated/", '),
        "online_api reads 'curated/', which reaches 'curated/', declared 'raw'",
        id="R6-public-role-reads-curated",
    ),
    pytest.param(
        zr.public_zone_cannot_read_raw,
        ACCESS,
        API_FEATURES_READ,
        API_FEATURES_READ.replace('"features/derived/", ', '"features/derived/", "state/", '),
        "reaches 'state/', declared 'raw'",
        id="R6-public-role-reads-state-a-prefix-no-name-rule-knew",
    ),
    pytest.param(
        zr.public_zone_cannot_read_raw,
        ACCESS,
        '"kfp/": {"data": "pseudonymised"',
        '"features/unscrubbed/": {"data": "raw", "bucket": "features", "holds": "x"},\n'
        '    "kfp/": {"data": "pseudonymised"',
        "workload training reads 'features/', which reaches 'features/unscrubbed/', declared 'raw'",
        id="R6-grant-above-a-raw-prefix",
    ),
    pytest.param(
        zr.public_zone_cannot_read_raw,
        "modules/public_compute/irsa.tf",
        ' if role.zone == "public" },',
        " },",
        "workload data_prep reads bucket 'raw'",
        id="R6-private-role-made-an-irsa-role",
    ),
    pytest.param(
        zr.public_zone_cannot_read_raw,
        "zones/public_compute/main.tf",
        "shareable_bucket_arns = local.data_zone.shareable_bucket_arns",
        "shareable_bucket_arns = merge(local.data_zone.shareable_bucket_arns,"
        " local.data_zone.private_bucket_names)",
        "passes private data",
        id="R6-root-passes-raw-bucket",
    ),
    pytest.param(
        zr.workload_grants_are_scoped,
        ACCESS,
        '"read": {"models": ["models/"]},\n      "write": {}',
        '"read": {"models": ["models/"]},\n      "write": {"models": ["models/"]}',
        "serving must not write",
        id="R7-serving-writes-models",
    ),
    pytest.param(
        zr.gpu_nodes_are_tainted,
        "modules/public_compute/eks.tf",
        'effect = "NO_SCHEDULE"',
        'effect = "PREFER_NO_SCHEDULE"',
        "not tainted",
        id="R8-gpu-taint-removed",
    ),
    pytest.param(
        zr.link_is_narrow,
        "modules/link/main.tf",
        "    s3       = { port = 443,",
        '    ssh      = { port = 22, security_group_id = var.redis_security_group_id, what = "ssh" }\n'
        "    s3       = { port = 443,",
        "compute->data flows",
        id="R9-ssh-across-link",
    ),
    pytest.param(
        zr.layout_state_and_pins,
        "envs/dev/link.backend.hcl",
        "use_lockfile = true",
        "use_lockfile = false",
        "no locking",
        id="R10-state-without-lock",
    ),
    pytest.param(
        zr.layout_state_and_pins,
        "envs/prod/public_compute.backend.hcl",
        'key          = "public_compute/terraform.tfstate"',
        'key          = "private_data/terraform.tfstate"',
        "shares its state",
        id="R10-two-zones-one-state",
    ),
    pytest.param(
        zr.layout_state_and_pins,
        "envs/prod/private_data.tfvars",
        'environment  = "prod"',
        'environment  = "dev"',
        "not 'prod'",
        id="R10-tfvars-of-another-env",
    ),
    pytest.param(
        zr.layout_state_and_pins,
        "zones/link/main.tf",
        "bucket = var.state_bucket",
        'bucket = "shoprank-tfstate-prod"',
        "must read var.state_bucket",
        id="R10-remote-state-pinned-to-one-env",
    ),
    pytest.param(
        zr.layout_state_and_pins,
        "zones/private_data/versions.tf",
        'backend "s3" {}',
        'backend "s3" {\n    bucket = "shoprank-tfstate-dev"\n  }',
        "backend must be empty",
        id="R10-backend-hardcodes-an-env",
    ),
    pytest.param(
        zr.layout_state_and_pins,
        "modules/link/versions.tf",
        'version = "= 5.80.0"',
        'version = ">= 5.0"',
        "not pinned exactly",
        id="R10-provider-unpinned",
    ),
    pytest.param(
        zr.variables_are_typed_and_validated,
        "modules/link/variables.tf",
        None,
        'variable "extra_cidr" {\n  description = "x"\n  type = string\n}',
        "extra_cidr has no validation",
        id="R11-unvalidated-cidr",
    ),
    pytest.param(
        zr.cluster_profile_is_output,
        "modules/private_data/outputs.tf",
        'SHOPRANK_FEAST_ONLINE_STORE = aws_secretsmanager_secret.this["feast-online-store-kfp"].arn',
        "SHOPRANK_FEAST_ONLINE_STORE = "
        'aws_secretsmanager_secret_version.this["feast-online-store-kfp"].secret_string',
        "must be a Secrets Manager ARN",
        id="R12-secret-value-in-profile",
    ),
]


VIOLATIONS += [
    pytest.param(
        zr.pseudonym_key_is_scoped,
        "modules/private_data/secrets.tf",
        'description             = "shoprank pseudonymisation key (HMAC of user ids); current and, during a rotation, '
        'next"\n  kms_key_id              = aws_kms_key.service.arn',
        'description             = "shoprank pseudonymisation key (HMAC of user ids); current and, during a rotation, '
        'next"',
        "not encrypted with a customer-managed KMS key",
        id="R13-key-without-kms",
    ),
    pytest.param(
        zr.pseudonym_key_is_scoped,
        "modules/private_data/secrets.tf",
        "values   = [aws_iam_role.data_prep.arn]",
        'values   = [aws_iam_role.data_prep.arn, "arn:aws:iam::*:role/analysts"]',
        "may also be read by",
        id="R13-key-readable-by-another-role",
    ),
    pytest.param(
        zr.pseudonym_key_is_scoped,
        "modules/public_compute/irsa.tf",
        'secrets = ["feast-online-store-api", "feast-registry-reader",',
        'secrets = ["pseudonym-key", "feast-online-store-api", "feast-registry-reader",',
        "external_secrets_shoprank (shoprank) may read the pseudonym key",
        id="R13-the-api-namespace-syncs-the-key-again",
    ),
    pytest.param(
        zr.pseudonym_key_is_scoped,
        "modules/public_compute/irsa.tf",
        "merge(role, { secrets = [] })",
        'merge(role, { secrets = ["pseudonym-key"] })',
        "workload online_api is granted secrets directly",
        id="R13-api-role-reads-the-key-itself",
    ),
    pytest.param(
        zr.pseudonym_key_is_scoped,
        "modules/public_compute/irsa.tf",
        'secrets          = ["airflow-metadata", "feast-online-store-airflow", "feast-registry"]',
        'secrets          = ["airflow-metadata", "feast-online-store-airflow", "feast-registry", "pseudonym-key"]',
        "external_secrets_airflow (airflow) may read the pseudonym key",
        id="R13-airflow-store-reads-the-key",
    ),
    pytest.param(
        zr.registry_roles_are_least_privilege,
        "modules/private_data/database_roles.tf",
        'object_type = "table"\n  privileges  = ["SELECT"]\n}\n\n# Tables',
        'object_type = "table"\n  privileges  = ["SELECT", "INSERT", "DELETE"]\n}\n\n# Tables',
        "gives feast_reader ['DELETE', 'INSERT']",
        id="R14-reader-can-write",
    ),
    pytest.param(
        zr.registry_roles_are_least_privilege,
        "modules/private_data/database_roles.tf",
        'name            = "feast_writer"\n  login           = true\n  password        = '
        'random_password.feast_registry["feast_writer"].result\n  superuser       = false',
        'name            = "feast_writer"\n  login           = true\n  password        = '
        'random_password.feast_registry["feast_writer"].result\n  superuser       = true',
        "postgresql_role.feast_writer must set superuser = false",
        id="R14-writer-superuser",
    ),
    pytest.param(
        zr.registry_roles_are_least_privilege,
        "modules/private_data/secrets.tf",
        "${postgresql_role.feast_reader.name}:${random_password.feast_registry[\"feast_reader\"].result}",
        "${aws_db_instance.postgres.username}:${random_password.postgres_admin.result}",
        "secret 'feast-registry-reader' must connect as feast_reader",
        id="R14-api-registry-as-master-user",
    ),
]


K8S = "../k8s"

VIOLATIONS += [
    # R15: the declarations are well formed, and Terraform builds its roles from them
    pytest.param(
        zr.access_declarations_are_consistent,
        ACCESS,
        API_FEATURES_READ,
        API_FEATURES_READ.replace('"features/derived/", ', '"features/derived/", "exports/", '),
        "role online_api reads 'exports/' on features, which is no declared prefix",
        id="R15-grant-on-an-undeclared-prefix",
    ),
    pytest.param(
        zr.access_declarations_are_consistent,
        ACCESS,
        '"registry": ["registry/"], "models": ["models/"], "pipelines"',
        '"registry": ["registry/", "models/"], "models": ["models/"], "pipelines"',
        "role training reads 'models/' on the registry bucket; access.json keeps 'models/' in ['models']",
        id="R15-grant-in-a-bucket-that-does-not-hold-the-prefix",
    ),
    pytest.param(
        zr.access_declarations_are_consistent,
        ACCESS,
        '"state/": {"data": "raw", "bucket": "curated"',
        '"state/": {"data": "raw", "bucket": "features"',
        "prefix 'state/' is declared raw but lives in shareable bucket(s) ['features']",
        id="R15-raw-prefix-in-a-shareable-bucket",
    ),
    pytest.param(
        zr.access_declarations_are_consistent,
        "modules/public_compute/irsa.tf",
        ' if role.zone == "public" },',
        " },",
        "workload data_prep is the private role of access.json",
        id="R15-irsa-roles-not-filtered-to-the-public-zone",
    ),
    pytest.param(
        zr.access_declarations_are_consistent,
        "modules/private_data/edge_workers.tf",
        'actions   = ["s3:GetBucketLocation"]',
        'actions   = ["s3:GetBucketLocation", "s3:GetObject"]',
        "grants S3 outside access.json",
        id="R15-data-prep-granted-s3-beside-the-declarations",
    ),
    pytest.param(
        zr.access_declarations_are_consistent,
        "modules/private_data/edge_workers.tf",
        "for_each = local.data_prep.write",
        'for_each = { curated = ["curated/", "features/"] }',
        "does not take its S3 write grants from local.data_prep.write",
        id="R15-data-prep-writes-not-from-the-declarations",
    ),
    # R16: raw outputs only on private workers; nothing public reads raw
    pytest.param(
        zr.raw_outputs_stay_on_private_workers,
        ACCESS,
        '"reads": ["raw/"], "writes": ["curated/staging/"], "output": "raw"',
        '"reads": ["raw/"], "writes": ["curated/staging/", "features/crossing/"], "output": "raw"',
        "task ingest outputs raw data but writes 'features/crossing/', declared 'pseudonymised'",
        id="R16-raw-output-task-writes-features",
    ),
    pytest.param(
        zr.raw_outputs_stay_on_private_workers,
        ACCESS,
        '"train": {"flow": "nightly", "runs_on": "kfp", "role": "training", "reads": ["kfp/", "models/"]',
        '"train": {"flow": "nightly", "runs_on": "kfp", "role": "training", "reads": ["kfp/", "models/", "state/"]',
        "task train runs on kfp and reads 'state/', which reaches 'state/', declared raw",
        id="R16-kfp-task-reads-raw",
    ),
    pytest.param(
        zr.raw_outputs_stay_on_private_workers,
        ACCESS,
        '"validate_and_publish": {"flow": "hourly", "runs_on": "airflow:private-data"',
        '"validate_and_publish": {"flow": "hourly", "runs_on": "airflow:default"',
        "task validate_and_publish outputs raw data on airflow:default",
        id="R16-raw-output-task-on-a-public-queue",
    ),
    pytest.param(
        zr.raw_outputs_stay_on_private_workers,
        ACCESS,
        '"train": {"flow": "nightly", "runs_on": "kfp", "role": "training", "reads": ["kfp/", "models/"], '
        '"writes": ["kfp/", "models/"], "output": "pseudonymised"}',
        '"train": {"flow": "nightly", "runs_on": "kfp", "role": "training", "reads": ["kfp/", "models/"], '
        '"writes": ["kfp/", "models/"], "output": "raw"}',
        "task train outputs raw data on kfp",
        id="R16-kfp-task-outputs-raw",
    ),
    # R17: the KFP root is pseudonymised and short-lived
    pytest.param(
        zr.kfp_root_is_pseudonymised_and_expires,
        ACCESS,
        '"kfp/": {"data": "pseudonymised"',
        '"kfp/": {"data": "raw"',
        "the KFP pipeline root 'kfp/' is declared 'raw', not pseudonymised",
        id="R17-kfp-root-declared-raw",
    ),
    pytest.param(
        zr.kfp_root_is_pseudonymised_and_expires,
        "modules/public_compute/irsa.tf",
        'kfp_root_prefix = "kfp/"',
        'kfp_root_prefix = "pipeline-root/"',
        "the KFP pipeline root 'pipeline-root/' is not declared in access.json",
        id="R17-kfp-root-undeclared",
    ),
    pytest.param(
        zr.kfp_root_is_pseudonymised_and_expires,
        "modules/private_data/buckets.tf",
        "days = var.kfp_root_retention_days",
        "days = 180",
        "the KFP root's days (180) is not bounded by 30 days",
        id="R17-kfp-root-kept-half-a-year",
    ),
    # R18: every application its own user
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/secrets.tf",
        "${postgresql_role.airflow.name}:${random_password.airflow_metadata.result}",
        "${aws_db_instance.postgres.username}:${random_password.postgres_admin.result}",
        "secret 'airflow-metadata' uses the database master user",
        id="R18-airflow-metadata-as-the-master-user",
    ),
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/secrets.tf",
        'aws_elasticache_user.client["airflow"].user_name},password=${random_password.redis_user["airflow"].result}',
        'aws_elasticache_user.client["api"].user_name},password=${random_password.redis_user["api"].result}',
        "secret 'feast-online-store-airflow' shares the Redis user 'api' with 'feast-online-store-api'",
        id="R18-two-clients-one-redis-user",
    ),
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/databases.tf",
        'api       = { access = "on ${local.feast_keys} -@all +hmget +hset +expire +ping" }',
        'api       = { access = "on ${local.feast_keys} -@all +hmget +hset +expire +ping +del +flushall" }',
        "the API's Redis user 'api' may also run ['del', 'flushall']",
        id="R18-api-redis-user-can-delete",
    ),
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/databases.tf",
        'ratelimit = { access = "on ${local.rate_limit_keys} -@all',
        'ratelimit = { access = "on ${local.rate_limit_keys} ${local.feast_keys} -@all',
        "the rate-limit Redis user 'ratelimit' reaches keys ['~shoprank:rate:*', '~*shoprank'], not only the counters",
        id="R18-rate-limit-user-reaches-feast-rows",
    ),
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/databases.tf",
        "+incr +expire +multi +exec +discard +ping",
        "+incr +expire +multi +exec +discard +ping +keys +flushdb",
        "the rate-limit Redis user 'ratelimit' may also run ['flushdb', 'keys']",
        id="R18-rate-limit-user-can-flush",
    ),
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/databases.tf",
        'api       = { access = "on ${local.feast_keys} -@all',
        'api       = { access = "on ~* -@all',
        "reaches keys ['~*'], not only Feast's (*shoprank)",
        id="R18-api-redis-user-reaches-every-key",
    ),
    pytest.param(
        zr.app_secrets_use_their_own_users,
        "modules/private_data/databases.tf",
        'access_string = "off -@all"',
        'access_string = "on ~* +@all"',
        "`default` user must be switched off",
        id="R18-default-redis-user-on",
    ),
    # R19: images by digest
    pytest.param(
        zr.images_are_pinned_by_digest,
        f"{K8S}/base/online-api/statefulset.yaml",
        f"image: ghcr.io/shoprank/shoprank:0.1.0@{SHOPRANK_DIGEST}",
        "image: ghcr.io/shoprank/shoprank:0.1.0",
        "'ghcr.io/shoprank/shoprank:0.1.0' is not pinned by digest",
        id="R19-online-api-by-tag",
    ),
    pytest.param(
        zr.images_are_pinned_by_digest,
        f"{K8S}/components/gpu-serving/kustomization.yaml",
        "value: tensorflow/serving:2.21.0-gpu@sha256:",
        "value: tensorflow/serving:2.21.0-gpu\n        # was @sha256:",
        "'tensorflow/serving:2.21.0-gpu' is not pinned by digest",
        id="R19-gpu-patch-by-tag",
    ),
    pytest.param(
        zr.images_are_pinned_by_digest,
        f"{K8S}/base/kustomization.yaml",
        None,
        "images:\n  - name: tensorflow/serving\n    newTag: latest",
        "images entry 'tensorflow/serving' sets no digest",
        id="R19-kustomize-image-override-by-tag",
    ),
    pytest.param(
        zr.images_are_pinned_by_digest,
        f"{K8S}/platform/airflow/values.yaml",
        f'defaultAirflowDigest: "{SHOPRANK_DIGEST}"',
        "",
        "defaultAirflowDigest '' does not pin the Airflow image",
        id="R19-airflow-chart-by-tag",
    ),
    pytest.param(
        zr.images_are_pinned_by_digest,
        f"{K8S}/jobs/feature-job/sparkapplication.yaml",
        f"0.1.0@{SHOPRANK_DIGEST}",
        "0.1.0@sha256:" + "0" * 64,
        "not versions.env's SHOPRANK_IMAGE_DIGEST",
        id="R19-two-digests-for-one-image",
    ),
    # R20: NetworkPolicies enforced, egress denied by default
    pytest.param(
        zr.network_policy_is_enforced,
        "modules/public_compute/eks.tf",
        'enableNetworkPolicy = "true"',
        'enableNetworkPolicy = "false"',
        "vpc-cni addon does not set enableNetworkPolicy",
        id="R20-vpc-cni-does-not-enforce",
    ),
    pytest.param(
        zr.network_policy_is_enforced,
        f"{K8S}/platform/airflow/networkpolicy.yaml",
        "  name: default-deny-egress\n  namespace: airflow\nspec:\n  podSelector: {}\n",
        "  name: default-deny-egress\n  namespace: airflow\nspec:\n  podSelector:\n    matchLabels:\n"
        "      component: scheduler\n",
        "namespace airflow has no default-deny egress NetworkPolicy",
        id="R20-airflow-egress-open-by-default",
    ),
    pytest.param(
        zr.network_policy_is_enforced,
        f"{K8S}/platform/kubeflow-pipelines/networkpolicy.yaml",
        "cidr: REPLACE-compute-vpc-cidr",
        "cidr: 0.0.0.0/0",
        "NetworkPolicy kubeflow/allow-aws-endpoints allows egress to 0.0.0.0/0",
        id="R20-kubeflow-egress-to-the-internet",
    ),
    pytest.param(
        zr.network_policy_is_enforced,
        f"{K8S}/base/networkpolicy.yaml",
        None,
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: https-anywhere\n"
        "  namespace: shoprank\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n"
        "    - ports:\n        - port: 443",
        "NetworkPolicy shoprank/https-anywhere allows egress to any destination",
        id="R20-shoprank-egress-to-any-destination",
    ),
    # R21: interface endpoint policies
    pytest.param(
        zr.endpoint_policies_are_scoped,
        "modules/private_data/endpoints.tf",
        "  policy              = data.aws_iam_policy_document.interface_endpoint[each.key].json\n",
        "",
        "private_data: aws_vpc_endpoint.interface has no endpoint policy",
        id="R21-private-endpoint-without-policy",
    ),
    pytest.param(
        zr.endpoint_policies_are_scoped,
        "modules/private_data/endpoints.tf",
        'actions = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]',
        'actions = ["kms:*"]',
        "allows ['kms:*']: name the actions",
        id="R21-private-kms-endpoint-any-action",
    ),
    pytest.param(
        zr.endpoint_policies_are_scoped,
        "modules/public_compute/network.tf",
        'resources = ["arn:${local.partition}:iam::${local.account_id}:role/${var.name_prefix}-*"], '
        "account_condition = false",
        'resources = ["*"], account_condition = false',
        "public_compute: aws_vpc_endpoint.interface[sts] statement 0 is open to other accounts",
        id="R21-compute-sts-endpoint-any-role",
    ),
    # R22: one SecretStore per namespace
    pytest.param(
        zr.secret_stores_are_namespaced,
        f"{K8S}/platform/airflow/external-secrets.yaml",
        None,
        "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata:\n  name: everything\n"
        "spec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1",
        "ClusterSecretStore everything reads secrets for every namespace",
        id="R22-cluster-secret-store",
    ),
    pytest.param(
        zr.secret_stores_are_namespaced,
        f"{K8S}/platform/airflow/external-secrets.yaml",
        "key: REPLACE-airflow-metadata-secret-arn",
        "key: REPLACE-pseudonym-key-secret-arn",
        "ExternalSecret airflow/airflow-metadata asks for 'pseudonym-key', which airflow's SecretStore may not read",
        id="R22-airflow-asks-for-the-pseudonym-key",
    ),
    pytest.param(
        zr.secret_stores_are_namespaced,
        f"{K8S}/platform/kubeflow-pipelines/external-secret.yaml",
        "    kind: SecretStore\n    name: aws-secrets-manager",
        "    kind: ClusterSecretStore\n    name: aws-secrets-manager",
        "ExternalSecret kubeflow/shoprank-connections does not use its namespace's SecretStore",
        id="R22-external-secret-through-a-cluster-store",
    ),
    pytest.param(
        zr.secret_stores_are_namespaced,
        f"{K8S}/platform/external-secrets/values.yaml",
        "processClusterStore: false",
        "processClusterStore: true",
        "processClusterStore must be false",
        id="R22-operator-serves-cluster-stores",
    ),
    # R23: no public-zone pod or role gets the pseudonymisation key or the token signing key
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        "modules/private_data/secrets.tf",
        "values   = [aws_iam_role.data_prep.arn]",
        'values   = [aws_iam_role.data_prep.arn, "arn:${local.partition}:iam::${local.account_id}:role/'
        '${var.name_prefix}-external-secrets-shoprank"]',
        "the pseudonymisation key may also be read by",
        id="R23-the-api-namespace-store-may-read-the-pseudonym-key",
    ),
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        "modules/private_data/secrets.tf",
        "policy     = data.aws_iam_policy_document.token_signing_key.json",
        "policy     = jsonencode({})",
        "the token signing key has no resource policy denying GetSecretValue",
        id="R23-signing-key-without-a-policy",
    ),
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        "modules/private_data/outputs.tf",
        "{ for k, s in aws_secretsmanager_secret.api : k => s.arn })",
        '{ for k, s in aws_secretsmanager_secret.api : k => s.arn },\n'
        '  { "pseudonym-key" = aws_secretsmanager_secret.pseudonym_key.arn })',
        "output secret_arns hands the pseudonymisation key to the compute zone",
        id="R23-pseudonym-key-arn-handed-to-the-compute-zone",
    ),
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        "modules/public_compute/irsa.tf",
        '"request-id-key", "api-keys"]',
        '"request-id-key", "api-keys", "token-signing-key"]',
        "workload external_secrets_shoprank (shoprank) may read 'token-signing-key'",
        id="R23-the-api-namespace-store-may-read-the-signing-key",
    ),
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        f"{K8S}/base/online-api/statefulset.yaml",
        "            - name: HOME\n",
        "            - name: SHOPRANK_PSEUDONYM_KEY_DIR\n              value: /var/run/secrets/shoprank/pseudonym\n"
        "            - name: HOME\n",
        "k8s/base/online-api/statefulset.yaml: names 'PSEUDONYM_KEY'",
        id="R23-api-pod-given-the-pseudonym-key-again",
    ),
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        f"{K8S}/base/online-api/statefulset.yaml",
        "            - name: HOME\n",
        "            - name: SHOPRANK_TOKEN_SIGNING_KEY\n              value: /var/run/secrets/shoprank/signing.pem\n"
        "            - name: HOME\n",
        "names 'TOKEN_SIGNING_KEY'",
        id="R23-api-pod-given-the-signing-key",
    ),
    pytest.param(
        zr.private_keys_stay_in_the_private_zone,
        f"{K8S}/platform/airflow/external-secrets.yaml",
        "key: REPLACE-airflow-metadata-secret-arn",
        "key: REPLACE-token-signing-key-secret-arn",
        "k8s/platform/airflow/external-secrets.yaml: names 'token-signing-key'",
        id="R23-airflow-syncs-the-signing-key",
    ),
    # R24: the online API's event log is on a PersistentVolumeClaim that outlives the pod
    pytest.param(
        zr.online_api_event_log_is_durable,
        f"{K8S}/base/online-api/statefulset.yaml",
        "kind: StatefulSet",
        "kind: Deployment",
        "Deployment online-api runs the online API; it must be a StatefulSet",
        id="R24-api-back-to-a-deployment",
    ),
    pytest.param(
        zr.online_api_event_log_is_durable,
        f"{K8S}/base/online-api/statefulset.yaml",
        "        - name: tmp\n          emptyDir:\n            sizeLimit: 1Gi\n",
        "        - name: tmp\n          emptyDir:\n            sizeLimit: 1Gi\n        - name: events\n"
        "          emptyDir: {}\n",
        "is on volume 'events', not a volumeClaimTemplate",
        id="R24-event-log-on-an-emptydir",
    ),
    pytest.param(
        zr.online_api_event_log_is_durable,
        f"{K8S}/base/online-api/statefulset.yaml",
        "value: /var/lib/shoprank/events/log",
        "value: /tmp/events/log",
        "the event log /tmp/events/log is on volume 'tmp', not a volumeClaimTemplate",
        id="R24-event-log-on-tmp",
    ),
    pytest.param(
        zr.online_api_event_log_is_durable,
        f"{K8S}/base/online-api/statefulset.yaml",
        "    whenScaled: Retain",
        "    whenScaled: Delete",
        "persistentVolumeClaimRetentionPolicy.whenScaled is 'Delete', not Retain",
        id="R24-scale-down-deletes-the-log",
    ),
    pytest.param(
        zr.online_api_event_log_is_durable,
        f"{K8S}/base/online-api/hpa.yaml",
        "kind: StatefulSet",
        "kind: Deployment",
        "scales a Deployment online-api, not the StatefulSet",
        id="R24-hpa-targets-a-deployment",
    ),
]


@pytest.mark.parametrize(("rule", "rel", "old", "new", "expected"), VIOLATIONS)
def test_rule_flags_injected_violation(
    tf_copy: Path, rule, rel: str, old: str | None, new: str, expected: str
) -> None:
    assert rule(tf_copy) == [], "the untouched copy must pass before injecting"
    inject(tf_copy, rel, old, new)
    errors = rule(tf_copy)
    assert any(expected in e for e in errors), f"{rule.__name__} missed the violation; it said: {errors}"


# --- Prod differences are data, validated in the zone roots --------------------
PROD_RULES = {
    "private_data": {
        "postgres_multi_az",
        "deletion_protection",
        "redis_num_nodes",
        "redis_node_type",
        "postgres_instance_class",
        "backup_retention_days",
        "edge_worker_count",
    },
    "public_compute": {"single_nat_gateway", "cpu_scaling", "gpu_scaling"},
}


@pytest.mark.parametrize("zone", sorted(PROD_RULES))
def test_prod_differences_are_validated(tf_root: Path, zone: str) -> None:
    variables = zr.load(tf_root / "zones" / zone).variables
    for name in sorted(PROD_RULES[zone]):
        conditions = " ".join(str(v.get("condition")) for v in zr.blocks(variables[name], "validation"))
        assert "var.environment" in conditions and '"prod"' in conditions, f"{zone}: {name} has no prod rule"


def test_environments_are_data_only(tf_root: Path) -> None:
    for env in zr.ENVIRONMENTS:
        names = sorted(p.name for p in (tf_root / "envs" / env).iterdir())
        assert names == sorted(f"{z}{s}" for z in zr.ZONES for s in (".tfvars", ".backend.hcl")), names


def test_zone_roots_share_one_environment_file(tf_root: Path) -> None:
    shared = (tf_root / "zones" / "environment.tf.shared").resolve()
    for zone in zr.ZONES:
        link = tf_root / "zones" / zone / "environment.tf"
        assert link.is_symlink() and link.resolve() == shared, f"zones/{zone}/environment.tf must link to {shared}"


def test_cli_exits_non_zero_on_violation(tf_copy: Path) -> None:
    inject(
        tf_copy,
        "modules/private_data/network.tf",
        None,
        'resource "aws_nat_gateway" "x" {\n  subnet_id = "s"\n}',
    )
    results = zr.check_all(tf_copy)
    assert results["R1 private_zone_has_no_internet_path"]
    assert all(not errors for name, errors in results.items() if not name.startswith("R1 "))


def test_the_access_declarations_and_the_app_layout_agree_on_what_crosses(tf_root: Path) -> None:
    """access.json (what Terraform and the zone rules read) and the code's one layout agree: a declared
    prefix is private in the layout exactly when it is declared raw, the crossing is the one exported,
    pseudonymised prefix, and every store key the code names falls under a declared prefix."""
    from shoprank import layout

    prefixes = zr.load_access(tf_root)["prefixes"]
    for prefix, decl in prefixes.items():
        assert layout.is_private(prefix) == (decl["data"] == "raw"), prefix
    assert set(layout.PRIVATE_PREFIXES) == {p for p, d in prefixes.items() if d["data"] == "raw"}
    exported = [p for p, d in prefixes.items() if d.get("exported_from")]
    assert exported == [layout.CROSSING_PREFIX + "/"]  # what the replication rule (R4) exports
    assert prefixes[exported[0]]["data"] == "pseudonymised"
    keys = {name: value for name, value in vars(layout).items()
            if name.endswith(("_KEY", "_PREFIX")) and isinstance(value, str)}
    for relative in ("SEARCH_SERVING_KEY", "TRAINING_BACKUPS_PREFIX"):
        keys.pop(relative)  # relative to the model base path, under models/
    undeclared = {name: key for name, key in keys.items() if zr.declared(prefixes, key + "/") is None}
    assert undeclared == {}
