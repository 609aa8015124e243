"""Calendar endpoints: admins and program managers write, any key reads; the worker and the
services read one calendar through `/internal/calendars/{id}` (system identity, no API key)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from services.common.errors import PROBLEM_RESPONSES, PreconditionFailed, Problem
from services.common.identity import Role
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.gateway.auth import CurrentKey, SystemCaller, require_role
from services.gateway.calendars import service
from services.gateway.calendars.models import BusinessCalendar
from services.gateway.calendars.schemas import (
    CalendarCreate,
    CalendarPage,
    CalendarRead,
    CalendarUpdate,
)
from services.gateway.keys.models import ApiKey
from services.gateway.runtime import SessionDep

RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    429: {"model": Problem, "description": "Too many calls with this key; see `Retry-After`"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The id is taken, or the change breaks a rule"},
    412: {"model": Problem, "description": "`If-Match` names a version that is not current"},
}

# Configuration that changes every request's SLA is for admins and the program manager.
ConfigWriter = Annotated[ApiKey, Depends(require_role(Role.ADMIN, Role.PROGRAM_MANAGER))]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The `ETag` of the version read; a stale one is refused with 412.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]
CalendarIdPath = Annotated[str, Path(description="The calendar's slug.", max_length=64)]

_ETAG = re.compile(r'^(?:W/)?"(\d{1,12})"$')

router = APIRouter(prefix="/api/v1/calendars", tags=["calendars"], responses=RESPONSES)
internal_router = APIRouter(prefix="/internal/calendars", include_in_schema=False)


def etag(version: int) -> str:
    """The ETag of a row version."""
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` header names (None for absent or `*`); 412 if it names none."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise PreconditionFailed(f'If-Match {if_match!r} is not an ETag this API returned ("<n>").')
    return int(match.group(1))


def _read(row: BusinessCalendar) -> CalendarRead:
    return CalendarRead(
        id=row.id,
        name=row.name,
        calendar=row.spec,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post("", status_code=201, responses=WRITE_RESPONSES, summary="Create a business calendar")
async def create_calendar(
    body: CalendarCreate, _writer: ConfigWriter, session: SessionDep, response: Response
) -> CalendarRead:
    """Add a calendar under a new slug (admin or program manager). The calendar object is
    validated: unknown zones, bad hours, overlapping intervals or unknown holiday countries are
    422 naming the field (`calendar.<field>`). A retried create of the same id is a 409."""
    row = await service.create(session, calendar_id=body.id, name=body.name, spec=body.calendar)
    await session.commit()
    response.headers["Location"] = f"/api/v1/calendars/{row.id}"
    response.headers["ETag"] = etag(row.version)
    return _read(row)


@router.get("", summary="List business calendars")
async def list_calendars(
    _key: CurrentKey, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> CalendarPage:
    """Calendars by id (any key)."""
    rows, next_cursor = await service.get_all(session, cursor=cursor, limit=limit)
    return CalendarPage(items=[_read(row) for row in rows], next_cursor=next_cursor)


@router.get("/{calendar_id}", summary="Read a business calendar")
async def read_calendar(
    calendar_id: CalendarIdPath, _key: CurrentKey, session: SessionDep, response: Response
) -> CalendarRead:
    """One calendar (any key); the `ETag` header is its version, for `If-Match` on PUT."""
    row = await service.get_or_raise(session, calendar_id=calendar_id)
    response.headers["ETag"] = etag(row.version)
    return _read(row)


@router.put("/{calendar_id}", responses=WRITE_RESPONSES, summary="Replace a business calendar")
async def replace_calendar(
    calendar_id: CalendarIdPath,
    body: CalendarUpdate,
    _writer: ConfigWriter,
    session: SessionDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> CalendarRead:
    """Replace a calendar's name and hours (admin or program manager). Send `If-Match` with the
    `ETag` you read to refuse (412) a write over someone else's change."""
    row = await service.update(
        session,
        calendar_id=calendar_id,
        name=body.name,
        spec=body.calendar,
        expected_version=expected_version(if_match),
    )
    await session.commit()
    response.headers["ETag"] = etag(row.version)
    return _read(row)


@internal_router.get("/{calendar_id}", responses=PROBLEM_RESPONSES)
async def read_calendar_internal(
    calendar_id: CalendarIdPath, _caller: SystemCaller, session: SessionDep, response: Response
) -> CalendarRead:
    """One calendar for riskdesk's own processes (system role only): EscalationWorkflow's quiet
    hours and the escalation service's default due dates follow an owner's calendar from here.
    `calendar` is the spec `services.common.business_time.Calendar.from_spec` reads; 404 when
    there is no such calendar."""
    row = await service.get_or_raise(session, calendar_id=calendar_id)
    response.headers["ETag"] = etag(row.version)
    return _read(row)
