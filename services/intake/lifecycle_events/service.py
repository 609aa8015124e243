"""Read a request's events as lifecycle signals, for the workflow's catch-up before a breach.

The outbox may hold a request's signals back (Temporal down, a dispatcher backlog) while its SLA
timer fires; the workflow then reads the events it has not applied from here, the source of
truth, so a request triaged in time is not reported as breached.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import NotFound
from services.intake.lifecycle_events.schemas import LifecycleEventPage, LifecycleEventRead
from services.intake.models import Request, RequestEvent


async def list_lifecycle_events(
    session: AsyncSession, *, request_id: int, after_version: int, limit: int
) -> LifecycleEventPage:
    """The request's events with a version above `after_version`, oldest first, as signals.

    An event row does not store the priority; the signal carries the priority right after the
    change. It is rebuilt walking back from the request's priority: each event that changed the
    priority records `{"from", "to"}` in `data["changes"]`. Only events up to the version of the
    request row read here count, so a change committed meanwhile cannot skew the walk.
    """
    request = await session.get(Request, request_id)
    if request is None:
        raise NotFound(f"Request {request_id} was not found.")
    rows = list(
        (
            await session.execute(
                select(RequestEvent)
                .where(
                    RequestEvent.request_id == request_id,
                    RequestEvent.request_version > after_version,
                    RequestEvent.request_version <= request.version,
                )
                .order_by(RequestEvent.request_version.desc())
            )
        ).scalars()
    )
    # Newest first: the priority after each event, then undo the event's own change.
    priority = request.priority
    items: list[LifecycleEventRead] = []
    for row in rows:
        items.append(
            LifecycleEventRead(
                event_id=row.id,
                request_id=row.request_id,
                kind=row.kind,
                action=row.action,
                from_status=row.from_status,
                to_status=row.to_status,
                priority=priority,
                actor=row.actor,
                occurred_at=row.occurred_at,
                version=row.request_version,
            )
        )
        priority = _priority_before(row.data, priority)
    items.reverse()
    return LifecycleEventPage(items=items[:limit], has_more=len(items) > limit)


def _priority_before(data: Any, after: str) -> str:
    """The priority before an event whose `data` may record a priority change."""
    changes = data.get("changes") if isinstance(data, dict) else None
    change = changes.get("priority") if isinstance(changes, dict) else None
    if isinstance(change, dict) and isinstance(change.get("from"), str):
        return str(change["from"])
    return after
