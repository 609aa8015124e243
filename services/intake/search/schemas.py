"""Responses of the search endpoints, and the 201 of filing (a request plus its similar ones)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.intake.schemas import RequestRead


class SimilarRequest(BaseModel):
    """An open request of the same team that looks like this one."""

    id: int
    title: str
    score: int = Field(ge=0, le=100, description="0-100; a shared external reference scores >= 95")
    reasons: list[str] = Field(description="Why it matched, e.g. `title similarity 88`")


class RequestFiled(RequestRead):
    """A filed request, with the open requests of its team that look like duplicates of it."""

    similar: list[SimilarRequest] = Field(
        default_factory=list, description="Best first; empty when nothing scores >= 70"
    )


class SimilarRead(BaseModel):
    """Requests similar to one request, and the requests marked as its duplicates."""

    request_id: int
    similar: list[SimilarRequest]
    duplicates: list[int] = Field(
        description="Ids of the requests closed as duplicates of this one (oldest first)"
    )
    duplicate_of: int | None = Field(description="The original, if this one is a duplicate")
