"""Tables of notifications: subscriptions, the events received, deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, utcnow
from services.gateway.models import Base


class Subscription(Base):
    """Who hears about which events of a team, and how (webhook or e-mail)."""

    __tablename__ = "subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(100))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(2000))
    email: Mapped[str | None] = mapped_column(String(254))
    description: Mapped[str | None] = mapped_column(String(200))
    # The signing secret, Fernet-encrypted with RISKDESK_SECRETS_KEY (services/common/secret_box.py)
    # and decrypted only to hand it to the worker that signs a delivery; never returned after
    # creation, never logged.
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # Legacy: the secret in clear, as rows made before gateway_0006 hold it. Empty once the row is
    # encrypted (the gateway does that at start-up); kept NOT NULL so the migration stays a plain
    # ADD COLUMN on SQLite.
    secret: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Lists are newest first (all, or one team's); fan-out reads one team's: index range scans.
    __table_args__ = (Index("ix_subscription_team_id", "team", "id"),)


class NotificationEvent(Base):
    """An event received on `/internal/events`; its id makes a repeat a no-op."""

    __tablename__ = "notification_event"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    team: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    subject: Mapped[dict[str, Any]] = mapped_column(JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)


class Delivery(Base):
    """One event to one subscription: pending until delivered, or dead once retries gave up."""

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscription.id"))
    event_id: Mapped[str] = mapped_column(ForeignKey("notification_event.event_id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by each replay: the workflow's signal carries it so a stale signal sends nothing.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        # A subscription's deliveries newest first; and the dead-letter list across subscriptions.
        Index("ix_delivery_subscription_id", "subscription_id", "id"),
        Index("ix_delivery_status_id", "status", "id"),
    )


class DeliveryAttempt(Base):
    """One try at sending a delivery, as the worker reported it."""

    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_delivery_attempt_delivery_id", "delivery_id", "id"),)
