"""HTTP routes of triage: request type configs (`/api/v1/request-types`), PATCH of a request with
`If-Match`, and the score-ordered queue view (`GET /api/v1/requests/queue`).

`requests_router` must be included BEFORE the main requests router: `/api/v1/requests/queue` would
otherwise be taken for `/api/v1/requests/{request_id}` (and refused as a bad id).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.intake.domain import Priority, RequestType
from services.intake.schemas import MAX_ID, PRINTABLE_PATTERN, RequestPage, RequestRead
from services.intake.service import REQUESTS_PATH, to_read
from services.intake.triage import service
from services.intake.triage.changes import etag
from services.intake.triage.schemas import (
    QUEUE_PATTERN,
    RequestTypeConfigList,
    RequestTypeConfigRead,
    RequestTypeConfigUpdate,
    RequestUpdate,
)

types_router = APIRouter(prefix=service.REQUEST_TYPES_PATH, tags=["request types"])
requests_router = APIRouter(prefix=REQUESTS_PATH, tags=["requests"])

RequestIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The request's id")]
IfMatchHeader = Annotated[
    str | None,
    Header(alias="If-Match", description='The ETag you read, `"<version>"`'),
]
PATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    409: {"model": Problem, "description": "The request is closed"},
    412: {"model": Problem, "description": "`If-Match` is not the current version"},
    428: {"model": Problem, "description": "`If-Match` is missing"},
}


@types_router.get(
    "", response_model=RequestTypeConfigList, responses=PROBLEM_RESPONSES, summary="Request types"
)
async def list_request_types(session: SessionDep, caller: CurrentCaller) -> RequestTypeConfigList:
    """Every request type and the extra `details` fields it takes (any caller)."""
    rows = await service.list_types(session)
    return RequestTypeConfigList(items=[service.type_to_read(row) for row in rows])


@types_router.get(
    "/{request_type}",
    response_model=RequestTypeConfigRead,
    responses=PROBLEM_RESPONSES,
    summary="One request type",
)
async def read_request_type(
    request_type: RequestType, session: SessionDep, caller: CurrentCaller, response: Response
) -> RequestTypeConfigRead:
    """A type's extra fields: name, kind (string, integer, number, boolean, date), required.
    `ETag` is its version, for `If-Match` on PUT."""
    row = await service.get_type(session, request_type=request_type)
    response.headers["ETag"] = etag(row.version)
    return service.type_to_read(row)


@types_router.put(
    "/{request_type}",
    response_model=RequestTypeConfigRead,
    responses={
        **PROBLEM_RESPONSES,
        412: {"model": Problem, "description": "`If-Match` is not the current version"},
        428: {"model": Problem, "description": "`If-Match` is sent without a value"},
    },
    summary="Configure a request type (admin)",
)
async def put_request_type(
    request_type: RequestType,
    body: RequestTypeConfigUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    response: Response,
    if_match: IfMatchHeader = None,
) -> RequestTypeConfigRead:
    """Replace the type's extra fields (admin only). Filing and PATCH validate `details` against
    them from now on; requests already filed are not re-checked. Optional `If-Match` (412 when
    stale)."""
    row = await service.put_type(
        session, caller=caller, request_type=request_type, data=body, if_match=if_match
    )
    response.headers["ETag"] = etag(row.version)
    return service.type_to_read(row)


@requests_router.get(
    "/queue",
    response_model=RequestPage,
    responses=PROBLEM_RESPONSES,
    summary="The work queue, by priority score then SLA due time",
)
async def list_request_queue(
    session: SessionDep,
    caller: CurrentCaller,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN, description="One queue")] = None,
    unqueued: Annotated[
        bool, Query(description="Only requests in no queue (ignored with `queue`)")
    ] = False,
    team: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN)] = None,
    priority: Annotated[list[Priority] | None, Query(description="Repeatable")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RequestPage:
    """Open requests (new, triaged, in progress, waiting on requester) ordered by
    `priority_score` (highest first), then `sla_due_at` (soonest first; none last), then id.
    Staff only (403 for partners). One page at a time: pass `next_cursor` back as `cursor`."""
    return await service.list_queue(
        session,
        caller=caller,
        queue=queue,
        unqueued=unqueued,
        team=team,
        priorities=priority or (),
        cursor=cursor,
        limit=limit,
    )


@requests_router.patch(
    "/{request_id}",
    response_model=RequestRead,
    responses=PATCH_RESPONSES,
    summary="Edit a request (If-Match required)",
)
async def patch_request(
    request_id: RequestIdPath,
    body: RequestUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> RequestRead:
    """Change editable fields. Needs `If-Match: "<version>"` from GET's `ETag` (428 without it,
    412 if another change came first). Partners (own team) edit the description fields; staff
    also `priority` (with `priority_reason`, kept in the event with the proposed priority),
    `assignee` and `queue`. Every change bumps `version` and writes one event (`updated`, or
    `assigned` when the assignee or queue changed); impact, urgency and due date re-score the
    request. Returns the request with its new `ETag`."""
    request = await service.update_request(
        session,
        caller=caller,
        request_id=request_id,
        data=body,
        if_match=if_match,
        task_queue=runtime.settings.task_queue,
    )
    response.headers["ETag"] = etag(request.version)
    return to_read(request)
