"""The API's request and response shapes (they are its OpenAPI schema) and its limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shoprank.data.feedback import ALL_TYPES, FIELDS, MAX_POSITION
from shoprank.serving.api.intake import MAX_EVENTS

PSEUDONYM_PATTERN = r"^[0-9a-f]{20}$"  # a shopper's pseudonym (never a raw id)
MAX_K = 100
# Not blank: one character that is not white space. U+0085 and U+FEFF are named because regex
# dialects disagree on them (ECMAScript's \s lacks U+0085 and has U+FEFF; Unicode's White_Space, the
# server's, is the reverse): a client validating against the OpenAPI schema then agrees with the server.
NOT_BLANK = r"[^\s\x85\uFEFF]"


class Reason(BaseModel):
    """Why the item is shown, for the shopper: a template id and its public arguments (the front end
    words and translates it). Templates: bought_with {item_id}, similar_shoppers, buy_again,
    viewed_recently, popular_in {category}, new_in {category}, campaign {campaign}, instead_of
    {item_id}, similar_item, lexical_match."""

    template: str
    args: dict[str, str]


class Item(BaseModel):
    item_id: str
    score: float | None  # the ranker's score; None where a rule or the popular order placed the item
    source: str  # ranker, popular, lexical, own_frequency, content, co_purchase, or rule
    category: str | None
    reason: Reason
    # only when asked for with `fields=`
    title: str | None = None
    price: float | None = None
    brand: str | None = None
    in_stock: bool | None = None


class RecommendResponse(BaseModel):
    subject: str | None  # the shopper's pseudonym (None: anonymous)
    request_id: str  # signed for the subject: impressions and clicks of this list name it
    personalised: bool
    reason: str | None  # why not personalised: anonymous, opted_out, cold_start
    model_version: int | None
    cold_start: bool
    items: list[Item]


class SearchItem(BaseModel):
    item_id: str
    score: float | None
    signal: str
    category: str | None
    brand: str | None
    reason: Reason
    title: str | None = None
    price: float | None = None
    in_stock: bool | None = None


class SimilarResponse(BaseModel):
    item_id: str  # the item asked about
    kind: str  # similar | bought_together
    request_id: str
    items: list[Item]


class SearchResponse(BaseModel):
    query: str
    subject: str | None
    request_id: str
    personalised: bool
    reason: str | None
    model_version: int | None
    index_version: int | None
    matched: int
    items: list[SearchItem]


class EventIn(BaseModel):
    """One event of a `POST /events` batch (documentation of the contract; checked per event)."""

    model_config = ConfigDict(extra="forbid")
    event_id: str
    event_type: str
    user_id: str | None = None
    event_time: str | float
    item_id: str | None = None
    price: float | None = None
    quantity: int | None = None
    session_id: str | None = None
    query: str | None = None
    request_id: str | None = None
    position: int | None = None


def events_schema() -> dict:
    item = EventIn.model_json_schema()
    item.pop("title", None)
    for name, text in FIELDS.items():
        item["properties"][name]["description"] = text
    item["properties"]["event_type"]["enum"] = list(ALL_TYPES)
    item["properties"]["position"] = {"type": "integer", "minimum": 1, "maximum": MAX_POSITION,
                                      "description": FIELDS["position"]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "minItems": 1, "maxItems": MAX_EVENTS, "items": item}}}}}


class Rejected(BaseModel):
    index: int
    event_id: str | None
    field: str | None
    reason: str


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]
    sessions_updated: int | None  # with ?sync=true: users whose session the push wrote
    session_error: str | None


class ErrorDetail(BaseModel):
    reason: str
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail


AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorResponse, "description": "a bad or expired token or API key, or a forgotten shopper's token"},
    403: {"model": ErrorResponse, "description": "the credential lacks the route's scope"},
    429: {"model": ErrorResponse, "description": "over a rate limit; see Retry-After"},
}


class OptOutResponse(BaseModel):
    subject: str
    opted_out: bool


class ErasureQueued(BaseModel):
    request_id: str
    subject: str
    status: str  # queued: the private zone erases it at its next privacy run
