"""Bodies and responses of the worker's MO-matching endpoints (`/internal/mos...`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.common import embeddings
from services.sop.mos.matching import Method

Base64Vector = Annotated[
    str,
    Field(max_length=4 * embeddings.VECTOR_BYTES, description="float32 little-endian, base64"),
    AfterValidator(lambda v: (embeddings.from_base64(v), v)[1]),
]
TextHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ModelName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MoCatalogRead(BaseModel):
    """The MO catalog as matching sees it: a version that grows with every MO change or stored
    embedding (microseconds since the epoch of the latest), how many MOs, how many embedded."""

    version: int
    mos: int
    embedded: int


class IndicatorRead(BaseModel):
    """One indicator of an MO and its kind."""

    kind: str
    text: str


class MoMatchingTextRead(BaseModel):
    """What the worker embeds for an MO: its whole text and each indicator."""

    mo_id: int
    text: str
    text_hash: str
    indicators: list[IndicatorRead]
    embedded: bool = Field(description="A current embedding of this text is stored")


class MoEmbeddingWrite(_Input):
    """An MO's embedding computed by the worker from the text with `text_hash`."""

    text_hash: TextHash
    model: ModelName
    vector: Base64Vector
    indicator_vectors: list[Base64Vector] = Field(max_length=150)


class MoEmbeddingStored(BaseModel):
    """The embedding was stored; the catalog version after it."""

    mo_id: int
    catalog_version: int


class MoMatchCreate(_Input):
    """A request's text (and its embedding, when the worker has the model) to match with MOs."""

    text: str = Field(min_length=1, max_length=25_000, pattern=r"^[^\x00]+$")
    embedding: Base64Vector | None = None
    model: ModelName | None = None
    limit: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=0, le=100)


class IndicatorMatchRead(BaseModel):
    """An indicator of the MO the request matches, with how well (0-100)."""

    kind: str
    text: str
    score: float


class MoMatchRead(BaseModel):
    """One suggested MO: enough to show it without another call."""

    mo_id: int
    name: str
    team: str
    status: str
    score: float = Field(description="0-100")
    matching_indicators: list[IndicatorMatchRead]


class MoMatchResult(BaseModel):
    """The closest MOs, best first, and how they were ranked."""

    method: Method
    model: str | None
    catalog_version: int
    unembedded_mos: int = Field(
        description="MOs left out of a semantic ranking (their embedding is not computed yet)"
    )
    items: list[MoMatchRead]
