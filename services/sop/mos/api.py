"""HTTP routes of the MO repository (`/api/v1/mos...`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.sop.mos import service
from services.sop.mos.domain import MoStatus
from services.sop.mos.schemas import MoCreate, MoPage, MoRead, MoUpdate, SimilarMoList
from services.sop.rules.api import IdempotencyKeyHeader, write_response
from services.sop.rules.schemas import MAX_INT, PRINTABLE_PATTERN, RULE_ID_PATTERN

router = APIRouter(prefix=service.MOS_PATH, tags=["mos"])

MoIdPath = Annotated[int, Path(ge=1, le=MAX_INT, description="The MO's id")]
RefQuery = Annotated[int | None, Query(ge=1, le=MAX_INT)]
MinScore = Annotated[float, Query(ge=0, le=100, description="Leave out weaker matches (0-100)")]
SimilarLimit = Annotated[int, Query(ge=1, le=50)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Status change not allowed from the current status"}
}


@router.post(
    "", status_code=201, response_model=MoRead, responses=PROBLEM_RESPONSES, summary="Record an MO"
)
async def create_mo(
    body: MoCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Record an MO: name, summary, indicators (signals, behaviours, entity types), status,
    first seen, impact, and links to the rules that catch it and to requests and escalations
    (by id). Staff only; unknown rule ids are a 422. Honours `Idempotency-Key`."""
    outcome = await service.create_mo(
        session,
        caller=caller,
        data=body,
        task_queue=runtime.settings.task_queue,
        idempotency_key=idempotency_key,
    )
    return write_response(outcome, location=service.mo_path(int(outcome.body["id"])))


@router.get("", response_model=MoPage, responses=PROBLEM_RESPONSES, summary="List MOs")
async def list_mos(
    session: SessionDep,
    caller: CurrentCaller,
    status: Annotated[list[MoStatus] | None, Query(description="Repeatable")] = None,
    team: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN)] = None,
    rule_id: Annotated[
        str | None, Query(pattern=RULE_ID_PATTERN, description="MOs this rule catches")
    ] = None,
    request_id: RefQuery = None,
    escalation_id: RefQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> MoPage:
    """MOs matching every given filter, newest first, one page at a time. A partner sees only
    its own team's MOs."""
    filters = service.MoFilters(
        statuses=status or (),
        team=team,
        rule_id=rule_id,
        request_id=request_id,
        escalation_id=escalation_id,
    )
    return await service.list_mos(
        session, caller=caller, filters=filters, cursor=cursor, limit=limit
    )


@router.get(
    "/similar",
    response_model=SimilarMoList,
    responses=PROBLEM_RESPONSES,
    summary="MOs similar to a description",
)
async def similar_mos(
    session: SessionDep,
    caller: CurrentCaller,
    q: Annotated[str, Query(min_length=2, max_length=2000, pattern=r"^[^\x00]+$")],
    min_score: MinScore = 40.0,
    limit: SimilarLimit = 10,
) -> SimilarMoList:
    """Fuzzy search (rapidfuzz token-set ratio) of `q` against MO names, summaries and
    indicators, weighted 0.4 / 0.35 / 0.25; scores from 0 to 100, best first."""
    return await service.similar_to_text(
        session, caller=caller, q=q, min_score=min_score, limit=limit
    )


@router.get("/{mo_id}", response_model=MoRead, responses=PROBLEM_RESPONSES, summary="Read an MO")
async def read_mo(mo_id: MoIdPath, session: SessionDep, caller: CurrentCaller) -> MoRead:
    """One MO with its links; 404 if missing or another team's (for a partner)."""
    return await service.to_read(session, await service.get_mo(session, caller=caller, mo_id=mo_id))


@router.patch(
    "/{mo_id}",
    response_model=MoRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Change an MO",
)
async def update_mo(
    mo_id: MoIdPath,
    body: MoUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> MoRead:
    """Change fields of an MO; link lists replace the whole set. The status moves suspected ->
    confirmed -> mitigated (mitigated -> confirmed if it comes back); other moves are a 409."""
    return await service.update_mo(
        session, caller=caller, mo_id=mo_id, data=body, task_queue=runtime.settings.task_queue
    )


@router.get(
    "/{mo_id}/similar",
    response_model=SimilarMoList,
    responses=PROBLEM_RESPONSES,
    summary="MOs similar to an MO",
)
async def similar_to_mo(
    mo_id: MoIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    min_score: MinScore = 40.0,
    limit: SimilarLimit = 10,
) -> SimilarMoList:
    """Other MOs resembling this one, field by field (name with name, summary with summary,
    indicators with indicators), best first."""
    return await service.similar_to_mo(
        session, caller=caller, mo_id=mo_id, min_score=min_score, limit=limit
    )
