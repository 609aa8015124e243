"""Request and response bodies of subscriptions, deliveries and the internal event endpoints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.pagination import Page
from services.gateway.keys.schemas import TeamName
from services.gateway.notifications.models import Delivery, DeliveryAttempt, Subscription

# Every event type a subscription can ask for; the services publish these to `/internal/events`.
EventType = Literal[
    "sla.warning",
    "sla.breached",
    "request.status_changed",
    "aging.digest",
    "report.weekly",
    "escalation.reminder",
    "escalation.overdue",
    "sop.approval_requested",
    "sop.reminder",
    "sop.rollout_overdue",
    "sop.review_due",
    "rule.deprecation_proposed",
    "rule.deprecated",
    "rule.retained",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
Channel = Literal["webhook", "email"]
DeliveryStatus = Literal["pending", "delivered", "dead"]

# Deliberately plain: a mailbox, one @, a dotted domain, no spaces or line breaks (header safety).
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def delivery_status(value: str) -> DeliveryStatus:
    """A stored delivery status as its literal type."""
    if value == "delivered":
        return "delivered"
    return "dead" if value == "dead" else "pending"


def channel_of(value: str) -> Channel:
    """A stored channel as its literal type."""
    return "email" if value == "email" else "webhook"


class SubscriptionCreate(BaseModel):
    """A new subscription: whose events, which types, and where they go."""

    model_config = ConfigDict(extra="forbid")

    team: TeamName | None = Field(
        default=None,
        description="The team whose events to hear about. Partners: own team only (the default).",
    )
    event_types: list[EventType] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description="Event types to deliver."
    )
    channel: Channel
    url: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None,
        description="Webhook URL: https, and its host must resolve to public addresses only "
        "(no loopback, private, link-local, multicast or reserved ones). Development stacks "
        "that set RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS also accept those, and plain http to "
        "localhost.",
    )
    email: Annotated[str, StringConstraints(max_length=254)] | None = Field(
        default=None, description="E-mail address (channel `email`)."
    )
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = (
        None
    )

    @model_validator(mode="after")
    def _target_matches_channel(self) -> Self:
        if self.channel == "webhook":
            if self.url is None:
                raise ValueError("a webhook subscription needs `url`")
            if self.email is not None:
                raise ValueError("a webhook subscription takes `url`, not `email`")
        else:
            if self.email is None:
                raise ValueError("an email subscription needs `email`")
            if self.url is not None:
                raise ValueError("an email subscription takes `email`, not `url`")
            if not _EMAIL.match(self.email):
                raise ValueError("`email` is not a valid e-mail address")
        # Order kept, repeats dropped.
        self.event_types = list(dict.fromkeys(self.event_types))
        return self


class SubscriptionRead(BaseModel):
    """A subscription (never its secret)."""

    id: int
    team: str
    event_types: list[str]
    channel: Channel
    url: str | None
    email: str | None
    description: str | None
    active: bool
    created_at: datetime
    created_by: str | None = Field(description="Id of the key that created it.")
    deactivated_at: datetime | None

    @classmethod
    def from_row(cls, row: Subscription) -> SubscriptionRead:
        """The public view of a subscription row."""
        return cls(
            id=row.id,
            team=row.team,
            event_types=list(row.event_types),
            channel=channel_of(row.channel),
            url=row.url,
            email=row.email,
            description=row.description,
            active=row.deactivated_at is None,
            created_at=row.created_at,
            created_by=row.created_by,
            deactivated_at=row.deactivated_at,
        )


class SubscriptionCreated(SubscriptionRead):
    """A new subscription and its signing secret, shown this once and never again."""

    secret: str = Field(
        description="Verifies `X-Riskdesk-Signature` on each webhook (HMAC-SHA256 of `<t>.<body>`)."
    )


class AttemptRead(BaseModel):
    """One try at sending a delivery."""

    outcome: Literal["delivered", "failed"]
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    error: str | None
    duration_ms: int
    attempted_at: datetime

    @classmethod
    def from_row(cls, row: DeliveryAttempt) -> AttemptRead:
        """The public view of an attempt row."""
        return cls(
            outcome="delivered" if row.outcome == "delivered" else "failed",
            status_code=row.status_code,
            error=row.error,
            duration_ms=row.duration_ms,
            attempted_at=row.attempted_at,
        )


class DeliveryRead(BaseModel):
    """One event sent (or being sent) to one subscription, with its attempts, oldest first."""

    id: int
    subscription_id: int
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    replays: int = Field(description="How many times an admin replayed it after it was dead.")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    attempts: list[AttemptRead]

    @classmethod
    def from_row(
        cls, row: Delivery, *, event_type: str, attempts: list[DeliveryAttempt]
    ) -> DeliveryRead:
        """The public view of a delivery row and its attempts."""
        return cls(
            id=row.id,
            subscription_id=row.subscription_id,
            event_id=row.event_id,
            event_type=event_type,
            status=delivery_status(row.status),
            attempt_count=row.attempts,
            replays=row.generation,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            dead_at=row.dead_at,
            attempts=[AttemptRead.from_row(a) for a in attempts],
        )


SubscriptionPage = Page[SubscriptionRead]
DeliveryPage = Page[DeliveryRead]


# --- internal (worker and services only)


class EventSubject(BaseModel):
    """What an event is about, e.g. `{"kind": "request", "id": "42"}`."""

    kind: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    id: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class EventIn(BaseModel):
    """An event to fan out to the subscriptions of its team."""

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="Deterministic id; posting the same id again is a no-op."
    )
    type: Annotated[
        str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=100)
    ]
    team: TeamName
    occurred_at: AwareDatetime
    subject: EventSubject
    data: dict[str, Any] = Field(default_factory=dict)


class EventAccepted(BaseModel):
    """How many deliveries an event fanned out to (the original count for a repeat)."""

    event_id: str
    deliveries: int


class AttemptIn(BaseModel):
    """An attempt the worker made."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["delivered", "failed"]
    status_code: int | None = Field(default=None, ge=100, le=599)
    error: Annotated[str, StringConstraints(max_length=4000)] | None = None
    duration_ms: int = Field(default=0, ge=0)


class DeadIn(BaseModel):
    """Why the worker gave up on a delivery."""

    model_config = ConfigDict(extra="forbid")

    error: Annotated[str, StringConstraints(max_length=4000)] = "retries exhausted"
    generation: int | None = Field(
        default=None, description="The replay generation given up on; a stale one changes nothing."
    )


class InternalSubscription(BaseModel):
    """A subscription as the worker needs it to deliver (secret included)."""

    id: int
    team: str
    channel: Channel
    url: str | None
    email: str | None
    secret: str
    active: bool


class InternalDelivery(BaseModel):
    """A delivery's state as the worker needs it."""

    id: int
    status: DeliveryStatus
    generation: int
    attempts: int


class InternalEvent(BaseModel):
    """An event as stored."""

    event_id: str
    type: str
    team: str
    occurred_at: datetime
    subject: dict[str, Any]
    data: dict[str, Any]


class DeliveryForWorker(BaseModel):
    """Everything the worker needs to send one delivery."""

    delivery: InternalDelivery
    subscription: InternalSubscription
    event: InternalEvent
