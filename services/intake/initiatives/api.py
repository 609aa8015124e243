"""HTTP routes of OP1 initiatives (`/api/v1/initiatives...`; the gateway forwards them here).

`/roadmap` is declared before `/{initiative_id}` so that it is not taken for an id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, SessionDep
from services.intake.initiatives import service
from services.intake.initiatives.domain import SCORE_FORMULA, InitiativeStatus, SourceKind
from services.intake.initiatives.schemas import (
    MAX_YEAR,
    MIN_YEAR,
    QUARTER_PATTERN,
    InitiativeCreate,
    InitiativePage,
    InitiativeRead,
    InitiativeTransition,
    InitiativeUpdate,
    RoadmapRead,
)
from services.intake.schemas import MAX_ID, PRINTABLE_PATTERN
from services.intake.triage.changes import etag

router = APIRouter(prefix=service.INITIATIVES_PATH, tags=["initiatives"])

InitiativeIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The initiative's id")]
TeamQuery = Annotated[
    str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN, description="One team")
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description=(
            "Retrying with the same key and body returns the first response, with no second effect."
        ),
    ),
]
IfMatchHeader = Annotated[
    str | None, Header(alias="If-Match", description='The ETag you read, `"<version>"`')
]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "Not allowed in the current state (`allowed_actions` lists what is)",
    }
}
PATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    409: {"model": Problem, "description": "The initiative is no longer editable by the caller"},
    412: {"model": Problem, "description": "`If-Match` is not the current version"},
    428: {"model": Problem, "description": "`If-Match` is missing"},
}
PROPOSE_DESCRIPTION = (
    "Propose an idea for the yearly (OP1) plan: problem, proposal, AI or not, the expected yearly "
    "benefit, effort, confidence, reach, dependencies and (optionally) a target quarter. A partner "
    "proposes for its own team (`team` may be omitted; `source_kind` defaults to `partner`); staff "
    "name the team and the source kind. It is scored at once, RICE-style: "
    f"{SCORE_FORMULA}. Returns 201 with `Location`; honours `Idempotency-Key`."
)


@router.post(
    "",
    status_code=201,
    response_model=InitiativeRead,
    responses=PROBLEM_RESPONSES,
    summary="Propose an initiative",
    description=PROPOSE_DESCRIPTION,
)
async def propose_initiative(
    body: InitiativeCreate,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Propose an idea for the yearly (OP1) plan: problem, proposal, AI or not, the expected
    yearly benefit, effort, confidence, reach, dependencies and (optionally) a target quarter.
    A partner proposes for its own team (`team` may be omitted; `source_kind` defaults to
    `partner`); staff name the team and the source kind. Scored at once (PROPOSE_DESCRIPTION)."""
    outcome = await service.create_initiative(
        session, caller=caller, data=body, idempotency_key=idempotency_key
    )
    return outcome.to_response(location=service.initiative_path(int(outcome.body["id"])))


@router.get(
    "", response_model=InitiativePage, responses=PROBLEM_RESPONSES, summary="List initiatives"
)
async def list_initiatives(
    session: SessionDep,
    caller: CurrentCaller,
    status: Annotated[list[InitiativeStatus] | None, Query(description="Repeatable")] = None,
    team: TeamQuery = None,
    source_kind: Annotated[SourceKind | None, Query(description="Kind of proposing team")] = None,
    quarter: Annotated[
        str | None, Query(pattern=QUARTER_PATTERN, description="Target quarter, `YYYY-Qn`")
    ] = None,
    ai: Annotated[bool | None, Query(description="AI initiatives only (or none of them)")] = None,
    sort: Annotated[
        service.Sort,
        Query(description="`-score` best first; default newest first; ties broken by id"),
    ] = service.Sort.CREATED_AT_DESC,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> InitiativePage:
    """Initiatives matching every given filter, one page at a time (pass `next_cursor` back as
    `cursor` with the same filters and sort). A partner sees only its own team's. Every filter
    and sort is served by an index."""
    filters = service.InitiativeFilters(
        statuses=status or (), team=team, source_kind=source_kind, quarter=quarter, ai=ai
    )
    return await service.list_initiatives(
        session, caller=caller, filters=filters, sort=sort, cursor=cursor, limit=limit
    )


@router.get(
    "/roadmap",
    response_model=RoadmapRead,
    responses=PROBLEM_RESPONSES,
    summary="The roadmap of a year, by quarter",
)
async def read_roadmap(
    session: SessionDep,
    caller: CurrentCaller,
    year: Annotated[int, Query(ge=MIN_YEAR, le=MAX_YEAR, description="The plan's year")],
    team: TeamQuery = None,
) -> RoadmapRead:
    """Committed, in-progress, delivered and measured initiatives targeting `year`, grouped by
    quarter (all four quarters, best score first), with totals per quarter and for the year:
    effort, expected accounts protected, money saved per currency, analyst hours, value in
    planning dollars, and for measured ones the realised value and realised-over-expected ratio.
    A partner sees only its own team's."""
    return await service.roadmap(session, caller=caller, year=year, team=team)


@router.get(
    "/{initiative_id}",
    response_model=InitiativeRead,
    responses=PROBLEM_RESPONSES,
    summary="Read an initiative",
)
async def read_initiative(
    initiative_id: InitiativeIdPath, session: SessionDep, caller: CurrentCaller, response: Response
) -> InitiativeRead:
    """One initiative with its score and, once measured, realised versus expected benefit; 404
    if missing or another team's (for a partner). `ETag` is its version, for `If-Match`."""
    row = await service.get_initiative(session, caller=caller, initiative_id=initiative_id)
    response.headers["ETag"] = etag(row.version)
    return service.to_read(row)


@router.patch(
    "/{initiative_id}",
    response_model=InitiativeRead,
    responses=PATCH_RESPONSES,
    summary="Edit an initiative (If-Match required)",
)
async def patch_initiative(
    initiative_id: InitiativeIdPath,
    body: InitiativeUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    response: Response,
    if_match: IfMatchHeader = None,
) -> InitiativeRead:
    """Change fields and re-score. Needs `If-Match: "<version>"` from GET's `ETag` (428 without
    it, 412 if another change came first). Staff edit until delivery; a partner edits its own
    team's only while it is proposed (409 after). `expected_benefit` replaces the whole benefit.
    Returns the initiative with its new `ETag`."""
    row = await service.update_initiative(
        session, caller=caller, initiative_id=initiative_id, data=body, if_match=if_match
    )
    response.headers["ETag"] = etag(row.version)
    return service.to_read(row)


@router.post(
    "/{initiative_id}/transitions",
    response_model=InitiativeRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Move an initiative through its life",
)
async def transition_initiative(
    initiative_id: InitiativeIdPath,
    body: InitiativeTransition,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Apply an action (staff only; 403 for partners and approvers): shortlist (proposed),
    commit (shortlisted; needs a `target_quarter`, in the body or already set), start
    (committed), deliver (in_progress), measure (delivered; needs `realised`, the benefit
    measured after delivery), drop (any status before delivery; needs `reason`). 409 if the
    state does not allow it (the problem lists `allowed_actions`)."""
    outcome = await service.transition_initiative(
        session,
        caller=caller,
        initiative_id=initiative_id,
        data=body,
        idempotency_key=idempotency_key,
    )
    return outcome.to_response()
