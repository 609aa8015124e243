"""Notification endpoints: subscriptions and their deliveries (public), events and delivery
bookkeeping (internal, for the worker and the services only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from services.common.errors import PROBLEM_RESPONSES, Forbidden, Problem
from services.common.identity import Role
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.gateway.auth import CurrentKey, SystemCaller
from services.gateway.notifications import service
from services.gateway.notifications.schemas import (
    AttemptIn,
    DeadIn,
    DeliveryForWorker,
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    EventAccepted,
    EventIn,
    InternalDelivery,
    InternalEvent,
    InternalSubscription,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPage,
    SubscriptionRead,
    channel_of,
    delivery_status,
)
from services.gateway.notifications.secrets import signing_secret
from services.gateway.runtime import RuntimeDep, SessionDep

RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    429: {"model": Problem, "description": "Too many calls with this key; see `Retry-After`"},
}

router = APIRouter(prefix="/api/v1", responses=RESPONSES, tags=["subscriptions"])
# Not part of the public API document: only the worker (and services) call these.
internal_router = APIRouter(prefix="/internal", include_in_schema=False)

# Bounded to the database's integer range: a larger id is a 422, not a 500 from PostgreSQL.
MAX_ID = 2**31 - 1
SubscriptionIdPath = Annotated[int, Path(description="The subscription's id.", ge=1, le=MAX_ID)]
DeliveryIdPath = Annotated[int, Path(description="The delivery's id.", ge=1, le=MAX_ID)]
CursorQuery = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.post("/subscriptions", status_code=201, summary="Subscribe to a team's events")
async def create_subscription(
    body: SubscriptionCreate,
    key: CurrentKey,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> SubscriptionCreated:
    """Deliver a team's events of the given types to a webhook or an e-mail address.

    Partners subscribe to their own team (the default); staff to any team. The response holds
    the webhook signing `secret` this once: store it to verify `X-Riskdesk-Signature`.
    `Idempotency-Key` is not honoured here, so the secret is never stored in a replayable
    response; a retry makes a second subscription, which can be deleted.
    """
    row, secret = await service.create(
        session,
        body=body,
        caller_team=key.team,
        caller_role=key.role,
        created_by=key.id,
        settings=runtime.settings,
    )
    await session.commit()
    response.headers["Cache-Control"] = "no-store"
    return SubscriptionCreated(**SubscriptionRead.from_row(row).model_dump(), secret=secret)


@router.get("/subscriptions", summary="List subscriptions")
async def list_subscriptions(
    key: CurrentKey,
    session: SessionDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    team: Annotated[str | None, Query(description="Only this team's (staff only).")] = None,
) -> SubscriptionPage:
    """Subscriptions newest first, deactivated ones included: a partner's own team's, or (staff)
    every team's or one team's."""
    if key.role is Role.PARTNER:
        team = key.team
    rows, next_cursor = await service.list_subscriptions(
        session, team=team, cursor=cursor, limit=limit
    )
    return SubscriptionPage(
        items=[SubscriptionRead.from_row(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/subscriptions/{subscription_id}", summary="Get a subscription")
async def get_subscription(
    subscription_id: SubscriptionIdPath, key: CurrentKey, session: SessionDep
) -> SubscriptionRead:
    """One subscription (404 for another team's, to a partner)."""
    row = await service.get_visible_or_raise(
        session, subscription_id=subscription_id, caller_team=key.team, caller_role=key.role
    )
    return SubscriptionRead.from_row(row)


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Unsubscribe")
async def delete_subscription(
    subscription_id: SubscriptionIdPath, key: CurrentKey, session: SessionDep
) -> Response:
    """Deactivate a subscription: it gets no new deliveries and queued ones are not sent.

    It stays listed (with `active: false`) so its delivery history remains visible.
    """
    row = await service.get_visible_or_raise(
        session, subscription_id=subscription_id, caller_team=key.team, caller_role=key.role
    )
    await service.deactivate(session, subscription=row)
    await session.commit()
    return Response(status_code=204)


@router.get("/subscriptions/{subscription_id}/deliveries", summary="A subscription's deliveries")
async def list_deliveries(
    subscription_id: SubscriptionIdPath,
    key: CurrentKey,
    session: SessionDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    status: Annotated[
        DeliveryStatus | None, Query(description="Only these, e.g. `dead`: the dead-letter list.")
    ] = None,
) -> DeliveryPage:
    """Deliveries newest first, each with its status (pending, delivered, dead) and attempts."""
    row = await service.get_visible_or_raise(
        session, subscription_id=subscription_id, caller_team=key.team, caller_role=key.role
    )
    found, next_cursor = await service.list_deliveries(
        session, subscription_id=row.id, cursor=cursor, limit=limit, status=status
    )
    return DeliveryPage(
        items=[
            DeliveryRead.from_row(delivery, event_type=type_, attempts=attempts)
            for delivery, type_, attempts in found
        ],
        next_cursor=next_cursor,
    )


@router.post(
    "/subscriptions/{subscription_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Replay a dead delivery (staff)",
    responses={
        409: {
            "model": Problem,
            "description": "The delivery is not dead, or the subscription is deactivated",
        }
    },
)
async def replay_delivery(
    subscription_id: SubscriptionIdPath,
    delivery_id: DeliveryIdPath,
    key: CurrentKey,
    session: SessionDep,
    runtime: RuntimeDep,
) -> DeliveryRead:
    """Queue a dead delivery again, behind anything already queued for this subscription.

    Staff only (partners get 403). Only a dead delivery of an active subscription can be
    replayed (409 otherwise); the receiver sees the same `Idempotency-Key` as before.
    """
    if key.role is Role.PARTNER:
        raise Forbidden("Replaying deliveries is for staff; this key has the partner role.")
    subscription = await service.get_visible_or_raise(
        session, subscription_id=subscription_id, caller_team=key.team, caller_role=key.role
    )
    delivery = await service.replay(
        session, subscription=subscription, delivery_id=delivery_id, settings=runtime.settings
    )
    await session.commit()
    event_type, attempts = await service.describe_delivery(session, delivery=delivery)
    return DeliveryRead.from_row(delivery, event_type=event_type, attempts=attempts)


@internal_router.post("/events", status_code=202, summary="Fan an event out to subscribers")
async def post_event(
    body: EventIn,
    _caller: SystemCaller,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> EventAccepted:
    """Store an event and queue a delivery per active matching subscription (202).

    Idempotent on `event_id`: a repeat answers 200 with the original fan-out and queues nothing.
    Delivery happens later, through Temporal, never inside this call.
    """
    event, created = await service.ingest_event(session, event=body, settings=runtime.settings)
    if not created:
        response.status_code = 200
    return EventAccepted(event_id=event.event_id, deliveries=event.deliveries)


@internal_router.get("/deliveries/{delivery_id}", summary="A delivery, for the worker to send")
async def get_delivery(
    delivery_id: DeliveryIdPath, _caller: SystemCaller, session: SessionDep, runtime: RuntimeDep
) -> DeliveryForWorker:
    """The delivery, its event, and its subscription including the signing secret.

    The only place a stored secret is decrypted: the worker signs the delivery with it. A secret
    the configured key cannot decrypt is 409 (the attempt fails and is retried, then dead).
    """
    delivery, subscription, event = await service.delivery_for_worker(
        session, delivery_id=delivery_id
    )
    return DeliveryForWorker(
        delivery=InternalDelivery(
            id=delivery.id,
            status=delivery_status(delivery.status),
            generation=delivery.generation,
            attempts=delivery.attempts,
        ),
        subscription=InternalSubscription(
            id=subscription.id,
            team=subscription.team,
            channel=channel_of(subscription.channel),
            url=subscription.url,
            email=subscription.email,
            # Decrypted only when it will sign something: e-mail deliveries are not signed.
            secret=signing_secret(subscription, settings=runtime.settings)
            if subscription.channel == "webhook"
            else "",
            active=subscription.deactivated_at is None,
        ),
        event=InternalEvent(
            event_id=event.event_id,
            type=event.type,
            team=event.team,
            occurred_at=event.occurred_at,
            subject=event.subject,
            data=event.data,
        ),
    )


@internal_router.post(
    "/deliveries/{delivery_id}/attempts", status_code=204, summary="Record a delivery attempt"
)
async def post_attempt(
    delivery_id: DeliveryIdPath, body: AttemptIn, _caller: SystemCaller, session: SessionDep
) -> Response:
    """Record one attempt; `delivered` marks the delivery delivered."""
    await service.record_attempt(session, delivery_id=delivery_id, attempt=body)
    await session.commit()
    return Response(status_code=204)


@internal_router.post(
    "/deliveries/{delivery_id}/dead", status_code=204, summary="Give up on a delivery"
)
async def post_dead(
    delivery_id: DeliveryIdPath, body: DeadIn, _caller: SystemCaller, session: SessionDep
) -> Response:
    """Put a pending delivery in the dead-letter list (a final or stale one is left alone)."""
    await service.mark_dead(
        session, delivery_id=delivery_id, error=body.error, generation=body.generation
    )
    await session.commit()
    return Response(status_code=204)
