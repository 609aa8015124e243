"""Every change of an escalation (or of its items or RCA) bumps its version and, in the same
transaction, queues a snapshot of its facts for its EscalationWorkflow (outbox, signal-with-start).

The workflow keeps only the newest snapshot (by version): it chases the items from it and its
`approve_closure` validator judges closure on it. A full snapshot rather than a delta means a lost
or reordered signal can never leave the workflow with wrong facts, only with older ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Conflict
from services.common.logging import current_request_id
from services.common.outbox import enqueue_signal
from services.common.settings import Settings
from services.escalation.action_items.models import ActionItem
from services.escalation.models import Escalation, OutboxEvent
from services.escalation.people.models import Person
from services.escalation.people.resolution import (
    CalendarSource,
    ladder_manager,
    people_by_handle,
)
from workflows.contracts import (
    ESCALATION_FACTS_SIGNAL,
    ESCALATION_WORKFLOW,
    ActionItemFacts,
    EscalationFacts,
    EscalationFollowUp,
    EscalationWorkflowInput,
    escalation_workflow_id,
)


@dataclass(frozen=True, slots=True)
class WorkflowContext:
    """Where escalation workflows run and how they follow up (from the service's settings)."""

    task_queue: str
    follow_up: EscalationFollowUp

    @classmethod
    def of(cls, settings: Settings) -> WorkflowContext:
        """The context of a service running with `settings`."""
        return cls(
            task_queue=settings.task_queue,
            follow_up=EscalationFollowUp(
                reminder_lead_seconds=settings.escalation_reminder_lead_seconds,
                ladder_delay_seconds=settings.escalation_ladder_delay_seconds,
                ladder_repeats=settings.escalation_ladder_repeats,
                calendar_refresh_seconds=settings.escalation_calendar_refresh_seconds,
                history_limit=settings.escalation_history_limit,
            ),
        )


async def bump(session: AsyncSession, escalation: Escalation, **changes: Any) -> None:
    """Apply `changes` and version + 1 with compare-and-set: a concurrent change makes this a 409."""
    result = await session.execute(
        update(Escalation)
        .where(Escalation.id == escalation.id, Escalation.version == escalation.version)
        .values(**changes, version=escalation.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise Conflict(
            f"Escalation {escalation.id} changed meanwhile; reload it and retry.",
            current_version=escalation.version,
        )
    await session.refresh(escalation)


async def signal_facts(
    session: AsyncSession, escalation: Escalation, context: WorkflowContext
) -> str:
    """Queue the escalation's current facts for its workflow (call after `bump`, before commit).

    Owners resolve through the person directory as it is now (people/resolution.py): the item's
    own manager or the owner's, the item's own calendar or the owner's gateway calendar id.
    """
    await session.flush()
    items = list(
        (
            await session.execute(
                select(ActionItem)
                .where(ActionItem.escalation_id == escalation.id)
                .order_by(ActionItem.id)
            )
        ).scalars()
    )
    people = await people_by_handle(session, (item.owner for item in items))
    event_id = str(uuid.uuid4())
    facts = EscalationFacts(
        event_id=event_id,
        escalation_id=escalation.id,
        version=escalation.version,
        status=escalation.status,
        source=escalation.source,
        severity=escalation.severity,
        team=escalation.team,
        title=escalation.title,
        owner=escalation.owner,
        program_manager=escalation.program_manager,
        rca_present=escalation.rca_version > 0,
        items=[_item_facts(item, people.get(item.owner)) for item in items],
        follow_up=context.follow_up,
        occurred_at=escalation.updated_at,
        trace_request_id=current_request_id(),
    )
    return enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=escalation_workflow_id(escalation.id),
        workflow_type=ESCALATION_WORKFLOW,
        task_queue=context.task_queue,
        start_arg=EscalationWorkflowInput(escalation_id=escalation.id, team=escalation.team),
        signal_name=ESCALATION_FACTS_SIGNAL,
        signal_arg=facts,
        event_id=event_id,
    )


def _item_facts(item: ActionItem, owner: Person | None) -> ActionItemFacts:
    own_calendar = item.calendar_source == CalendarSource.ITEM.value
    return ActionItemFacts(
        item_id=item.id,
        title=item.title,
        owner=item.owner,
        owner_manager=ladder_manager(item.owner_manager, owner),
        due_at=item.due_at,
        status=item.status,
        calendar=item.calendar if own_calendar else {},
        calendar_id=None if own_calendar or owner is None else owner.calendar_id,
    )
