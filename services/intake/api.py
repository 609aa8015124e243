"""HTTP routes of the intake service (the gateway forwards `/api/v1/requests...` here unchanged)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.intake import service
from services.intake.schemas import (
    MAX_ID,
    RequestCreate,
    RequestEventPage,
    RequestPage,
    RequestRead,
    RequestSlaRead,
    SlaRecordUpdate,
    TransitionCreate,
)
from services.intake.search import service as search
from services.intake.search.params import list_filters
from services.intake.search.schemas import RequestFiled

router = APIRouter(prefix=service.REQUESTS_PATH, tags=["requests"])
# Called by the worker only (system identity); the gateway does not route `/internal` here.
internal_router = APIRouter(prefix="/internal/requests", tags=["internal"])

RequestIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The request's id")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description=(
            "Retrying with the same key and body returns the first response, with no second effect."
        ),
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "Not allowed in the current state (`allowed_actions` lists what is)",
    }
}


def _write_response(outcome: service.Outcome, *, location: str | None = None) -> JSONResponse:
    return outcome.to_response(location=location)


@router.post(
    "",
    status_code=201,
    response_model=RequestFiled,
    responses=PROBLEM_RESPONSES,
    summary="File a request",
)
async def file_request(
    body: RequestCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """File a request. A partner files for its own team (`team` may be omitted); staff must name
    the team. Returns 201 with `Location`; honours `Idempotency-Key`."""
    outcome = await service.create_request(
        session,
        caller=caller,
        data=body,
        task_queue=runtime.settings.task_queue,
        idempotency_key=idempotency_key,
    )
    return _write_response(outcome, location=service.request_path(int(outcome.body["id"])))


@router.get("", response_model=RequestPage, responses=PROBLEM_RESPONSES, summary="List requests")
async def list_requests(
    session: SessionDep,
    caller: CurrentCaller,
    filters: Annotated[search.SearchFilters, list_filters],
    sort: Annotated[
        search.Sort | None,
        Query(
            description="`-` is descending; default newest first. `due`: SLA deadline, none last"
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RequestPage:
    """Requests matching every given filter, newest first unless `sort` says otherwise, one page
    at a time (pass `next_cursor` back as `cursor`, with the same filters and sort). A partner
    only ever sees its own team's requests. `breached` and `due_before` read the SLA times the
    request's workflow records; `q` searches title and description (full text); `older_than`
    is the time since filing. Every filter and sort order is served by an index."""
    return await search.list_requests(
        session, caller=caller, filters=filters, sort=sort, cursor=cursor, limit=limit
    )


@router.get(
    "/{request_id}",
    response_model=RequestRead,
    responses=PROBLEM_RESPONSES,
    summary="Read a request",
)
async def read_request(
    request_id: RequestIdPath, session: SessionDep, caller: CurrentCaller, response: Response
) -> RequestRead:
    """One request; 404 if it does not exist or belongs to another team (for a partner).
    `ETag` is its version, for `If-Match` on PATCH."""
    request = await service.get_request(session, caller=caller, request_id=request_id)
    response.headers["ETag"] = f'"{request.version}"'
    return service.to_read(request)


@router.post(
    "/{request_id}/transitions",
    response_model=RequestRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Move a request through its life",
)
async def transition_request(
    request_id: RequestIdPath,
    body: TransitionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Apply an action: triage, start, request_info, provide_info, resolve, reopen, close, reject
    (needs `reason`) or mark_duplicate (needs `duplicate_of`). 409 if the state does not allow it
    (the problem lists the caller's `allowed_actions`), or if another change won a race; 403 if the
    caller's role may never take the action. Returns the updated request."""
    outcome = await service.transition_request(
        session,
        caller=caller,
        request_id=request_id,
        data=body,
        task_queue=runtime.settings.task_queue,
        idempotency_key=idempotency_key,
    )
    return _write_response(outcome)


@router.get(
    "/{request_id}/events",
    response_model=RequestEventPage,
    responses=PROBLEM_RESPONSES,
    summary="A request's audit trail",
)
async def list_request_events(
    request_id: RequestIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RequestEventPage:
    """Every change of a request (created, each transition), oldest first, one page at a time."""
    return await service.list_events(
        session, caller=caller, request_id=request_id, cursor=cursor, limit=limit
    )


@router.get(
    "/{request_id}/sla",
    response_model=RequestSlaRead,
    responses=PROBLEM_RESPONSES,
    summary="A request's SLA clocks",
)
async def read_request_sla(
    request_id: RequestIdPath, session: SessionDep, caller: CurrentCaller, runtime: RuntimeDep
) -> RequestSlaRead:
    """Each SLA clock (first response, resolution) computed now by the request's workflow: state
    (running, paused, stopped, breached; pending before the workflow has a policy), target,
    elapsed and remaining business time, deadline, breach and warnings sent. Same visibility as
    the request; 503 if Temporal cannot answer now."""
    return await service.get_sla(
        session, caller=caller, request_id=request_id, temporal=runtime.temporal
    )


@internal_router.put(
    "/{request_id}/sla",
    status_code=204,
    responses=PROBLEM_RESPONSES,
    summary="Record a request's SLA times (worker only)",
)
async def record_request_sla(
    request_id: RequestIdPath, body: SlaRecordUpdate, session: SessionDep, caller: CurrentCaller
) -> Response:
    """Store the SLA deadline(s) and first breach the request's workflow computed. System role
    only (403 otherwise); 404 for an unknown request. Does not change the request's version."""
    await service.record_sla(session, caller=caller, request_id=request_id, data=body)
    return Response(status_code=204)
