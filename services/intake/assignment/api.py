"""HTTP routes of queues (`/api/v1/request-queues`) and auto-assignment of a request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.intake.assignment import service
from services.intake.assignment.schemas import AutoAssign, QueueList, QueueMemberRead, QueueRead
from services.intake.schemas import MAX_ID, PRINTABLE_PATTERN, RequestRead
from services.intake.service import REQUESTS_PATH, to_read
from services.intake.triage.api import IfMatchHeader
from services.intake.triage.changes import etag
from services.intake.triage.schemas import QUEUE_PATTERN

queues_router = APIRouter(prefix=service.QUEUES_PATH, tags=["queues"])
assignment_router = APIRouter(prefix=REQUESTS_PATH, tags=["requests"])

QueuePath = Annotated[str, Path(pattern=QUEUE_PATTERN, description="The queue's name")]
MemberPath = Annotated[
    str,
    Path(min_length=1, max_length=200, pattern=PRINTABLE_PATTERN, description="A key subject"),
]
ASSIGN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    409: {"model": Problem, "description": "The queue has no members, or the request is closed"},
    412: {"model": Problem, "description": "`If-Match` is not the current version"},
}


@queues_router.get("", response_model=QueueList, responses=PROBLEM_RESPONSES, summary="Queues")
async def list_queues(session: SessionDep, caller: CurrentCaller) -> QueueList:
    """Every queue with members, each member with its weighted open load (staff only)."""
    return QueueList(items=await service.list_queues(session, caller=caller))


@queues_router.get(
    "/{queue}", response_model=QueueRead, responses=PROBLEM_RESPONSES, summary="One queue"
)
async def read_queue(queue: QueuePath, session: SessionDep, caller: CurrentCaller) -> QueueRead:
    """A queue's members, least loaded first: load is their open requests weighted by priority
    (P0=8, P1=4, P2=2, P3=1). Staff only; 404 for a queue with no members."""
    return await service.get_queue(session, caller=caller, queue=queue)


@queues_router.put(
    "/{queue}/members/{member}",
    response_model=QueueMemberRead,
    responses={
        **PROBLEM_RESPONSES,
        201: {"model": QueueMemberRead, "description": "Added (200: already a member)"},
    },
    summary="Add a member to a queue (admin)",
)
async def add_queue_member(
    queue: QueuePath,
    member: MemberPath,
    session: SessionDep,
    caller: CurrentCaller,
    response: Response,
) -> QueueMemberRead:
    """Make `member` (a key subject) take work from `queue`: 201 when added, 200 if already a
    member. Admin only."""
    row, created = await service.add_member(session, caller=caller, queue=queue, member=member)
    load, open_requests = (await service.loads(session, members=[member]))[member]
    response.status_code = 201 if created else 200
    return QueueMemberRead(
        member=row.member,
        added_by=row.added_by,
        added_at=row.added_at,
        load=load,
        open_requests=open_requests,
    )


@queues_router.delete(
    "/{queue}/members/{member}",
    status_code=204,
    responses=PROBLEM_RESPONSES,
    summary="Remove a member from a queue (admin)",
)
async def remove_queue_member(
    queue: QueuePath, member: MemberPath, session: SessionDep, caller: CurrentCaller
) -> Response:
    """Stop `member` taking work from `queue` (their requests stay assigned). Admin only; 404 if
    not a member."""
    await service.remove_member(session, caller=caller, queue=queue, member=member)
    return Response(status_code=204)


@assignment_router.post(
    "/{request_id}/auto-assign",
    response_model=RequestRead,
    responses=ASSIGN_RESPONSES,
    summary="Assign to the least-loaded member of a queue",
)
async def auto_assign_request(
    request_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The request's id")],
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    response: Response,
    body: AutoAssign | None = None,
    if_match: IfMatchHeader = None,
) -> RequestRead:
    """Pick the member of `queue` (default: the request's queue) with the least open work,
    weighted P0=8, P1=4, P2=2, P3=1 (ties: the name sorting first), and assign the request to
    them in that queue. Staff only. The `assigned` event keeps the loads seen. A repeat that picks
    the same member changes nothing."""
    request = await service.auto_assign(
        session,
        caller=caller,
        request_id=request_id,
        queue=body.queue if body else None,
        if_match=if_match,
        task_queue=runtime.settings.task_queue,
    )
    response.headers["ETag"] = etag(request.version)
    return to_read(request)
