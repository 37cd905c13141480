"""The HTTP edge: only the shop's configured origins may call the API from a browser (CORS; the page
sends the shopper's token), and the access log says who called which route, never a path, a query
string or a raw id."""

import pytest
from fastapi.testclient import TestClient

from shoprank.serving.api.app import create_app
from shoprank.settings import load_settings


def no_stack(settings):
    raise RuntimeError("no online stack in this test: only the HTTP layer answers")


def preflight(client: TestClient, origin: str):
    return client.options("/events", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "content-type, authorization"})


def test_the_shops_origin_is_allowed_and_another_is_not(home):
    app = create_app(load_settings(cors_origins="https://shop.example"), factory=no_stack, startup_wait_s=0)
    with TestClient(app) as client:
        allowed = preflight(client, "https://shop.example")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        refused = preflight(client, "https://evil.example")
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        read = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in read.headers  # the browser will not hand it to the page


def test_without_configured_origins_no_browser_origin_is_allowed(home):
    with TestClient(create_app(load_settings(), factory=no_stack, startup_wait_s=0)) as client:
        assert "access-control-allow-origin" not in preflight(client, "https://shop.example").headers
        assert "access-control-allow-origin" not in client.get(
            "/healthz", headers={"Origin": "https://shop.example"}).headers


def test_the_access_log_names_the_route_never_the_path_or_the_query(home, capsys):
    import json

    with TestClient(create_app(load_settings(), factory=no_stack, startup_wait_s=0)) as client:
        capsys.readouterr()
        client.get("/recommend?k=5")
        client.get("/search?q=red+shoes+jo%40example.com")
        client.get("/recommend/customer-01665307?k=5")  # the old route is gone: no id in a path
        client.get("/recommend?k=5", headers={"Authorization": "Bearer customer-01665307"})  # not a token
        client.get("/healthz")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"ts"')]
    assert [(entry["route"], entry["status"]) for entry in lines] == [
        ("/recommend", 503), ("/search", 503), ("unmatched", 404), ("/recommend", 401), ("/healthz", 200)]
    text = json.dumps(lines)
    assert "01665307" not in text and "shoes" not in text and "example.com" not in text
    assert all(entry["ms"] >= 0 and entry["method"] == "GET" for entry in lines)


def test_every_route_has_an_owner_and_a_scope_and_a_new_one_without_is_refused(home, monkeypatch):
    """auth.ROUTE_ACCESS names who calls each route and the scope it needs: the table is exactly the
    app's routes, every protected one refuses an anonymous caller, and an app with a route the table
    does not name does not start."""
    from fastapi import APIRouter
    from fastapi.routing import APIRoute

    from shoprank.serving.api import app as app_module
    from shoprank.serving.api.auth import ROUTE_ACCESS
    from shoprank.serving.api.routes import health

    settings = load_settings(internal_port=0)
    app = create_app(settings, factory=no_stack, startup_wait_s=0)
    served = {(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    assert served == set(ROUTE_ACCESS)
    with TestClient(app) as client:
        for (method, path), (owner, scope) in ROUTE_ACCESS.items():
            assert owner and scope
            if not scope.startswith("none"):
                answer = client.request(method, path, json={"subject": "0" * 20} if "admin" in path else None)
                assert answer.status_code == 401, (method, path, answer.status_code)
    extra = APIRouter()
    extra.add_api_route("/debug", lambda: {}, methods=["GET"])
    monkeypatch.setattr(health, "router", extra)
    with pytest.raises(RuntimeError, match="GET /debug"):
        app_module.create_app(settings, factory=no_stack, startup_wait_s=0)
