"""Use cases of the intake service: file, list, read and transition requests, read their events.

Every function is keyword-only, takes the request's AsyncSession and the verified caller, and raises
DomainErrors. A change, its `request_event` row, its outbox row (the workflow signal) and, with an
`Idempotency-Key`, the stored response commit in ONE transaction: no dual writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError, RPCStatusCode

from services.common.db import utcnow
from services.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from services.common.idempotency import Outcome as Outcome  # re-exported for the api modules
from services.common.idempotency import fingerprint, run_idempotent
from services.common.identity import Identity, Role
from services.common.logging import current_request_id
from services.common.outbox import enqueue_signal
from services.common.pagination import decode_int_cursor, encode_cursor
from services.common.temporal import TemporalConnector
from services.intake.domain import (
    Action,
    EventKind,
    Priority,
    RequestStatus,
    RequestType,
    Resolution,
    field_error,
    plan_transition,
)
from services.intake.mo_suggestions.triggers import enqueue_mo_matching, text_changed
from services.intake.models import IdempotencyKey, OutboxEvent, Request, RequestEvent, RequestTag
from services.intake.schemas import (
    MAX_ID,
    ImpactRead,
    RequestCreate,
    RequestEventPage,
    RequestEventRead,
    RequestPage,
    RequestRead,
    RequestSlaRead,
    SlaClockRead,
    SlaRecordUpdate,
    TransitionCreate,
)
from services.intake.search.duplicates import similar_on_filing
from services.intake.triage.filing import triage_on_filing
from workflows.contracts import (
    REQUEST_EVENT_SIGNAL,
    REQUEST_LIFECYCLE_WORKFLOW,
    REQUEST_SLA_QUERY,
    RequestEventSignal,
    RequestLifecycleInput,
    SlaReport,
    request_workflow_id,
)

REQUESTS_PATH = "/api/v1/requests"
MAX_DUPLICATE_CHAIN = 100
SLA_CLOCK_NAMES = ("first_response", "resolution")
# A query needs a worker to answer; don't hold the HTTP call longer than this.
SLA_QUERY_TIMEOUT = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class RequestFilters:
    """Filters of `GET /requests`; every one is served by an index."""

    statuses: Sequence[RequestStatus] = ()
    request_type: RequestType | None = None
    team: str | None = None
    priorities: Sequence[Priority] = ()
    assignee: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tag: str | None = None
    breached: bool | None = None
    due_before: datetime | None = None


def request_path(request_id: int) -> str:
    """The URL path of one request (the `Location` of a filed request)."""
    return f"{REQUESTS_PATH}/{request_id}"


def to_read(request: Request) -> RequestRead:
    """The API view of a request row."""
    impact = None
    if request.impact_currency is not None:
        impact = ImpactRead(
            accounts_affected=request.impact_accounts_affected or 0,
            money_at_risk_per_week=request.impact_money_at_risk_per_week or 0,
            currency=request.impact_currency,
        )
    return RequestRead.model_validate(
        {
            **{
                name: getattr(request, name)
                for name in RequestRead.model_fields
                if name not in ("impact", "tags")
            },
            "impact": impact,
            "tags": request.tags,
        }
    )


async def create_request(
    session: AsyncSession,
    *,
    caller: Identity,
    data: RequestCreate,
    task_queue: str,
    idempotency_key: str | None = None,
) -> Outcome:
    """File a request for the caller's team (staff name the team); starts its lifecycle workflow."""
    team = _filing_team(caller, data.team)

    async def effect() -> tuple[int, dict[str, Any]]:
        now = utcnow()
        request = Request(
            team=team,
            request_type=data.request_type.value,
            title=data.title,
            description=data.description,
            priority=data.priority.value,
            status=RequestStatus.NEW.value,
            due_at=data.due_at,
            marketplace=data.marketplace,
            impact_accounts_affected=data.impact.accounts_affected if data.impact else None,
            impact_money_at_risk_per_week=data.impact.money_at_risk_per_week
            if data.impact
            else None,
            impact_currency=data.impact.currency if data.impact else None,
            external_refs=list(data.external_refs),
            requested_by=caller.subject,
            version=1,
            created_at=now,
            updated_at=now,
            tag_rows=[RequestTag(tag=tag) for tag in sorted(data.tags)],
        )
        triage = await triage_on_filing(session, request=request, data=data)
        session.add(request)
        await session.flush()
        _record_event(
            session,
            request=request,
            caller=caller,
            kind=EventKind.CREATED,
            action=None,
            from_status=None,
            data={"request_type": request.request_type, "priority": request.priority, **triage},
            task_queue=task_queue,
            occurred_at=now,
        )
        body = to_read(request).model_dump(mode="json")
        # Additive field: open requests of the team that look like this one (search/duplicates).
        body["similar"] = await similar_on_filing(session, request=request)
        return 201, body

    return await _idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint("POST", REQUESTS_PATH, data.model_dump(mode="json")),
        effect=effect,
    )


async def get_request(session: AsyncSession, *, caller: Identity, request_id: int) -> Request:
    """A request the caller may see; 404 if it is missing or another team's (for a partner)."""
    request = await session.get(Request, request_id)
    if request is None or not caller.can_see_team(request.team):
        raise NotFound(f"Request {request_id} was not found.")
    return request


async def list_requests(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: RequestFilters,
    cursor: str | None,
    limit: int,
) -> RequestPage:
    """Requests matching `filters`, newest first; a partner sees only its own team's."""
    query = filtered_query(caller=caller, filters=filters)
    if query is None:
        return RequestPage(items=[], next_cursor=None)
    if cursor is not None:
        query = query.where(Request.id < _cursor_int(cursor, "id"))
    rows = list(
        (await session.execute(query.order_by(Request.id.desc()).limit(limit + 1))).scalars()
    )
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return RequestPage(items=[to_read(row) for row in rows[:limit]], next_cursor=next_cursor)


def filtered_query(*, caller: Identity, filters: RequestFilters) -> Select[Request] | None:
    """`SELECT request` narrowed by `filters` and the caller's visibility, unordered; None when
    the caller can see nothing (a partner asking for another team)."""
    team = filters.team
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return None
        team = caller.team
    query = select(Request)
    if team is not None:
        query = query.where(Request.team == team)
    if filters.statuses:
        query = query.where(Request.status.in_([s.value for s in filters.statuses]))
    if filters.request_type is not None:
        query = query.where(Request.request_type == filters.request_type.value)
    if filters.priorities:
        query = query.where(Request.priority.in_([p.value for p in filters.priorities]))
    if filters.assignee is not None:
        query = query.where(Request.assignee == filters.assignee)
    if filters.created_after is not None:
        query = query.where(Request.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Request.created_at < filters.created_before)
    if filters.tag is not None:
        query = query.where(
            exists().where(RequestTag.request_id == Request.id, RequestTag.tag == filters.tag)
        )
    if filters.breached is not None:
        query = query.where(
            Request.breached_at.is_not(None) if filters.breached else Request.breached_at.is_(None)
        )
    if filters.due_before is not None:
        query = query.where(Request.sla_due_at < filters.due_before)
    return query


async def list_events(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    cursor: str | None,
    limit: int,
) -> RequestEventPage:
    """The changes of a request, oldest first (same visibility as the request)."""
    await get_request(session, caller=caller, request_id=request_id)
    query = select(RequestEvent).where(RequestEvent.request_id == request_id)
    if cursor is not None:
        query = query.where(RequestEvent.request_version > _cursor_int(cursor, "v"))
    query = query.order_by(RequestEvent.request_version).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    next_cursor = (
        encode_cursor({"v": rows[limit - 1].request_version}) if len(rows) > limit else None
    )
    return RequestEventPage(
        items=[RequestEventRead.model_validate(row) for row in rows[:limit]],
        next_cursor=next_cursor,
    )


async def transition_request(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    data: TransitionCreate,
    task_queue: str,
    idempotency_key: str | None = None,
) -> Outcome:
    """Apply one action of the state machine; a concurrent change makes the loser a 409."""

    async def effect() -> tuple[int, dict[str, Any]]:
        request = await get_request(session, caller=caller, request_id=request_id)
        current = RequestStatus(request.status)
        transition = plan_transition(
            status=current,
            action=data.action,
            role=caller.role,
            reason=data.reason,
            duplicate_of=data.duplicate_of,
        )
        if data.duplicate_of is not None:
            await _check_duplicate_target(session, request=request, duplicate_of=data.duplicate_of)
        now = utcnow()
        values: dict[str, Any] = {
            "status": transition.target.value,
            "version": request.version + 1,
            "updated_at": now,
        }
        if transition.resolution is not None:
            values.update(resolution=transition.resolution.value, closed_at=now)
        if transition.resolution is Resolution.DUPLICATE:
            values["duplicate_of"] = data.duplicate_of
        # Compare-and-set on the version: of two concurrent transitions only one can match.
        result = await session.execute(
            update(Request)
            .where(Request.id == request.id, Request.version == request.version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            raise Conflict(
                f"Request {request_id} changed meanwhile; reload it and retry.",
                current_version=request.version,
            )
        await session.refresh(request)
        _record_event(
            session,
            request=request,
            caller=caller,
            kind=EventKind.TRANSITIONED,
            action=data.action,
            from_status=current,
            data=data.model_dump(exclude={"action"}, exclude_none=True),
            task_queue=task_queue,
            occurred_at=now,
        )
        return 200, to_read(request).model_dump(mode="json")

    return await _idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{request_path(request_id)}/transitions", data.model_dump(mode="json")
        ),
        effect=effect,
    )


async def record_sla(
    session: AsyncSession, *, caller: Identity, request_id: int, data: SlaRecordUpdate
) -> None:
    """Store the SLA columns the request's workflow computed (system only; no version bump).

    These are derived values, not a change of the request: they neither bump `version` (which
    would make a partner's concurrent transition lose its compare-and-set) nor emit an event.
    """
    if caller.role is not Role.SYSTEM:
        raise Forbidden("Only the request's workflow (the system role) records SLA times.")
    result = await session.execute(
        update(Request)
        .where(Request.id == request_id)
        .values(**data.model_dump())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise NotFound(f"Request {request_id} was not found.")
    await session.commit()


async def get_sla(
    session: AsyncSession, *, caller: Identity, request_id: int, temporal: TemporalConnector
) -> RequestSlaRead:
    """The request's SLA clocks, computed now by its workflow (same visibility as the request).

    Before the workflow exists (its first event still waits in the outbox) the clocks are
    `pending`; 503 if Temporal, or a worker to answer the query, cannot be reached.
    """
    request = await get_request(session, caller=caller, request_id=request_id)
    try:
        client = await temporal.client()
    except Exception as exc:
        raise ServiceUnavailable(
            "The SLA clocks cannot be computed now: Temporal is unreachable. Retry shortly."
        ) from exc
    handle = client.get_workflow_handle(request_workflow_id(request.id))
    try:
        report = await handle.query(
            REQUEST_SLA_QUERY, result_type=SlaReport, rpc_timeout=SLA_QUERY_TIMEOUT
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return RequestSlaRead(
                request_id=request.id,
                computed_at=utcnow(),
                clocks=[SlaClockRead(name=name, state="pending") for name in SLA_CLOCK_NAMES],
            )
        raise ServiceUnavailable(
            "The SLA clocks cannot be computed now: the request's workflow did not answer "
            f"({exc.status.name}). Retry shortly."
        ) from exc
    except Exception as exc:
        raise ServiceUnavailable(
            "The SLA clocks cannot be computed now: the request's workflow did not answer. "
            "Retry shortly."
        ) from exc
    return RequestSlaRead.model_validate(report, from_attributes=True)


def _filing_team(caller: Identity, team: str | None) -> str:
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            raise Forbidden("A partner files requests for its own team only.")
        return caller.team
    if not caller.is_staff:
        raise Forbidden(f"The role {caller.role.value} may not file requests.")
    if team is None:
        raise field_error(
            "team", "Staff must name the team a request is filed for.", code="missing"
        )
    return team


async def _check_duplicate_target(
    session: AsyncSession, *, request: Request, duplicate_of: int
) -> None:
    def refuse(message: str) -> ValidationFailed:
        return field_error("duplicate_of", message, code="invalid")

    if duplicate_of == request.id:
        raise refuse("A request cannot be a duplicate of itself.")
    target = await session.get(Request, duplicate_of)
    # Another team's request is reported exactly like a missing one: existence is not revealed.
    if target is None or target.team != request.team:
        raise refuse(f"duplicate_of must name an existing request of team {request.team}.")
    hops = 0
    while target.resolution == Resolution.DUPLICATE.value and target.duplicate_of is not None:
        if target.duplicate_of == request.id or hops >= MAX_DUPLICATE_CHAIN:
            raise refuse(f"Request {duplicate_of} is (through duplicates) a duplicate of this one.")
        following = await session.get(Request, target.duplicate_of)
        if following is None:
            break
        target, hops = following, hops + 1


def _record_event(
    session: AsyncSession,
    *,
    request: Request,
    caller: Identity,
    kind: EventKind,
    action: Action | None,
    from_status: RequestStatus | None,
    data: dict[str, Any],
    task_queue: str,
    occurred_at: datetime,
) -> RequestEvent:
    """Add the event row and its workflow signal (outbox) to the session's transaction."""
    event = RequestEvent(
        id=str(uuid.uuid4()),
        request_id=request.id,
        request_version=request.version,
        kind=kind.value,
        action=action.value if action else None,
        from_status=from_status.value if from_status else None,
        to_status=request.status,
        actor=caller.subject,
        actor_role=caller.role.value,
        data=data,
        occurred_at=occurred_at,
    )
    session.add(event)
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=request_workflow_id(request.id),
        workflow_type=REQUEST_LIFECYCLE_WORKFLOW,
        task_queue=task_queue,
        start_arg=RequestLifecycleInput(
            request_id=request.id,
            team=request.team,
            request_type=request.request_type,
            priority=request.priority,
            status=request.status,
            created_at=request.created_at,
        ),
        signal_name=REQUEST_EVENT_SIGNAL,
        signal_arg=RequestEventSignal(
            event_id=event.id,
            request_id=request.id,
            kind=event.kind,
            action=event.action,
            from_status=event.from_status,
            to_status=event.to_status,
            priority=request.priority,
            actor=caller.subject,
            occurred_at=occurred_at,
            trace_request_id=current_request_id(),
            version=request.version,
        ),
        event_id=event.id,
    )
    # Filed, or title/description changed: the worker re-embeds it and recomputes MO suggestions.
    if text_changed(kind=event.kind, data=data):
        enqueue_mo_matching(
            session, request_id=request.id, task_queue=task_queue, reason=event.kind
        )
    return event


async def _idempotent(
    session: AsyncSession,
    *,
    caller: Identity,
    key: str | None,
    request_fingerprint: str,
    effect: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> Outcome:
    """Run `effect` and commit, honouring the caller's `Idempotency-Key` (see run_idempotent)."""
    return await run_idempotent(
        session,
        IdempotencyKey,
        subject=caller.subject,
        key=key,
        request_fingerprint=request_fingerprint,
        effect=effect,
    )


def _cursor_int(cursor: str, name: str) -> int:
    return decode_int_cursor(cursor, name, maximum=MAX_ID)
