"""The decision stage through the real API, as merchandisers and shoppers meet it: stock feeds, rule
sets, items added today, similar and bought-together lists, suppression, reasons and catalogue
fields; each on every path (known shoppers, cold start, anonymous, search) over the real online
stack (Feast, the model server, the event intake)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from shoprank.data.served import read_served, roll
from shoprank.layout import RULES_KEY
from shoprank.storage import open_store
from tests.serving.conftest import api_key, api_with_search, bearer, subject_of

EMPTY_RULES = 'version = "empty"\n'


@pytest.fixture(scope="module")
def client(online_stack, tmp_path_factory):
    with api_with_search(online_stack[0], tmp_path_factory.mktemp("index")) as client:
        client.admin = api_key("merchandiser", "admin")
        yield client


@pytest.fixture(autouse=True)
def clean(client):
    """Each test starts with no rules and everything in stock, and leaves it so."""
    yield
    rules(client, EMPTY_RULES)
    stock(client, [{"item_id": f"i{n:02d}", "in_stock": True} for n in range(30)])


def stock(client, rows):
    return client.put("/catalogue/availability", json=rows, headers=client.admin)


def rules(client, text: str, **headers):
    return client.put("/merchandising/rules", content=text.encode(), headers={**client.admin, **headers})


def recommend(client, user: str | None, **params) -> dict:
    response = client.get("/recommend", params={"k": 5, **params}, headers=bearer(user) if user else {})
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: dict) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def served_rows(client):
    state = client.app.state.shoprank
    state.intake.events.rotate()
    store = open_store(state.settings.store)
    roll(state.settings.event_log_dir, store)
    return read_served(store, "requests").set_index("request_id")


def test_an_out_of_stock_item_never_appears_even_top_scored_and_in_the_session(client):
    top = ids(recommend(client, "alice"))[0]
    viewed = {"event_id": "oos-v1", "event_type": "view", "event_time": datetime.now(UTC).isoformat(), "item_id": top}
    assert client.post("/events", json=[viewed], headers=bearer("alice"), params={"sync": "true"}).status_code == 200
    assert top in ids(recommend(client, "alice"))
    refused = stock(client, [{"item_id": top, "in_stock": False}])
    assert refused.status_code == 200, refused.text
    for user in ("alice", "nobody-known", None):  # known, cold start, anonymous
        for k in (1, 5, 30):
            assert top not in ids(recommend(client, user, k=k)), (user, k)
    searched = client.get("/search", params={"q": "tea", "k": 30}, headers=bearer("alice")).json()
    assert searched["items"] and top not in ids(searched)
    similar = client.get(f"/similar/{ids(recommend(client, 'alice'))[0]}", params={"k": 30}).json()
    assert top not in ids(similar)
    assert stock(client, [{"item_id": top, "in_stock": True}]).status_code == 200
    assert top in ids(recommend(client, "alice"))  # back within the same second


def test_a_stock_feed_with_one_bad_row_is_refused_whole_naming_the_row(client):
    before = ids(recommend(client, "alice"))
    bad = stock(client, [{"item_id": before[0], "in_stock": False}, {"item_id": "i01", "in_stock": "no"},
                         {"item_id": "zz-unknown", "in_stock": False}, {"item_id": "i02", "in_stock": True,
                                                                        "price": -1}])
    assert bad.status_code == 422
    errors = bad.json()["detail"]["errors"]
    assert any("row 2" in e and "in_stock" in e for e in errors)
    assert any("row 3" in e and "not in the catalogue" in e for e in errors)
    assert any("row 4" in e and "price" in e for e in errors)
    assert ids(recommend(client, "alice")) == before  # nothing of it applied
    shopper = client.put("/catalogue/availability", json=[{"item_id": "i01", "in_stock": False}],
                         headers=bearer("alice"))
    assert shopper.status_code in (401, 403)
    reader = client.put("/catalogue/availability", json=[{"item_id": "i01", "in_stock": False}],
                        headers=api_key("backend", "read"))
    assert reader.status_code == 403


def test_substitution_puts_the_nearest_similar_in_stock_item_in_the_gap(client):
    top = ids(recommend(client, "alice"))[0]
    rules(client, 'version = "sub"\nsubstitute_out_of_stock = true\n')
    stock(client, [{"item_id": top, "in_stock": False}])
    body = recommend(client, "alice")
    first = body["items"][0]
    assert first["item_id"] != top and first["source"] == "rule"
    assert first["reason"] == {"template": "instead_of", "args": {"item_id": top}}


def test_a_pin_lands_at_its_position_only_inside_its_window(client):
    pinned = "i29"  # nobody buys it: the ranker would never put it second
    assert pinned not in ids(recommend(client, "alice"))
    end = iso(timedelta(hours=1))
    live = (f'version = "pin-live"\n[[pin]]\nname = "hero"\nitem = "{pinned}"\nposition = 2\n'
            f'start = {iso(timedelta(hours=-1))}\nend = {end}\n')
    assert rules(client, live).status_code == 200
    for user in ("alice", None):
        body = recommend(client, user)
        assert ids(body)[1] == pinned
        assert body["items"][1]["reason"] == {"template": "campaign", "args": {"campaign": "hero"}}
    searched = client.get("/search", params={"q": "tea"}).json()
    assert ids(searched)[1] == pinned
    request_id = recommend(client, "alice")["request_id"]
    row = served_rows(client).loc[request_id]
    assert list(row["rules"])[1] == "pin:hero" and pd.isna(row["ranker_positions"][1])
    assert list(row["items"])[1] == pinned and row["ranker_positions"][0] == 1
    over = live.replace('"pin-live"', '"pin-over"').replace(end, iso(timedelta(minutes=-1)))  # it ended
    assert rules(client, over).status_code == 200
    assert pinned not in ids(recommend(client, "alice"))


def test_a_malformed_rule_set_is_refused_naming_the_rule_and_the_old_one_keeps_serving(client):
    good = (f'version = "good"\n[[pin]]\nname = "hero"\nitem = "i29"\nposition = 1\n'
            f'start = {iso(timedelta(hours=-1))}\nend = {iso(timedelta(hours=1))}\n')
    assert rules(client, good).status_code == 200
    bad = rules(client, 'version = "bad"\n[[boost]]\nname = "double-11"\nitems = ["i01"]\nfactor = -2\n',
                **{"If-Match": "good"})
    assert bad.status_code == 422
    message = bad.json()["detail"]["message"]
    assert "double-11" in message and "factor" in message
    assert ids(recommend(client, "alice"))[0] == "i29"
    # broken behind the API's back: the replica refuses it too, says why, and serves the good set
    state = client.app.state.shoprank
    open_store(state.settings.store).put_bytes(RULES_KEY, b'version = "x"\n[diversity]\nper_category = 0\n')
    state.recommender.context.catalogue.refresh()
    assert ids(recommend(client, "alice"))[0] == "i29"
    shown = client.get("/merchandising/rules", headers=client.admin).json()
    assert shown["version"] == "good" and "per_category" in shown["refused"]
    assert [a["version"] for a in shown["audit"]][-1] == "good" and shown["audit"][-1]["who"]
    stale = rules(client, good.replace('"good"', '"late"'), **{"If-Match": "an-old-version"})
    assert stale.status_code == 409


def test_diversity_and_a_boost_change_the_order_as_written(client):
    rules(client, 'version = "div"\n[diversity]\nper_category = 1\ntop_k = 4\n')
    items = recommend(client, "alice", k=4, fields="category")["items"]
    assert len({i["category"] for i in items}) == 4
    rules(client, f'version = "boost"\n[[boost]]\nname = "c3-week"\ncategories = ["c3"]\nfactor = 1000\n'
                  f'start = {iso(timedelta(hours=-1))}\nend = {iso(timedelta(hours=1))}\n')
    first = recommend(client, "alice", fields="category")["items"][0]
    assert first["category"] == "c3" and first["reason"]["template"] == "campaign"


def test_an_item_added_today_is_recommended_to_a_fitting_shopper_and_found_by_search(client):
    rules(client, 'version = "new"\nnew_item_slots = 1\n')
    alice_category = recommend(client, "alice", fields="category")["items"][0]["category"]
    other = next(c for c in ("c0", "c1", "c2", "c3") if c != alice_category)
    added = client.put("/catalogue/items", headers=client.admin, json=[
        {"item_id": "new-1", "category": alice_category, "brand": "Acme", "price": 3.0,
         "title": "jasmine green tea tin"},
        {"item_id": "new-2", "category": "zz-nobody", "brand": None, "price": 3.0, "title": "garden hose"}])
    assert added.status_code == 200, added.text
    body = recommend(client, "alice", fields="title,price")
    entry = next(i for i in body["items"] if i["item_id"] == "new-1")
    assert entry["reason"] == {"template": "new_in", "args": {"category": alice_category}}
    assert entry["title"] == "jasmine green tea tin" and entry["price"] == 3.0
    assert "new-2" not in ids(body)  # fits nobody
    found = client.get("/search", params={"q": "jasmine tea"}).json()
    assert "new-1" in ids(found) and "new-2" not in ids(found)
    only_new = client.get("/search", params={"q": "garden hose"}).json()
    assert ids(only_new) == ["new-2"]
    assert other  # (a category alice does not buy exists in this shop)


def test_catalogue_items_that_fail_the_gates_checks_are_refused_naming_row_and_field(client):
    refused = client.put("/catalogue/items", headers=client.admin, json=[
        {"item_id": "ok-1", "category": "c0", "price": 2.0},
        {"item_id": "bad-1", "category": None, "price": 2.0},
        {"item_id": "bad-2", "category": "c0", "price": 0.0}])
    assert refused.status_code == 422
    errors = " ".join(refused.json()["detail"]["errors"])
    assert "row 2" in errors and "category" in errors and "row 3" in errors and "price" in errors
    assert "ok-1" not in ids(client.get("/search", params={"q": "ok"}).json())
    unknown_field = client.put("/catalogue/items", headers=client.admin, json=[{"item_id": "x", "colour": "red"}])
    assert unknown_field.status_code == 422 and "colour" in unknown_field.text


def test_similar_and_bought_together_are_served_and_unknown_items_are_404(client):
    similar = client.get("/similar/i01", params={"k": 5, "fields": "category,in_stock"})
    assert similar.status_code == 200, similar.text
    body = similar.json()
    assert body["kind"] == "similar" and 0 < len(body["items"]) <= 5 and "i01" not in ids(body)
    assert body["items"][0]["reason"]["args"] == {"item_id": "i01"} and body["items"][0]["in_stock"] is True
    together = client.get("/bought-together/i01").json()
    assert together["items"] and {i["reason"]["template"] for i in together["items"]} == {"bought_with"}
    assert client.get("/similar/no-such-item").status_code == 404
    assert client.get("/similar/i01", params={"fields": "secret"}).status_code == 422


def test_items_shown_often_without_a_click_drop_down(client):
    rules(client, 'version = "sup"\n[suppression]\nimpressions = 3\ndays = 7\n')
    body = recommend(client, "alice")
    worn = ids(body)[0]
    now = time.time()
    events = [{"event_id": f"imp-{n}", "event_type": "impression", "event_time": datetime.fromtimestamp(
        now - n, UTC).isoformat(), "item_id": worn, "request_id": body["request_id"], "position": 1} for n in range(3)]
    posted = client.post("/events", json=events, headers=bearer("alice"), params={"sync": "true"})
    assert posted.status_code == 200 and posted.json()["accepted"] == 3, posted.text
    after = recommend(client, "alice", k=30)
    assert ids(after)[0] != worn and ids(after)[-1] == worn
    assert ids(recommend(client, "bob", k=30)).count(worn) <= 1  # another shopper's counts are theirs


def test_the_answer_carries_no_internal_names(client):
    body = recommend(client, "alice", fields="title,price,brand,category")
    for item in body["items"]:
        assert set(item) == {"item_id", "score", "source", "category", "reason", "title", "price", "brand"}
        assert item["reason"]["template"] in {"buy_again", "bought_with", "similar_shoppers", "popular_in",
                                              "viewed_recently"}
    assert subject_of("alice") == body["subject"]


def test_a_merchandiser_previews_a_rule_set_then_publishes_it_from_the_command_line(client, tmp_path, capsys):
    from shoprank.cli import main

    pin = (f'version = "cli-1"\n[[pin]]\nname = "launch"\nitem = "i28"\nposition = 1\n'
           f'start = {iso(timedelta(hours=-1))}\nend = {iso(timedelta(hours=1))}\n')
    (tmp_path / "rules.toml").write_text(pin)
    assert main(["rules", "preview", "--subject", subject_of("alice"), "--rules", str(tmp_path / "rules.toml"),
                 "-k", "3"]) == 0
    out = capsys.readouterr().out
    before, after = out.split("after (")
    assert "i28" not in before and "pin:launch" in after and "campaign launch" in after
    assert ids(recommend(client, "alice"))[0] != "i28"  # a preview publishes nothing
    assert main(["rules", "publish", "--rules", str(tmp_path / "rules.toml"), "--who", "maria"]) == 0
    client.app.state.shoprank.recommender.context.catalogue.refresh()
    assert ids(recommend(client, "alice"))[0] == "i28"
    (tmp_path / "bad.toml").write_text('version = "cli-2"\n[[pin]]\nname = "x"\nitem = "i1"\nposition = 0\n')
    assert main(["rules", "publish", "--rules", str(tmp_path / "bad.toml")]) == 1
    assert "position" in capsys.readouterr().err
    assert main(["rules", "show"]) == 0 and "maria" in capsys.readouterr().out


def test_stock_from_a_csv_file_takes_effect_at_the_next_poll(client, tmp_path, capsys):
    from shoprank.cli import main

    top = ids(recommend(client, "alice"))[0]
    (tmp_path / "stock.csv").write_text(f"item_id,in_stock,price\n{top},False,2.5\n")
    assert main(["catalogue", "availability", str(tmp_path / "stock.csv")]) == 0
    deadline = time.monotonic() + 6.0  # the replica's own poll (every catalogue_poll_s = 2 s) picks it up
    while top in ids(recommend(client, "alice")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert top not in ids(recommend(client, "alice"))
    (tmp_path / "bad.csv").write_text("item_id,in_stock\nnot-an-item,False\n")
    assert main(["catalogue", "availability", str(tmp_path / "bad.csv")]) == 1
    assert "not-an-item" in capsys.readouterr().err


def test_an_opted_out_shoppers_impressions_are_never_counted(client):
    assert client.post("/privacy/opt-out", headers=bearer("carol")).status_code == 200
    try:
        served = client.get("/recommend", headers=bearer("carol")).json()
        shown = [{"event_id": f"oo-{n}", "event_type": "impression", "event_time": datetime.now(UTC).isoformat(),
                  "item_id": "i06", "request_id": served["request_id"], "position": 1} for n in range(3)]
        posted = client.post("/events", json=shown, headers=bearer("carol"), params={"sync": "true"})
        assert posted.status_code == 200 and posted.json()["accepted"] == 3
        rows = client.app.state.shoprank.recommender.context.shoppers.impression_rows
        assert rows.read([subject_of("carol")])[subject_of("carol")] is None
        shown_to_dave = [{**e, "event_id": f"d-{e['event_id']}",
                          "request_id": client.get("/recommend", headers=bearer("dave")).json()["request_id"]}
                         for e in shown]
        client.post("/events", json=shown_to_dave, headers=bearer("dave"), params={"sync": "true"})
        assert rows.read([subject_of("dave")])[subject_of("dave")]["shown_items"] == ["i06"] * 3  # (the control)
    finally:
        client.delete("/privacy/opt-out", headers=bearer("carol"))


def test_hostile_feed_bodies_get_a_clear_error_and_change_nothing(client):
    before = ids(recommend(client, "alice"))
    headers = {**client.admin, "Content-Type": "application/json"}
    assert client.put("/catalogue/availability", content=b"{not json", headers=headers).status_code == 400
    assert client.put("/catalogue/availability", content=b"[]", headers=headers).status_code == 422
    assert client.put("/catalogue/items", content=b'[{"item_id": "x"}]',
                      headers={**client.admin, "Content-Type": "text/plain"}).status_code == 415
    huge = b"[" + b'{"item_id": "i01", "in_stock": false},' * 300_000 + b"{}]"
    assert client.put("/catalogue/availability", content=huge, headers=headers).status_code == 413
    nested = b"[" * 100_000 + b"]" * 100_000
    assert client.put("/catalogue/items", content=nested, headers=headers).status_code in (400, 413)
    bad_text = client.put("/merchandising/rules", content=b"version = \"\xff\xfe\"", headers=client.admin)
    assert bad_text.status_code == 400
    unauthenticated = client.put("/merchandising/rules", content=b'version = "x"\n')
    assert unauthenticated.status_code == 401
    assert ids(recommend(client, "alice")) == before
