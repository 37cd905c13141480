"""`POST /events`: what shoppers did, stored durably before the answer (`shoprank.serving.api.intake`).

A shopper's token posts that shopper's events; a server-to-server key with `events:write` posts
events naming shoppers by pseudonym, and only one with `events:purchase` (the order system) posts
purchases. Anyone else is refused before the body is read."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, HTTPException, Query, Request, Response

from shoprank.data.feedback import UnknownFields
from shoprank.identity import request_ids
from shoprank.serving.api.auth import Who
from shoprank.serving.api.bodies import read_json
from shoprank.serving.api.intake import MAX_BODY_BYTES, MAX_EVENTS, EventCaller
from shoprank.serving.api.routes.health import app_state
from shoprank.serving.api.schemas import AUTH_RESPONSES, ErrorResponse, EventsResponse, events_schema
from shoprank.serving.api.state import AppState, server_timing, unavailable

router = APIRouter()


@router.post("/events", response_model=EventsResponse, openapi_extra=events_schema(),
             responses={**AUTH_RESPONSES, 400: {"model": ErrorResponse, "description": "the body is not JSON"},
                        415: {"model": ErrorResponse, "description": "the body is not sent as application/json"},
                        413: {"model": ErrorResponse, "description": f"over {MAX_BODY_BYTES} bytes or "
                                                                     f"{MAX_EVENTS} events"},
                        422: {"model": ErrorResponse, "description": "not a list, or unknown fields (the "
                                                                     "whole batch); bad events are listed in "
                                                                     "a 200's `rejected`"},
                        503: {"model": ErrorResponse, "description": "the event log cannot store; nothing stored"}})
async def post_events(request: Request, sync: bool = Query(
        False, description="wait until the events are in the shoppers' online sessions (up to 1 s), so the "
                           "next /recommend sees them; otherwise answer once they are stored")) -> Response:
    state = app_state(request)
    who = await state.gate.identify(request)
    state.gate.require(who, "events:write")
    metrics = state.metrics
    intake = state.intake
    if intake is None:
        raise unavailable("event_log", f"the event intake is not open: {state.intake_error}", "/events")
    events = await read_json(request, MAX_BODY_BYTES)
    if not isinstance(events, list) or not events:
        raise HTTPException(422, {"reason": "not_a_list", "message": "expected a non-empty JSON list of "
                                                                     f"events, got {type(events).__name__}"
                                                                     + (" (empty)" if events == [] else "")})
    if len(events) > MAX_EVENTS:
        raise HTTPException(413, {"reason": "too_many_events",
                                  "message": f"{len(events):,} events, at most {MAX_EVENTS:,} per batch"})
    try:
        result = await asyncio.to_thread(lambda: intake.accept(events, sync, event_caller(state, who)))
    except UnknownFields as err:
        metrics.events.labels("rejected").inc(len(events))
        raise HTTPException(422, {"reason": "unknown_fields", "message": str(err),
                                  "fields": {str(i): f for i, f in err.found.items()}}) from None
    except OSError as err:
        metrics.errors.labels("/events", "event_log").inc()
        raise unavailable("event_log", f"the event log could not store the batch: {err}", "/events") from None
    metrics.events.labels("accepted").inc(result.accepted)
    metrics.events.labels("duplicate").inc(result.duplicates)
    metrics.events.labels("rejected").inc(len(result.rejected))
    # a batch whose events are all refused is still answered 200: the outcome is per event (as
    # for a partly good batch), and the body says accepted 0 with every reason
    return Response(json.dumps(result.as_dict()), media_type="application/json",
                    headers={"Server-Timing": server_timing(result.stages_ms)})


def event_caller(state: AppState, who: Who) -> EventCaller:
    secret = state.gate.request_secret

    def check_request(request_id: str, subject: str) -> str | None:
        try:
            request_ids.check(request_id, subject, secret)
        except request_ids.InvalidRequestId as err:
            return str(err)
        return None

    def opted_out(pseudonym: str) -> bool:
        return state.privacy.is_opted_out((pseudonym,))

    if who.shopper is not None:
        pseudonyms = frozenset((who.pseudonyms() or {}).values())
        out = state.privacy.is_opted_out(pseudonyms)
        return EventCaller(who.shopper.subject, pseudonyms, who.shopper.pseudonym_key_id, who.may("events:purchase"),
                           check_request, secret, lambda _: out)
    # the pseudonyms such a caller names are under the online store's key (never None: see named_key_id)
    return EventCaller(None, frozenset(), state.named_key_id(), who.may("events:purchase"), check_request, secret,
                       opted_out, forgotten=lambda pseudonym: state.privacy.is_erased((pseudonym,)))
