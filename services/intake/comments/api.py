"""HTTP routes of comments (`/api/v1/requests/{id}/comments...`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.intake.api import IdempotencyKeyHeader
from services.intake.comments import service
from services.intake.comments.schemas import (
    CommentCreate,
    CommentPage,
    CommentRead,
    CommentRevisionList,
    CommentRevisionRead,
    CommentUpdate,
)
from services.intake.schemas import MAX_ID
from services.intake.service import REQUESTS_PATH
from services.intake.triage.api import IfMatchHeader
from services.intake.triage.changes import etag

router = APIRouter(prefix=REQUESTS_PATH, tags=["comments"])

RequestIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The request's id")]
CommentIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The comment's id")]
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    409: {"model": Problem, "description": "The question or answer does not fit the state"},
}


@router.post(
    "/{request_id}/comments",
    status_code=201,
    response_model=CommentRead,
    responses=WRITE_RESPONSES,
    summary="Comment on a request",
)
async def create_comment(
    request_id: RequestIdPath,
    body: CommentCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add a markdown comment: `public` (the requesting team sees it) or `internal` (staff only;
    403 for partners). The first staff public comment is the request's first response (it stops
    the first-response SLA clock). A staff public comment with `asks_requester: true` moves the
    request to waiting_on_requester (409 unless in progress); the requester's public comment then
    moves it back to in_progress. Honours `Idempotency-Key`."""
    outcome = await service.create_comment(
        session,
        caller=caller,
        request_id=request_id,
        data=body,
        task_queue=runtime.settings.task_queue,
        idempotency_key=idempotency_key,
    )
    headers = {"Location": f"{service.comments_path(request_id)}/{outcome.body['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.get(
    "/{request_id}/comments",
    response_model=CommentPage,
    responses=PROBLEM_RESPONSES,
    summary="A request's comments",
)
async def list_comments(
    request_id: RequestIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CommentPage:
    """Comments oldest first, one page at a time. Partners see public comments only: internal
    ones are not returned, counted or hinted at."""
    return await service.list_comments(
        session, caller=caller, request_id=request_id, cursor=cursor, limit=limit
    )


@router.patch(
    "/{request_id}/comments/{comment_id}",
    response_model=CommentRead,
    responses={
        **PROBLEM_RESPONSES,
        412: {"model": Problem, "description": "`If-Match` is not the comment's version"},
    },
    summary="Edit a comment (its author)",
)
async def update_comment(
    request_id: RequestIdPath,
    comment_id: CommentIdPath,
    body: CommentUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    response: Response,
    if_match: IfMatchHeader = None,
) -> CommentRead:
    """Replace the body (author only, 403 otherwise); the previous body stays in the comment's
    revisions. Optional `If-Match` with the comment's version (412 if stale)."""
    comment = await service.update_comment(
        session,
        caller=caller,
        request_id=request_id,
        comment_id=comment_id,
        data=body,
        if_match=if_match,
    )
    response.headers["ETag"] = etag(comment.version)
    return CommentRead.model_validate(comment)


@router.get(
    "/{request_id}/comments/{comment_id}/revisions",
    response_model=CommentRevisionList,
    responses=PROBLEM_RESPONSES,
    summary="A comment's edit history",
)
async def list_comment_revisions(
    request_id: RequestIdPath, comment_id: CommentIdPath, session: SessionDep, caller: CurrentCaller
) -> CommentRevisionList:
    """Every body the comment had, oldest first (revision n = version n); same visibility as the
    comment."""
    rows = await service.list_revisions(
        session, caller=caller, request_id=request_id, comment_id=comment_id
    )
    return CommentRevisionList(items=[CommentRevisionRead.model_validate(row) for row in rows])
