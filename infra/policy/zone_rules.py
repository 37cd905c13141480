#!/usr/bin/env python3
"""The zone rules of shoprank's hybrid-cloud split, in one place.

Private data zone  : raw user behaviour (personal data) lives and stays here.
Public compute zone: GPU training and serving; sees pseudonymised data only.
Link               : private connectivity limited to the flows the system needs.

Each rule below reads the Terraform HCL under ``infra/terraform`` (parsed with
python-hcl2, no provider or network needed), the access declarations in
``infra/policy/access.json`` (which Terraform itself reads) or the manifests
under ``infra/k8s``, and returns a list of violations; an empty list means the
rule holds. ``tests/infra`` runs every rule against the
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
  R13 pseudonym_key_is_scoped
  R14 registry_roles_are_least_privilege
  R15 access_declarations_are_consistent
  R16 raw_outputs_stay_on_private_workers
  R17 kfp_root_is_pseudonymised_and_expires
  R18 app_secrets_use_their_own_users
  R19 images_are_pinned_by_digest
  R20 network_policy_is_enforced
  R21 endpoint_policies_are_scoped
  R22 secret_stores_are_namespaced
  R23 private_keys_stay_in_the_private_zone
  R24 online_api_event_log_is_durable
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import yaml

TF_ROOT = Path(__file__).resolve().parents[1] / "terraform"

ZONES = ("private_data", "public_compute", "link")
ENVIRONMENTS = ("dev", "prod")

# Bucket classes (private_data/buckets.tf) and who may see them.
PRIVATE_BUCKETS = {"raw", "curated"}
SHAREABLE_BUCKETS = {"features", "models", "registry", "pipelines"}
# Data classes of key prefixes (access.json `prefixes`); only the last two may reach the public zone.
DATA_CLASSES = ("raw", "pseudonymised", "none")
PUBLIC_CLASSES = {"pseudonymised", "none"}
# The Airflow queue of the private zone's edge workers; any other queue, and KFP, run in the public zone.
PRIVATE_QUEUE = "airflow:private-data"
# The namespaces of the public zone that run shoprank's and the platform's pods.
PUBLIC_NAMESPACES = ("shoprank", "airflow", "kubeflow")
# How long the KFP pipeline root may keep an artifact.
KFP_ROOT_MAX_DAYS = 30
# Everything that may cross the link, and nothing else.
LINK_COMPUTE_TO_DATA_PORTS = {"redis": 6379, "postgres": 5432, "s3": 443}
LINK_DATA_TO_COMPUTE_PORTS = {"airflow_api": 8080}
# Keys read by the shoprank `cluster` settings profile.
CLUSTER_PROFILE_KEYS = {
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
# The access declarations (infra/policy/access.json), as Terraform reads them
# --------------------------------------------------------------------------
ACCESS_FILE = re.compile(r'jsondecode\(file\(\\?"\$\{path\.module\}/([^"\\]+)\\?"\)\)')
_JSON_CACHE: dict[str, dict] = {}


def access_path(tf_root: Path) -> Path:
    """THE access declarations: infra/policy/access.json, beside infra/terraform."""
    return tf_root.parent / "policy" / "access.json"


def load_json(path: Path) -> dict:
    text = path.read_text()
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _JSON_CACHE:
        _JSON_CACHE[key] = json.loads(text)
    return _JSON_CACHE[key]


def load_access(tf_root: Path) -> dict:
    path = access_path(tf_root)
    try:
        return load_json(path) if path.is_file() else {}
    except ValueError:
        return {}


def access_local(cfg: Config) -> tuple[str, Path] | None:
    """The local that decodes the access declarations (`jsondecode(file("${path.module}/..."))`) and the
    file it reads."""
    for name, value in cfg.locals.items():
        m = ACCESS_FILE.search(str(value))
        if m:
            return name, (cfg.path / m.group(1)).resolve()
    return None


def declared(prefixes: dict, key: str) -> tuple[str, dict] | None:
    """The longest declared prefix that `key` falls under, with its declaration."""
    best: tuple[str, dict] | None = None
    for prefix, decl in prefixes.items():
        if key.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, decl if isinstance(decl, dict) else {})
    return best


def reached_classes(prefixes: dict, grant: str) -> dict[str, Any]:
    """Every declared prefix a grant on `grant` reaches, with its data class: the one the grant falls
    under and every declared prefix below it."""
    reached = {}
    found = declared(prefixes, grant)
    if found:
        reached[found[0]] = found[1].get("data")
    for prefix, decl in prefixes.items():
        if prefix.startswith(grant) and isinstance(decl, dict):
            reached[prefix] = decl.get("data")
    return reached


def homes(decl: dict) -> set[str]:
    """The buckets a declared prefix may live in."""
    found = {decl.get("bucket"), decl.get("exported_from"), *(decl.get("also_in") or [])}
    return {b for b in found if b}


def workloads_of(cfg: Config) -> dict[str, dict]:
    """The IRSA workloads of public_compute (`local.workloads`): a literal map, or the roles of the access
    declarations as the expression selects them (`for name, role in local.<access>.roles ... if role.zone
    == "<zone>"`, each given the `secrets = [...]` it names) merged with the literal maps it names."""
    expr = cfg.locals.get("workloads", {})
    if isinstance(expr, dict):
        return expr
    text = str(expr)
    workloads: dict[str, dict] = {}
    found = access_local(cfg)
    if found and f"local.{found[0]}.roles" in text and found[1].is_file():
        zone = re.search(r'if\s+\w+\.zone\s*==\s*\\?"(\w+)\\?"', text)
        secrets = re.search(r"secrets\s*=\s*\[([^\]]*)\]", text)
        granted = re.findall(r'"([^"\\]+)\\?"', secrets.group(1)) if secrets else []
        for name, role in load_json(found[1]).get("roles", {}).items():
            if zone is None or role.get("zone") == zone.group(1):
                workloads[name] = {**role, "secrets": granted}
    for ref in re.findall(r"local\.(\w+)", text):
        if isinstance(cfg.locals.get(ref), dict) and (found is None or ref != found[0]):
            workloads.update(cfg.locals[ref])
    return workloads


def compute_workloads(tf_root: Path) -> dict[str, dict]:
    return workloads_of(load(module_dir(tf_root, "public_compute")))


def private_role_of(cfg: Config) -> tuple[str, str, dict] | None:
    """(local name, role name, role) of the access declarations' role that a local of the module names
    (`data_prep = local.access.roles.data_prep`)."""
    found = access_local(cfg)
    if found is None or not found[1].is_file():
        return None
    for local_name, value in cfg.locals.items():
        m = re.fullmatch(r"\$\{local\.(\w+)\.roles\.(\w+)\}", str(value))
        if m and m.group(1) == found[0]:
            return local_name, m.group(2), load_json(found[1]).get("roles", {}).get(m.group(2), {})
    return None


def resolve_local(cfg: Config, value: Any) -> str:
    """A `${local.x}` reference as its literal value (one level), anything else as text."""
    text = str(value)
    m = re.fullmatch(r"\$\{local\.(\w+)\}", text)
    return str(cfg.locals.get(m.group(1), "")) if m else text


def expand_locals(cfg: Config, value: Any, depth: int = 4) -> str:
    """Text with its `${local.x}` references replaced by their (string) values, a few levels deep."""
    text = str(value)
    for _ in range(depth):
        whole = re.fullmatch(r"\$\{local\.(\w+)\}", text)
        text = str(cfg.locals.get(whole.group(1), "")) if whole else re.sub(
            r"\$\{local\.(\w+)\}", lambda m: str(cfg.locals.get(m.group(1), "")), text)
    return text


def upper_bound(cfg: Config, value: Any) -> float | None:
    """A number literal, or the smallest `var.x <= N` bound validated on the variable it names."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(r"\$\{var\.(\w+)\}", str(value))
    if not m:
        return None
    var = cfg.variables.get(m.group(1), {})
    bounds = [float(n) for v in blocks(var, "validation")
              for n in re.findall(rf"var\.{m.group(1)}\s*<=\s*(\d+)", str(v.get("condition")))]
    return min(bounds) if bounds else None


# --------------------------------------------------------------------------
# Kubernetes manifests (infra/k8s), read as files
# --------------------------------------------------------------------------
def k8s_root(tf_root: Path) -> Path:
    return tf_root.parent / "k8s"


def k8s_documents(tf_root: Path) -> list[tuple[Path, dict]]:
    """Every YAML document under infra/k8s: manifests, kustomizations, Helm values."""
    docs = []
    root = k8s_root(tf_root)
    for path in sorted(root.rglob("*.yaml")) if root.is_dir() else []:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                docs.append((path, doc))
    return docs


def manifests(tf_root: Path, kind: str) -> list[tuple[Path, dict]]:
    return [(p, d) for p, d in k8s_documents(tf_root) if d.get("kind") == kind and "apiVersion" in d]


def meta(doc: dict) -> tuple[str, str]:
    m = doc.get("metadata") or {}
    return str(m.get("namespace", "")), str(m.get("name", ""))


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
    """raw/curated buckets are never reachable through the link endpoint; the one export (replication)
    copies exactly the prefix access.json declares pseudonymised and exported from that private bucket
    (features/crossing/), into the bucket the prefix lives in, and covers no raw prefix."""
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
    source, prefix, destination = export.get("source"), str(export.get("prefix", "")), export.get("destination")
    prefixes = load_access(tf_root).get("prefixes", {})
    exportable = sorted(f"{d.get('exported_from')}/{p}" for p, d in prefixes.items() if d.get("exported_from"))
    decl = prefixes.get(prefix)
    if source not in PRIVATE_BUCKETS:
        errors.append(f"private_data: the export (replication) rule reads {source!r}, not a private bucket")
    if decl is None or decl.get("exported_from") != source:
        errors.append(f"private_data: the export (replication) rule copies {source}/{prefix!r}; "
                      f"access.json declares only {exportable} exportable")
    else:
        if decl.get("data") != "pseudonymised":
            errors.append(f"private_data: the exported prefix {prefix!r} is declared {decl.get('data')!r}, "
                          "not pseudonymised")
        if destination != decl.get("bucket"):
            errors.append(f"private_data: the export writes to {destination!r}; access.json keeps {prefix!r} "
                          f"in {decl.get('bucket')!r}")
    if destination not in SHAREABLE_BUCKETS:
        errors.append("private_data: the export destination is not a shareable bucket")
    for other, data in reached_classes(prefixes, prefix).items():
        if data == "raw":
            errors.append(f"private_data: the export of {prefix!r} also copies {other!r}, declared raw")
    return errors


# --------------------------------------------------------------------------
# R5: databases are private and encrypted
# --------------------------------------------------------------------------
def databases_are_private_and_encrypted(tf_root: Path = TF_ROOT) -> list[str]:
    """Postgres and Redis: not publicly reachable, encrypted at rest (CMK) and in transit, authenticated
    (Redis: RBAC users, no shared AUTH token)."""
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
            if not rg.get("user_group_ids"):
                errors.append(f"{where} has no RBAC user group (one Redis user per client)")
            if rg.get("auth_token"):
                errors.append(f"{where} uses a shared AUTH token instead of per-client users")
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
    """No public-zone role can reach a prefix that access.json declares raw (the prefix a grant falls
    under, matched by the longest declared prefix, and every declared prefix below it): every public
    grant is on a shareable bucket and reaches pseudonymised or no user data only. No public-zone
    policy or input names the raw/curated buckets, prefixes or key."""
    errors = []
    cfg = load(module_dir(tf_root, "public_compute"))
    access = load_access(tf_root)
    prefixes = access.get("prefixes", {})
    workloads = workloads_of(cfg)
    grants = {f"workload {w}": s for w, s in workloads.items()}
    grants.update({f"role {r} (access.json, zone public)": s for r, s in access.get("roles", {}).items()
                   if s.get("zone") == "public" and any(s.get(k) != (workloads.get(r) or {}).get(k)
                                                        for k in ("read", "write"))})
    for who, spec in grants.items():
        for access_kind in ("read", "write"):
            for bucket, granted in (spec.get(access_kind) or {}).items():
                if bucket not in SHAREABLE_BUCKETS:
                    errors.append(f"public_compute: {who} {access_kind}s bucket {bucket!r}")
                for prefix in granted or []:
                    literal = resolve_local(cfg, prefix)
                    if declared(prefixes, literal) is None:
                        errors.append(f"public_compute: {who} {access_kind}s {literal!r}, whose data class "
                                      "access.json does not declare")
                    for reached, data in reached_classes(prefixes, literal).items():
                        if data not in PUBLIC_CLASSES:
                            errors.append(f"public_compute: {who} {access_kind}s {literal!r}, which reaches "
                                          f"{reached!r}, declared {data!r}")
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
    workloads = workloads_of(cfg)
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
                    literal = resolve_local(cfg, prefix)
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
# R13: the pseudonymisation key is read by the private stage only
# --------------------------------------------------------------------------
def _readers_of(cfg: Config, doc_name: str) -> list[str]:
    """The principals a secret's resource policy (data.aws_iam_policy_document.<doc_name>) leaves able to
    GetSecretValue: the StringNotLike aws:PrincipalArn values of its Deny statements."""
    doc = cfg.data.get(("aws_iam_policy_document", doc_name), {})
    allowed: list[str] = []
    for st in blocks(doc, "statement"):
        if st.get("effect") != "Deny" or "secretsmanager:GetSecretValue" not in [str(a) for a in st.get("actions", [])]:
            continue
        for cond in blocks(st, "condition"):
            if cond.get("test") == "StringNotLike" and cond.get("variable") == "aws:PrincipalArn":
                allowed += [str(v) for v in cond.get("values", [])]
    return allowed


def pseudonym_key_is_scoped(tf_root: Path = TF_ROOT) -> list[str]:
    """The pseudonymisation key is a KMS-encrypted secret of the private zone that only the private stage
    (data_prep, where the token issuer also runs) may read: its resource policy denies everyone else, no
    other policy grants it, no workload of the compute zone is granted it, and only External Secrets'
    per-namespace readers are granted secrets at all."""
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
    allowed = _readers_of(private, "pseudonym_key")
    if not allowed:
        errors.append("private_data: the pseudonym key policy must deny GetSecretValue to every principal "
                      "but the private stage's role")
    for value in allowed:
        if value != "${aws_iam_role.data_prep.arn}":
            errors.append(f"private_data: the pseudonym key may also be read by {value!r}")
    for name, grant in private.data.items():
        if grant is doc or name[0] != "aws_iam_policy_document":
            continue
        for st in blocks(grant, "statement"):
            grants_key = "pseudonym_key" in str(st.get("resources", "")) and st.get("effect") != "Deny"
            if grants_key and name[1] != "data_prep":
                errors.append(f"private_data: data.aws_iam_policy_document.{name[1]} grants the pseudonym key")
    for workload, spec in compute_workloads(tf_root).items():
        if not workload.startswith("external_secrets") and spec.get("secrets"):
            errors.append(f"public_compute: workload {workload} is granted secrets directly")
        if "pseudonym-key" in (spec.get("secrets") or []):
            errors.append(f"public_compute: {workload} ({spec.get('namespace')}) may read the pseudonym key; "
                          "only the private zone may")
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
# R15: the access declarations are well formed, and they are what Terraform reads
# --------------------------------------------------------------------------
def access_declarations_are_consistent(tf_root: Path = TF_ROOT) -> list[str]:
    """infra/policy/access.json is well formed and is what Terraform reads: every prefix has a data
    class and a bucket (raw prefixes only in private buckets); every role's grant names a declared
    prefix, in a bucket that holds it; public_compute's IRSA roles are exactly its public roles and the
    private zone's data_prep policy is built from its private role, with no S3 grant besides."""
    errors: list[str] = []
    path = access_path(tf_root)
    if not path.is_file():
        return [f"{path.name} is missing: it declares every prefix's data class and every role's grants"]
    try:
        access = load_json(path)
    except ValueError as exc:
        return [f"access.json does not parse: {exc}"]
    prefixes, roles = access.get("prefixes"), access.get("roles")
    for section in ("prefixes", "roles", "tasks"):
        if not isinstance(access.get(section), dict) or not access.get(section):
            errors.append(f"access.json: no {section}")
    if errors:
        return errors
    known = PRIVATE_BUCKETS | SHAREABLE_BUCKETS
    for prefix, decl in prefixes.items():
        where = f"access.json: prefix {prefix!r}"
        decl = decl if isinstance(decl, dict) else {}
        if not prefix.endswith("/") or "*" in prefix:
            errors.append(f"{where} is not a key prefix (it must end with / and have no wildcard)")
        if decl.get("data") not in DATA_CLASSES:
            errors.append(f"{where} has data class {decl.get('data')!r}, not one of {DATA_CLASSES}")
        if not decl.get("bucket") or homes(decl) - known:
            errors.append(f"{where} lives in unknown bucket(s) {sorted(homes(decl) - known) or None}")
        if decl.get("data") == "raw" and homes(decl) & SHAREABLE_BUCKETS:
            errors.append(f"{where} is declared raw but lives in shareable bucket(s) "
                          f"{sorted(homes(decl) & SHAREABLE_BUCKETS)}")
    for name, role in roles.items():
        where = f"access.json: role {name}"
        zone = role.get("zone")
        if zone not in ("private", "public"):
            errors.append(f"{where} has zone {zone!r}, not private or public")
        for kind in ("read", "write"):
            for bucket, granted in (role.get(kind) or {}).items():
                if bucket not in known:
                    errors.append(f"{where} {kind}s the unknown bucket {bucket!r}")
                elif zone != "private" and bucket not in SHAREABLE_BUCKETS:
                    errors.append(f"{where} ({zone}) {kind}s the private bucket {bucket!r}")
                for grant in granted or []:
                    found = declared(prefixes, str(grant))
                    if not str(grant).endswith("/") or found is None:
                        errors.append(f"{where} {kind}s {grant!r} on {bucket}, which is no declared prefix")
                    elif bucket not in homes(found[1]):
                        errors.append(f"{where} {kind}s {grant!r} on the {bucket} bucket; access.json keeps "
                                      f"{found[0]!r} in {sorted(homes(found[1]))}")
    for module in ("public_compute", "private_data"):
        found = access_local(load(module_dir(tf_root, module)))
        if found is None:
            errors.append(f"modules/{module} does not read the access declarations "
                          "(jsondecode(file(\"${path.module}/../../../policy/access.json\")))")
        elif found[1] != path.resolve():
            errors.append(f"modules/{module} reads {found[1]}, not {path}")
    workloads = compute_workloads(tf_root)
    for name in workloads:
        if name in roles and roles[name].get("zone") != "public":
            errors.append(f"public_compute: workload {name} is the {roles[name].get('zone')} role of access.json")
    for name in sorted(n for n, r in roles.items() if r.get("zone") == "public"):
        if name not in workloads:
            errors.append(f"public_compute: access.json's public role {name} has no IRSA role")
    private = load(module_dir(tf_root, "private_data"))
    found_role = private_role_of(private)
    doc = private.data.get(("aws_iam_policy_document", "data_prep"), {})
    if found_role is None:
        errors.append("private_data: the data_prep policy is not built from a role of access.json "
                      "(data_prep = local.access.roles.data_prep)")
    else:
        local_name, role_name, role = found_role
        if role.get("zone") != "private":
            errors.append(f"private_data: role {role_name} of access.json has zone {role.get('zone')!r}, not private")
        loops = {str(first(d, "statement").get("for_each")) for d in blocks(doc, "dynamic")
                 if isinstance(d, dict) and "statement" in d}
        for kind in ("read", "write"):
            if f"${{local.{local_name}.{kind}}}" not in loops:
                errors.append(f"private_data: the data_prep policy does not take its S3 {kind} grants from "
                              f"local.{local_name}.{kind} (access.json)")
    for st in blocks(doc, "statement"):
        actions = [str(a) for a in st.get("actions", [])]
        if any(a.startswith("s3:") and a != "s3:GetBucketLocation" for a in actions):
            errors.append(f"private_data: statement {st.get('sid')!r} of the data_prep policy grants S3 "
                          "outside access.json")
    return errors


# --------------------------------------------------------------------------
# R16: raw data is only ever output by private tasks, on private workers
# --------------------------------------------------------------------------
#: Prefixes a raw-data task may still write: run locks, whose records name a purpose and a time only.
COORDINATION_PREFIXES = ("locks/",)


def raw_outputs_stay_on_private_workers(tf_root: Path = TF_ROOT) -> list[str]:
    """Every task of access.json runs as a declared role of its runner's zone and reads and writes only
    declared prefixes its role is granted; a task whose output is raw writes only raw prefixes (and
    run locks), on
    airflow:private-data, under a private role; no task on KFP (whose pipeline root the public zone
    reads) or on a public Airflow queue reads or writes a raw prefix or outputs raw data."""
    errors = []
    access = load_access(tf_root)
    prefixes, roles = access.get("prefixes", {}), access.get("roles", {})
    tasks = access.get("tasks", {})
    if not tasks:
        return ["access.json: no tasks"]
    for name, task in tasks.items():
        where = f"access.json: task {name}"
        role_name, runs_on, output = task.get("role"), str(task.get("runs_on", "")), task.get("output")
        role = roles.get(role_name)
        if role is None:
            errors.append(f"{where} runs as {role_name!r}, which is no declared role")
            continue
        if output not in DATA_CLASSES:
            errors.append(f"{where} outputs {output!r}, not one of {DATA_CLASSES}")
        if runs_on == PRIVATE_QUEUE:
            runner_zone = "private"
        elif runs_on == "kfp" or re.fullmatch(r"airflow:[\w-]+", runs_on):
            runner_zone = "public"
        else:
            errors.append(f"{where} runs on {runs_on!r}: neither kfp nor an airflow:<queue>")
            continue
        if role.get("zone") != runner_zone:
            errors.append(f"{where} runs on {runs_on} ({runner_zone} zone) as {role_name}, a "
                          f"{role.get('zone')} role")
        for kind, grant_kind in (("reads", "read"), ("writes", "write")):
            granted = [str(g) for gs in (role.get(grant_kind) or {}).values() for g in gs or []]
            for key in task.get(kind) or []:
                if declared(prefixes, key) is None:
                    errors.append(f"{where} {kind} {key!r}, which is no declared prefix")
                    continue
                if not any(key.startswith(g) for g in granted):
                    errors.append(f"{where} {kind} {key!r}, which role {role_name} is not granted")
                for reached, data in reached_classes(prefixes, key).items():
                    if runner_zone == "public" and data == "raw":
                        errors.append(f"{where} runs on {runs_on} and {kind} {key!r}, which reaches "
                                      f"{reached!r}, declared raw")
                data = declared(prefixes, key)[1].get("data")
                if kind == "writes" and output == "raw" and data != "raw" and key not in COORDINATION_PREFIXES:
                    errors.append(f"{where} outputs raw data but writes {key!r}, declared {data!r}")
        if output == "raw":
            if runs_on != PRIVATE_QUEUE:
                errors.append(f"{where} outputs raw data on {runs_on}, not on {PRIVATE_QUEUE}")
            if role.get("zone") != "private":
                errors.append(f"{where} outputs raw data as {role_name}, a {role.get('zone')} role")
    return errors


# --------------------------------------------------------------------------
# R17: the KFP pipeline root is pseudonymised and short-lived
# --------------------------------------------------------------------------
def kfp_root_is_pseudonymised_and_expires(tf_root: Path = TF_ROOT) -> list[str]:
    """The KFP pipeline root (public_compute kfp_root_prefix) is declared pseudonymised, in the pipelines
    bucket, and every grant on that bucket stays inside it; the root expires within 30 days (current
    objects, and old versions soon after): the bound on artifacts of runs that held raw data."""
    errors = []
    compute = load(module_dir(tf_root, "public_compute"))
    access = load_access(tf_root)
    prefixes = access.get("prefixes", {})
    root = compute.locals.get("kfp_root_prefix")
    decl = prefixes.get(root) if isinstance(root, str) else None
    if not isinstance(root, str) or not root:
        errors.append("public_compute: no local kfp_root_prefix (the KFP pipeline root)")
    elif decl is None:
        errors.append(f"public_compute: the KFP pipeline root {root!r} is not declared in access.json")
    else:
        if decl.get("data") != "pseudonymised":
            errors.append(f"access.json: the KFP pipeline root {root!r} is declared {decl.get('data')!r}, "
                          "not pseudonymised (every public pipeline step reads it)")
        if decl.get("bucket") != "pipelines":
            errors.append(f"access.json: the KFP pipeline root {root!r} lives in {decl.get('bucket')!r}, "
                          "not the pipelines bucket")
    workloads = workloads_of(compute)
    grants = {f"workload {w}": s for w, s in workloads.items()}
    grants.update({f"role {r} (access.json)": s for r, s in access.get("roles", {}).items() if r not in workloads})
    for who, spec in grants.items():
        for kind in ("read", "write"):
            for grant in (spec.get(kind) or {}).get("pipelines", []) or []:
                literal = resolve_local(compute, grant)
                if isinstance(root, str) and root and not literal.startswith(root):
                    errors.append(f"{who} {kind}s {literal!r} of the pipelines bucket, outside the KFP root {root!r}")
    private = load(module_dir(tf_root, "private_data"))
    rules = [e for e in private.locals.get("prefix_expirations", []) or []
             if isinstance(e, dict) and e.get("bucket") == "pipelines" and e.get("prefix") == root]
    if not rules:
        errors.append(f"private_data: nothing expires the KFP pipeline root {root!r} (local.prefix_expirations)")
    for e in rules:
        for attr in ("days", "noncurrent_days"):
            bound = upper_bound(private, e.get(attr))
            if bound is None or bound > KFP_ROOT_MAX_DAYS:
                errors.append(f"private_data: the KFP root's {attr} ({e.get(attr)!r}) is not bounded by "
                              f"{KFP_ROOT_MAX_DAYS} days")
    if "local.prefix_expirations" not in str(private.modules.get("bucket", {}).get("prefix_expirations", "")):
        errors.append("private_data: module.bucket does not pass local.prefix_expirations")
    secure = load(module_dir(tf_root, "secure_bucket"))
    lifecycles = secure.of_type("aws_s3_bucket_lifecycle_configuration").values()
    lifecycle = " ".join(str(lc.get("dynamic", "")) for lc in lifecycles)
    if not all(w in lifecycle for w in ("var.prefix_expirations", "noncurrent_version_expiration", "'expiration'")):
        errors.append("secure_bucket: no lifecycle rule per var.prefix_expirations (expiration and "
                      "noncurrent_version_expiration under the prefix)")
    return errors


# --------------------------------------------------------------------------
# R18: every application logs in as its own user
# --------------------------------------------------------------------------
API_REDIS_COMMANDS = {"hmget", "hget", "hgetall", "hset", "expire", "pexpire", "ping"}
# The online API's shared rate-limit counters (shoprank/identity/rate_limits.py): INCR + EXPIRE in one
# MULTI/EXEC, under keys of this prefix, as a Redis user of their own.
RATE_LIMIT_KEYS = "~shoprank:rate:"
RATE_LIMIT_REDIS_COMMANDS = {"incr", "expire", "pexpire", "multi", "exec", "discard", "ping"}


def _acl_words(access_string: str) -> tuple[list[str], list[str], list[str]]:
    """(key patterns, granted commands/categories, everything else) of a Redis ACL string."""
    words = access_string.split()
    keys = [w for w in words if w.startswith(("~", "%"))]
    granted = [w[1:].lower() for w in words if w.startswith("+")]
    return keys, granted, [w for w in words if w not in keys and not w.startswith("+")]


def app_secrets_use_their_own_users(tf_root: Path = TF_ROOT) -> list[str]:
    """No connection string in Secrets Manager uses the Postgres master user: each logs in as a declared,
    unprivileged postgresql_role (Airflow as `airflow`) with that role's password. Redis has no shared
    AUTH token: each client has its own ElastiCache RBAC user and password (no two secrets share one),
    the group's default user is off, and the online API's user reaches Feast's keys only, with read and
    push-write commands only."""
    errors = []
    private = load(module_dir(tf_root, "private_data"))
    values = private.locals.get("secret_values", {})
    if not isinstance(values, dict) or not values:
        return ["private_data: local.secret_values is not a literal map of connection strings"]
    db = private.of_type("aws_db_instance").get("postgres", {})
    master = str(db.get("username", "")) or "<none>"
    roles = private.of_type("postgresql_role")
    users = private.of_type("aws_elasticache_user")
    redis_users = private.locals.get("redis_users", {}) if isinstance(private.locals.get("redis_users"), dict) else {}
    redis_seen: dict[str, str] = {}
    for key, value in values.items():
        text = str(value)
        where = f"private_data: secret {key!r}"
        if (master in text or "aws_db_instance.postgres.username" in text
                or "random_password.postgres_admin" in text):
            errors.append(f"{where} uses the database master user")
        if text.startswith("postgresql"):
            m = re.search(r"postgresql_role\.(\w+)\.name", text)
            role = roles.get(m.group(1)) if m else None
            if role is None:
                errors.append(f"{where} does not log in as a declared postgresql_role")
                continue
            for attr in ("superuser", "create_database", "create_role"):
                if not is_false(role.get(attr)):
                    errors.append(f"{where}: postgresql_role.{m.group(1)} must set {attr} = false")
            password = str(role.get("password", "")).removeprefix("${").removesuffix("}")
            if not password or password not in text:
                errors.append(f"{where} does not use postgresql_role.{m.group(1)}'s own password")
        elif ":6379" in text or "redis" in text:
            if "redis_auth" in text or "auth_token" in text:
                errors.append(f"{where} uses the shared Redis AUTH token")
            m = re.search(r'aws_elasticache_user\.(\w+)(?:\["([\w-]+)"\])?\.user_name', text)
            if not m:
                errors.append(f"{where} does not log in as an ElastiCache RBAC user")
                continue
            user = m.group(2) or m.group(1)
            if user in redis_seen:
                errors.append(f"{where} shares the Redis user {user!r} with {redis_seen[user]!r}")
            redis_seen[user] = key
            if f'random_password.redis_user["{user}"]' not in text:
                errors.append(f"{where} does not use the Redis user {user!r}'s own password")
    for name, user in users.items():
        password = str(first(user, "authentication_mode").get("passwords", user.get("passwords", "")))
        if "random_password.redis_user[" not in password:
            errors.append(f"private_data: aws_elasticache_user.{name} has no password of its own")
    default = [u for u in users.values() if u.get("user_name") == "default"]
    if not default or any(not str(u.get("access_string", "")).startswith("off") for u in default):
        errors.append("private_data: the Redis user group's `default` user must be switched off")
    groups = private.of_type("aws_elasticache_user_group")
    if not groups:
        errors.append("private_data: no aws_elasticache_user_group (one user per Redis client)")
    api_secret = next((k for k in values if k.endswith("-api") and "online-store" in k), None)
    if api_secret is None:
        errors.append("private_data: no Redis connection string of its own for the online API")
    else:
        user = next((u for u, k in redis_seen.items() if k == api_secret), None)
        access_string = expand_locals(private, (redis_users.get(user) or {}).get("access", ""))
        keys, granted, rest = _acl_words(access_string)
        project = str(private.locals.get("feast_project", ""))
        if not access_string.startswith("on ") or "-@all" not in rest:
            errors.append(f"private_data: the API's Redis user {user!r} must start from `on ... -@all`")
        if not keys or any(not k.endswith(f"*{project}") or not project for k in keys):
            errors.append(f"private_data: the API's Redis user {user!r} reaches keys {keys}, not only Feast's "
                          f"(*{project or '<project>'})")
        extra = sorted(set(granted) - API_REDIS_COMMANDS)
        if extra:
            errors.append(f"private_data: the API's Redis user {user!r} may also run {extra}")
    for secret in (k for k in values if "rate-limit" in k):
        user = next((u for u, k in redis_seen.items() if k == secret), None)
        access_string = expand_locals(private, (redis_users.get(user) or {}).get("access", ""))
        keys, granted, rest = _acl_words(access_string)
        if not access_string.startswith("on ") or "-@all" not in rest:
            errors.append(f"private_data: the rate-limit Redis user {user!r} must start from `on ... -@all`")
        if not keys or any(not k.startswith(RATE_LIMIT_KEYS) for k in keys):
            errors.append(f"private_data: the rate-limit Redis user {user!r} reaches keys {keys}, not only the "
                          f"counters ({RATE_LIMIT_KEYS}*)")
        extra = sorted(set(granted) - RATE_LIMIT_REDIS_COMMANDS)
        if extra:
            errors.append(f"private_data: the rate-limit Redis user {user!r} may also run {extra}")
    return errors


# --------------------------------------------------------------------------
# R19: images are pinned by digest
# --------------------------------------------------------------------------
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
SHOPRANK_IMAGE = "ghcr.io/shoprank/shoprank"


def _image_refs(node: Any, trail: str = "") -> Iterator[tuple[str, str]]:
    """(where, image) of every container image a manifest, a kustomize patch or a JSON patch sets."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{trail}.{key}" if trail else str(key)
            if key == "image" and isinstance(value, str):
                yield here, value
            elif key == "value" and isinstance(value, str) and str(node.get("path", "")).endswith("/image"):
                yield here, value
            elif key == "patch" and isinstance(value, str):
                for sub in yaml.safe_load_all(value):
                    yield from _image_refs(sub, here)
            else:
                yield from _image_refs(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _image_refs(value, f"{trail}[{i}]")


def images_are_pinned_by_digest(tf_root: Path = TF_ROOT) -> list[str]:
    """Every container image in infra/k8s (manifests, kustomize patches and `images:`, Helm values) is
    pinned by digest (`repo[:tag]@sha256:<64 hex>`), never by a mutable tag alone; the shoprank image
    has one digest everywhere: SHOPRANK_IMAGE_DIGEST of platform/versions.env, which install.sh passes
    to the Airflow chart."""
    errors = []
    root = k8s_root(tf_root)
    versions = root / "platform" / "versions.env"
    pinned = dict(line.split("=", 1) for line in versions.read_text().splitlines()
                  if "=" in line and not line.startswith("#")) if versions.is_file() else {}
    digest = pinned.get("SHOPRANK_IMAGE_DIGEST", "")
    if not DIGEST.fullmatch(digest):
        errors.append(f"k8s/platform/versions.env: SHOPRANK_IMAGE_DIGEST {digest!r} is not sha256:<64 hex>")
    for path, doc in k8s_documents(tf_root):
        rel = path.relative_to(root)
        for where, image in _image_refs(doc):
            if not DIGEST_REF.match(image):
                errors.append(f"k8s/{rel}: {where} = {image!r} is not pinned by digest")
            elif image.split("@")[0].split(":")[0] == SHOPRANK_IMAGE and image.split("@")[1] != digest:
                errors.append(f"k8s/{rel}: {where} pins the shoprank image to {image.split('@')[1]}, not "
                              "versions.env's SHOPRANK_IMAGE_DIGEST")
        if path.name == "kustomization.yaml":
            for entry in doc.get("images") or []:
                if not DIGEST.fullmatch(str(entry.get("digest", ""))):
                    errors.append(f"k8s/{rel}: images entry {entry.get('name')!r} sets no digest")
        if path.name == "values.yaml":
            if "defaultAirflowTag" in doc or "defaultAirflowRepository" in doc:
                value = str(doc.get("defaultAirflowDigest", ""))
                if not DIGEST.fullmatch(value):
                    errors.append(f"k8s/{rel}: defaultAirflowDigest {value!r} does not pin the Airflow image")
                elif value != digest:
                    errors.append(f"k8s/{rel}: defaultAirflowDigest differs from SHOPRANK_IMAGE_DIGEST")
            for node in walk_dicts(doc):
                if "repository" in node and "tag" in node and not DIGEST.fullmatch(str(node.get("digest", ""))):
                    errors.append(f"k8s/{rel}: image {node.get('repository')!r} is set by tag without a digest")
    install = root / "install.sh"
    if install.is_file() and "defaultAirflowDigest=$SHOPRANK_IMAGE_DIGEST" not in install.read_text():
        errors.append("k8s/install.sh: the Airflow chart is not given defaultAirflowDigest=$SHOPRANK_IMAGE_DIGEST")
    return errors


def walk_dicts(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_dicts(value)


# --------------------------------------------------------------------------
# R20: NetworkPolicies are enforced and deny egress by default
# --------------------------------------------------------------------------
def _allows_dns(rule: dict) -> bool:
    ports = {(str(p.get("port")), str(p.get("protocol", "TCP"))) for p in rule.get("ports") or []}
    to_kube_system = any(
        (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "kube-system" for peer in rule.get("to") or [])
    return to_kube_system and ("53", "UDP") in ports


def network_policy_is_enforced(tf_root: Path = TF_ROOT) -> list[str]:
    """The VPC CNI enforces NetworkPolicies (vpc-cni addon: enableNetworkPolicy = "true"), and each public
    namespace (shoprank, airflow, kubeflow) denies all egress by default, then allows DNS to kube-system
    and named destinations only: every egress rule names its peers, no peer is an open CIDR, and a CIDR
    peer is limited to ports."""
    errors = []
    compute = load(module_dir(tf_root, "public_compute"))
    addons = compute.locals.get("eks_addons", {})
    vpc_cni = str(addons.get("vpc-cni", "")) if isinstance(addons, dict) else ""
    if not re.search(r'enableNetworkPolicy\s*=\s*\\?"true', vpc_cni):
        errors.append('public_compute: the vpc-cni addon does not set enableNetworkPolicy = "true" '
                      "(NetworkPolicies would not be enforced)")
    addon = compute.of_type("aws_eks_addon").get("this", {})
    if "local.eks_addons" not in str(addon.get("for_each")) or "configuration" not in str(
            addon.get("configuration_values")):
        errors.append("public_compute: aws_eks_addon.this does not apply local.eks_addons' configuration_values")
    policies = [doc for _, doc in manifests(tf_root, "NetworkPolicy")]
    for ns in PUBLIC_NAMESPACES:
        mine = [p for p in policies if meta(p)[0] == ns]
        everyone = [p for p in mine if not (p.get("spec") or {}).get("podSelector")]
        if not any("Egress" in p["spec"].get("policyTypes", []) and not p["spec"].get("egress") for p in everyone):
            errors.append(f"k8s: namespace {ns} has no default-deny egress NetworkPolicy (podSelector {{}}, "
                          "policyTypes [Egress], no egress rule)")
        if not any(_allows_dns(rule) for p in everyone for rule in p["spec"].get("egress") or []):
            errors.append(f"k8s: namespace {ns} allows its pods no DNS (UDP 53 to kube-system)")
        for p in mine:
            for rule in (p.get("spec") or {}).get("egress") or []:
                where = f"k8s: NetworkPolicy {ns}/{meta(p)[1]}"
                peers = rule.get("to") or []
                if not peers:
                    errors.append(f"{where} allows egress to any destination")
                for peer in peers:
                    cidr = (peer.get("ipBlock") or {}).get("cidr")
                    if cidr in OPEN_CIDRS:
                        errors.append(f"{where} allows egress to {cidr}")
                    if cidr and not rule.get("ports"):
                        errors.append(f"{where} allows every port to {cidr}")
    return errors


# --------------------------------------------------------------------------
# R21: the interface endpoints' policies
# --------------------------------------------------------------------------
def endpoint_policies_are_scoped(tf_root: Path = TF_ROOT) -> list[str]:
    """Every interface VPC endpoint of both zones has its own policy; its statements name their actions
    (no wildcard) and allow this account's principals only (aws:PrincipalAccount), or, where the caller
    has no principal yet (STS web identity), this account's resources only."""
    errors = []
    for zone in ("private_data", "public_compute"):
        cfg = load(module_dir(tf_root, zone))
        for name, endpoint in cfg.of_type("aws_vpc_endpoint").items():
            if endpoint.get("vpc_endpoint_type") != "Interface":
                continue
            where = f"{zone}: aws_vpc_endpoint.{name}"
            m = re.search(r"data\.aws_iam_policy_document\.([\w-]+)", str(endpoint.get("policy", "")))
            doc = cfg.data.get(("aws_iam_policy_document", m.group(1))) if m else None
            if doc is None:
                errors.append(f"{where} has no endpoint policy (full access for any principal)")
                continue
            table_ref = re.fullmatch(r"\$\{local\.(\w+)\}", str(endpoint.get("for_each", "")))
            if table_ref is None:
                statements = [{"actions": s.get("actions", []), "resources": s.get("resources", []),
                               "account_condition": any(c.get("variable") == "aws:PrincipalAccount"
                                                        for c in blocks(s, "condition"))}
                              for s in blocks(doc, "statement")]
                tables = {name: statements}
            else:
                if str(doc.get("for_each")) != str(endpoint.get("for_each")):
                    errors.append(f"{where}: its policy is not one per endpoint (for_each differs)")
                tables = cfg.locals.get(table_ref.group(1), {})
            text = str(doc)
            account_condition = "aws:PrincipalAccount" in text and "local.account_id" in text
            conditional = "account_condition" in text
            for endpoint_name, statements in tables.items():
                for i, st in enumerate(statements if isinstance(statements, list) else []):
                    at = f"{where}[{endpoint_name}] statement {i}"
                    actions = [str(a) for a in st.get("actions", [])]
                    if not actions or any("*" in a for a in actions):
                        errors.append(f"{at} allows {actions or 'no action'}: name the actions")
                    resources = [str(r) for r in st.get("resources", [])]
                    limited = bool(resources) and all("local.account_id" in r for r in resources)
                    conditioned = account_condition and (not conditional or is_true(st.get("account_condition")))
                    if not conditioned and not limited:
                        errors.append(f"{at} is open to other accounts' principals and resources")
    return errors


# --------------------------------------------------------------------------
# R22: one SecretStore per namespace
# --------------------------------------------------------------------------
SECRET_PLACEHOLDER = re.compile(r"^REPLACE-([\w-]+)-secret-arn$")


def secret_stores_are_namespaced(tf_root: Path = TF_ROOT) -> list[str]:
    """No ClusterSecretStore or ClusterExternalSecret (and External Secrets refuses them): each
    namespace reads Secrets Manager through its own SecretStore, whose service account's IRSA role
    (public_compute external_secrets_<namespace>) may read only the secrets synced into that namespace;
    every ExternalSecret uses its own namespace's store and asks only for those secrets; no namespace's
    store may read the pseudonymisation key."""
    errors = []
    docs = k8s_documents(tf_root)
    for path, doc in docs:
        if doc.get("kind") in ("ClusterSecretStore", "ClusterExternalSecret"):
            errors.append(f"k8s/{path.relative_to(k8s_root(tf_root))}: {doc['kind']} {meta(doc)[1]} reads "
                          "secrets for every namespace")
    readers = {spec.get("namespace"): (name, spec) for name, spec in compute_workloads(tf_root).items()
               if name.startswith("external_secrets")}
    stores = {meta(d): d for _, d in manifests(tf_root, "SecretStore")}
    accounts = {meta(d): d for _, d in manifests(tf_root, "ServiceAccount")}
    for (ns, name), store in stores.items():
        where = f"k8s: SecretStore {ns}/{name}"
        ref = (((store.get("spec") or {}).get("provider") or {}).get("aws") or {}).get("auth", {})
        ref = (ref.get("jwt") or {}).get("serviceAccountRef") or {}
        if ref.get("namespace") not in (None, ns):
            errors.append(f"{where} uses a service account of namespace {ref.get('namespace')!r}")
        reader = readers.get(ns)
        if reader is None:
            errors.append(f"{where}: public_compute has no secret reader (external_secrets_{ns}) for {ns}")
        elif ref.get("name") not in (reader[1].get("service_accounts") or []):
            errors.append(f"{where} authenticates as {ref.get('name')!r}, not as {reader[0]}'s service account")
        if (ns, str(ref.get("name"))) not in accounts:
            errors.append(f"{where}: its service account {ns}/{ref.get('name')} is not declared")
    for _, es in manifests(tf_root, "ExternalSecret"):
        ns, name = meta(es)
        where = f"k8s: ExternalSecret {ns}/{name}"
        ref = (es.get("spec") or {}).get("secretStoreRef") or {}
        if ref.get("kind") != "SecretStore" or (ns, str(ref.get("name"))) not in stores:
            errors.append(f"{where} does not use its namespace's SecretStore")
        spec = es.get("spec") or {}
        keys = [d.get("remoteRef", {}).get("key", "") for d in spec.get("data") or []]
        keys += [d.get("extract", {}).get("key", "") for d in spec.get("dataFrom") or []]
        allowed = (readers.get(ns) or ("", {}))[1].get("secrets") or []
        for key in keys:
            m = SECRET_PLACEHOLDER.match(str(key))
            if m is None:
                errors.append(f"{where}: remote key {key!r} is not a REPLACE-<secret>-secret-arn placeholder")
            elif m.group(1) not in allowed:
                errors.append(f"{where} asks for {m.group(1)!r}, which {ns}'s SecretStore may not read")
    values = k8s_root(tf_root) / "platform" / "external-secrets" / "values.yaml"
    chart = yaml.safe_load(values.read_text()) if values.is_file() else {}
    for flag in ("processClusterStore", "processClusterExternalSecret"):
        if not is_false((chart or {}).get(flag)):
            errors.append(f"k8s/platform/external-secrets/values.yaml: {flag} must be false")
    for ns, (name, spec) in readers.items():
        if "pseudonym-key" in (spec.get("secrets") or []):
            errors.append(f"public_compute: {name} may read the pseudonym key into namespace {ns}")
    return errors


# --------------------------------------------------------------------------
# R23: the pseudonymisation key and the token signing key stay in the private zone
# --------------------------------------------------------------------------
#: The secrets of private_data that only the private zone may read, and what they are.
PRIVATE_KEYS = {"pseudonym_key": "the pseudonymisation key", "token_signing_key": "the token signing key"}
#: How a manifest, an env file or a secret name would name either key, or the settings that load them.
PRIVATE_KEY_NAMES = re.compile(r"pseudonym[-_]?key|token[-_]?signing[-_]?key", re.IGNORECASE)


def _k8s_strings(tf_root: Path) -> Iterator[tuple[str, str]]:
    """(file, text) of everything the cluster is made from: every string (keys and values) of every YAML
    document under infra/k8s (manifests, patches, Helm values; comments are not strings) and every line
    of its env files (the overlays' generated/ included)."""
    root = k8s_root(tf_root)
    for path, doc in k8s_documents(tf_root):
        keys = [k for node in walk_dicts(doc) for k in node if isinstance(k, str)]
        for text in keys + [v for v in walk(doc) if isinstance(v, str)]:
            yield str(path.relative_to(root)), text
    for path in sorted(root.rglob("*.env")) if root.is_dir() else []:
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                yield str(path.relative_to(root)), line


def private_keys_stay_in_the_private_zone(tf_root: Path = TF_ROOT) -> list[str]:
    """No public-zone pod or role can get the pseudonymisation key or the token signing key. Each is a
    CMK-encrypted secret of private_data whose resource policy denies GetSecretValue to every principal
    but the private zone's roles (access.json), and no other policy there grants it; neither ARN is in
    what private_data hands the compute zone (secret_arns, cluster_env_data); no IRSA role or secret
    reader of public_compute is granted either; and nothing under infra/k8s (pods, ExternalSecrets,
    ConfigMaps, Helm values, the overlays' generated env files) names either key or its settings
    (SHOPRANK_PSEUDONYM_KEY*, SHOPRANK_TOKEN_SIGNING_KEY)."""
    errors = []
    private = load(module_dir(tf_root, "private_data"))
    roles = load_access(tf_root).get("roles", {})
    private_roles = sorted(n for n, r in roles.items() if r.get("zone") == "private")
    private_arns = {f"${{aws_iam_role.{n}.arn}}" for n in private_roles}
    for resource, what in PRIVATE_KEYS.items():
        secret = private.of_type("aws_secretsmanager_secret").get(resource)
        if secret is None:
            errors.append(f"private_data: no aws_secretsmanager_secret.{resource} ({what} must live in the "
                          "private zone's Secrets Manager)")
            continue
        if "aws_kms_key" not in str(secret.get("kms_key_id", "")):
            errors.append(f"private_data: {what} is not encrypted with a customer-managed KMS key")
        policies = [p for p in private.of_type("aws_secretsmanager_secret_policy").values()
                    if f"aws_secretsmanager_secret.{resource}." in str(p.get("secret_arn", ""))]
        docs = [m.group(1) for p in policies
                for m in [re.search(r"data\.aws_iam_policy_document\.(\w+)\.json", str(p.get("policy", "")))] if m]
        readers = [r for d in docs for r in _readers_of(private, d)]
        if not readers:
            errors.append(f"private_data: {what} has no resource policy denying GetSecretValue to every "
                          f"principal but the private zone's roles ({', '.join(private_roles)})")
        for reader in readers:
            if reader not in private_arns:
                errors.append(f"private_data: {what} may also be read by {reader!r}, which is no private role")
        for (dtype, name), doc in private.data.items():
            if dtype != "aws_iam_policy_document" or name in private_roles or name in docs:
                continue
            for st in blocks(doc, "statement"):
                if st.get("effect") != "Deny" and f"aws_secretsmanager_secret.{resource}." in str(st.get("resources")):
                    errors.append(f"private_data: data.aws_iam_policy_document.{name} grants {what}")
        for output in ("secret_arns", "cluster_env_data"):
            if f"aws_secretsmanager_secret.{resource}" in str(private.outputs.get(output, {}).get("value", "")):
                errors.append(f"private_data: output {output} hands {what} to the compute zone")
    for workload, spec in compute_workloads(tf_root).items():
        for name in spec.get("secrets") or []:
            if PRIVATE_KEY_NAMES.search(str(name)):
                errors.append(f"public_compute: workload {workload} ({spec.get('namespace')}) may read {name!r}")
    seen = set()
    for where, text in _k8s_strings(tf_root):
        m = PRIVATE_KEY_NAMES.search(text)
        if m and (where, m.group(0)) not in seen:
            seen.add((where, m.group(0)))
            errors.append(f"k8s/{where}: names {m.group(0)!r}: the public cluster must hold neither the "
                          "pseudonymisation key nor the token signing key")
    return errors


# --------------------------------------------------------------------------
# R24: the online API's event log survives its pod
# --------------------------------------------------------------------------
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def _pod_spec(doc: dict) -> dict:
    spec = (doc.get("spec") or {})
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def online_api_event_log_is_durable(tf_root: Path = TF_ROOT) -> list[str]:
    """The online API acknowledges an event once it is in its own log, so that log must outlive the pod:
    every workload running as the online API's service accounts (access.json `online_api`) is a
    StatefulSet whose SHOPRANK_EVENT_LOG lies on a volumeClaimTemplate (a PersistentVolumeClaim per pod,
    ReadWriteOnce, of a StorageClass declared here or the cluster's default), never an emptyDir; its
    claims are retained when it scales down or is deleted (whenScaled and whenDeleted: Retain); its
    governing Service is headless; and its autoscaler targets it as a StatefulSet."""
    errors = []
    api = load_access(tf_root).get("roles", {}).get("online_api", {})
    accounts = set(api.get("service_accounts") or [])
    workloads = [(p, d) for kind in WORKLOAD_KINDS for p, d in manifests(tf_root, kind)
                 if _pod_spec(d).get("serviceAccountName") in accounts]
    if not workloads:
        return [f"k8s: no workload runs as the online API's service accounts {sorted(accounts)}"]
    classes = {meta(d)[1] for _, d in manifests(tf_root, "StorageClass")}
    services = {meta(d)[1]: d for _, d in manifests(tf_root, "Service")}
    for path, doc in workloads:
        name = meta(doc)[1]
        where = f"k8s/{path.relative_to(k8s_root(tf_root))}: {doc['kind']} {name}"
        if doc["kind"] != "StatefulSet":
            errors.append(f"{where} runs the online API; it must be a StatefulSet with a volume claim per pod "
                          "(an eviction deletes a Deployment pod's emptyDir, and the events it acknowledged)")
            continue
        spec = doc.get("spec") or {}
        pod = _pod_spec(doc)
        templates = {(t.get("metadata") or {}).get("name"): t.get("spec") or {}
                     for t in spec.get("volumeClaimTemplates") or []}
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for container in pod.get("containers") or []:
            env = {e.get("name"): e.get("value") for e in container.get("env") or []}
            log = env.get("SHOPRANK_EVENT_LOG")
            if not log or not str(log).startswith("/"):
                errors.append(f"{where}: container {container.get('name')} sets no absolute SHOPRANK_EVENT_LOG "
                              "(the relative default lands on the image's disk)")
                continue
            mounts = [m for m in container.get("volumeMounts") or [] if _under(str(log), str(m.get("mountPath")))]
            mount = max(mounts, key=lambda m: len(str(m.get("mountPath"))), default=None)
            if mount is None:
                errors.append(f"{where}: the event log {log} is on no volume")
            elif mount.get("name") in volumes or mount.get("name") not in templates:
                errors.append(f"{where}: the event log {log} is on volume {mount.get('name')!r}, not a "
                              "volumeClaimTemplate (a PersistentVolumeClaim per pod)")
            else:
                claim = templates[mount.get("name")]
                if claim.get("accessModes") != ["ReadWriteOnce"]:
                    errors.append(f"{where}: the event-log claim must be ReadWriteOnce (one pod's own log)")
                sc = claim.get("storageClassName")
                if sc is not None and sc not in classes:
                    errors.append(f"{where}: the event-log claim uses StorageClass {sc!r}, declared nowhere")
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for when in ("whenScaled", "whenDeleted"):
            if policy.get(when) != "Retain":
                errors.append(f"{where}: persistentVolumeClaimRetentionPolicy.{when} is {policy.get(when)!r}, "
                              "not Retain (a scale-down would delete unrolled events)")
        service = services.get(str(spec.get("serviceName")))
        if service is None or (service.get("spec") or {}).get("clusterIP") != "None":
            errors.append(f"{where}: its serviceName {spec.get('serviceName')!r} is no headless Service")
        for _, hpa in manifests(tf_root, "HorizontalPodAutoscaler"):
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("name") == name and target.get("kind") != "StatefulSet":
                errors.append(f"k8s: HorizontalPodAutoscaler {meta(hpa)[1]} scales a {target.get('kind')} "
                              f"{name}, not the StatefulSet")
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
    "R15 access_declarations_are_consistent": access_declarations_are_consistent,
    "R16 raw_outputs_stay_on_private_workers": raw_outputs_stay_on_private_workers,
    "R17 kfp_root_is_pseudonymised_and_expires": kfp_root_is_pseudonymised_and_expires,
    "R18 app_secrets_use_their_own_users": app_secrets_use_their_own_users,
    "R19 images_are_pinned_by_digest": images_are_pinned_by_digest,
    "R20 network_policy_is_enforced": network_policy_is_enforced,
    "R21 endpoint_policies_are_scoped": endpoint_policies_are_scoped,
    "R22 secret_stores_are_namespaced": secret_stores_are_namespaced,
    "R23 private_keys_stay_in_the_private_zone": private_keys_stay_in_the_private_zone,
    "R24 online_api_event_log_is_durable": online_api_event_log_is_durable,
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
