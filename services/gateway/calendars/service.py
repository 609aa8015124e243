"""Use cases of business calendars: validate, create, read, list, replace.

Functions take the caller's session and flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.common.business_time import Calendar, CalendarError
from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from services.common.pagination import decode_cursor, encode_cursor
from services.gateway.calendars.models import BusinessCalendar

SPEC_KEYS = frozenset({"timezone", "always_open", "hours", "holidays", "closed_dates"})


def calendar_error(exc: CalendarError, *, prefix: str, detail: str) -> ValidationFailed:
    """A CalendarError as a 422 naming the field under `prefix` (e.g. `calendar.timezone`)."""
    field = prefix if exc.field == "calendar" else f"{prefix}.{exc.field}"
    return ValidationFailed(
        f"{detail}: {field} {exc.message}.",
        errors=[{"field": field, "message": exc.message, "code": "calendar_invalid"}],
    )


def parse_spec(raw: Mapping[str, Any], *, prefix: str = "calendar") -> Calendar:
    """A calendar object validated into a Calendar; 422 naming the bad field otherwise."""
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise calendar_error(
            CalendarError(
                unknown[0], f"is not a calendar field; use {', '.join(sorted(SPEC_KEYS))}"
            ),
            prefix=prefix,
            detail="The calendar is not valid",
        )
    if "always_open" in raw and not isinstance(raw["always_open"], bool):
        raise calendar_error(
            CalendarError("always_open", "must be true or false"),
            prefix=prefix,
            detail="The calendar is not valid",
        )
    try:
        return Calendar.from_spec(raw)
    except CalendarError as exc:
        raise calendar_error(exc, prefix=prefix, detail="The calendar is not valid") from exc


async def get(session: AsyncSession, *, calendar_id: str) -> BusinessCalendar | None:
    """The calendar with this id, if any."""
    return await session.get(BusinessCalendar, calendar_id)


async def get_or_raise(session: AsyncSession, *, calendar_id: str) -> BusinessCalendar:
    """The calendar with this id; raises NotFound."""
    row = await get(session, calendar_id=calendar_id)
    if row is None:
        raise NotFound(f"There is no calendar {calendar_id!r}.")
    return row


async def get_all(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> tuple[list[BusinessCalendar], str | None]:
    """One page of calendars by id, and the cursor of the next page."""
    query = select(BusinessCalendar).order_by(BusinessCalendar.id).limit(limit + 1)
    if cursor is not None:
        after = decode_cursor(cursor, required=("i",))["i"]
        query = query.where(BusinessCalendar.id > str(after))
    rows = list((await session.execute(query)).scalars())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor({"i": rows[limit - 1].id})


async def create(
    session: AsyncSession, *, calendar_id: str, name: str, spec: Mapping[str, Any]
) -> BusinessCalendar:
    """Add a calendar; 409 if the id is taken, 422 if the calendar object is not valid."""
    calendar = parse_spec(spec)
    if await get(session, calendar_id=calendar_id) is not None:
        raise Conflict(f"A calendar {calendar_id!r} already exists; PUT replaces it.")
    now = utcnow()
    row = BusinessCalendar(
        id=calendar_id,
        name=name,
        spec=calendar.to_spec(),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same id won the race
        await session.rollback()
        raise Conflict(f"A calendar {calendar_id!r} already exists; PUT replaces it.") from exc
    return row


async def update(
    session: AsyncSession,
    *,
    calendar_id: str,
    name: str,
    spec: Mapping[str, Any],
    expected_version: int | None = None,
) -> BusinessCalendar:
    """Replace a calendar's name and hours; 412 if `expected_version` is stale."""
    calendar = parse_spec(spec)
    row = await get_or_raise(session, calendar_id=calendar_id)
    check_version(row.version, expected_version, what=f"calendar {calendar_id!r}")
    row.name = name
    row.spec = calendar.to_spec()
    row.updated_at = utcnow()
    await flush_versioned(session, what=f"calendar {calendar_id!r}")
    return row


async def flush_versioned(session: AsyncSession, *, what: str) -> None:
    """Flush an update of a versioned row; a concurrent writer that won makes it a 412."""
    try:
        await session.flush()
    except StaleDataError as exc:
        await session.rollback()
        raise PreconditionFailed(
            f"The {what} was changed meanwhile: read it again and retry."
        ) from exc


def check_version(current: int, expected: int | None, *, what: str) -> None:
    """Optimistic concurrency: refuse a write made against another version (412)."""
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The {what} is at version {current}, not {expected}: read it again and retry.",
            current_version=current,
        )
