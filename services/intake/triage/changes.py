"""How every K1 change is written: compare-and-set on the request version, its event and outbox
signal in the same transaction (services/intake/service.py's rule), and the ETag of a version.

Shared by PATCH, assignment and comments so that a change made by any of them bumps `version`,
writes one `request_event` and one `RequestEventSignal` for the lifecycle workflow.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import Conflict, DomainError, PreconditionFailed
from services.common.identity import Identity
from services.intake.domain import Action, EventKind, RequestStatus, plan_transition
from services.intake.models import Request
from services.intake.service import _record_event

_ETAG = re.compile(r'^(?:W/)?"(\d{1,10})"$')


class PreconditionRequired(DomainError):
    """428: the write needs `If-Match` with the version the caller read."""

    status, slug, title = 428, "precondition-required", "Precondition required"


def etag(version: int) -> str:
    """The ETag of a request version (`"<version>"`)."""
    return f'"{version}"'


def expected_version(if_match: str | None) -> int:
    """The version `If-Match` names; 428 if absent (or `*`), 412 if it is not one of our ETags."""
    if if_match is None or not if_match.strip() or if_match.strip() == "*":
        raise PreconditionRequired(
            'This write needs If-Match: "<version>" with the ETag of the request you read '
            "(GET returns it); a blind overwrite is refused."
        )
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise PreconditionFailed(f'If-Match {if_match!r} is not an ETag this API returned ("<n>").')
    return int(match.group(1))


async def apply_change(
    session: AsyncSession,
    *,
    request: Request,
    caller: Identity,
    values: dict[str, Any],
    kind: EventKind,
    data: dict[str, Any],
    task_queue: str,
    now: datetime,
    action: Action | None = None,
    from_status: RequestStatus | None = None,
    stale: DomainError | None = None,
) -> None:
    """Write `values` if the request is still at the version loaded, then its event and signal.

    A concurrent change makes the compare-and-set miss: `stale` is raised (409 by default), and the
    caller's transaction rolls back with it.
    """
    result = await session.execute(
        update(Request)
        .where(Request.id == request.id, Request.version == request.version)
        .values(**values, version=request.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise stale or Conflict(
            f"Request {request.id} changed meanwhile; reload it and retry.",
            current_version=request.version,
        )
    await session.refresh(request)
    _record_event(
        session,
        request=request,
        caller=caller,
        kind=kind,
        action=action,
        from_status=from_status if from_status is not None else RequestStatus(request.status),
        data=data,
        task_queue=task_queue,
        occurred_at=now,
    )


async def apply_action(
    session: AsyncSession,
    *,
    request: Request,
    caller: Identity,
    action: Action,
    data: dict[str, Any],
    task_queue: str,
    now: datetime,
) -> None:
    """Move the request through one state-machine action (request_info, provide_info) as a side
    effect of another write; refused exactly as `POST /transitions` would refuse it."""
    current = RequestStatus(request.status)
    transition = plan_transition(status=current, action=action, role=caller.role)
    await apply_change(
        session,
        request=request,
        caller=caller,
        values={"status": transition.target.value},
        kind=EventKind.TRANSITIONED,
        action=action,
        from_status=current,
        data=data,
        task_queue=task_queue,
        now=now,
    )
