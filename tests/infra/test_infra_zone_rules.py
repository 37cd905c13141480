"""Policy tests of the hybrid-cloud split: every zone rule of
infra/policy/zone_rules.py holds on the real Terraform code, and each rule
demonstrably fails when a violation is injected into a copy of the code."""

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
        'prefix      = "features/"',
        'prefix      = ""',
        "curated/features/",
        id="R4-export-whole-curated-bucket",
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
        zr.public_zone_cannot_read_raw,
        "modules/public_compute/irsa.tf",
        'read             = { models = ["models/"] }',
        'read             = { models = ["models/"], raw = ["raw/"] }',
        "bucket 'raw'",
        id="R6-serving-reads-raw",
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
        "modules/public_compute/irsa.tf",
        'read             = { models = ["models/"] }\n      write            = {}',
        'read             = { models = ["models/"] }\n      write            = { models = ["models/"] }',
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
        'SHOPRANK_FEAST_ONLINE_STORE = aws_secretsmanager_secret.this["feast-online-store"].arn',
        "SHOPRANK_FEAST_ONLINE_STORE = "
        'aws_secretsmanager_secret_version.this["feast-online-store"].secret_string',
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
        "        aws_iam_role.data_prep.arn,",
        '        aws_iam_role.data_prep.arn,\n        "arn:aws:iam::*:role/analysts",',
        "may also be read by",
        id="R13-key-readable-by-another-role",
    ),
    pytest.param(
        zr.pseudonym_key_is_scoped,
        "modules/public_compute/irsa.tf",
        'models = ["models/"] }\n      write   = {}\n      secrets = []',
        'models = ["models/"] }\n      write   = {}\n      secrets = ["pseudonym-key"]',
        "workload online_api is granted secrets directly",
        id="R13-api-role-reads-the-key-itself",
    ),
    pytest.param(
        zr.registry_roles_are_least_privilege,
        "modules/private_data/registry_roles.tf",
        'object_type = "table"\n  privileges  = ["SELECT"]\n}\n\n# Tables',
        'object_type = "table"\n  privileges  = ["SELECT", "INSERT", "DELETE"]\n}\n\n# Tables',
        "gives feast_reader ['DELETE', 'INSERT']",
        id="R14-reader-can-write",
    ),
    pytest.param(
        zr.registry_roles_are_least_privilege,
        "modules/private_data/registry_roles.tf",
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


def test_the_zone_rules_and_the_app_layout_agree_on_what_crosses() -> None:
    """The HCL rules and the code's one layout name the same private and crossing prefixes, and every
    store key the code writes is zoned: private, pseudonymised, or coordination without user data."""
    from shoprank import layout

    assert set(zr.PRIVATE_PREFIXES) <= set(layout.PRIVATE_PREFIXES)
    assert layout.PSEUDONYMISED_PREFIXES == ("features/",)  # what the replication rule (R4) exports
    keys = {name: value for name, value in vars(layout).items()
            if name.endswith(("_KEY", "_PREFIX")) and isinstance(value, str)}
    coordination = {layout.LOCKS_PREFIX, layout.RUNS_PREFIX, layout.SEARCH_SERVING_KEY}
    unzoned = {name: key for name, key in keys.items() if key not in coordination
               and not layout.is_private(key) and not f"{key}/".startswith(layout.PSEUDONYMISED_PREFIXES)}
    assert unzoned == {}
    assert layout.is_private(layout.SERVED_EVENTS_PREFIX) and not layout.is_private(layout.INTERACTIONS_KEY)
