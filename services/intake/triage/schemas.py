"""Pydantic bodies and responses of request types, PATCH of a request, and the queue view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.intake.domain import Priority, RequestType
from services.intake.schemas import (
    PRINTABLE_PATTERN,
    ExternalRef,
    Impact,
    Marketplace,
    Tag,
    Text,
    Title,
)
from services.intake.triage.domain import FieldKind
from services.intake.triage.scoring import Urgency

FIELD_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,49}$"
QUEUE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
Queue = Annotated[str, Field(pattern=QUEUE_PATTERN, description="A queue name, e.g. `emea-ato`")]
Assignee = Annotated[
    str, Field(min_length=1, max_length=200, pattern=PRINTABLE_PATTERN, description="A subject")
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSpecBody(_Input):
    """One extra field of a request type."""

    name: str = Field(pattern=FIELD_NAME_PATTERN)
    kind: FieldKind
    required: bool = False
    description: Annotated[Text, Field(max_length=500)] = ""


class RequestTypeConfigUpdate(_Input):
    """The whole list of a type's extra fields (replaces the previous list)."""

    fields: list[FieldSpecBody] = Field(max_length=50)

    @field_validator("fields")
    @classmethod
    def _unique_names(cls, value: list[FieldSpecBody]) -> list[FieldSpecBody]:
        names = [spec.name for spec in value]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        return value


class FieldSpecRead(BaseModel):
    """One extra field as configured."""

    name: str
    kind: FieldKind
    required: bool
    description: str = ""


class RequestTypeConfigRead(BaseModel):
    """A request type and the `details` fields it takes."""

    request_type: RequestType
    fields: list[FieldSpecRead]
    version: int = Field(description="Bumped by every change; the ETag is this number.")
    updated_at: datetime
    updated_by: str


class RequestTypeConfigList(BaseModel):
    """Every request type's configuration."""

    items: list[RequestTypeConfigRead]


class RequestUpdate(_Input):
    """Fields to change (absent = unchanged; null clears a nullable field).

    Partners (own team) may change the description fields: title, description, marketplace,
    impact, external_refs, tags, urgency, due_at, details. Staff also priority (with
    `priority_reason`), assignee and queue.
    """

    title: Title | None = None
    description: Annotated[Text, Field(max_length=20_000)] | None = None
    marketplace: Marketplace | None = None
    impact: Impact | None = None
    external_refs: list[ExternalRef] | None = Field(default=None, max_length=20)
    tags: list[Tag] | None = Field(default=None, max_length=20)
    urgency: Urgency | None = None
    due_at: AwareDatetime | None = Field(default=None, description="In the future")
    details: dict[str, Any] | None = Field(default=None, max_length=50)
    priority: Priority | None = None
    priority_reason: Annotated[Text, Field(min_length=1, max_length=2000)] | None = Field(
        default=None, description="Required with a change of priority (kept in the event)."
    )
    assignee: Assignee | None = None
    queue: Queue | None = None

    @field_validator("due_at")
    @classmethod
    def _due_in_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value

    @field_validator("tags")
    @classmethod
    def _dedup_tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))
