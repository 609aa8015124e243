"""HTTP routes of the systemic-gap register (`/api/v1/gaps...`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, SessionDep
from services.escalation.gaps import service
from services.escalation.gaps.domain import GapStatus, LinkKind
from services.escalation.gaps.schemas import (
    GapCreate,
    GapPage,
    GapRead,
    GapStats,
    GapTransitionCreate,
    GapUpdate,
)
from services.escalation.schemas import PRINTABLE_PATTERN
from services.escalation.writes import MAX_ID, outcome_response

router = APIRouter(prefix=service.GAPS_PATH, tags=["gaps"])

GapIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The gap's id")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description="Retrying with the same key and body returns the first response, once.",
    ),
]
TeamQuery = Annotated[
    str | None,
    Query(max_length=100, pattern=PRINTABLE_PATTERN, description="Partners see their own"),
]
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not allowed now (`allowed_actions` lists what is)"}
}


@router.post(
    "",
    status_code=201,
    response_model=GapRead,
    responses=PROBLEM_RESPONSES,
    summary="Record a systemic gap",
)
async def record_gap(
    body: GapCreate,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Record a gap (status `identified`) with its owning team, optional impact (which marks it
    quantified), charter owner, target date and links. Staff only; honours `Idempotency-Key`."""
    outcome = await service.create_gap(
        session, caller=caller, data=body, idempotency_key=idempotency_key
    )
    return outcome_response(outcome, location=service.gap_path(int(outcome.body["id"])))


@router.get("", response_model=GapPage, responses=PROBLEM_RESPONSES, summary="List gaps")
async def list_gaps(
    session: SessionDep,
    caller: CurrentCaller,
    status: Annotated[list[GapStatus] | None, Query(description="Repeatable")] = None,
    owning_team: TeamQuery = None,
    link_kind: LinkKind | None = None,
    link_ref: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> GapPage:
    """Gaps, newest first, by status, owning team, or link (`link_kind` with `link_ref`, e.g.
    every gap linked to escalation 42). A partner sees the gaps its team owns."""
    filters = service.GapFilters(
        statuses=status or (), owning_team=owning_team, link_kind=link_kind, link_ref=link_ref
    )
    return await service.list_gaps(
        session, caller=caller, filters=filters, cursor=cursor, limit=limit
    )


@router.get(
    "/stats",
    response_model=GapStats,
    responses=PROBLEM_RESPONSES,
    summary="Gaps identified, quantified and closed per week",
)
async def gap_stats(
    session: SessionDep,
    caller: CurrentCaller,
    since: date | None = None,
    until: date | None = None,
    owning_team: TeamQuery = None,
) -> GapStats:
    """Counts per ISO week (UTC) of gaps identified, first quantified and closed, from `since`
    to `until` (default: the last 12 weeks), with totals: the program's success metric."""
    return await service.gap_stats(
        session, caller=caller, since=since, until=until, owning_team=owning_team
    )


@router.get("/{gap_id}", response_model=GapRead, responses=PROBLEM_RESPONSES, summary="Read a gap")
async def read_gap(gap_id: GapIdPath, session: SessionDep, caller: CurrentCaller) -> GapRead:
    """One gap; 404 if missing or not visible to the caller."""
    return service.to_read(await service.get_gap(session, caller=caller, gap_id=gap_id))


@router.patch(
    "/{gap_id}",
    response_model=GapRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Edit a gap",
)
async def edit_gap(
    gap_id: GapIdPath, body: GapUpdate, session: SessionDep, caller: CurrentCaller
) -> GapRead:
    """Change editable fields (impact, charter owner, target date, links, ...); only the fields
    given change. Staff only."""
    return await service.update_gap(session, caller=caller, gap_id=gap_id, data=body)


@router.post(
    "/{gap_id}/transitions",
    response_model=GapRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Move a gap through its statuses",
)
async def transition_gap(
    gap_id: GapIdPath,
    body: GapTransitionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Apply an action: accept, start, close (`reason`), wont_fix (`reason`), reopen. 409 names
    the caller's `allowed_actions`."""
    outcome = await service.transition_gap(
        session, caller=caller, gap_id=gap_id, data=body, idempotency_key=idempotency_key
    )
    return outcome_response(outcome)
