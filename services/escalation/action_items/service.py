"""Use cases of action items: add, list, read, edit and transition them.

An item belongs to one escalation and shares its visibility (a partner sees the items of its own
team's escalations). Every change bumps the escalation's version and queues its new facts for the
EscalationWorkflow in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.business_time import Calendar, CalendarError
from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.idempotency import fingerprint
from services.common.identity import Identity, Role
from services.common.pagination import encode_cursor
from services.escalation.access import get_escalation, require_not_closed, require_staff
from services.escalation.action_items.domain import (
    ItemAction,
    ItemStatus,
    plan_item_transition,
)
from services.escalation.action_items.models import ActionItem
from services.escalation.action_items.schemas import (
    ActionItemCreate,
    ActionItemPage,
    ActionItemRead,
    ActionItemTransitionCreate,
    ActionItemUpdate,
)
from services.escalation.domain import Severity, default_due_at
from services.escalation.models import Escalation
from services.escalation.people.resolution import (
    CalendarSource,
    GatewayCalendars,
    ItemCalendar,
    owner_calendar,
)
from services.escalation.signals import WorkflowContext, bump, signal_facts
from services.escalation.writes import Outcome, cursor_id, idempotent

ACTION_ITEMS_PATH = "/api/v1/action-items"
MAX_ITEMS_PER_ESCALATION = 200


@dataclass(frozen=True, slots=True)
class ItemFilters:
    """Filters of the action item lists; each is served by an index."""

    statuses: Sequence[ItemStatus] = ()
    owner: str | None = None
    due_before: datetime | None = None


def item_path(item_id: int) -> str:
    """The URL path of one action item."""
    return f"{ACTION_ITEMS_PATH}/{item_id}"


def to_read(item: ActionItem) -> ActionItemRead:
    """The API view of an action item row."""
    return ActionItemRead.model_validate(item)


def parse_calendar(spec: dict[str, Any], *, field: str = "calendar") -> Calendar:
    """An item's own calendar; 422 naming the field if it is not usable."""
    try:
        return Calendar.from_spec(spec)
    except CalendarError as exc:
        raise ValidationFailed(
            f"The calendar is not usable: {exc}",
            errors=[
                {"field": f"body.{field}.{exc.field}", "message": exc.message, "code": "invalid"}
            ],
        ) from exc


async def item_calendar(
    session: AsyncSession,
    *,
    owner: str,
    given: dict[str, Any] | None,
    calendars: GatewayCalendars,
    field: str = "calendar",
) -> ItemCalendar:
    """An item's calendar: its own (`given`), else its owner's, else the default.

    Resolve it before the write transaction: the owner's calendar may be read from the gateway.
    """
    if given is not None:
        return ItemCalendar(parse_calendar(given, field=field), CalendarSource.ITEM)
    return await owner_calendar(session, owner=owner, calendars=calendars)


async def add_item(
    session: AsyncSession,
    *,
    escalation: Escalation,
    caller: Identity,
    title: str,
    owner: str,
    calendar: ItemCalendar,
    description: str = "",
    owner_manager: str | None = None,
    priority: str = "P2",
    due_at: datetime | None = None,
    external_link: str | None = None,
    rca_version: int | None = None,
) -> ActionItem:
    """Add an item to the session (no commit, no signal: the caller bumps and signals once).

    `calendar` (from `item_calendar`) counts the default due date when `due_at` is not given.
    """
    count = await session.scalar(
        select(func.count()).where(ActionItem.escalation_id == escalation.id)
    )
    if (count or 0) >= MAX_ITEMS_PER_ESCALATION:
        raise Conflict(f"An escalation holds at most {MAX_ITEMS_PER_ESCALATION} action items.")
    now = utcnow()
    item = ActionItem(
        escalation_id=escalation.id,
        title=title,
        description=description,
        owner=owner,
        owner_manager=owner_manager,
        priority=priority,
        due_at=due_at
        or default_due_at(
            severity=Severity(escalation.severity), calendar=calendar.calendar, now=now
        ),
        calendar=calendar.calendar.to_spec(),
        calendar_source=calendar.source.value,
        calendar_id=calendar.calendar_id,
        status=ItemStatus.OPEN.value,
        external_link=external_link,
        rca_version=rca_version,
        created_by=caller.subject,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    await session.flush()
    return item


async def create_item(
    session: AsyncSession,
    *,
    caller: Identity,
    escalation_id: int,
    data: ActionItemCreate,
    context: WorkflowContext,
    calendars: GatewayCalendars,
    idempotency_key: str | None = None,
) -> Outcome:
    """Add an action item to an escalation (staff; not once it is closed)."""

    async def effect() -> tuple[int, dict[str, Any]]:
        escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
        require_staff(caller, "add action items")
        require_not_closed(escalation, "its action items cannot change")
        calendar = await item_calendar(
            session, owner=data.owner, given=data.calendar, calendars=calendars
        )
        item = await add_item(
            session,
            escalation=escalation,
            caller=caller,
            title=data.title,
            description=data.description,
            owner=data.owner,
            owner_manager=data.owner_manager,
            priority=data.priority.value,
            due_at=data.due_at,
            external_link=data.external_link,
            calendar=calendar,
        )
        await bump(session, escalation)
        await signal_facts(session, escalation, context)
        return 201, to_read(item).model_dump(mode="json")

    return await idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST",
            f"/api/v1/escalations/{escalation_id}/action-items",
            data.model_dump(mode="json"),
        ),
        effect=effect,
    )


async def get_item(
    session: AsyncSession, *, caller: Identity, item_id: int, for_update: bool = False
) -> tuple[ActionItem, Escalation]:
    """An item the caller may see, with its escalation; 404 otherwise."""
    item = await session.get(ActionItem, item_id, populate_existing=for_update)
    escalation = await session.get(Escalation, item.escalation_id) if item is not None else None
    if item is None or escalation is None or not caller.can_see_team(escalation.team):
        raise NotFound(f"Action item {item_id} was not found.")
    return item, escalation


async def list_items(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: ItemFilters,
    cursor: str | None,
    limit: int,
    escalation_id: int | None = None,
) -> ActionItemPage:
    """Action items (of one escalation, or every visible one), newest first."""
    query = select(ActionItem)
    if escalation_id is not None:
        await get_escalation(session, caller=caller, escalation_id=escalation_id)
        query = query.where(ActionItem.escalation_id == escalation_id)
    elif caller.role is Role.PARTNER:
        query = query.join(Escalation, Escalation.id == ActionItem.escalation_id).where(
            Escalation.team == caller.team
        )
    if filters.statuses:
        query = query.where(ActionItem.status.in_([s.value for s in filters.statuses]))
    if filters.owner is not None:
        query = query.where(ActionItem.owner == filters.owner)
    if filters.due_before is not None:
        query = query.where(ActionItem.due_at < filters.due_before)
    if cursor is not None:
        query = query.where(ActionItem.id < cursor_id(cursor))
    rows = list(
        (await session.execute(query.order_by(ActionItem.id.desc()).limit(limit + 1))).scalars()
    )
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return ActionItemPage(items=[to_read(r) for r in rows[:limit]], next_cursor=next_cursor)


async def update_item(
    session: AsyncSession,
    *,
    caller: Identity,
    item_id: int,
    data: ActionItemUpdate,
    context: WorkflowContext,
    calendars: GatewayCalendars,
) -> ActionItemRead:
    """Change editable fields; moving `due_at` starts a new overdue episode in the workflow.

    `calendar: null` drops the item's own calendar: the owner's (or the default) applies again.
    The due date never moves by itself.
    """
    item, escalation = await get_item(session, caller=caller, item_id=item_id)
    require_staff(caller, "edit action items")
    require_not_closed(escalation, "its action items cannot change")
    changes: dict[str, Any] = {}
    for name in data.model_fields_set:
        value = getattr(data, name)
        if name == "priority":
            value = data.priority.value if data.priority else None
        elif name == "calendar":
            resolved = await item_calendar(
                session,
                owner=data.owner or item.owner,
                given=data.calendar,
                calendars=calendars,
            )
            changes.update(calendar_source=resolved.source.value, calendar_id=resolved.calendar_id)
            value = resolved.calendar.to_spec()
        changes[name] = value
    await _change_item(session, item, changes)
    await bump(session, escalation)
    await signal_facts(session, escalation, context)
    await session.commit()
    return to_read(item)


async def transition_item(
    session: AsyncSession,
    *,
    caller: Identity,
    item_id: int,
    data: ActionItemTransitionCreate,
    context: WorkflowContext,
    idempotency_key: str | None = None,
) -> Outcome:
    """Apply one action of the item's status machine."""

    async def effect() -> tuple[int, dict[str, Any]]:
        item, escalation = await get_item(session, caller=caller, item_id=item_id)
        require_not_closed(escalation, "its action items cannot change")
        transition = plan_item_transition(
            status=ItemStatus(item.status),
            action=data.action,
            role=caller.role,
            given={
                "reason": data.reason,
                "justification": data.justification,
                "evidence": data.evidence,
            },
        )
        now = utcnow()
        changes: dict[str, Any] = {"status": transition.target.value}
        match data.action:
            case ItemAction.BLOCK:
                changes["blocked_reason"] = data.reason
            case ItemAction.UNBLOCK:
                changes["blocked_reason"] = None
            case ItemAction.COMPLETE:
                changes.update(completion_evidence=data.evidence, completed_at=now)
            case ItemAction.PROPOSE_NOT_DOING:
                changes.update(
                    not_doing_justification=data.justification,
                    not_doing_decided_by=None,
                    not_doing_decision_note=None,
                )
            case ItemAction.ACCEPT_NOT_DOING:
                changes.update(
                    not_doing_decided_by=caller.subject,
                    not_doing_decision_note=data.note,
                    completed_at=now,
                )
            case ItemAction.REJECT_NOT_DOING:
                changes.update(
                    not_doing_decided_by=caller.subject, not_doing_decision_note=data.reason
                )
            case ItemAction.REOPEN:
                changes.update(completed_at=None)
            case ItemAction.START:
                pass
        if transition.target is not ItemStatus.BLOCKED and data.action is not ItemAction.BLOCK:
            changes.setdefault("blocked_reason", None)
        await _change_item(session, item, changes)
        await bump(session, escalation)
        await signal_facts(session, escalation, context)
        return 200, to_read(item).model_dump(mode="json")

    return await idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{item_path(item_id)}/transitions", data.model_dump(mode="json")
        ),
        effect=effect,
    )


async def _change_item(session: AsyncSession, item: ActionItem, changes: dict[str, Any]) -> None:
    result = await session.execute(
        update(ActionItem)
        .where(ActionItem.id == item.id, ActionItem.version == item.version)
        .values(**changes, version=item.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise Conflict(
            f"Action item {item.id} changed meanwhile; reload it and retry.",
            current_version=item.version,
        )
    await session.refresh(item)
