"""`GET /recommend` and `GET /search`: ranked lists, each logged under a request id signed for its
shopper.

Who the list is for: the shopper of the bearer token; or, for a server-to-server caller with scope
`read`, the pseudonym it names (`subject`); or nobody (anonymous: the popular items, lexical search).
A shopper who opted out of personalisation gets the anonymous answer, whoever asks; one who was
forgotten is never named again (their token is refused, a server-to-server caller naming them gets
the anonymous answer, logged as anonymous).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Query, Request, Response

from shoprank import clock
from shoprank.data.served import RULE_PLACED, served_list
from shoprank.search import MAX_QUERY_CHARS
from shoprank.serving.api.auth import ANY_KEY, Who, unauthorised
from shoprank.serving.api.deciding import Shown
from shoprank.serving.api.experiments import Chosen
from shoprank.serving.api.routes.health import app_state
from shoprank.serving.api.schemas import (
    AUTH_RESPONSES,
    MAX_K,
    NOT_BLANK,
    PSEUDONYM_PATTERN,
    ErrorResponse,
    RecommendResponse,
    SearchResponse,
)
from shoprank.serving.api.state import AppState, answer, log_served, timed_json
from shoprank.serving.decision.live_catalogue import DESCRIBABLE

router = APIRouter()

_FIELD = "(" + "|".join(DESCRIBABLE) + ")"
FIELDS = Query(None, max_length=200, pattern=rf"^{_FIELD}(,{_FIELD})*$",
               description=f"catalogue fields to add to each item, comma-separated: {', '.join(DESCRIBABLE)}")


def describe_fields(fields: str | None) -> tuple[str, ...]:
    """The `fields=` a caller asked for (checked against `FIELDS`' pattern), each once, in order."""
    return tuple(dict.fromkeys(fields.split(","))) if fields else ()


SUBJECT = Query(None, pattern=PSEUDONYM_PATTERN,
                description="server-to-server callers with scope `read`: the shopper's pseudonym (a shopper's "
                            "own token names them instead)")


@dataclass(frozen=True)
class ListFor:
    """Whom one list is for: the pseudonyms to personalise with (None: not personalised), the
    pseudonym and key id it is logged and signed under, and why it is not personal."""

    subject: dict[str, str] | None
    logged_as: str | None
    key_id: str | None
    not_personal: str | None


def list_for(state: AppState, who: Who, named: str | None, request: Request) -> ListFor:
    if named is not None:
        if who.anonymous:
            raise unauthorised("unauthenticated", "naming a shopper (`subject`) needs an API key with scope `read`")
        if who.key_id is None or not who.key_may("read"):  # the key's own scope: a token beside it adds none
            raise HTTPException(403, {"reason": "missing_scope", "message": "naming a shopper (`subject`) needs an "
                                                                            "API key with scope `read`"})
        if state.privacy.is_erased((named,)):  # forgotten: nothing personal, nothing logged under them
            return ListFor(None, None, None, "forgotten")
        subject, logged_as = {ANY_KEY: named}, named
        key_id = state.named_key_id()
        request.state.subject = named  # the access log names whom the list was for
    elif who.shopper is not None:
        subject, logged_as, key_id = who.pseudonyms(), who.shopper.subject, who.shopper.pseudonym_key_id
    else:
        return ListFor(None, None, None, "anonymous")
    if state.privacy.is_opted_out(subject.values()):
        return ListFor(None, logged_as, key_id, "opted_out")
    return ListFor(subject, logged_as, key_id, None)


@router.get("/recommend", response_model=RecommendResponse, responses={
    **AUTH_RESPONSES, 503: {"model": ErrorResponse, "description": "a downstream service failed; see reason"}})
async def recommend(request: Request, k: int = Query(10, ge=1, le=MAX_K), subject: str | None = SUBJECT,
                    fields: str | None = FIELDS) -> Response:
    state = app_state(request)
    who = await state.gate.identify(request)
    wanted = describe_fields(fields)
    settings, metrics = state.settings, state.metrics
    recommender = state.loaded()
    live = recommender.context.catalogue
    target = list_for(state, who, subject, request)
    # only personalised lists are in an experiment: an opted-out, forgotten or anonymous shopper never is
    chosen = state.experiments.arm_for("recommend", target.logged_as) if target.subject is not None else None
    started = time.perf_counter()
    result = await answer(state, "/recommend", recommender.recommend(
        target.subject, k, chosen.arm if chosen else None, chosen.rules if chosen else None),
        settings.model_timeout_s + settings.online_timeout_s)
    total_ms = (time.perf_counter() - started) * 1000
    for stage, ms in result.stages_ms.items():
        metrics.stages.labels(stage.removesuffix("_ms")).observe(ms / 1000)
    if result.cold_start:
        metrics.cold_start.inc()
    elif result.model_version is not None:
        metrics.model_version.set(result.model_version)
    reason = target.not_personal or ("cold_start" if result.cold_start else None)
    body = {"subject": target.logged_as, "request_id": state.gate.request_id(target.logged_as),
            "personalised": reason is None, "reason": reason, "model_version": result.model_version,
            "cold_start": result.cold_start,
            "items": [i.public(live.describe(i.item_id, wanted)) for i in result.items]}
    log_served(state, served_list(
        body["request_id"], "recommend", clock.now_s(), target.logged_as, [i.item_id for i in result.items],
        [i.score for i in result.items], [i.candidate for i in result.items], user_key_id=target.key_id,
        model_version=result.model_version, reason=reason, candidates=result.candidates,
        candidate_scores=result.candidate_scores, candidate_sources=result.candidate_sources,
        ranker_positions=[i.ranker_position for i in result.items], rules=[i.rule for i in result.items],
        **experiment_fields(chosen, result.items, result.teams, result.fallback, total_ms)))
    return with_experiment(timed_json(body, result.stages_ms, total_ms), chosen)


def experiment_fields(chosen: Chosen | None, items: list[Shown], teams: dict[str, str], fallback: str | None,
                      total_ms: float) -> dict:
    """The served-list fields of an experiment's answer: its name and arm, each served item's
    interleaving team (none for an item a merchandising rule placed), the time, the fallback."""
    if chosen is None:
        return {"latency_ms": round(total_ms, 3)}
    shown_teams = None
    if teams:
        shown_teams = [None if isinstance(i.rule, str) and i.rule.startswith(RULE_PLACED) else teams.get(i.item_id)
                       for i in items]
    return {"experiment": chosen.experiment.name, "arm": chosen.arm.name, "teams": shown_teams,
            "latency_ms": round(total_ms, 3), "fallback": fallback}


def with_experiment(response: Response, chosen: Chosen | None) -> Response:
    """The arm in a header, for the front end's own analytics."""
    if chosen is not None:
        response.headers["X-Experiment"] = f"{chosen.experiment.name}; arm={chosen.arm.name}"
    return response


@router.get("/search", response_model=SearchResponse, responses={
    **AUTH_RESPONSES, 422: {"description": "empty query, query over the length limit, bad k or subject"},
    503: {"model": ErrorResponse, "description": "no index loaded or the feature store failed"}})
async def search(request: Request,
                 q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                                description=f"the search text: not blank, at most {MAX_QUERY_CHARS} characters"),
                 k: int = Query(10, ge=1, le=MAX_K), subject: str | None = SUBJECT,
                 fields: str | None = FIELDS) -> Response:
    state = app_state(request)
    who = await state.gate.identify(request)
    wanted = describe_fields(fields)
    settings, metrics = state.settings, state.metrics
    searcher = state.loaded_search()
    target = list_for(state, who, subject, request)
    chosen = state.experiments.arm_for("search", target.logged_as) if target.subject is not None else None
    started = time.perf_counter()
    result = await answer(state, "/search", searcher.search(q, target.subject, k, chosen.arm if chosen else None,
                                                            chosen.rules if chosen else None),
                          settings.model_timeout_s + settings.online_timeout_s + 0.5)
    total_ms = (time.perf_counter() - started) * 1000
    for stage, ms in result.stages_ms.items():
        metrics.stages.labels(f"search_{stage.removesuffix('_ms')}").observe(ms / 1000)
    reason = target.not_personal if target.not_personal and result.reason == "anonymous" else result.reason
    body = {"query": q, "subject": target.logged_as, "request_id": state.gate.request_id(target.logged_as),
            "personalised": result.personalised, "reason": reason, "model_version": result.model_version,
            "index_version": result.index_version, "matched": result.matched,
            "items": [_search_item(i, searcher.context.catalogue.describe(i.item_id, ("brand", *wanted)))
                      for i in result.items]}
    log_served(state, served_list(
        body["request_id"], "search", clock.now_s(), target.logged_as, [i.item_id for i in result.items],
        [i.score for i in result.items], [i.source for i in result.items], user_key_id=target.key_id, query=q,
        model_version=result.model_version, index_version=result.index_version, reason=reason,
        ranker_positions=[i.ranker_position for i in result.items], rules=[i.rule for i in result.items],
        **experiment_fields(chosen, result.items, result.teams, result.fallback, total_ms)))
    return with_experiment(timed_json(body, result.stages_ms, total_ms), chosen)


def _search_item(item: Shown, described: dict) -> dict:
    """A search hit as the answer shows it: `signal` says what placed it (ranker, lexical, popular,
    own_frequency, or rule), `brand` always."""
    body = item.public(described)
    body["signal"] = body.pop("source")
    return body
