"""Use cases of notifications: subscriptions, event fan-out, delivery bookkeeping, replay.

Functions take the caller's session and flush; the caller commits. Fan-out and replay write the
delivery rows and their outbox rows in one transaction, so a delivery is never queued without the
signal that sends it (and never signalled without existing).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.identity import Role
from services.common.outbox import enqueue_signal
from services.common.pagination import decode_cursor, encode_cursor
from services.common.settings import Settings
from services.common.webhook_target import TargetRefused, url_problem, vet_target
from services.gateway.models import OutboxEvent
from services.gateway.notifications.models import (
    Delivery,
    DeliveryAttempt,
    NotificationEvent,
    Subscription,
)
from services.gateway.notifications.schemas import AttemptIn, EventIn, SubscriptionCreate
from services.gateway.notifications.secrets import new_secret, seal
from workflows.contracts import (
    DELIVER_SIGNAL,
    SUBSCRIPTION_DELIVERY_WORKFLOW,
    DeliverSignal,
    DeliveryRetryPolicy,
    SubscriptionDeliveryInput,
    subscription_workflow_id,
)


def retry_policy_of(settings: Settings) -> DeliveryRetryPolicy:
    """The delivery retry policy the settings describe."""
    return DeliveryRetryPolicy(
        initial_interval_seconds=settings.delivery_initial_interval_seconds,
        backoff_coefficient=settings.delivery_backoff_coefficient,
        max_interval_seconds=settings.delivery_max_interval_seconds,
        max_attempts=settings.delivery_max_attempts,
        give_up_seconds=settings.delivery_give_up_seconds,
        # The receiver's timeout plus room for the two bookkeeping calls around it.
        attempt_timeout_seconds=settings.webhook_timeout_seconds
        + 2 * settings.service_timeout_seconds,
        idle_seconds=settings.delivery_idle_seconds,
    )


def _field_error(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field.removeprefix('body.')} {message}.",
        errors=[{"field": field, "message": message, "code": code}],
    )


async def create(
    session: AsyncSession,
    *,
    body: SubscriptionCreate,
    caller_team: str,
    caller_role: Role,
    created_by: str | None,
    settings: Settings,
) -> tuple[Subscription, str]:
    """Add a subscription; returns the row and its signing secret (shown once)."""
    team = body.team or caller_team
    if caller_role is Role.PARTNER and team != caller_team:
        raise _field_error("body.team", "must be your own team", "team_forbidden")
    if body.url is not None:
        allow_private = settings.webhook_allow_private_targets
        problem = url_problem(body.url, allow_private=allow_private)
        if problem is not None:
            raise _field_error("body.url", problem, "url_invalid")
        try:
            await vet_target(body.url, allow_private=allow_private)
        except TargetRefused as refused:
            raise _field_error("body.url", str(refused), "target_refused") from None
    secret = new_secret()
    row = Subscription(
        team=team,
        event_types=list(body.event_types),
        channel=body.channel,
        url=body.url,
        email=body.email,
        description=body.description,
        created_at=utcnow(),
        created_by=created_by,
    )
    seal(row, secret, settings=settings)
    session.add(row)
    await session.flush()
    return row, secret


async def get_visible_or_raise(
    session: AsyncSession, *, subscription_id: int, caller_team: str, caller_role: Role
) -> Subscription:
    """The subscription if the caller may see it; NotFound otherwise (partners: own team only)."""
    row = await session.get(Subscription, subscription_id)
    if row is None or (caller_role is Role.PARTNER and row.team != caller_team):
        # The same answer for "absent" and "another team's": nothing leaks about other teams.
        raise NotFound(f"There is no subscription {subscription_id}.")
    return row


async def deactivate(session: AsyncSession, *, subscription: Subscription) -> Subscription:
    """Soft-delete a subscription: no new deliveries; deactivating twice changes nothing."""
    if subscription.deactivated_at is None:
        subscription.deactivated_at = utcnow()
        await session.flush()
    return subscription


async def list_subscriptions(
    session: AsyncSession, *, team: str | None, cursor: str | None, limit: int
) -> tuple[list[Subscription], str | None]:
    """One page of subscriptions, newest first (one team's or all), and the next cursor."""
    query = select(Subscription).order_by(Subscription.id.desc()).limit(limit + 1)
    if team is not None:
        query = query.where(Subscription.team == team)
    if cursor is not None:
        query = query.where(Subscription.id < _decode_id(cursor))
    rows = list((await session.execute(query)).scalars())
    return _page(rows, limit)


async def list_deliveries(
    session: AsyncSession,
    *,
    subscription_id: int,
    cursor: str | None,
    limit: int,
    status: str | None = None,
) -> tuple[list[tuple[Delivery, str, list[DeliveryAttempt]]], str | None]:
    """One page of a subscription's deliveries, newest first, each with its type and attempts."""
    query = (
        select(Delivery, NotificationEvent.type)
        .join(NotificationEvent, NotificationEvent.event_id == Delivery.event_id)
        .where(Delivery.subscription_id == subscription_id)
        .order_by(Delivery.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(Delivery.status == status)
    if cursor is not None:
        query = query.where(Delivery.id < _decode_id(cursor))
    found = [(row, type_) for row, type_ in (await session.execute(query)).all()]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        next_cursor = encode_cursor({"i": found[-1][0].id})
    attempts: dict[int, list[DeliveryAttempt]] = {row.id: [] for row, _ in found}
    if attempts:
        rows = await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(attempts))
            .order_by(DeliveryAttempt.id)
        )
        for attempt in rows.scalars():
            attempts[attempt.delivery_id].append(attempt)
    return [(row, type_, attempts[row.id]) for row, type_ in found], next_cursor


async def describe_delivery(
    session: AsyncSession, *, delivery: Delivery
) -> tuple[str, list[DeliveryAttempt]]:
    """A delivery's event type and its attempts, oldest first."""
    event = await session.get(NotificationEvent, delivery.event_id)
    attempts = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(DeliveryAttempt.id)
    )
    return (event.type if event is not None else ""), list(attempts.scalars())


def _page(rows: list[Subscription], limit: int) -> tuple[list[Subscription], str | None]:
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor({"i": rows[limit - 1].id})


def _decode_id(cursor: str) -> int:
    key: dict[str, Any] = decode_cursor(cursor, required=("i",))
    value = key["i"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise _field_error("query.cursor", "is not one this list returned", "cursor_invalid")
    return value


async def ingest_event(
    session: AsyncSession, *, event: EventIn, settings: Settings
) -> tuple[NotificationEvent, bool]:
    """Store an event and fan it out; returns the event and whether it was new.

    A repeat of a known event id changes nothing and returns the original. Commits (or rolls back
    on a concurrent duplicate) itself, since the duplicate check is the insert.
    """
    existing = await session.get(NotificationEvent, event.event_id)
    if existing is not None:
        return existing, False
    row = NotificationEvent(
        event_id=event.event_id,
        type=event.type,
        team=event.team,
        occurred_at=event.occurred_at,
        subject=event.subject.model_dump(),
        data=event.data,
        received_at=utcnow(),
        deliveries=0,
    )
    session.add(row)
    subscriptions = (
        await session.execute(
            select(Subscription)
            .where(Subscription.team == event.team, Subscription.deactivated_at.is_(None))
            .order_by(Subscription.id)
        )
    ).scalars()
    policy = retry_policy_of(settings)
    matching = [sub for sub in subscriptions if event.type in sub.event_types]
    try:
        await session.flush()  # the event row first: deliveries reference it
        for subscription in matching:
            delivery = Delivery(
                subscription_id=subscription.id,
                event_id=event.event_id,
                status="pending",
                attempts=0,
                generation=0,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            session.add(delivery)
            await session.flush()
            _enqueue(
                session,
                subscription_id=subscription.id,
                delivery=delivery,
                policy=policy,
                task_queue=settings.task_queue,
            )
        row.deliveries = len(matching)
        await session.commit()
    except IntegrityError:
        # Another call stored the same event id first: answer as for any repeat.
        await session.rollback()
        winner = await session.get(NotificationEvent, event.event_id)
        if winner is None:
            raise
        return winner, False
    return row, True


def _enqueue(
    session: AsyncSession,
    *,
    subscription_id: int,
    delivery: Delivery,
    policy: DeliveryRetryPolicy,
    task_queue: str,
) -> None:
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=subscription_workflow_id(subscription_id),
        workflow_type=SUBSCRIPTION_DELIVERY_WORKFLOW,
        task_queue=task_queue,
        start_arg=SubscriptionDeliveryInput(subscription_id=subscription_id, policy=policy),
        signal_name=DELIVER_SIGNAL,
        signal_arg=DeliverSignal(delivery_id=delivery.id, generation=delivery.generation),
    )


async def get_delivery_or_raise(session: AsyncSession, *, delivery_id: int) -> Delivery:
    """The delivery with this id; raises NotFound."""
    row = await session.get(Delivery, delivery_id)
    if row is None:
        raise NotFound(f"There is no delivery {delivery_id}.")
    return row


async def delivery_for_worker(
    session: AsyncSession, *, delivery_id: int
) -> tuple[Delivery, Subscription, NotificationEvent]:
    """A delivery with its subscription and event (for the worker to send it)."""
    delivery = await get_delivery_or_raise(session, delivery_id=delivery_id)
    subscription = await session.get(Subscription, delivery.subscription_id)
    event = await session.get(NotificationEvent, delivery.event_id)
    # Foreign keys guarantee both.
    assert subscription is not None
    assert event is not None
    return delivery, subscription, event


async def record_attempt(
    session: AsyncSession, *, delivery_id: int, attempt: AttemptIn
) -> DeliveryAttempt:
    """Record an attempt; a successful one marks the delivery delivered."""
    delivery = await get_delivery_or_raise(session, delivery_id=delivery_id)
    now = utcnow()
    row = DeliveryAttempt(
        delivery_id=delivery.id,
        outcome=attempt.outcome,
        status_code=attempt.status_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
        attempted_at=now,
    )
    session.add(row)
    delivery.attempts += 1
    delivery.updated_at = now
    if attempt.outcome == "delivered":
        delivery.status = "delivered"
        delivery.delivered_at = delivery.delivered_at or now
        delivery.last_error = None
    else:
        delivery.last_error = attempt.error
    await session.flush()
    return row


async def mark_dead(
    session: AsyncSession, *, delivery_id: int, error: str, generation: int | None
) -> Delivery:
    """Move a pending delivery to the dead-letter list (a delivered or stale one is left alone)."""
    delivery = await get_delivery_or_raise(session, delivery_id=delivery_id)
    stale = generation is not None and generation != delivery.generation
    if delivery.status == "pending" and not stale:
        now = utcnow()
        delivery.status = "dead"
        delivery.dead_at = now
        delivery.updated_at = now
        delivery.last_error = error
        await session.flush()
    return delivery


async def replay(
    session: AsyncSession, *, subscription: Subscription, delivery_id: int, settings: Settings
) -> Delivery:
    """Queue a dead delivery again (a new generation, so its old signals stay ignored)."""
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.subscription_id != subscription.id:
        raise NotFound(f"Subscription {subscription.id} has no delivery {delivery_id}.")
    if delivery.status != "dead":
        raise Conflict(
            f"Only a dead delivery can be replayed; delivery {delivery_id} is {delivery.status}.",
            current_status=delivery.status,
        )
    if subscription.deactivated_at is not None:
        raise Conflict(f"Subscription {subscription.id} is deactivated; it receives nothing.")
    delivery.status = "pending"
    delivery.generation += 1
    delivery.dead_at = None
    delivery.updated_at = utcnow()
    await session.flush()
    _enqueue(
        session,
        subscription_id=subscription.id,
        delivery=delivery,
        policy=retry_policy_of(settings),
        task_queue=settings.task_queue,
    )
    return delivery
