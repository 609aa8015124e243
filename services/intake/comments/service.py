"""Use cases of comments: write, list, edit (history kept), and what a comment sets off.

A comment and its effects commit in one transaction: the first staff public comment writes a
`first_response` event (its outbox signal stops the first-response SLA clock); a question to the
requester performs `request_info`, the requester's answer `provide_info`.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Forbidden, NotFound, PreconditionFailed
from services.common.idempotency import fingerprint
from services.common.identity import Identity
from services.common.pagination import encode_cursor
from services.intake.comments.domain import Visibility, plan_comment, sees_internal
from services.intake.comments.models import RequestComment, RequestCommentRevision
from services.intake.comments.schemas import (
    CommentCreate,
    CommentPage,
    CommentRead,
    CommentUpdate,
)
from services.intake.domain import EventKind, RequestStatus
from services.intake.models import Request
from services.intake.service import (
    Outcome,
    _cursor_int,
    _idempotent,
    get_request,
    request_path,
)
from services.intake.triage.changes import apply_action, apply_change, expected_version


def comments_path(request_id: int) -> str:
    """The URL path of a request's comments."""
    return f"{request_path(request_id)}/comments"


async def create_comment(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    data: CommentCreate,
    task_queue: str,
    idempotency_key: str | None = None,
) -> Outcome:
    """Comment on a request the caller may see, with the comment's effects; honours
    `Idempotency-Key`."""

    async def effect() -> tuple[int, dict[str, Any]]:
        request = await get_request(session, caller=caller, request_id=request_id)
        effects = plan_comment(
            caller=caller,
            visibility=data.visibility,
            asks_requester=data.asks_requester,
            status=RequestStatus(request.status),
            first_response_at_known=request.first_response_at is not None,
        )
        now = utcnow()
        comment = RequestComment(
            request_id=request.id,
            visibility=data.visibility.value,
            body=data.body,
            author=caller.subject,
            author_role=caller.role.value,
            asks_requester=data.asks_requester,
            version=1,
            created_at=now,
            edited_at=None,
        )
        session.add(comment)
        await session.flush()
        session.add(
            RequestCommentRevision(
                comment_id=comment.id,
                revision=1,
                body=data.body,
                written_by=caller.subject,
                written_at=now,
            )
        )
        if effects.first_response:
            await apply_change(
                session,
                request=request,
                caller=caller,
                values={"first_response_at": now},
                kind=EventKind.FIRST_RESPONSE,
                data={"comment_id": comment.id},
                task_queue=task_queue,
                now=now,
            )
        if effects.action is not None:
            await apply_action(
                session,
                request=request,
                caller=caller,
                action=effects.action,
                data={"comment_id": comment.id},
                task_queue=task_queue,
                now=now,
            )
        elif data.visibility is Visibility.PUBLIC and not effects.first_response:
            # A public exchange is activity on the request (aging reads `updated_at`); it is not a
            # change of the request, so `version` stays. Internal notes leave no visible trace.
            await session.execute(
                update(Request)
                .where(Request.id == request.id)
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            )
        return 201, CommentRead.model_validate(comment).model_dump(mode="json")

    return await _idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", comments_path(request_id), data.model_dump(mode="json")
        ),
        effect=effect,
    )


async def list_comments(
    session: AsyncSession, *, caller: Identity, request_id: int, cursor: str | None, limit: int
) -> CommentPage:
    """A request's comments, oldest first; internal ones only for staff."""
    await get_request(session, caller=caller, request_id=request_id)
    query = select(RequestComment).where(RequestComment.request_id == request_id)
    if not sees_internal(caller):
        query = query.where(RequestComment.visibility == Visibility.PUBLIC.value)
    if cursor is not None:
        query = query.where(RequestComment.id > _cursor_int(cursor, "id"))
    rows = list(
        (await session.execute(query.order_by(RequestComment.id).limit(limit + 1))).scalars()
    )
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return CommentPage(
        items=[CommentRead.model_validate(row) for row in rows[:limit]], next_cursor=next_cursor
    )


async def get_comment(
    session: AsyncSession, *, caller: Identity, request_id: int, comment_id: int
) -> RequestComment:
    """A comment the caller may see; 404 if missing, on another request, or internal (partner)."""
    await get_request(session, caller=caller, request_id=request_id)
    comment = await session.get(RequestComment, comment_id)
    if (
        comment is None
        or comment.request_id != request_id
        or (comment.visibility == Visibility.INTERNAL.value and not sees_internal(caller))
    ):
        raise NotFound(f"Comment {comment_id} of request {request_id} was not found.")
    return comment


async def update_comment(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    comment_id: int,
    data: CommentUpdate,
    if_match: str | None,
) -> RequestComment:
    """Replace a comment's body (its author only); the old body stays as a revision.

    `If-Match`, when given, must be the comment's current version (412). Editing has no effect on
    the request (no first response, no transition).
    """
    comment = await get_comment(
        session, caller=caller, request_id=request_id, comment_id=comment_id
    )
    if comment.author != caller.subject:
        raise Forbidden("Only its author edits a comment.")
    if if_match is not None and expected_version(if_match) != comment.version:
        raise PreconditionFailed(
            f"Comment {comment_id} is at version {comment.version}; reload it.",
            current_version=comment.version,
        )
    if data.body == comment.body:
        return comment
    now = utcnow()
    # Compare-and-set on the comment's version: of two concurrent edits, the loser gets a 412.
    result = await session.execute(
        update(RequestComment)
        .where(RequestComment.id == comment.id, RequestComment.version == comment.version)
        .values(body=data.body, version=comment.version + 1, edited_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise PreconditionFailed(
            f"Comment {comment_id} changed meanwhile; reload it.", current_version=comment.version
        )
    session.add(
        RequestCommentRevision(
            comment_id=comment.id,
            revision=comment.version + 1,
            body=data.body,
            written_by=caller.subject,
            written_at=now,
        )
    )
    await session.flush()
    await session.refresh(comment)
    await session.commit()
    return comment


async def list_revisions(
    session: AsyncSession, *, caller: Identity, request_id: int, comment_id: int
) -> list[RequestCommentRevision]:
    """Every body a comment had, oldest first (same visibility as the comment)."""
    await get_comment(session, caller=caller, request_id=request_id, comment_id=comment_id)
    query = (
        select(RequestCommentRevision)
        .where(RequestCommentRevision.comment_id == comment_id)
        .order_by(RequestCommentRevision.revision)
    )
    return list((await session.execute(query)).scalars())
