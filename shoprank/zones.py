"""The zone split's declarations (`infra/policy/access.json`), read once for every consumer.

Why one file: Terraform builds the cloud's IAM roles from it (`jsondecode(file(...))`), the zone
rules check it, the docs draw the diagram from it, and the local enforcement mode
(`orchestration.enforcement`) gives each zone's processes an IAM user with the same grants on an
S3 server that enforces them. A grant changed in one place is changed in all four.

Grants name a bucket class (`raw`, `curated`, `features`, `models`, `registry`, `pipelines`) and key
prefixes. On one machine every class maps to one bucket, so a zone's policy is the union of its
roles' grants on that bucket's prefixes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ACCESS_FILE = Path(__file__).resolve().parent.parent / "infra" / "policy" / "access.json"
DATA_CLASSES = ("raw", "pseudonymised", "none")
READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]
WRITE_ACTIONS = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


@dataclass(frozen=True)
class Role:
    name: str
    zone: str
    read: dict[str, list[str]]
    write: dict[str, list[str]]

    def prefixes(self, grant: str) -> list[str]:
        """Every prefix of `grant` ("read" or "write"), whatever the bucket class."""
        return sorted({p for prefixes in getattr(self, grant).values() for p in prefixes})


@cache
def access(path: Path = ACCESS_FILE) -> dict:
    return json.loads(Path(path).read_text())


def roles(path: Path = ACCESS_FILE) -> dict[str, Role]:
    return {name: Role(name, spec["zone"], spec.get("read", {}), spec.get("write", {}))
            for name, spec in access(path)["roles"].items()}


def data_class(key: str, path: Path = ACCESS_FILE) -> str:
    """The data class a key may hold: that of the longest declared prefix it falls under."""
    declared = access(path)["prefixes"]
    matches = [p for p in declared if key.startswith(p)]
    if not matches:
        raise KeyError(f"{key!r} is under no prefix declared in {path}")
    return declared[max(matches, key=len)]["data"]


def zone_grants(zone: str, path: Path = ACCESS_FILE) -> dict[str, list[str]]:
    """The union of a zone's roles' grants: {"read": [prefixes], "write": [prefixes]}."""
    members = [r for r in roles(path).values() if r.zone == zone]
    if not members:
        raise ValueError(f"no role of zone {zone!r} in {path}")
    return {grant: sorted({p for r in members for p in r.prefixes(grant)}) for grant in ("read", "write")}


def zone_policy(zone: str, bucket: str, under: str = "", path: Path = ACCESS_FILE) -> dict:
    """The IAM policy of one zone's processes on a single local bucket: the zone's grants on the
    bucket's prefixes (below `under`, where the store is rooted below the bucket's top), and the
    bucket listing they need to find keys (the same as Terraform's ListBucket, whose `s3:prefix`
    condition the local server does not evaluate)."""
    grants = zone_grants(zone, path)
    base = f"arn:aws:s3:::{bucket}/{under.strip('/') + '/' if under.strip('/') else ''}"
    statements = [{"Sid": "List", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                   "Resource": [f"arn:aws:s3:::{bucket}"]}]
    for grant, actions in (("read", READ_ACTIONS), ("write", WRITE_ACTIONS)):
        if grants[grant]:
            statements.append({"Sid": grant.capitalize(), "Effect": "Allow", "Action": actions,
                               "Resource": [f"{base}{p}*" for p in grants[grant]]})
    return {"Version": "2012-10-17", "Statement": statements}
