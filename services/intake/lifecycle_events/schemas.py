"""The shape of a request's events as lifecycle signals (`workflows.contracts.RequestEventSignal`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LifecycleEventRead(BaseModel):
    """One change of a request, exactly as its `request_event` signal carries it."""

    event_id: str
    request_id: int
    kind: str
    action: str | None
    from_status: str | None
    to_status: str
    priority: str = Field(description="The request's priority right after this change")
    actor: str
    occurred_at: datetime
    version: int = Field(description="The request's version this change produced")


class LifecycleEventPage(BaseModel):
    """Events after a version, oldest first; `has_more` when the page stopped at `limit`."""

    items: list[LifecycleEventRead]
    has_more: bool
