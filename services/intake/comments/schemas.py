"""Pydantic bodies and responses of comments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.common.pagination import Page
from services.intake.comments.domain import Visibility
from services.intake.schemas import Text

Body = Annotated[Text, Field(min_length=1, max_length=20_000, description="Markdown")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommentCreate(_Input):
    """A new comment. Partners write public comments only."""

    body: Body
    visibility: Visibility = Visibility.PUBLIC
    asks_requester: bool = Field(
        default=False,
        description="Staff, public only: a question that puts the request in waiting_on_requester.",
    )


class CommentUpdate(_Input):
    """A new body for a comment (its author only); the previous body stays in its history."""

    body: Body


class CommentRead(BaseModel):
    """A comment as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    request_id: int
    visibility: Visibility
    body: str
    author: str
    author_role: str
    asks_requester: bool
    version: int = Field(description="1, plus one per edit; the ETag is this number.")
    created_at: datetime
    edited_at: datetime | None


class CommentPage(Page[CommentRead]):
    """One page of a request's comments, oldest first."""


class CommentRevisionRead(BaseModel):
    """One body a comment had; revision n is the body of version n."""

    model_config = ConfigDict(from_attributes=True)

    revision: int
    body: str
    written_by: str
    written_at: datetime


class CommentRevisionList(BaseModel):
    """A comment's bodies, oldest first."""

    items: list[CommentRevisionRead]
