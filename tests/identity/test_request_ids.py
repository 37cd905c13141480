"""Signed request ids: a click names a list that was served to the same shopper, recently."""

import pytest

from shoprank.identity.request_ids import InvalidRequestId, check, issue

SECRET = b"api-secret"


def test_an_issued_id_checks_for_its_subject_only():
    request_id = issue("shopper-a", SECRET, now=1000)
    check(request_id, "shopper-a", SECRET, now=1001)
    with pytest.raises(InvalidRequestId, match="not served to this shopper"):
        check(request_id, "shopper-b", SECRET, now=1001)


def test_an_expired_id_is_refused():
    request_id = issue("shopper-a", SECRET, ttl_s=60, now=1000)
    with pytest.raises(InvalidRequestId, match="expired"):
        check(request_id, "shopper-a", SECRET, now=1061)


def test_a_stretched_expiry_breaks_the_signature():
    list_id, expires, mac = issue("shopper-a", SECRET, ttl_s=60, now=1000).split(".")
    with pytest.raises(InvalidRequestId, match="not served"):
        check(f"{list_id}.{int(expires) + 10**6}.{mac}", "shopper-a", SECRET, now=2000)


@pytest.mark.parametrize("request_id", ["", "abc", "a.b.c", "x" * 32 + ".12.y", None, "0" * 32 + ".1." + "0" * 32])
def test_made_up_ids_are_refused(request_id):
    with pytest.raises(InvalidRequestId):
        check(request_id, "shopper-a", SECRET, now=0)


def test_another_secret_cannot_issue_ids():
    with pytest.raises(InvalidRequestId, match="not served"):
        check(issue("shopper-a", b"another-secret"), "shopper-a", SECRET)
