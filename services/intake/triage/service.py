"""Use cases of triage: request type configs, scoring on filing, PATCH with ETags, the queue view.

Keyword-only functions taking the request's AsyncSession and the verified caller, raising
DomainErrors; writes commit here (one transaction per use case, as in services/intake/service.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.common.db import utcnow
from services.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from services.common.identity import Identity, Role
from services.common.pagination import decode_cursor, encode_cursor
from services.intake.domain import (
    EventKind,
    Priority,
    RequestStatus,
    RequestType,
    field_error,
)
from services.intake.models import Request, RequestTag
from services.intake.schemas import RequestPage
from services.intake.service import get_request, to_read
from services.intake.triage.changes import apply_change, expected_version
from services.intake.triage.domain import SCORED_FIELDS, check_details, editable_fields
from services.intake.triage.filing import field_specs
from services.intake.triage.models import RequestTypeConfig
from services.intake.triage.schemas import (
    FieldSpecRead,
    RequestTypeConfigRead,
    RequestTypeConfigUpdate,
    RequestUpdate,
)
from services.intake.triage.scoring import ScoreInput, Urgency, score_request

REQUEST_TYPES_PATH = "/api/v1/request-types"
OPEN_STATUSES = (
    RequestStatus.NEW.value,
    RequestStatus.TRIAGED.value,
    RequestStatus.IN_PROGRESS.value,
    RequestStatus.WAITING_ON_REQUESTER.value,
)
# Fields that may not be cleared with null (they always have a value).
NOT_NULLABLE = frozenset({"title", "description", "external_refs", "tags", "details", "priority"})


# --- request types ----------------------------------------------------------------------------


def type_to_read(row: RequestTypeConfig) -> RequestTypeConfigRead:
    """The API view of a type configuration."""
    return RequestTypeConfigRead(
        request_type=RequestType(row.request_type),
        fields=[FieldSpecRead.model_validate(spec) for spec in row.fields],
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


async def list_types(session: AsyncSession) -> list[RequestTypeConfig]:
    """Every type's configuration, by type name."""
    query = select(RequestTypeConfig).order_by(RequestTypeConfig.request_type)
    return list((await session.execute(query)).scalars())


async def get_type(session: AsyncSession, *, request_type: RequestType) -> RequestTypeConfig:
    """One type's configuration; 404 if it was never seeded."""
    row = await session.get(RequestTypeConfig, request_type.value)
    if row is None:
        raise NotFound(f"Request type {request_type.value} has no configuration.")
    return row


async def put_type(
    session: AsyncSession,
    *,
    caller: Identity,
    request_type: RequestType,
    data: RequestTypeConfigUpdate,
    if_match: str | None,
) -> RequestTypeConfig:
    """Replace a type's extra fields (admin only); `If-Match`, when given, must be current."""
    if caller.role is not Role.ADMIN:
        raise Forbidden("Only an admin configures request types.")
    row = await session.get(RequestTypeConfig, request_type.value, with_for_update=True)
    fields = [spec.model_dump(mode="json") for spec in data.fields]
    now = utcnow()
    if row is None:
        row = RequestTypeConfig(
            request_type=request_type.value,
            fields=fields,
            version=1,
            updated_at=now,
            updated_by=caller.subject,
        )
        session.add(row)
    else:
        if if_match is not None and expected_version(if_match) != row.version:
            raise PreconditionFailed(
                f"Request type {request_type.value} is at version {row.version}; reload it.",
                current_version=row.version,
            )
        row.fields, row.version = fields, row.version + 1
        row.updated_at, row.updated_by = now, caller.subject
    await session.commit()
    return row


# --- PATCH ------------------------------------------------------------------------------------


async def update_request(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    data: RequestUpdate,
    if_match: str | None,
    task_queue: str,
) -> Request:
    """Change editable fields under optimistic concurrency: one version, one event, one signal.

    428 without `If-Match`, 404 if not visible, 403 for a field the role may not edit, 409 on a
    closed request, 412 if `If-Match` is not the current version, 422 for bad values. A PATCH that
    changes nothing returns the request as is (no new version).
    """
    expected = expected_version(if_match)
    request = await get_request(session, caller=caller, request_id=request_id)
    given = set(data.model_fields_set) - {"priority_reason"}
    refused = sorted(given - editable_fields(caller.role))
    if refused:
        raise Forbidden(
            f"The role {caller.role.value} may not edit: {', '.join(refused)}.", fields=refused
        )
    if not given:
        raise ValidationFailed(
            "Nothing to change: give at least one editable field.",
            errors=[{"field": "body", "message": "no field to change", "code": "missing"}],
        )
    for name in sorted(given & NOT_NULLABLE):
        if getattr(data, name) is None:
            raise field_error(name, f"{name} cannot be null.", code="null")
    if "priority_reason" in data.model_fields_set and "priority" not in given:
        raise field_error(
            "priority_reason", "priority_reason goes with a change of priority.", code="unexpected"
        )
    if request.status == RequestStatus.CLOSED.value:
        raise Conflict(f"Request {request_id} is closed; it can no longer be edited.")
    if request.version != expected:
        raise _stale(request)

    now = utcnow()
    values, changes = _changed_values(request, data, given)
    if "details" in values:
        check_details(
            await field_specs(session, request_type=request.request_type), values["details"]
        )
    new_tags = values.pop("tags", None)
    if "priority" in values and not (data.priority_reason and data.priority_reason.strip()):
        raise field_error(
            "priority_reason", "A reason is required to change the priority.", code="missing"
        )
    if changes and given & SCORED_FIELDS:
        rescored = _rescore(request, values, now=now)
        for name in ("priority_score", "proposed_priority"):
            if rescored[name] != getattr(request, name):
                changes[name] = {"from": getattr(request, name), "to": rescored[name]}
                values[name] = rescored[name]
    if not changes:
        return request

    event: dict[str, Any] = {"changes": changes}
    if "priority" in changes:
        # An override keeps both: what the matrix proposed and what the analyst chose, and why.
        event.update(
            reason=data.priority_reason,
            proposed_priority=values.get("proposed_priority", request.proposed_priority),
            priority_score=values.get("priority_score", request.priority_score),
        )
    assigned = "assignee" in changes or "queue" in changes
    await apply_change(
        session,
        request=request,
        caller=caller,
        values=values,
        kind=EventKind.ASSIGNED if assigned else EventKind.UPDATED,
        data=event,
        task_queue=task_queue,
        now=now,
        stale=_stale(request),
    )
    if new_tags is not None:
        await session.execute(delete(RequestTag).where(RequestTag.request_id == request.id))
        session.add_all(RequestTag(request_id=request.id, tag=tag) for tag in new_tags)
        await session.flush()
        await session.refresh(request, ["tag_rows"])
    await session.commit()
    return request


def _stale(request: Request) -> PreconditionFailed:
    return PreconditionFailed(
        f"Request {request.id} is no longer at the version you read; reload it (GET returns the "
        "current ETag) and apply your change again.",
        current_version=request.version,
    )


def _changed_values(
    request: Request, data: RequestUpdate, given: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column values to write and the {field: {from, to}} record, for fields that really change."""
    values: dict[str, Any] = {}
    changes: dict[str, Any] = {}

    def record(name: str, old: Any, new: Any, columns: dict[str, Any]) -> None:
        if old != new:
            values.update(columns)
            changes[name] = {"from": _jsonable(old), "to": _jsonable(new)}

    for name in sorted(given):
        new = getattr(data, name)
        if name == "impact":
            old_impact = (
                None
                if request.impact_currency is None
                else {
                    "accounts_affected": request.impact_accounts_affected,
                    "money_at_risk_per_week": request.impact_money_at_risk_per_week,
                    "currency": request.impact_currency,
                }
            )
            new_impact = None if new is None else new.model_dump()
            record(
                name,
                old_impact,
                new_impact,
                {
                    "impact_accounts_affected": new.accounts_affected if new else None,
                    "impact_money_at_risk_per_week": new.money_at_risk_per_week if new else None,
                    "impact_currency": new.currency if new else None,
                },
            )
        elif name == "tags":
            tags = sorted(new)
            record(name, request.tags, tags, {"tags": tags})
        elif name in ("urgency", "priority"):
            value = new.value if new is not None else None
            record(name, getattr(request, name), value, {name: value})
        elif name == "external_refs":
            record(name, list(request.external_refs), list(new), {name: list(new)})
        elif name == "details":
            record(name, dict(request.details or {}), dict(new), {name: dict(new)})
        else:
            record(name, getattr(request, name), new, {name: new})
    return values, changes


def _rescore(request: Request, values: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    def current(column: str) -> Any:
        return values[column] if column in values else getattr(request, column)

    urgency = current("urgency")
    money = current("impact_money_at_risk_per_week")
    score = score_request(
        ScoreInput(
            accounts_affected=current("impact_accounts_affected"),
            money_at_risk_per_week=Decimal(money) if money is not None else None,
            urgency=Urgency(urgency) if urgency else None,
            due_at=current("due_at"),
        ),
        now=now,
    )
    return {"priority_score": score.score, "proposed_priority": score.proposed_priority.value}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# --- the queue view ---------------------------------------------------------------------------


async def list_queue(
    session: AsyncSession,
    *,
    caller: Identity,
    queue: str | None,
    unqueued: bool,
    team: str | None,
    priorities: Sequence[Priority],
    cursor: str | None,
    limit: int,
) -> RequestPage:
    """Open requests by priority score (highest first), then SLA due time (soonest first, none
    last), then id; staff only. `queue` narrows to one queue, `unqueued` to requests in none."""
    if not caller.is_staff:
        raise Forbidden("The queue view is for staff; partners list their requests instead.")
    query = select(Request).where(Request.status.in_(OPEN_STATUSES))
    if queue is not None:
        query = query.where(Request.queue == queue)
    elif unqueued:
        query = query.where(Request.queue.is_(None))
    if team is not None:
        query = query.where(Request.team == team)
    if priorities:
        query = query.where(Request.priority.in_([p.value for p in priorities]))
    if cursor is not None:
        query = query.where(_after(cursor))
    query = query.order_by(
        Request.priority_score.desc(), Request.sla_due_at.asc().nulls_last(), Request.id.asc()
    ).limit(limit + 1)
    rows = list((await session.execute(query)).scalars())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        due = last.sla_due_at.isoformat() if last.sla_due_at else None
        next_cursor = encode_cursor({"s": last.priority_score, "d": due, "i": last.id})
    return RequestPage(items=[to_read(row) for row in rows[:limit]], next_cursor=next_cursor)


def _after(cursor: str) -> ColumnElement[bool]:
    """Rows after the cursor's (score, due, id) in the queue's order."""
    key = decode_cursor(cursor, required=("s", "d", "i"))
    score, due_text, last_id = key["s"], key["d"], key["i"]
    try:
        if type(score) is not int or type(last_id) is not int:
            raise ValueError
        if not (0 <= score <= 1000 and 0 <= last_id < 2**31):
            raise ValueError
        due = datetime.fromisoformat(due_text) if due_text is not None else None
        if due is not None and due.tzinfo is None:
            raise ValueError
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            "The cursor is not one this list returned.",
            errors=[
                {"field": "query.cursor", "message": "invalid cursor", "code": "cursor_invalid"}
            ],
        ) from exc
    if due is None:
        same_score_after = and_(Request.sla_due_at.is_(None), Request.id > last_id)
    else:
        same_score_after = or_(
            Request.sla_due_at > due,
            Request.sla_due_at.is_(None),
            and_(Request.sla_due_at == due, Request.id > last_id),
        )
    return or_(
        Request.priority_score < score,
        and_(Request.priority_score == score, same_score_after),
    )
