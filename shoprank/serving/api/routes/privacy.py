"""A shopper's privacy choices, and an admin's erasure requests.

- `POST /privacy/opt-out` (the shopper's token): stop personalising for them, everywhere within
  `privacy_poll_s`; their events stay out of the live session and of personal features.
  `DELETE /privacy/opt-out` opts back in; `GET /privacy/opt-out` says which is in force.
- `POST /admin/privacy/forget` (scope `admin`): queue the erasure of a shopper named by pseudonym.
  The private zone (which holds the key that resolves it) erases them everywhere at its next
  privacy run (`shoprank privacy apply-requests`); from then their tokens are refused.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shoprank.identity.tokens import Shopper
from shoprank.serving.api.auth import Who, forbidden
from shoprank.serving.api.routes.health import app_state
from shoprank.serving.api.schemas import AUTH_RESPONSES, PSEUDONYM_PATTERN, ErasureQueued, OptOutResponse
from shoprank.serving.api.state import AppState, unavailable

router = APIRouter()


async def _shopper(state: AppState, request: Request) -> Shopper:
    who = await state.gate.identify(request)
    state.gate.require(who, "privacy")
    if who.shopper is None:  # an API key cannot choose for a shopper: only their own token can
        raise forbidden("privacy", who)
    return who.shopper


@router.get("/privacy/opt-out", response_model=OptOutResponse, responses=AUTH_RESPONSES)
async def opt_out_status(request: Request) -> dict:
    state = app_state(request)
    shopper = await _shopper(state, request)
    return {"subject": shopper.subject, "opted_out": state.privacy.is_opted_out(p for _, p in shopper.pseudonyms)}


@router.post("/privacy/opt-out", response_model=OptOutResponse, responses=AUTH_RESPONSES)
async def opt_out(request: Request) -> dict:
    state = app_state(request)
    shopper = await _shopper(state, request)
    try:
        await asyncio.to_thread(state.privacy.opt_out, shopper.pseudonyms)
    except OSError as err:
        raise unavailable("privacy_store", f"opt-out not stored: {err}", "/privacy/opt-out") from None
    return {"subject": shopper.subject, "opted_out": True}


@router.delete("/privacy/opt-out", response_model=OptOutResponse, responses=AUTH_RESPONSES)
async def opt_in(request: Request) -> dict:
    state = app_state(request)
    shopper = await _shopper(state, request)
    try:
        await asyncio.to_thread(state.privacy.opt_in, [p for _, p in shopper.pseudonyms])
    except OSError as err:
        raise unavailable("privacy_store", f"opt-in not stored: {err}", "/privacy/opt-out") from None
    return {"subject": shopper.subject, "opted_out": False}


class ForgetRequest(BaseModel):
    subject: str = Field(pattern=PSEUDONYM_PATTERN, description="the shopper's pseudonym")


async def admin(request: Request) -> Who:
    """The caller, with scope `admin`. A dependency, so it is settled before the body is validated:
    a caller without the scope learns nothing about what the route accepts."""
    state = app_state(request)
    who = await state.gate.identify(request)
    state.gate.require(who, "admin")
    return who


@router.post("/admin/privacy/forget", response_model=ErasureQueued, status_code=202, responses=AUTH_RESPONSES)
async def forget(request: Request, body: ForgetRequest, who: Annotated[Who, Depends(admin)]) -> dict:
    state = app_state(request)
    try:
        request_id = await asyncio.to_thread(
            lambda: state.privacy.queue_erasure(body.subject, state.named_key_id(), who.label))
    except OSError as err:
        raise unavailable("privacy_store", f"erasure request not stored: {err}", "/admin/privacy/forget") from None
    return {"request_id": request_id, "subject": body.subject, "status": "queued"}
