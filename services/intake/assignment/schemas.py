"""Pydantic bodies and responses of queues and auto-assignment."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.intake.triage.schemas import Queue


class AutoAssign(BaseModel):
    """Auto-assignment; without `queue`, the request's own queue is used."""

    model_config = ConfigDict(extra="forbid")

    queue: Queue | None = None


class QueueMemberRead(BaseModel):
    """A member of a queue and the open work they carry now."""

    member: str
    added_by: str
    added_at: datetime
    load: int = Field(description="Open requests assigned, weighted P0=8, P1=4, P2=2, P3=1")
    open_requests: int


class QueueRead(BaseModel):
    """A queue and its members, least loaded first."""

    queue: str
    members: list[QueueMemberRead]


class QueueList(BaseModel):
    """Every queue that has members."""

    items: list[QueueRead]
