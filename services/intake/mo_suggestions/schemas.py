"""Bodies and responses of MO suggestions: the public view, decisions and labels, and the
worker's internal writes. Inputs forbid unknown fields and NUL characters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.common import embeddings
from services.common.pagination import Page

Base64Vector = Annotated[
    str,
    Field(max_length=4 * embeddings.VECTOR_BYTES, description="float32 little-endian, base64"),
    AfterValidator(lambda v: (embeddings.from_base64(v), v)[1]),
]
TextHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ModelName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
MAX_INT = 2**31 - 1


class Method(StrEnum):
    """How suggestions were ranked: sentence embeddings, or rapidfuzz without the `ai` extra."""

    SEMANTIC = "semantic"
    LEXICAL = "lexical"


class Decision(StrEnum):
    """An analyst's verdict on a suggestion."""

    CONFIRM = "confirm"
    REJECT = "reject"


class Verdict(StrEnum):
    """A stored verdict."""

    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndicatorMatch(_Input):
    """An indicator of the MO that the request matches, with how well (0-100)."""

    kind: Literal["signal", "behaviour", "entity_type"]
    text: ShortText
    score: float = Field(ge=0, le=100)


class StoredSuggestion(_Input):
    """One suggestion as the worker stores it (the sop match result, best first)."""

    mo_id: int = Field(ge=1, le=MAX_INT)
    name: ShortText
    team: ShortText
    status: ShortText
    score: float = Field(ge=0, le=100)
    matching_indicators: list[IndicatorMatch] = Field(default_factory=list, max_length=50)


class RequestEmbeddingWrite(_Input):
    """A request's embedding, computed by the worker from the text with `text_hash`."""

    text_hash: TextHash
    model: ModelName
    vector: Base64Vector


class MoSuggestionsWrite(_Input):
    """The suggestions the worker computed from the text with `text_hash`."""

    text_hash: TextHash
    method: Method
    model: ModelName | None = None
    catalog_version: int = Field(ge=0, le=2**62)
    items: list[StoredSuggestion] = Field(max_length=50)


class MoCatalogWrite(_Input):
    """The sop MO catalog version the worker saw (a smaller one than stored is ignored)."""

    version: int = Field(ge=0, le=2**62)


class MoCatalogRead(BaseModel):
    """The newest sop MO catalog version intake knows."""

    version: int


class RequestMatchingRead(BaseModel):
    """What the worker matches for a request: its text and hash, and a current embedding if any."""

    request_id: int
    text: str
    text_hash: str
    embedding: str | None = Field(description="base64 float32, only if computed from this text")
    embedding_model: str | None


class StoredRead(BaseModel):
    """Acknowledgement of an internal write."""

    request_id: int
    stored: bool


class MoSuggestionRead(BaseModel):
    """One suggested MO, best first, and any analyst verdict on it."""

    rank: int
    mo_id: int
    name: str
    team: str
    status: str
    score: float = Field(description="0-100; cosine x 100 (semantic) or rapidfuzz (lexical)")
    matching_indicators: list[IndicatorMatch]
    decision: Verdict | None


class MoSuggestionsRead(BaseModel):
    """A request's MO suggestions and how they were computed.

    `status`: `ready` (current), `stale` (the text or the MOs changed since: a recompute has been
    asked for, the items shown are the previous ones), `pending` (not computed yet).
    """

    request_id: int
    status: Literal["ready", "stale", "pending"]
    method: Method | None
    model: str | None
    computed_at: datetime | None
    items: list[MoSuggestionRead]


class DecisionCreate(_Input):
    """Confirm or reject one suggestion."""

    decision: Decision
    comment: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] | None = None


class MoSuggestionLabelRead(BaseModel):
    """A labelled (request, MO) pair: the verdict and the suggestion as it was when judged."""

    request_id: int
    mo_id: int
    decision: Verdict
    method: Method
    rank: int
    score: float
    team: str
    comment: str | None
    decided_by: str
    decided_at: datetime


class MoSuggestionLabelPage(Page[MoSuggestionLabelRead]):
    """One page of labelled pairs, newest request first."""


class PrecisionRead(BaseModel):
    """How good the suggestions were, measured on the labelled pairs.

    `precision_at_k`: confirmed / judged among suggestions ranked 1..k (unjudged ones are left
    out). `hit_rate_at_k`: of the requests with a confirmed MO, the share whose confirmed MO was
    ranked 1..k (what the bench's precision@3 measures, one right MO per request).
    """

    k: int
    method: Method | None
    judged_at_k: int
    confirmed_at_k: int
    precision_at_k: float | None
    requests_confirmed: int
    requests_hit_at_k: int
    hit_rate_at_k: float | None
