"""Use cases of assignment: queue membership (admin), loads, auto-assignment of a request."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from services.common.identity import Identity, Role
from services.intake.assignment.domain import PRIORITY_WEIGHTS, least_loaded
from services.intake.assignment.models import QueueMember
from services.intake.assignment.schemas import QueueMemberRead, QueueRead
from services.intake.domain import EventKind, Priority, field_error
from services.intake.models import Request
from services.intake.service import get_request
from services.intake.triage.changes import apply_change, expected_version
from services.intake.triage.service import OPEN_STATUSES

QUEUES_PATH = "/api/v1/request-queues"


def _require_admin(caller: Identity) -> None:
    if caller.role is not Role.ADMIN:
        raise Forbidden("Only an admin manages queue membership.")


def _require_staff(caller: Identity) -> None:
    if not caller.is_staff:
        raise Forbidden("Queues and assignment are for staff.")


async def loads(session: AsyncSession, *, members: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each member's (weighted load, open request count) over every open request assigned."""
    if not members:
        return {}
    query = (
        select(Request.assignee, Request.priority, func.count())
        .where(Request.assignee.in_(list(members)), Request.status.in_(OPEN_STATUSES))
        .group_by(Request.assignee, Request.priority)
    )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for assignee, priority, count in (await session.execute(query)).all():
        if assignee is None:
            continue
        totals[assignee][0] += PRIORITY_WEIGHTS[Priority(priority)] * count
        totals[assignee][1] += count
    return {member: (totals[member][0], totals[member][1]) for member in members}


async def get_queue(session: AsyncSession, *, caller: Identity, queue: str) -> QueueRead:
    """A queue's members with their loads, least loaded first (staff); 404 if it has none."""
    _require_staff(caller)
    rows = list(
        (
            await session.execute(
                select(QueueMember).where(QueueMember.queue == queue).order_by(QueueMember.member)
            )
        ).scalars()
    )
    if not rows:
        raise NotFound(f"Queue {queue} has no members.")
    return await _queue_read(session, queue, rows)


async def list_queues(session: AsyncSession, *, caller: Identity) -> list[QueueRead]:
    """Every queue with members (staff)."""
    _require_staff(caller)
    rows = list(
        (
            await session.execute(
                select(QueueMember).order_by(QueueMember.queue, QueueMember.member)
            )
        ).scalars()
    )
    by_queue: dict[str, list[QueueMember]] = defaultdict(list)
    for row in rows:
        by_queue[row.queue].append(row)
    return [await _queue_read(session, queue, members) for queue, members in by_queue.items()]


async def _queue_read(session: AsyncSession, queue: str, rows: list[QueueMember]) -> QueueRead:
    member_loads = await loads(session, members=[row.member for row in rows])
    members = [
        QueueMemberRead(
            member=row.member,
            added_by=row.added_by,
            added_at=row.added_at,
            load=member_loads[row.member][0],
            open_requests=member_loads[row.member][1],
        )
        for row in rows
    ]
    members.sort(key=lambda m: (m.load, m.member))
    return QueueRead(queue=queue, members=members)


async def add_member(
    session: AsyncSession, *, caller: Identity, queue: str, member: str
) -> tuple[QueueMember, bool]:
    """Add a member to a queue (admin); returns the row and whether it is new (idempotent)."""
    _require_admin(caller)
    row = await session.get(QueueMember, (queue, member))
    if row is not None:
        return row, False
    row = QueueMember(queue=queue, member=member, added_by=caller.subject, added_at=utcnow())
    session.add(row)
    await session.commit()
    return row, True


async def remove_member(
    session: AsyncSession, *, caller: Identity, queue: str, member: str
) -> None:
    """Remove a member from a queue (admin); 404 if not a member. Their requests stay assigned."""
    _require_admin(caller)
    row = await session.get(QueueMember, (queue, member))
    if row is None:
        raise NotFound(f"{member} is not a member of queue {queue}.")
    await session.delete(row)
    await session.commit()


async def auto_assign(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    queue: str | None,
    if_match: str | None,
    task_queue: str,
) -> Request:
    """Assign the request to the least-loaded member of `queue` (or of its own queue), staff only.

    The request moves into that queue too; an `assigned` event records who was picked and every
    member's load at that moment (the reassignment history). 422 without a queue, 409 if the queue
    has no members or the request is closed; `If-Match`, when given, must be current (412).
    """
    _require_staff(caller)
    request = await get_request(session, caller=caller, request_id=request_id)
    if if_match is not None and expected_version(if_match) != request.version:
        raise PreconditionFailed(
            f"Request {request_id} is no longer at the version you read; reload it.",
            current_version=request.version,
        )
    target = queue or request.queue
    if target is None:
        raise field_error(
            "queue", "The request is in no queue: name the queue to assign from.", code="missing"
        )
    if request.status not in OPEN_STATUSES:
        raise Conflict(f"Request {request_id} is {request.status}; only open work is assigned.")
    members = list(
        (
            await session.execute(select(QueueMember.member).where(QueueMember.queue == target))
        ).scalars()
    )
    member_loads = await loads(session, members=members)
    weights = {member: load for member, (load, _) in member_loads.items()}
    if request.assignee in weights:
        # Its own weight must not count against its current assignee when it is re-picked.
        weights[request.assignee] -= PRIORITY_WEIGHTS[Priority(request.priority)]
    chosen = least_loaded(members, weights)
    if chosen is None:
        raise Conflict(f"Queue {target} has no members to assign to.", queue=target)
    changes = {
        name: {"from": getattr(request, name), "to": value}
        for name, value in (("assignee", chosen), ("queue", target))
        if getattr(request, name) != value
    }
    if not changes:
        return request
    await apply_change(
        session,
        request=request,
        caller=caller,
        values={"assignee": chosen, "queue": target},
        kind=EventKind.ASSIGNED,
        data={"changes": changes, "auto": True, "loads": weights},
        task_queue=task_queue,
        now=utcnow(),
    )
    await session.commit()
    return request
