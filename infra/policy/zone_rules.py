#!/usr/bin/env python3
"""The zone rules of shoprank's hybrid-cloud split, in one place.

Private data zone  : raw user behaviour (personal data) lives and stays here.
Public compute zone: GPU training and serving; sees pseudonymised data only.
Link               : private connectivity limited to the flows the system needs.

Each rule below reads the Terraform HCL under ``infra/terraform`` (parsed with
python-hcl2, no provider or network needed) and returns a list of violations;
an empty list means the rule holds. ``tests/infra`` runs every rule against the
real code and against copies with injected violations, so each rule is shown to
be able to fail. Run it by hand with::

    python infra/policy/zone_rules.py            # all rules, exit 1 on violation

Rules (see RULES at the bottom):
  R1 private_zone_has_no_internet_path
  R2 every_bucket_is_locked_down
  R3 raw_data_has_retention
  R4 only_pseudonymised_data_crosses
  R5 databases_are_private_and_encrypted
  R6 public_zone_cannot_read_raw
  R7 workload_grants_are_scoped
  R8 gpu_nodes_are_tainted
  R9 link_is_narrow
  R10 layout_state_and_pins
  R11 variables_are_typed_and_validated
  R12 cluster_profile_is_output
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

TF_ROOT = Path(__file__).resolve().parents[1] / "terraform"

ZONES = ("private_data", "public_compute", "link")
ENVIRONMENTS = ("dev", "prod")

# Data classes (private_data/buckets.tf) and who may see them.
PRIVATE_BUCKETS = {"raw", "curated"}
SHAREABLE_BUCKETS = {"features", "models", "registry", "pipelines"}
PRIVATE_PREFIXES = ("raw/", "curated/")
# Everything that may cross the link, and nothing else.
LINK_COMPUTE_TO_DATA_PORTS = {"redis": 6379, "postgres": 5432, "s3": 443}
LINK_DATA_TO_COMPUTE_PORTS = {"airflow_api": 8080}
# Keys read by the shoprank `cluster` settings profile.
CLUSTER_PROFILE_KEYS = {
    "SHOPRANK_PROFILE",
    "SHOPRANK_STORE_ROOT",
    "SHOPRANK_RAW_ROOT",
    "SHOPRANK_MODEL_BASE_PATH",
    "SHOPRANK_FEAST_ONLINE_STORE",
    "SHOPRANK_FEAST_REGISTRY",
    "SHOPRANK_KFP_HOST",
    "SHOPRANK_MODEL_SERVER_URL",
    "SHOPRANK_MODEL_SERVER_GRPC",
    "AWS_REGION",
}
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


# --------------------------------------------------------------------------
# HCL loading
# --------------------------------------------------------------------------
def _unquote(value: Any) -> Any:
    """python-hcl2 >= 5 keeps the quotes of string literals; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            _unquote(k): _normalise(v) for k, v in node.items() if k not in ("__is_block__", "__comments__")
        }
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    return _unquote(node)


_PARSE_CACHE: dict[str, dict] = {}


def parse_file(path: Path) -> dict:
    text = path.read_text()
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _PARSE_CACHE:
        _PARSE_CACHE[key] = _normalise(hcl2.loads(text))
    return _PARSE_CACHE[key]


@dataclass
class Config:
    """All blocks of the *.tf files of one directory (one module / root)."""

    path: Path
    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)

    def of_type(self, rtype: str) -> dict[str, dict]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}


def load(path: Path) -> Config:
    cfg = Config(path=path)
    for tf in sorted(path.glob("*.tf")):
        doc = parse_file(tf)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    cfg.resources[(rtype, name)] = body
        for block in doc.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    cfg.data[(dtype, name)] = body
        for block in doc.get("variable", []):
            cfg.variables.update(block)
        for block in doc.get("output", []):
            cfg.outputs.update(block)
        for block in doc.get("locals", []):
            cfg.locals.update(block)
        for block in doc.get("module", []):
            cfg.modules.update(block)
        cfg.terraform.extend(doc.get("terraform", []))
    return cfg


def module_dir(tf_root: Path, name: str) -> Path:
    return tf_root / "modules" / name


def root_dirs(tf_root: Path, zone: str) -> list[Path]:
    """The root configuration of a zone: one for every environment (zones/<zone>)."""
    return [tf_root / "zones" / zone]


def env_file(tf_root: Path, env: str, zone: str, suffix: str) -> Path:
    """envs/<env>/<zone>.tfvars or envs/<env>/<zone>.backend.hcl: an environment is data only."""
    return tf_root / "envs" / env / f"{zone}{suffix}"


def parse_values(path: Path) -> dict:
    """A .tfvars or .backend.hcl file: attribute = value lines."""
    return parse_file(path) if path.is_file() else {}


def walk(node: Any) -> Iterator[Any]:
    """Every scalar inside a parsed block."""
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)
    else:
        yield node


def blocks(body: dict, name: str) -> list[dict]:
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]


def first(body: dict, name: str) -> dict:
    found = blocks(body, name)
    return found[0] if found and isinstance(found[0], dict) else {}


def is_true(value: Any) -> bool:
    return value is True or value == "true" or value == "${true}"


def is_false(value: Any) -> bool:
    return value is False or value == "false" or value == "${false}"


def all_tf_dirs(tf_root: Path) -> Iterable[Path]:
    return sorted({p.parent for p in tf_root.rglob("*.tf") if ".terraform" not in p.parts})


# --------------------------------------------------------------------------
# R1: no internet path in the private zone
# --------------------------------------------------------------------------
INTERNET_RESOURCE_TYPES = {
    "aws_internet_gateway",
    "aws_egress_only_internet_gateway",
    "aws_nat_gateway",
    "aws_eip",
    "aws_internet_gateway_attachment",
}


def private_zone_has_no_internet_path(tf_root: Path = TF_ROOT) -> list[str]:
    """The private data VPC has no internet gateway, NAT, public IP or default route."""
    cfg = load(module_dir(tf_root, "private_data"))
    errors = []
    for rtype, name in cfg.resources:
        if rtype in INTERNET_RESOURCE_TYPES:
            errors.append(f"private_data: {rtype}.{name} gives the private zone an internet path")
    for name, subnet in cfg.of_type("aws_subnet").items():
        if not is_false(subnet.get("map_public_ip_on_launch", False)):
            errors.append(f"private_data: aws_subnet.{name} maps public IPs")
    routes = list(cfg.of_type("aws_route").items())
    for rtype in ("aws_route_table", "aws_default_route_table"):
        for name, table in cfg.of_type(rtype).items():
            routes += [(f"{rtype}.{name}.route", r) for r in blocks(table, "route")]
    for name, route in routes:
        dest = {
            route.get("destination_cidr_block"),
            route.get("cidr_block"),
            route.get("destination_ipv6_cidr_block"),
        }
        if dest & OPEN_CIDRS:
            errors.append(f"private_data: route {name} is a default route")
        for attr in ("gateway_id", "nat_gateway_id", "egress_only_gateway_id"):
            if attr in route:
                errors.append(f"private_data: route {name} uses {attr}")
    for rtype in ("aws_launch_template", "aws_instance"):
        for name, body in cfg.of_type(rtype).items():
            nics = blocks(body, "network_interfaces") + [body]
            if any(is_true(n.get("associate_public_ip_address")) for n in nics if isinstance(n, dict)):
                errors.append(f"private_data: {rtype}.{name} associates a public IP")
    for name, lb in cfg.of_type("aws_lb").items():
        if not is_true(lb.get("internal")):
            errors.append(f"private_data: aws_lb.{name} is internet-facing")
    return errors


# --------------------------------------------------------------------------
# R2: every bucket is encrypted (CMK), versioned and closed to the public
# --------------------------------------------------------------------------
def _bucket_refs(cfg: Config, rtype: str, bucket: str) -> list[dict]:
    ref = f"aws_s3_bucket.{bucket}."
    return [b for b in cfg.of_type(rtype).values() if ref in str(b.get("bucket", ""))]


def _statements(cfg: Config, policy_expr: str) -> list[dict]:
    m = re.search(r"data\.aws_iam_policy_document\.([\w-]+)\.json", str(policy_expr))
    if not m:
        return []
    return blocks(cfg.data.get(("aws_iam_policy_document", m.group(1)), {}), "statement")


def every_bucket_is_locked_down(tf_root: Path = TF_ROOT) -> list[str]:
    """Every S3 bucket: SSE-KMS (CMK), versioning, public access block, TLS-only + VPC-endpoint-only."""
    errors = []
    secure = module_dir(tf_root, "secure_bucket")
    for directory in all_tf_dirs(tf_root):
        cfg = load(directory)
        rel = directory.relative_to(tf_root)
        for bucket in cfg.of_type("aws_s3_bucket"):
            where = f"{rel}: aws_s3_bucket.{bucket}"
            if directory != secure:
                errors.append(f"{where} is created outside modules/secure_bucket")
            sse = _bucket_refs(cfg, "aws_s3_bucket_server_side_encryption_configuration", bucket)
            default = first(first(sse[0], "rule"), "apply_server_side_encryption_by_default") if sse else {}
            if default.get("sse_algorithm") != "aws:kms" or not default.get("kms_master_key_id"):
                errors.append(f"{where} is not encrypted with a customer-managed KMS key")
            elif "aws/s3" in str(default.get("kms_master_key_id")):
                errors.append(f"{where} uses the AWS-managed key, not a CMK")
            versioning = _bucket_refs(cfg, "aws_s3_bucket_versioning", bucket)
            if not versioning or first(versioning[0], "versioning_configuration").get("status") != "Enabled":
                errors.append(f"{where} is not versioned")
            pab = _bucket_refs(cfg, "aws_s3_bucket_public_access_block", bucket)
            flags = (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            )
            if not pab or not all(is_true(pab[0].get(f)) for f in flags):
                errors.append(f"{where} does not block all public access")
            policies = _bucket_refs(cfg, "aws_s3_bucket_policy", bucket)
            stmts = _statements(cfg, policies[0].get("policy", "")) if policies else []
            conditions = [
                (s.get("effect"), c.get("variable"), str(c.get("values")))
                for s in stmts
                for c in blocks(s, "condition")
            ]
            if not any(
                e == "Deny" and v == "aws:SecureTransport" and "false" in vals for e, v, vals in conditions
            ):
                errors.append(f"{where} policy does not deny non-TLS access")
            if not any(e == "Deny" and v == "aws:SourceVpce" for e, v, _ in conditions):
                errors.append(f"{where} policy does not deny access from outside the allowed VPC endpoints")
            for acl in _bucket_refs(cfg, "aws_s3_bucket_acl", bucket):
                if "public" in str(acl.get("acl", "")):
                    errors.append(f"{where} has a public ACL")
            if _bucket_refs(cfg, "aws_s3_bucket_website_configuration", bucket):
                errors.append(f"{where} is a public website")
        for name, mod in cfg.modules.items():
            if str(mod.get("source", "")).rstrip("/").endswith("secure_bucket") and not mod.get(
                "kms_key_arn"
            ):
                errors.append(f"{rel}: module.{name} does not pass a KMS key")
    return errors


# --------------------------------------------------------------------------
# R3: raw data has a retention rule
# --------------------------------------------------------------------------
def raw_data_has_retention(tf_root: Path = TF_ROOT) -> list[str]:
    """The raw (and curated) buckets expire objects, with a bounded, validated retention."""
    errors = []
    cfg = load(module_dir(tf_root, "private_data"))
    buckets = cfg.locals.get("buckets", {})
    for key in sorted(PRIVATE_BUCKETS):
        days = buckets.get(key, {}).get("expiration_days")
        if days in (None, "null", "${null}"):
            errors.append(f"private_data: the {key} bucket has no expiration (retention) rule")
    variable = cfg.variables.get("raw_retention_days", {})
    conditions = " ".join(str(v.get("condition")) for v in blocks(variable, "validation"))
    if "<=" not in conditions:
        errors.append("private_data: var.raw_retention_days has no upper bound validation")
    secure = load(module_dir(tf_root, "secure_bucket"))
    lifecycles = list(secure.of_type("aws_s3_bucket_lifecycle_configuration").values())
    rules = [r for lc in lifecycles for r in blocks(lc, "rule")]
    if not any("expiration" in str(r.get("dynamic", "")) or "expiration" in r for r in rules):
        errors.append("secure_bucket: lifecycle configuration has no expiration rule")
    return errors


# --------------------------------------------------------------------------
# R4: only pseudonymised data crosses
# --------------------------------------------------------------------------
def only_pseudonymised_data_crosses(tf_root: Path = TF_ROOT) -> list[str]:
    """raw/curated buckets are never reachable through the link endpoint; only features/ is exported."""
    errors = []
    cfg = load(module_dir(tf_root, "private_data"))
    buckets = cfg.locals.get("buckets", {})
    for key, bucket in buckets.items():
        crosses = bucket.get("crosses_link")
        if key in PRIVATE_BUCKETS and not is_false(crosses):
            errors.append(f"private_data: the {key} bucket is marked as crossing the link")
        if key not in PRIVATE_BUCKETS | SHAREABLE_BUCKETS:
            errors.append(f"private_data: bucket {key!r} has no data class in the zone rules")
        if key in PRIVATE_BUCKETS and bucket.get("kms") == "shared":
            errors.append(f"private_data: the {key} bucket uses the shared KMS key")
    mod = cfg.modules.get("bucket", {})
    allowed = str(mod.get("allowed_vpce_ids", ""))
    if not re.search(r"crosses_link\s*\?", allowed) or "s3_link" in allowed.split(":")[-1]:
        errors.append(
            "private_data: module.bucket does not restrict non-crossing buckets to the gateway endpoint"
        )
    link_policy = cfg.data.get(("aws_iam_policy_document", "s3_link_endpoint"), {})
    resources = " ".join(str(s.get("resources")) for s in blocks(link_policy, "statement"))
    if "shareable_bucket_keys" not in resources or any(
        f"bucket_arns.{k}" in resources for k in PRIVATE_BUCKETS
    ):
        errors.append("private_data: the S3 link endpoint policy is not limited to the shareable buckets")
    export = cfg.locals.get("export", {})
    if export.get("prefix") != "features/" or export.get("source") != "curated":
        errors.append("private_data: the export (replication) rule must copy exactly curated/features/")
    if export.get("destination") not in SHAREABLE_BUCKETS:
        errors.append("private_data: the export destination is not a shareable bucket")
    return errors


# --------------------------------------------------------------------------
# R5: databases are private and encrypted
# --------------------------------------------------------------------------
def databases_are_private_and_encrypted(tf_root: Path = TF_ROOT) -> list[str]:
    """Postgres and Redis: not publicly reachable, encrypted at rest (CMK) and in transit, authenticated."""
    errors = []
    for zone in ("private_data", "public_compute", "link"):
        cfg = load(module_dir(tf_root, zone))
        for rtype in ("aws_db_instance", "aws_rds_cluster"):
            for name, db in cfg.of_type(rtype).items():
                where = f"{zone}: {rtype}.{name}"
                if zone != "private_data":
                    errors.append(f"{where} is outside the private data zone")
                if rtype == "aws_db_instance" and not is_false(db.get("publicly_accessible")):
                    errors.append(f"{where} must set publicly_accessible = false")
                if not is_true(db.get("storage_encrypted")) or not db.get("kms_key_id"):
                    errors.append(f"{where} is not encrypted with a CMK")
        for name, pg in cfg.of_type("aws_db_parameter_group").items():
            params = {p.get("name"): str(p.get("value")) for p in blocks(pg, "parameter")}
            if params.get("rds.force_ssl") != "1":
                errors.append(f"{zone}: aws_db_parameter_group.{name} does not force TLS")
        for name, rg in cfg.of_type("aws_elasticache_replication_group").items():
            where = f"{zone}: aws_elasticache_replication_group.{name}"
            if zone != "private_data":
                errors.append(f"{where} is outside the private data zone")
            for attr in ("at_rest_encryption_enabled", "transit_encryption_enabled"):
                if not is_true(rg.get(attr)):
                    errors.append(f"{where} must set {attr} = true")
            if not rg.get("auth_token"):
                errors.append(f"{where} has no AUTH token")
            if not rg.get("kms_key_id"):
                errors.append(f"{where} is not encrypted with a CMK")
        for name in cfg.of_type("aws_elasticache_cluster"):
            errors.append(
                f"{zone}: aws_elasticache_cluster.{name}: use a replication group (encryption, AUTH)"
            )
        for rtype in ("aws_security_group_rule", "aws_vpc_security_group_ingress_rule", "aws_security_group"):
            for name, rule in cfg.of_type(rtype).items():
                ingress = blocks(rule, "ingress") if rtype == "aws_security_group" else [rule]
                if rtype == "aws_security_group_rule" and rule.get("type") != "ingress":
                    continue
                for ing in ingress:
                    cidrs = {
                        str(c)
                        for c in walk({k: ing.get(k) for k in ("cidr_ipv4", "cidr_ipv6", "cidr_blocks")})
                    }
                    if cidrs & OPEN_CIDRS and zone != "public_compute":
                        errors.append(f"{zone}: {rtype}.{name} opens ingress to the internet")
    return errors


# --------------------------------------------------------------------------
# R6: nothing in the public zone can read raw events
# --------------------------------------------------------------------------
RAW_WORDS = re.compile(r"\b(raw|curated)\b|raw/|curated/|private_bucket|restricted", re.IGNORECASE)


def public_zone_cannot_read_raw(tf_root: Path = TF_ROOT) -> list[str]:
    """No public-zone role, policy or input can name the raw/curated buckets, prefixes or key."""
    errors = []
    cfg = load(module_dir(tf_root, "public_compute"))
    for workload, spec in cfg.locals.get("workloads", {}).items():
        for access in ("read", "write"):
            for bucket, prefixes in (spec.get(access) or {}).items():
                if bucket not in SHAREABLE_BUCKETS:
                    errors.append(f"public_compute: workload {workload} {access}s bucket {bucket!r}")
                for prefix in prefixes or []:
                    if str(prefix).startswith(PRIVATE_PREFIXES):
                        errors.append(f"public_compute: workload {workload} {access}s prefix {prefix!r}")
    for (dtype, name), doc in cfg.data.items():
        if dtype != "aws_iam_policy_document":
            continue
        for value in walk(doc):
            if isinstance(value, str) and RAW_WORDS.search(value):
                errors.append(f"public_compute: data.aws_iam_policy_document.{name} mentions {value!r}")
    for name, policy in cfg.of_type("aws_iam_role_policy").items():
        if RAW_WORDS.search(str(policy.get("policy", ""))):
            errors.append(f"public_compute: aws_iam_role_policy.{name} mentions private data")
    var = cfg.variables.get("shareable_bucket_arns", {})
    conditions = " ".join(str(v.get("condition")) for v in blocks(var, "validation"))
    allowed = (
        set(re.findall(r'"?(\w+)"?', conditions.split("contains(")[1].split("]")[0]))
        if "contains(" in conditions
        else set()
    )
    if not allowed or allowed - SHAREABLE_BUCKETS:
        errors.append("public_compute: var.shareable_bucket_arns must be validated to shareable buckets only")
    for variable in cfg.variables:
        if RAW_WORDS.search(variable):
            errors.append(f"public_compute: variable {variable!r} brings private data into the compute zone")
    for root in root_dirs(tf_root, "public_compute") + root_dirs(tf_root, "link"):
        if not root.is_dir():
            continue
        rcfg = load(root)
        for mname, mod in rcfg.modules.items():
            for arg, value in mod.items():
                if RAW_WORDS.search(f"{arg} {value}"):
                    errors.append(f"{root.relative_to(tf_root)}: module.{mname}.{arg} passes private data")
    return errors


# --------------------------------------------------------------------------
# R7: workload grants are prefix-scoped
# --------------------------------------------------------------------------
def workload_grants_are_scoped(tf_root: Path = TF_ROOT) -> list[str]:
    """training reads features/ and writes models/; serving reads models/ only; every grant is a prefix."""
    errors = []
    cfg = load(module_dir(tf_root, "public_compute"))
    workloads = cfg.locals.get("workloads", {})
    training, serving = workloads.get("training"), workloads.get("serving")
    if not training or "features/" not in (training.get("read") or {}).get("features", []):
        errors.append("public_compute: training must read features/ from the features bucket")
    if not training or "models/" not in (training.get("write") or {}).get("models", []):
        errors.append("public_compute: training must write models/ to the models bucket")
    if not serving or serving.get("read") != {"models": ["models/"]}:
        errors.append("public_compute: serving must read exactly models/ of the models bucket")
    if serving and serving.get("write"):
        errors.append("public_compute: serving must not write anything")
    for workload, spec in workloads.items():
        for access in ("read", "write"):
            for bucket, prefixes in (spec.get(access) or {}).items():
                for prefix in prefixes or []:
                    literal = str(prefix)
                    if literal.startswith("${local."):
                        literal = str(cfg.locals.get(literal[len("${local.") : -1], ""))
                    if not literal or not literal.endswith("/") or "*" in literal:
                        errors.append(
                            f"public_compute: workload {workload}: non-prefix grant {prefix!r} on {bucket}"
                        )
    return errors


# --------------------------------------------------------------------------
# R8: GPU nodes are tainted
# --------------------------------------------------------------------------
GPU_HINT = re.compile(r"nvidia|gpu|neuron", re.IGNORECASE)


def gpu_nodes_are_tainted(tf_root: Path = TF_ROOT) -> list[str]:
    """Every GPU node group carries nvidia.com/gpu:NoSchedule; there is a GPU and a CPU node group."""
    errors = []
    cfg = load(module_dir(tf_root, "public_compute"))
    groups = cfg.of_type("aws_eks_node_group")
    gpu_groups = [
        n
        for n, g in groups.items()
        if GPU_HINT.search(f"{n} {g.get('ami_type', '')} {g.get('instance_types', '')}")
    ]
    if not gpu_groups:
        errors.append("public_compute: no GPU node group")
    if len(gpu_groups) == len(groups):
        errors.append("public_compute: no CPU node group")
    for name in gpu_groups:
        taints = blocks(groups[name], "taint")
        if not any(t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NO_SCHEDULE" for t in taints):
            errors.append(f"public_compute: GPU node group {name} is not tainted nvidia.com/gpu:NO_SCHEDULE")
    return errors


# --------------------------------------------------------------------------
# R9: the link is narrow
# --------------------------------------------------------------------------
def link_is_narrow(tf_root: Path = TF_ROOT) -> list[str]:
    """Only Redis, Postgres, the S3 endpoint (and the Airflow edge API back) cross; subnet-specific routes."""
    errors = []
    cfg = load(module_dir(tf_root, "link"))
    c2d = {k: v.get("port") for k, v in cfg.locals.get("compute_to_data", {}).items()}
    if c2d != LINK_COMPUTE_TO_DATA_PORTS:
        errors.append(f"link: compute->data flows are {c2d}, allowed {LINK_COMPUTE_TO_DATA_PORTS}")
    d2c = {k: v.get("listener_port") for k, v in cfg.locals.get("data_to_compute", {}).items()}
    if d2c != LINK_DATA_TO_COMPUTE_PORTS:
        errors.append(f"link: data->compute flows are {d2c}, allowed {LINK_DATA_TO_COMPUTE_PORTS}")
    for (rtype, name), body in cfg.resources.items():
        values = {str(v) for v in walk(body)}
        if values & OPEN_CIDRS:
            errors.append(f"link: {rtype}.{name} uses an open CIDR")
        if rtype.startswith("aws_vpc_security_group_") or rtype == "aws_security_group_rule":
            if str(body.get("ip_protocol", body.get("protocol"))) in ("-1", "all"):
                errors.append(f"link: {rtype}.{name} allows all protocols")
            if "each.value" not in str(body.get("from_port")):
                errors.append(f"link: {rtype}.{name} has a port outside the flow table")
        if rtype == "aws_route":
            dest = str(body.get("destination_cidr_block"))
            if "vpc_cidr" in dest or "each" not in dest:
                errors.append(f"link: aws_route.{name} must route the listed subnets only")
        if rtype in (
            "aws_security_group",
            "aws_default_security_group",
            "aws_internet_gateway",
            "aws_nat_gateway",
        ):
            errors.append(f"link: {rtype}.{name} does not belong in the link")
    return errors


# --------------------------------------------------------------------------
# R10: layout, remote state, pins
# --------------------------------------------------------------------------
def layout_state_and_pins(tf_root: Path = TF_ROOT) -> list[str]:
    """One root per zone (zones/<zone>), environments as data (envs/<env>/<zone>.tfvars + .backend.hcl);
    each zone and environment has its own locked, encrypted S3 state; zones read each other per env; exact pins."""
    errors = []
    for zone in ZONES:
        if not module_dir(tf_root, zone).is_dir():
            errors.append(f"modules/{zone} is missing")
    envs = tf_root / "envs"
    for tf in sorted(envs.rglob("*.tf")) if envs.is_dir() else []:
        errors.append(f"{tf.relative_to(tf_root)}: envs/ holds data only (tfvars, backend files), no configuration")
    keys: dict[str, str] = {}
    for zone in ZONES:
        root = tf_root / "zones" / zone
        if not root.is_dir():
            errors.append(f"zones/{zone} is missing")
            continue
        cfg = load(root)
        backends = [b for t in cfg.terraform for b in blocks(t, "backend")]
        s3 = [b["s3"] for b in backends if isinstance(b, dict) and "s3" in b]
        if not s3:
            errors.append(f"zones/{zone}: no S3 backend")
        elif s3[0]:
            errors.append(
                f"zones/{zone}: the backend must be empty; its settings are per env in envs/<env>/{zone}.backend.hcl"
            )
        for name in ("environment", "aws_region", "state_bucket"):
            if name not in cfg.variables:
                errors.append(f"zones/{zone}: no variable {name} (environment.tf)")
        for (dtype, name), body in cfg.data.items():
            if dtype != "terraform_remote_state":
                continue
            config = first(body, "config") if isinstance(body.get("config"), list) else body.get("config", {})
            if str(config.get("bucket")) != "${var.state_bucket}":
                errors.append(f"zones/{zone}: data.terraform_remote_state.{name} must read var.state_bucket (per env)")
        for env in ENVIRONMENTS:
            where = f"envs/{env}/{zone}"
            backend_file = env_file(tf_root, env, zone, ".backend.hcl")
            tfvars_file = env_file(tf_root, env, zone, ".tfvars")
            if not backend_file.is_file():
                errors.append(f"{where}.backend.hcl is missing")
                continue
            if not tfvars_file.is_file():
                errors.append(f"{where}.tfvars is missing")
            backend = parse_values(backend_file)
            values = parse_values(tfvars_file)
            if not is_true(backend.get("encrypt")) or not backend.get("kms_key_id"):
                errors.append(f"{where}: state is not encrypted with a KMS key")
            if not (is_true(backend.get("use_lockfile")) or backend.get("dynamodb_table")):
                errors.append(f"{where}: state has no locking")
            if backend.get("key") != f"{zone}/terraform.tfstate":
                errors.append(f"{where}: state key {backend.get('key')!r} is not {zone}/terraform.tfstate")
            key = f"{backend.get('bucket')}/{backend.get('key')}"
            if key in keys:
                errors.append(f"{where}: shares its state {key} with {keys[key]}")
            keys[key] = where
            if values.get("environment") != env:
                errors.append(f"{where}.tfvars: environment is {values.get('environment')!r}, not {env!r}")
            if values.get("state_bucket") != backend.get("bucket"):
                errors.append(f"{where}: tfvars state_bucket differs from the backend bucket")
            if values.get("aws_region") != backend.get("region"):
                errors.append(f"{where}: tfvars aws_region differs from the backend region")
    for directory in all_tf_dirs(tf_root):
        cfg = load(directory)
        rel = directory.relative_to(tf_root)
        if not cfg.terraform:
            errors.append(f"{rel}: no terraform block (required_version, required_providers)")
            continue
        if not any(t.get("required_version") for t in cfg.terraform):
            errors.append(f"{rel}: no required_version")
        providers = [p for t in cfg.terraform for p in blocks(t, "required_providers")]
        for block in providers:
            for pname, spec in block.items():
                version = str(spec.get("version", "")) if isinstance(spec, dict) else ""
                if not re.fullmatch(r"=\s*\d+\.\d+\.\d+", version):
                    errors.append(f"{rel}: provider {pname} is not pinned exactly ({version!r})")
        if not providers:
            errors.append(f"{rel}: no required_providers")
    return errors


# --------------------------------------------------------------------------
# R11: variables typed and validated
# --------------------------------------------------------------------------
MUST_VALIDATE = re.compile(r"cidr|name_prefix|^environment$|_arns?$|_id$|retention|_days$")


def variables_are_typed_and_validated(tf_root: Path = TF_ROOT) -> list[str]:
    """Every variable has a type and description; module inputs carrying CIDRs, names, ARNs, IDs or
    retention are validated."""
    errors = []
    for directory in all_tf_dirs(tf_root):
        cfg = load(directory)
        rel = directory.relative_to(tf_root)
        in_module = rel.parts[0] == "modules"
        for name, var in cfg.variables.items():
            if "type" not in var:
                errors.append(f"{rel}: variable {name} has no type")
            if not var.get("description"):
                errors.append(f"{rel}: variable {name} has no description")
            if in_module and MUST_VALIDATE.search(name) and "validation" not in var:
                errors.append(f"{rel}: variable {name} has no validation")
    return errors


# --------------------------------------------------------------------------
# R12: the `cluster` profile is an output
# --------------------------------------------------------------------------
def cluster_profile_is_output(tf_root: Path = TF_ROOT) -> list[str]:
    """The public_compute root outputs `shoprank_cluster_env` with every cluster-profile key, secrets as ARNs."""
    errors = []
    private = load(module_dir(tf_root, "private_data"))
    data_half = private.outputs.get("cluster_env_data", {}).get("value", {})
    data_half = data_half if isinstance(data_half, dict) else {}
    data_keys = set(data_half)
    for key in ("SHOPRANK_FEAST_ONLINE_STORE", "SHOPRANK_FEAST_REGISTRY"):
        ref = str(data_half.get(key, ""))
        if not re.fullmatch(r"\$\{aws_secretsmanager_secret\.[^}]+\.arn\}", ref):
            errors.append(f"private_data: cluster_env_data.{key} must be a Secrets Manager ARN, not {ref!r}")
    for root in root_dirs(tf_root, "public_compute"):
        if not root.is_dir():
            continue
        cfg = load(root)
        out = cfg.outputs.get("shoprank_cluster_env")
        rel = root.relative_to(tf_root)
        if not out:
            errors.append(f"{rel}: no shoprank_cluster_env output")
            continue
        raw_value = out.get("value", "")
        value = str(raw_value)
        keys = (
            set(raw_value)
            if isinstance(raw_value, dict)
            else set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", value))
        )
        if "cluster_env_data" in value:
            keys |= data_keys
        missing = CLUSTER_PROFILE_KEYS - keys
        if missing:
            errors.append(f"{rel}: shoprank_cluster_env lacks {sorted(missing)}")
        if "random_password" in value or "secret_string" in value:
            errors.append(f"{rel}: shoprank_cluster_env must not carry secret values")
    return errors


# --------------------------------------------------------------------------
# R13: the pseudonymisation key is read by the feature job and the API sync only
# --------------------------------------------------------------------------
def pseudonym_key_is_scoped(tf_root: Path = TF_ROOT) -> list[str]:
    """The pseudonymisation key is a KMS-encrypted secret of the private zone that only the feature job
    (data_prep) and External Secrets (for the online API) may read; no other workload is granted it."""
    errors = []
    private = load(module_dir(tf_root, "private_data"))
    secret = private.of_type("aws_secretsmanager_secret").get("pseudonym_key")
    if secret is None:
        return ["private_data: no aws_secretsmanager_secret.pseudonym_key (the key must live in Secrets Manager)"]
    if "aws_kms_key" not in str(secret.get("kms_key_id", "")):
        errors.append("private_data: the pseudonym key secret is not encrypted with a customer-managed KMS key")
    policies = [p for p in private.of_type("aws_secretsmanager_secret_policy").values()
                if "pseudonym_key" in str(p.get("secret_arn", ""))]
    if not policies:
        errors.append("private_data: the pseudonym key has no resource policy limiting its readers")
    doc = private.data.get(("aws_iam_policy_document", "pseudonym_key"), {})
    denies = [st for st in blocks(doc, "statement") if st.get("effect") == "Deny"
              and "secretsmanager:GetSecretValue" in [str(a) for a in st.get("actions", [])]]
    allowed: list[str] = []
    for st in denies:
        for cond in blocks(st, "condition"):
            if cond.get("test") == "StringNotLike" and cond.get("variable") == "aws:PrincipalArn":
                allowed += [str(v) for v in cond.get("values", [])]
    if not allowed:
        errors.append("private_data: the pseudonym key policy must deny GetSecretValue to every principal "
                      "but the feature job's and External Secrets' roles")
    for value in allowed:
        if "data_prep" not in value and not value.endswith("-external-secrets"):
            errors.append(f"private_data: the pseudonym key may also be read by {value!r}")
    for name, grant in private.data.items():
        if grant is doc or name[0] != "aws_iam_policy_document":
            continue
        for st in blocks(grant, "statement"):
            grants_key = "pseudonym_key" in str(st.get("resources", "")) and st.get("effect") != "Deny"
            if grants_key and name[1] != "data_prep":
                errors.append(f"private_data: data.aws_iam_policy_document.{name[1]} grants the pseudonym key")
    compute = load(module_dir(tf_root, "public_compute"))
    for workload, spec in compute.locals.get("workloads", {}).items():
        if workload != "external_secrets" and spec.get("secrets"):
            errors.append(f"public_compute: workload {workload} is granted secrets directly")
    return errors


# --------------------------------------------------------------------------
# R14: least privilege on the Feast registry database
# --------------------------------------------------------------------------
READ_ONLY = {"SELECT", "CONNECT", "USAGE"}


def registry_roles_are_least_privilege(tf_root: Path = TF_ROOT) -> list[str]:
    """The pipeline writes the Feast registry as feast_writer, the online API reads it as feast_reader
    (CONNECT/USAGE/SELECT only); neither role is privileged and no registry secret uses the master user."""
    errors = []
    private = load(module_dir(tf_root, "private_data"))
    roles = private.of_type("postgresql_role")
    for name in ("feast_writer", "feast_reader"):
        role = roles.get(name)
        if role is None:
            errors.append(f"private_data: no postgresql_role.{name}")
            continue
        for attr in ("superuser", "create_database", "create_role"):
            if not is_false(role.get(attr)):
                errors.append(f"private_data: postgresql_role.{name} must set {attr} = false")
    for kind in ("postgresql_grant", "postgresql_default_privileges"):
        for name, grant in private.of_type(kind).items():
            if "feast_reader" in str(grant.get("role", "")):
                extra = {str(p) for p in grant.get("privileges", [])} - READ_ONLY
                if extra:
                    errors.append(f"private_data: {kind}.{name} gives feast_reader {sorted(extra)}")
    values = private.locals.get("secret_values", {})
    for key, expected in (("feast-registry", "feast_writer"), ("feast-registry-reader", "feast_reader")):
        value = str(values.get(key, ""))
        if f"postgresql_role.{expected}" not in value:
            errors.append(f"private_data: secret {key!r} must connect as {expected}, not {value[:80]!r}")
        if "aws_db_instance.postgres.username" in value or "postgres_admin" in value:
            errors.append(f"private_data: secret {key!r} uses the database master user")
    component = (tf_root.parent / "k8s" / "components" / "terraform-outputs" / "kustomization.yaml")
    if component.exists():
        text = component.read_text()
        api = re.search(r"FEAST_REGISTRY(\w*)_SECRET_ARN \}\n    targets:\n"
                        r"(?:      - select: [^\n]+\n        [^\n]+\n)*?"
                        r"      - select: \{ kind: ExternalSecret, name: shoprank-connections, namespace: shoprank \}",
                        text)
        if not api or api.group(1) != "_READER":
            errors.append("k8s: the online API's registry connection must come from the reader secret")
    return errors


# --------------------------------------------------------------------------
RULES: dict[str, Callable[[Path], list[str]]] = {
    "R1 private_zone_has_no_internet_path": private_zone_has_no_internet_path,
    "R2 every_bucket_is_locked_down": every_bucket_is_locked_down,
    "R3 raw_data_has_retention": raw_data_has_retention,
    "R4 only_pseudonymised_data_crosses": only_pseudonymised_data_crosses,
    "R5 databases_are_private_and_encrypted": databases_are_private_and_encrypted,
    "R6 public_zone_cannot_read_raw": public_zone_cannot_read_raw,
    "R7 workload_grants_are_scoped": workload_grants_are_scoped,
    "R8 gpu_nodes_are_tainted": gpu_nodes_are_tainted,
    "R9 link_is_narrow": link_is_narrow,
    "R10 layout_state_and_pins": layout_state_and_pins,
    "R11 variables_are_typed_and_validated": variables_are_typed_and_validated,
    "R12 cluster_profile_is_output": cluster_profile_is_output,
    "R13 pseudonym_key_is_scoped": pseudonym_key_is_scoped,
    "R14 registry_roles_are_least_privilege": registry_roles_are_least_privilege,
}


def check_all(tf_root: Path = TF_ROOT) -> dict[str, list[str]]:
    return {name: rule(tf_root) for name, rule in RULES.items()}


def main() -> int:
    tf_root = Path(sys.argv[1]) if len(sys.argv) > 1 else TF_ROOT
    failed = 0
    for name, errors in check_all(tf_root).items():
        doc = (RULES[name].__doc__ or "").strip()
        print(f"{'FAIL' if errors else 'ok  '} {name}: {doc}")
        for error in errors:
            print(f"       - {error}")
        failed += bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
