"""The local enforcement mode: an IAM-enforcing S3 server, one user per zone with the grants of
infra/policy/access.json, and the store code behaving under it as under AWS."""

import pytest

from shoprank.orchestration.enforcement import start_zones
from shoprank.orchestration.zone_runner import read_env_file
from shoprank.storage import open_store
from tests.night_env import as_zone


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    root = tmp_path_factory.mktemp("zones")
    enforced = start_zones(root / "env", root / "public", root / "private", pseudonym_key="k")
    yield enforced
    enforced.stop()


def store_as(zones, zone: str):
    with as_zone(zones.env(zone)):
        return open_store(f"s3://{zones.bucket}", zones.endpoint)


def test_each_zone_file_holds_only_its_zones_secrets(zones):
    private, public = read_env_file(zones.env("private")), read_env_file(zones.env("public"))
    assert private["SHOPRANK_PSEUDONYM_KEY"] == "k" and "SHOPRANK_PSEUDONYM_KEY" not in public
    assert private["AWS_ACCESS_KEY_ID"] != public["AWS_ACCESS_KEY_ID"]
    assert private["SHOPRANK_HOME"] != public["SHOPRANK_HOME"]  # the gate's reports stay on the private side
    assert oct(zones.env("private").stat().st_mode & 0o777) == "0o600"


def test_the_public_zone_reads_the_crossing_and_nothing_private(zones):
    private, public = store_as(zones, "private"), store_as(zones, "public")
    private.put_bytes("curated/events/date=2024-01-01/part-0.parquet", b"raw")
    private.put_bytes("features/crossing/nightly/manifest.json", b"{}")
    assert public.get_bytes("features/crossing/nightly/manifest.json") == b"{}"
    with pytest.raises(Exception, match="AccessDenied"):
        public.get_bytes("curated/events/date=2024-01-01/part-0.parquet")
    with pytest.raises(Exception, match="AccessDenied"):
        public.put_bytes("curated/events/date=2024-01-02/part-0.parquet", b"forged")
    with pytest.raises(Exception, match="AccessDenied"):
        private.put_bytes("features/derived/popular_items.parquet", b"x")  # the private side hands over only


def test_a_denied_delete_is_an_error_and_removes_nothing(zones):
    private, public = store_as(zones, "private"), store_as(zones, "public")
    private.put_bytes("curated/staging/a/one", b"1")
    private.put_bytes("curated/staging/a/two", b"2")
    with pytest.raises(PermissionError, match="cannot delete s3://shoprank-zones/curated/staging/a/one"):
        public.delete_prefix("curated/staging/a/")
    assert private.list("curated/staging/a/") == ["curated/staging/a/one", "curated/staging/a/two"]
    assert private.delete_prefix("curated/staging/a/") == 2 and private.list("curated/staging/a/") == []
