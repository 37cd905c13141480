"""Items about an item, and what merchandisers change during the day.

- `GET /similar/{item_id}`: items like it, by content and co-purchase (the night's similar lists);
- `GET /bought-together/{item_id}`: items bought with it (the night's co-purchase lists);
  both through the same decision stage as every list (stock, filters, boosts, pins, diversity), each
  logged under a request id like `/recommend`;
- `PUT /catalogue/availability`, `PUT /catalogue/items` (scope `admin`): stock and prices, items
  added or changed; checked whole, applied in every replica within `catalogue_poll_s`;
- `GET /merchandising/rules`, `PUT /merchandising/rules` (scope `admin`): the served rule set (TOML)
  and its audit log; a change is checked before it is stored and names the version it was edited from
  (`If-Match`), so two merchandisers cannot overwrite each other.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response

from shoprank import clock
from shoprank.data.served import served_list
from shoprank.layout import RULES_AUDIT_PREFIX, RULES_KEY
from shoprank.serving.api.auth import Who
from shoprank.serving.api.bodies import read_bounded, read_json
from shoprank.serving.api.deciding import decide_and_explain
from shoprank.serving.api.routes.health import app_state
from shoprank.serving.api.routes.lists import FIELDS, describe_fields
from shoprank.serving.api.routes.privacy import admin
from shoprank.serving.api.schemas import AUTH_RESPONSES, MAX_K, ErrorResponse, SimilarResponse
from shoprank.serving.api.state import log_served, timed_json
from shoprank.serving.decision.catalogue_feed import MAX_ID_CHARS, MAX_ROWS, FeedError, put_availability, put_items
from shoprank.serving.decision.published import PublishConflict, audit_log, publish_rules
from shoprank.serving.decision.rules import RulesError
from shoprank.serving.decision.stage import Ranked
from shoprank.storage import open_for

router = APIRouter()
FEED_MAX_BYTES = 8 * 1024 * 1024  # a full batch of MAX_ROWS rows with long titles fits
RULES_MAX_BYTES = 256 * 1024

_ITEM_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
_PRICE = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}


def _rows_body(row: dict) -> dict:
    """The request body's schema for the OpenAPI page (the route reads and checks the raw body itself,
    so a refused batch can name every broken row at once)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "minItems": 1, "maxItems": MAX_ROWS, "items": row}}}}}


AVAILABILITY_BODY = _rows_body({"type": "object", "required": ["item_id", "in_stock"], "additionalProperties": False,
                                "properties": {"item_id": _ITEM_ID, "in_stock": {"type": "boolean"}, "price": _PRICE}})
ITEMS_BODY = _rows_body({"type": "object", "required": ["item_id", "category"], "additionalProperties": False,
                         "properties": {"item_id": _ITEM_ID, "category": {"type": "string", "maxLength": 200},
                                        "brand": {"type": ["string", "null"], "maxLength": 200},
                                        "title": {"type": ["string", "null"], "maxLength": 500}, "price": _PRICE}})
RULES_BODY = {"requestBody": {"required": True, "content": {"text/plain": {"schema": {
    "type": "string", "description": "the rule set as TOML (see docs/serving.md)"}}}}}

ITEM_ID = Path(..., min_length=1, max_length=200, description="a catalogue item id")
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no such item in the catalogue"}}


async def _about(request: Request, item_id: str, k: int, fields: str | None, kind: str) -> Response:
    state = app_state(request)
    await state.gate.identify(request)  # a bad credential is refused even where none is needed
    wanted = describe_fields(fields)
    context = state.loaded().context
    live = context.catalogue
    context.table()  # follows a new materialisation, like every list
    if not live.knows(item_id):
        raise HTTPException(404, {"reason": "unknown_item", "message": f"item {item_id!r} is not in the catalogue"})
    started = time.perf_counter()
    others = live.similar(item_id) if kind == "similar" else live.bought_together(item_id)
    ranked = [Ranked(other, float(len(others) - n), kind) for n, other in enumerate(others) if other != item_id]
    items = decide_and_explain(live, ranked, k, scored=False, source="content_and_co_purchase" if kind == "similar"
                               else "co_purchase", new_items=[], anchor=item_id)
    total_ms = (time.perf_counter() - started) * 1000
    request_id = state.gate.request_id(None)
    log_served(state, served_list(
        request_id, kind, clock.now_s(), None, [i.item_id for i in items], [i.score for i in items],
        [i.candidate for i in items], reason=f"about:{item_id}", ranker_positions=[i.ranker_position for i in items],
        rules=[i.rule for i in items]))
    body = {"item_id": item_id, "kind": kind, "request_id": request_id,
            "items": [i.public(live.describe(i.item_id, wanted)) for i in items]}
    return timed_json(body, {"decide_ms": total_ms}, total_ms)


@router.get("/similar/{item_id}", response_model=SimilarResponse, responses={**AUTH_RESPONSES, **NOT_FOUND})
async def similar(request: Request, item_id: str = ITEM_ID, k: int = Query(10, ge=1, le=MAX_K),
                  fields: str | None = FIELDS) -> Response:
    """Items like this one: the same kind of thing by title, brand and category words and price,
    and what is bought with it; out-of-stock and filtered items never appear."""
    return await _about(request, item_id, k, fields, "similar")


@router.get("/bought-together/{item_id}", response_model=SimilarResponse, responses={**AUTH_RESPONSES, **NOT_FOUND})
async def bought_together(request: Request, item_id: str = ITEM_ID, k: int = Query(10, ge=1, le=MAX_K),
                          fields: str | None = FIELDS) -> Response:
    """Items bought together with this one (co-purchase), after the merchandising rules."""
    return await _about(request, item_id, k, fields, "bought_together")


def _refused(err: Exception) -> HTTPException:
    errors = err.errors if isinstance(err, FeedError) else [str(err)]
    return HTTPException(422, {"reason": "refused", "message": str(err), "errors": errors[:100]})


@router.put("/catalogue/availability", responses=AUTH_RESPONSES, openapi_extra=AVAILABILITY_BODY)
async def availability(request: Request, who: Annotated[Who, Depends(admin)]) -> dict:
    """Stock and price per item: a JSON array of `{"item_id", "in_stock", "price"?}`. Refused whole
    (422, every broken row named) if any row is wrong; applied everywhere within seconds."""
    state = app_state(request)
    rows = await read_json(request, FEED_MAX_BYTES)
    live = state.loaded().context.catalogue
    try:
        result = await asyncio.to_thread(put_availability, open_for(state.settings), rows,
                                         "PUT /catalogue/availability", live.knows)
    except FeedError as err:
        raise _refused(err) from None
    await asyncio.to_thread(live.refresh)  # this replica at once; the others at their next poll
    return {"applied": result.applied, "items_with_availability": result.total, "by": who.label}


@router.put("/catalogue/items", responses=AUTH_RESPONSES, openapi_extra=ITEMS_BODY)
async def catalogue_items(request: Request, who: Annotated[Who, Depends(admin)]) -> dict:
    """Items added or changed today: a JSON array of catalogue rows (`item_id`, `category`, `brand`,
    `price`, `title`), checked by the gate's catalogue checks. A new item is recommendable to
    fitting shoppers and findable by search as soon as it is stored."""
    from shoprank.validation.catalogue_checks import catalogue_errors

    state = app_state(request)
    rows = await read_json(request, FEED_MAX_BYTES)
    live = state.loaded().context.catalogue
    try:
        result = await asyncio.to_thread(put_items, open_for(state.settings), rows, "PUT /catalogue/items",
                                         clock.now_s(), catalogue_errors)
    except FeedError as err:
        raise _refused(err) from None
    await asyncio.to_thread(live.refresh)
    return {"applied": result.applied, "items_added_today": result.total, "by": who.label}


@router.get("/merchandising/rules", responses=AUTH_RESPONSES)
async def rules(request: Request, who: Annotated[Who, Depends(admin)]) -> dict:
    """The served rule set (its version and text), why a stored set is refused if one is, and the
    audit log of changes (newest last)."""
    state = app_state(request)
    store = open_for(state.settings)
    stored = await asyncio.to_thread(store.read_versioned, RULES_KEY)
    live = state.loaded().context.catalogue
    return {"version": live.rules.version, "text": stored[0].decode(errors="replace") if stored else None,
            "refused": live.live_rules.last_error,
            "audit": await asyncio.to_thread(audit_log, store, RULES_AUDIT_PREFIX)}


@router.put("/merchandising/rules", openapi_extra=RULES_BODY, responses={**AUTH_RESPONSES, 409: {
    "model": ErrorResponse, "description": "someone published since the version this change was made on"}})
async def put_rules(request: Request, who: Annotated[Who, Depends(admin)],
                    if_match: str | None = Header(None, description="the rule-set version this change was "
                                                                    "edited from")) -> dict:
    """Publish a rule set (TOML, the body as text). Checked first: a malformed set is refused (422,
    naming the rule and the field) and the served one keeps serving."""
    state = app_state(request)
    try:
        text = (await read_bounded(request, RULES_MAX_BYTES)).decode("utf-8")
    except UnicodeDecodeError as err:
        raise HTTPException(400, {"reason": "not_utf8", "message": f"the rule set is not UTF-8 text: {err}"}) from None
    store = open_for(state.settings)
    try:
        published = await asyncio.to_thread(publish_rules, store, RULES_KEY, RULES_AUDIT_PREFIX, text, who.label,
                                            clock.now(), if_match)
    except RulesError as err:
        raise _refused(err) from None
    except PublishConflict as err:
        raise HTTPException(409, {"reason": "conflict", "message": str(err)}) from None
    await asyncio.to_thread(state.loaded().context.catalogue.refresh)
    return {"version": published.version, "by": who.label}

