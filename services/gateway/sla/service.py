"""Use cases of SLA policies: create, read, list, replace, delete, resolve; and previews.

Functions take the caller's session and flush; the caller commits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.business_time import (
    Calendar,
    CalendarError,
    Pause,
    add,
    elapsed,
    format_duration,
    validate_pauses,
)
from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.pagination import decode_cursor, encode_cursor
from services.gateway.calendars import service as calendars
from services.gateway.calendars.models import BusinessCalendar
from services.gateway.sla import domain
from services.gateway.sla.models import SlaPolicy
from services.gateway.sla.schemas import (
    PolicyRead,
    PolicyUpdate,
    PreviewRead,
    PreviewRequest,
    ResolvedPolicy,
)

# `elapsed` scans at most ten years of calendar: a longer span would be silently short.
MAX_PREVIEW_SPAN = timedelta(days=3_650)


def read(policy: SlaPolicy) -> PolicyRead:
    """The public view of a policy row."""
    return PolicyRead(
        id=policy.id,
        name=policy.name,
        order=policy.order,
        request_types=policy.request_types,
        priorities=policy.priorities,
        first_response_target=format_duration(timedelta(seconds=policy.first_response_seconds)),
        resolution_target=format_duration(timedelta(seconds=policy.resolution_seconds)),
        calendar_id=policy.calendar_id,
        warning_thresholds=policy.warning_thresholds,
        pause_statuses=policy.pause_statuses,
        auto_close_after=(
            format_duration(timedelta(seconds=policy.auto_close_seconds))
            if policy.auto_close_seconds is not None
            else None
        ),
        version=policy.version,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


def resolved(policy: SlaPolicy, calendar: BusinessCalendar) -> ResolvedPolicy:
    """The resolution contract of a policy and its calendar."""
    view = read(policy)
    return ResolvedPolicy(
        policy_id=view.id,
        policy_name=view.name,
        first_response_target=view.first_response_target,
        resolution_target=view.resolution_target,
        warning_thresholds=view.warning_thresholds,
        pause_statuses=view.pause_statuses,
        auto_close_after=view.auto_close_after,
        calendar_id=calendar.id,
        calendar=calendar.spec,
    )


async def get(session: AsyncSession, *, policy_id: str) -> SlaPolicy | None:
    """The policy with this id, if any."""
    return await session.get(SlaPolicy, policy_id)


async def get_or_raise(session: AsyncSession, *, policy_id: str) -> SlaPolicy:
    """The policy with this id; raises NotFound."""
    policy = await get(session, policy_id=policy_id)
    if policy is None:
        raise NotFound(f"There is no SLA policy {policy_id!r}.")
    return policy


async def get_all(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> tuple[list[SlaPolicy], str | None]:
    """One page of policies in match order, and the cursor of the next page."""
    query = select(SlaPolicy).order_by(SlaPolicy.order).limit(limit + 1)
    if cursor is not None:
        after = decode_cursor(cursor, required=("o",))["o"]
        if not isinstance(after, int):
            raise ValidationFailed(
                "The cursor is not one this list returned.",
                errors=[{"field": "query.cursor", "message": "invalid cursor", "code": "cursor"}],
            )
        query = query.where(SlaPolicy.order > after)
    rows = list((await session.execute(query)).scalars())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor({"o": rows[limit - 1].order})


async def create(session: AsyncSession, *, policy_id: str, data: PolicyUpdate) -> SlaPolicy:
    """Add a policy; 409 if the id or the order is taken, 422 for an unknown calendar."""
    if await get(session, policy_id=policy_id) is not None:
        raise Conflict(f"An SLA policy {policy_id!r} already exists; PUT replaces it.")
    await _check_calendar(session, data.calendar_id)
    await _check_order_free(session, order=data.order, policy_id=policy_id)
    now = utcnow()
    policy = SlaPolicy(id=policy_id, created_at=now, updated_at=now)
    _assign(policy, data)
    session.add(policy)
    await _flush_unique(session, what=f"SLA policy {policy_id!r}")
    return policy


async def update(
    session: AsyncSession,
    *,
    policy_id: str,
    data: PolicyUpdate,
    expected_version: int | None = None,
) -> SlaPolicy:
    """Replace a policy; 409 if it would take another's order or leave no catch-all."""
    policies = await _all_for_update(session)
    policy = next((p for p in policies if p.id == policy_id), None)
    if policy is None:
        raise NotFound(f"There is no SLA policy {policy_id!r}.")
    calendars.check_version(policy.version, expected_version, what=f"SLA policy {policy_id!r}")
    await _check_calendar(session, data.calendar_id)
    await _check_order_free(session, order=data.order, policy_id=policy_id)
    after = [
        domain.Rule(
            id=p.id,
            order=data.order if p.id == policy_id else p.order,
            request_types=data.request_types if p.id == policy_id else p.request_types,
            priorities=data.priorities if p.id == policy_id else p.priorities,
        )
        for p in policies
    ]
    _keep_a_catch_all(after, change=f"changing {policy_id!r} that way")
    _assign(policy, data)
    policy.updated_at = utcnow()
    try:
        await calendars.flush_versioned(session, what=f"SLA policy {policy_id!r}")
    except IntegrityError as exc:
        await session.rollback()
        raise _order_taken(data.order) from exc
    return policy


async def delete(
    session: AsyncSession, *, policy_id: str, expected_version: int | None = None
) -> None:
    """Remove a policy; 409 if it is the last catch-all."""
    policies = await _all_for_update(session)
    policy = next((p for p in policies if p.id == policy_id), None)
    if policy is None:
        raise NotFound(f"There is no SLA policy {policy_id!r}.")
    calendars.check_version(policy.version, expected_version, what=f"SLA policy {policy_id!r}")
    _keep_a_catch_all([p for p in policies if p.id != policy_id], change=f"deleting {policy_id!r}")
    await session.delete(policy)
    await session.flush()


async def resolve(
    session: AsyncSession, *, request_type: str, priority: str
) -> tuple[SlaPolicy, BusinessCalendar]:
    """The policy a request of this type and priority gets, with its calendar."""
    # The table is small (tens of rows) and read in order through its unique index.
    policies = (await session.execute(select(SlaPolicy).order_by(SlaPolicy.order))).scalars()
    policy = domain.first_match(policies, request_type=request_type, priority=priority)
    if policy is None:
        # Only possible if the seeded catch-all was removed behind the API's back.
        raise NotFound(
            f"No SLA policy matches a {priority} {request_type!r} request and no catch-all exists."
        )
    calendar = await calendars.get_or_raise(session, calendar_id=policy.calendar_id)
    return policy, calendar


async def preview(session: AsyncSession, *, body: PreviewRequest) -> PreviewRead:
    """A deadline for `target`, or the business seconds elapsed at `at`, on a calendar."""
    if body.calendar is not None:
        calendar = calendars.parse_spec(body.calendar)
    else:
        assert body.calendar_id is not None
        row = await calendars.get(session, calendar_id=body.calendar_id)
        if row is None:
            raise ValidationFailed(
                f"There is no calendar {body.calendar_id!r}.",
                errors=[
                    {"field": "calendar_id", "message": "unknown calendar", "code": "not_found"}
                ],
            )
        calendar = Calendar.from_spec(row.spec)
    pauses = _check_pauses(body.pauses)
    try:
        if body.target is not None:
            target = timedelta(seconds=domain.parse_target(body.target))
            deadline = add(calendar, body.start, target, pauses)
            return PreviewRead(deadline=deadline, business_seconds=int(target.total_seconds()))
        assert body.at is not None
        return PreviewRead(
            deadline=None, business_seconds=_elapsed_seconds(calendar, body.start, body.at, pauses)
        )
    except CalendarError as exc:
        if exc.field == "calendar":
            raise calendars.calendar_error(
                exc, prefix="calendar", detail="The preview cannot be computed"
            ) from exc
        raise _field_error(exc.field, exc.message) from exc
    except OverflowError as exc:
        raise _field_error("start", "is too close to the year 1 or 9999 to compute") from exc


def _check_pauses(raw: Sequence[tuple[datetime, datetime]]) -> list[Pause]:
    """Pauses in order; errors name the pause by its position in the request."""
    for index, (begin, end) in enumerate(raw):
        if end <= begin:
            raise _field_error(f"pauses[{index}]", "must end after it starts")
    ordered = sorted(range(len(raw)), key=lambda index: raw[index][0])
    for previous, index in itertools.pairwise(ordered):
        if raw[index][0] < raw[previous][1]:
            raise _field_error(f"pauses[{index}]", f"overlaps pauses[{previous}]")
    return validate_pauses(list(raw))


def _elapsed_seconds(calendar: Calendar, start: datetime, at: datetime, pauses: list[Pause]) -> int:
    if at - start > MAX_PREVIEW_SPAN:
        raise CalendarError("at", "must be within ten years of start")
    return int(elapsed(calendar, start, at, pauses).total_seconds())


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field} {message}.", errors=[{"field": field, "message": message, "code": "invalid"}]
    )


def _assign(policy: SlaPolicy, data: PolicyUpdate) -> None:
    policy.name = data.name
    policy.order = data.order
    policy.request_types = data.request_types
    policy.priorities = list(data.priorities) if data.priorities is not None else None
    policy.first_response_seconds = domain.parse_target(data.first_response_target)
    policy.resolution_seconds = domain.parse_target(data.resolution_target)
    policy.calendar_id = data.calendar_id
    policy.warning_thresholds = list(data.warning_thresholds)
    policy.pause_statuses = list(data.pause_statuses)
    policy.auto_close_seconds = (
        domain.parse_wall_duration(data.auto_close_after)
        if data.auto_close_after is not None
        else None
    )


async def _all_for_update(session: AsyncSession) -> list[SlaPolicy]:
    # Row locks on PostgreSQL, so two writers cannot each remove "the other" last catch-all;
    # SQLite has one writer at a time anyway.
    query = select(SlaPolicy).order_by(SlaPolicy.order).with_for_update()
    return list((await session.execute(query)).scalars())


def _keep_a_catch_all(rules: list[domain.Rule] | list[SlaPolicy], *, change: str) -> None:
    if not domain.has_catch_all(rules):
        raise Conflict(
            f"Refused: {change} would leave no catch-all policy (request_types and priorities "
            "both null), and every request needs an SLA. Add another catch-all first."
        )


async def _check_calendar(session: AsyncSession, calendar_id: str) -> None:
    if await calendars.get(session, calendar_id=calendar_id) is None:
        raise ValidationFailed(
            f"There is no calendar {calendar_id!r}.",
            errors=[
                {"field": "body.calendar_id", "message": "unknown calendar", "code": "not_found"}
            ],
        )


async def _check_order_free(session: AsyncSession, *, order: int, policy_id: str) -> None:
    holder = (
        await session.execute(select(SlaPolicy.id).where(SlaPolicy.order == order))
    ).scalar_one_or_none()
    if holder is not None and holder != policy_id:
        raise _order_taken(order, holder)


def _order_taken(order: int, holder: str | None = None) -> Conflict:
    by = f" by policy {holder!r}" if holder else ""
    return Conflict(f"Order {order} is already taken{by}; orders are unique.", field="order")


async def _flush_unique(session: AsyncSession, *, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent writer took the id or the order first
        await session.rollback()
        raise Conflict(f"The {what} conflicts with a concurrent change; retry.") from exc
