"""The access declarations (infra/policy/access.json) and the code's key layout say the same thing."""

import pytest

from shoprank import layout
from shoprank.zones import data_class, roles, zone_grants, zone_policy


def layout_keys() -> dict[str, str]:
    return {name: value for name, value in vars(layout).items()
            if name.isupper() and isinstance(value, str) and name.endswith(("_KEY", "_PREFIX"))
            and "/" in value}


def test_the_private_prefixes_are_exactly_the_raw_ones():
    from shoprank.zones import access

    raw = {prefix for prefix, spec in access()["prefixes"].items() if spec["data"] == "raw"}
    assert raw == set(layout.PRIVATE_PREFIXES)


@pytest.mark.parametrize("name", sorted(layout_keys()))
def test_every_key_of_the_layout_is_declared_with_its_zone(name):
    key = layout_keys()[name]
    assert data_class(key) in (("raw",) if layout.is_private(key) else ("pseudonymised", "none"))


def test_no_public_role_reads_or_writes_a_raw_prefix():
    for role in roles().values():
        if role.zone == "public":
            for grant in ("read", "write"):
                assert not [p for p in role.prefixes(grant) if data_class(p) == "raw"], (role.name, grant)


def test_the_zone_policies_hold_the_split():
    public, private = zone_grants("public"), zone_grants("private")
    assert not [p for p in public["read"] + public["write"] if layout.is_private(p)]
    assert {"curated/", "served/", "state/"} <= set(private["read"]) and "features/crossing/" in private["write"]
    # the private side hands over the crossing and the erased subjects, nothing else of the public prefixes
    assert not [p for p in private["write"] if p.startswith("features/")
                and p not in ("features/crossing/", "features/privacy/")]
    assert "served/" not in private["write"]  # the API rolls its own log; the private side only reads it
    statements = {s["Sid"]: s for s in zone_policy("public", "b")["Statement"]}
    assert "arn:aws:s3:::b/curated/*" not in statements["Read"]["Resource"]
    assert "arn:aws:s3:::b/features/*" in statements["Read"]["Resource"]


def test_the_online_api_logs_to_served_and_keeps_the_privacy_lists_in_the_public_bucket():
    """served/ holds pseudonyms and scrubbed queries only: the API writes it (its hourly roll and
    compaction, under a store lock) in the features bucket, and the private ingest reads it there."""
    from shoprank.zones import access

    declared = access()["prefixes"]
    for prefix in ("served/", "features/privacy/"):
        assert declared[prefix]["data"] == "pseudonymised" and declared[prefix]["bucket"] == "features"
    api, prep = roles()["online_api"], roles()["data_prep"]
    assert api.zone == "public"
    for grant in ("read", "write"):
        assert {"served/", "features/privacy/", "locks/"} <= set(getattr(api, grant)["features"]), grant
    assert {"served/", "features/privacy/"} <= set(prep.read["features"])
    assert prep.write["features"] == ["features/privacy/"]
    assert "served/" not in prep.read.get("curated", [])
