"""`GET /api/v1/alerts/aging`: a gateway-owned route (not forwarded), any key, partners see their
own team only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.gateway.aging import service
from services.gateway.aging.schemas import AgeBucket, AgingAlertsRead
from services.gateway.auth import CurrentKey
from services.gateway.runtime import RuntimeDep, SessionDep

PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    429: {"model": Problem, "description": "Too many calls with this key; see `Retry-After`"},
    502: {"model": Problem, "description": "The intake service is unavailable"},
    504: {"model": Problem, "description": "The intake service did not answer in time"},
}

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=RESPONSES)


@router.get("/aging", summary="Aging alerts: open requests by age, and the stale ones")
async def aging_alerts(
    key: CurrentKey,
    session: SessionDep,
    runtime: RuntimeDep,
    team: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=PRINTABLE_PATTERN,
            description="Staff only; a partner always sees its own team.",
        ),
    ] = None,
    owner: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=PRINTABLE_PATTERN,
            description="Only requests assigned to this owner.",
        ),
    ] = None,
    bucket: Annotated[
        AgeBucket | None, Query(description="Only requests of this age bucket.")
    ] = None,
    calendar_id: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Count business days on this calendar (default: the calendar of the "
            "SLA policy a P3 `other` request gets).",
        ),
    ] = None,
    stale_days: Annotated[
        int | None,
        Query(
            ge=1,
            le=365,
            description="Stale after this many business days without an update "
            "(default: the configured `aging_stale_business_days`, 5).",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="How many stale requests to list at most.")
    ] = 100,
) -> AgingAlertsRead:
    """Open requests (neither resolved nor closed) counted by age bucket in business days
    (0-2, 3-7, 8-14, 15-30, 30+) overall and per team and owner, and the stale ones (no update
    for N business days), longest idle first. A business day is a local date with business
    hours on the calendar; an age counts the business days begun since the request was filed.
    Any key; a partner sees only its own team (another team's filter gives an empty report)."""
    return await service.aging_alerts(
        session,
        runtime=runtime,
        key=key,
        filters=service.AgingFilters(
            team=team,
            owner=owner,
            bucket=bucket,
            calendar_id=calendar_id,
            stale_days=stale_days,
            limit=limit,
        ),
    )
