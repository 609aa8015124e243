"""Use cases of escalations: raise, list, read, edit, transition, RCA versions, closure approval.

Every function is keyword-only, takes the request's AsyncSession and the verified caller, and raises
DomainErrors. A change, the escalation's version bump and the snapshot for its workflow (outbox)
commit in ONE transaction: no dual writes.

Closure: the program manager's approval is the `approve_closure` Temporal update of the
escalation's workflow, whose validator refuses (writing nothing to history) while an action item is
open or a Sev-2 / COE escalation has no RCA. Once the update is accepted, THIS service closes the
escalation in the same HTTP call (it re-checks the same rules on its own tables, the source of
truth, in the closing transaction) and the snapshot it queues ends the workflow. A crash between
the two leaves the escalation in pending_closure with the approval recorded on the workflow; the
program manager's retry is accepted again and closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.common.db import utcnow
from services.common.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    ServiceUnavailable,
)
from services.common.idempotency import fingerprint
from services.common.identity import Identity, Role
from services.common.pagination import encode_cursor
from services.common.temporal import TemporalConnector
from services.escalation.access import get_escalation, require_not_closed, require_staff
from services.escalation.action_items import service as items
from services.escalation.action_items.models import ActionItem
from services.escalation.domain import (
    CLOSURE_APPROVER_ROLES,
    Action,
    EscalationStatus,
    Severity,
    Source,
    allowed_actions,
    closure_blockers,
    field_error,
    plan_transition,
)
from services.escalation.models import Escalation, RcaVersion
from services.escalation.people.resolution import GatewayCalendars
from services.escalation.schemas import (
    ClosureApprovalCreate,
    ClosureApprovalRead,
    CorrectiveActionRead,
    EscalationCreate,
    EscalationPage,
    EscalationRead,
    EscalationUpdate,
    RcaPut,
    RcaRead,
    TransitionCreate,
)
from services.escalation.signals import WorkflowContext, bump, signal_facts
from services.escalation.writes import Outcome, cursor_id, idempotent
from workflows.contracts import (
    ESCALATION_APPROVE_CLOSURE_UPDATE,
    ApproveClosureInput,
    ClosureApproval,
    escalation_workflow_id,
)

log = structlog.get_logger(__name__)

ESCALATIONS_PATH = "/api/v1/escalations"
# Error type the workflow's validator uses while it has not yet received the version the service
# saw: the API retries for up to CLOSURE_CATCH_UP before answering 409.
NOT_CAUGHT_UP = "NotCaughtUp"
CLOSURE_CATCH_UP = timedelta(seconds=10)


class ClosureRefused(Conflict):
    """The closure rules do not hold; `reasons` says why."""

    slug, title = "closure-refused", "Closure refused"

    def __init__(self, detail: str, *, reasons: Sequence[str]) -> None:
        super().__init__(detail, reasons=list(reasons))


@dataclass(frozen=True, slots=True)
class EscalationFilters:
    """Filters of `GET /escalations`; every one is served by an index."""

    statuses: Sequence[EscalationStatus] = ()
    source: Source | None = None
    severity: Severity | None = None
    team: str | None = None
    owner: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def escalation_path(escalation_id: int) -> str:
    """The URL path of one escalation."""
    return f"{ESCALATIONS_PATH}/{escalation_id}"


def to_read(escalation: Escalation) -> EscalationRead:
    """The API view of an escalation row."""
    return EscalationRead.model_validate(escalation)


async def create_escalation(
    session: AsyncSession,
    *,
    caller: Identity,
    data: EscalationCreate,
    context: WorkflowContext,
    idempotency_key: str | None = None,
) -> Outcome:
    """Raise an escalation; its EscalationWorkflow starts from the outbox."""
    team = _raising_team(caller, data)

    async def effect() -> tuple[int, dict[str, Any]]:
        now = utcnow()
        escalation = Escalation(
            team=team,
            source=data.source.value,
            severity=data.severity.value,
            external_ref=data.external_ref,
            title=data.title,
            summary=data.summary,
            owner=data.owner,
            program_manager=data.program_manager,
            customer_impact=data.customer_impact,
            business_impact=data.business_impact,
            timeline=[entry.model_dump(mode="json") for entry in data.timeline],
            status=EscalationStatus.OPEN.value,
            rca_version=0,
            created_by=caller.subject,
            version=1,
            created_at=now,
            updated_at=now,
        )
        session.add(escalation)
        await session.flush()
        await signal_facts(session, escalation, context)
        return 201, to_read(escalation).model_dump(mode="json")

    return await idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint("POST", ESCALATIONS_PATH, data.model_dump(mode="json")),
        effect=effect,
    )


async def list_escalations(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: EscalationFilters,
    cursor: str | None,
    limit: int,
) -> EscalationPage:
    """Escalations matching `filters`, newest first; a partner sees only its own team's."""
    team = filters.team
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return EscalationPage(items=[], next_cursor=None)
        team = caller.team
    query = select(Escalation)
    if team is not None:
        query = query.where(Escalation.team == team)
    if filters.statuses:
        query = query.where(Escalation.status.in_([s.value for s in filters.statuses]))
    if filters.source is not None:
        query = query.where(Escalation.source == filters.source.value)
    if filters.severity is not None:
        query = query.where(Escalation.severity == filters.severity.value)
    if filters.owner is not None:
        query = query.where(Escalation.owner == filters.owner)
    if filters.created_after is not None:
        query = query.where(Escalation.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(Escalation.created_at < filters.created_before)
    if cursor is not None:
        query = query.where(Escalation.id < cursor_id(cursor))
    rows = list(
        (await session.execute(query.order_by(Escalation.id.desc()).limit(limit + 1))).scalars()
    )
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return EscalationPage(items=[to_read(row) for row in rows[:limit]], next_cursor=next_cursor)


async def update_escalation(
    session: AsyncSession,
    *,
    caller: Identity,
    escalation_id: int,
    data: EscalationUpdate,
    context: WorkflowContext,
) -> EscalationRead:
    """Change editable fields (staff only; not once closed)."""
    escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
    require_staff(caller, "edit an escalation")
    require_not_closed(escalation, "it cannot be edited")
    changes: dict[str, Any] = {}
    for name in data.model_fields_set:
        value = getattr(data, name)
        if name == "timeline":
            value = [entry.model_dump(mode="json") for entry in data.timeline or []]
        elif name == "severity":
            value = data.severity.value if data.severity else None
        changes[name] = value
    await bump(session, escalation, **changes)
    await signal_facts(session, escalation, context)
    await session.commit()
    return to_read(escalation)


async def transition_escalation(
    session: AsyncSession,
    *,
    caller: Identity,
    escalation_id: int,
    data: TransitionCreate,
    context: WorkflowContext,
    idempotency_key: str | None = None,
) -> Outcome:
    """Apply one action of the lifecycle (`close` is refused here: it needs approval)."""

    async def effect() -> tuple[int, dict[str, Any]]:
        escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
        target = plan_transition(
            status=EscalationStatus(escalation.status), action=data.action, role=caller.role
        )
        await bump(session, escalation, status=target.value)
        await signal_facts(session, escalation, context)
        return 200, to_read(escalation).model_dump(mode="json")

    return await idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{escalation_path(escalation_id)}/transitions", data.model_dump(mode="json")
        ),
        effect=effect,
    )


# --- RCA


async def put_rca(
    session: AsyncSession,
    *,
    caller: Identity,
    escalation_id: int,
    data: RcaPut,
    context: WorkflowContext,
    calendars: GatewayCalendars,
) -> RcaRead:
    """Store the RCA as version n+1; each corrective action links or creates an action item."""
    escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
    require_staff(caller, "write an RCA")
    require_not_closed(escalation, "its RCA cannot change")
    # New items' calendars may come from the gateway: resolved before the write transaction.
    new_calendars = {
        index: await items.item_calendar(
            session, owner=action.new_action_item.owner, given=None, calendars=calendars
        )
        for index, action in enumerate(data.corrective_actions)
        if action.new_action_item is not None
    }
    version = escalation.rca_version + 1
    # Compare-and-set first: of two concurrent PUTs the loser is a 409 before it writes anything.
    await bump(session, escalation, rca_version=version)
    corrective: list[dict[str, Any]] = []
    for index, action in enumerate(data.corrective_actions):
        if action.action_item_id is not None:
            item = await session.get(ActionItem, action.action_item_id)
            if item is None or item.escalation_id != escalation.id:
                raise field_error(
                    f"corrective_actions.{index}.action_item_id",
                    f"Action item {action.action_item_id} is not an item of this escalation.",
                    code="invalid",
                )
            corrective.append(
                {"description": action.description, "action_item_id": item.id, "created": False}
            )
        else:
            new = action.new_action_item
            assert new is not None  # the schema guarantees exactly one of the two
            item = await items.add_item(
                session,
                escalation=escalation,
                caller=caller,
                title=new.title,
                description=action.description,
                owner=new.owner,
                calendar=new_calendars[index],
                owner_manager=new.owner_manager,
                priority=new.priority,
                due_at=new.due_at,
                rca_version=version,
            )
            corrective.append(
                {"description": action.description, "action_item_id": item.id, "created": True}
            )
    document = data.model_dump(mode="json", exclude={"corrective_actions"})
    document["corrective_actions"] = corrective
    row = RcaVersion(
        escalation_id=escalation.id,
        version=version,
        document=document,
        author=caller.subject,
        created_at=utcnow(),
    )
    session.add(row)
    await signal_facts(session, escalation, context)
    await session.commit()
    return _rca_read(row)


async def get_rca(
    session: AsyncSession, *, caller: Identity, escalation_id: int, version: int | None
) -> RcaRead:
    """The latest RCA version (or `version`); 404 when there is none."""
    escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
    wanted = version if version is not None else escalation.rca_version
    row = await session.get(RcaVersion, (escalation.id, wanted)) if wanted else None
    if row is None:
        which = f"version {version}" if version is not None else "an RCA"
        raise NotFound(f"Escalation {escalation_id} has no {which}.")
    return _rca_read(row)


def _rca_read(row: RcaVersion) -> RcaRead:
    document = dict(row.document)
    document["corrective_actions"] = [
        CorrectiveActionRead.model_validate(c) for c in document.get("corrective_actions", [])
    ]
    return RcaRead.model_validate(
        {
            **document,
            "escalation_id": row.escalation_id,
            "version": row.version,
            "author": row.author,
            "created_at": row.created_at,
        }
    )


# --- Closure


async def approve_closure(
    session: AsyncSession,
    *,
    caller: Identity,
    escalation_id: int,
    data: ClosureApprovalCreate,
    context: WorkflowContext,
    temporal: TemporalConnector,
) -> ClosureApprovalRead:
    """The program manager approves closure: the workflow's update validates it, then the
    escalation closes here. 409 `closure-refused` with the reasons when the rules do not hold."""
    escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
    if caller.role not in CLOSURE_APPROVER_ROLES:
        raise Forbidden("Only a program manager may approve closing an escalation.")
    status = EscalationStatus(escalation.status)
    if status is not EscalationStatus.PENDING_CLOSURE:
        raise InvalidTransition(
            f"An escalation in status {status.value} cannot close; request_closure first.",
            current=status.value,
            allowed=[a.value for a in allowed_actions(status, caller.role)],
        )
    expected = escalation.version
    # End the read transaction before waiting on Temporal (SQLite: no lock held across the wait).
    await session.commit()
    approval = await _execute_approval(
        temporal,
        escalation_id,
        ApproveClosureInput(approver=caller.subject, expected_version=expected, note=data.note),
    )
    escalation = await get_escalation(
        session, caller=caller, escalation_id=escalation_id, for_update=True
    )
    if escalation.version != expected or escalation.status != EscalationStatus.PENDING_CLOSURE:
        raise Conflict(
            f"Escalation {escalation_id} changed while closure was being approved; retry.",
            current_version=escalation.version,
        )
    # The tables are the source of truth: the same rules, on them, in the closing transaction.
    item_rows = await session.execute(
        select(ActionItem.id, ActionItem.status).where(ActionItem.escalation_id == escalation.id)
    )
    reasons = closure_blockers(
        source=escalation.source,
        rca_present=escalation.rca_version > 0,
        items=[(row.id, row.status) for row in item_rows],
    )
    if reasons:
        raise ClosureRefused(
            "The escalation cannot close: " + "; ".join(reasons) + ".", reasons=reasons
        )
    plan_transition(
        status=EscalationStatus(escalation.status),
        action=Action.CLOSE,
        role=caller.role,
        via_approval=True,
    )
    now = utcnow()
    await bump(
        session,
        escalation,
        status=EscalationStatus.CLOSED.value,
        closed_at=now,
        closure_approved_by=approval.approved_by,
        closure_note=approval.note,
    )
    await signal_facts(session, escalation, context)
    await session.commit()
    return ClosureApprovalRead(
        approved_by=approval.approved_by,
        approved_at=approval.approved_at,
        note=approval.note,
        escalation=to_read(escalation),
    )


async def _execute_approval(
    temporal: TemporalConnector, escalation_id: int, approval: ApproveClosureInput
) -> ClosureApproval:
    """Run the `approve_closure` update; a validator refusal is a 409 with its reason.

    The workflow may lag the tables by the outbox's delay (or not exist yet): while it has not
    caught up with the version the service saw, the call is retried briefly.
    """
    try:
        client = await temporal.client()
    except Exception as exc:
        raise ServiceUnavailable(
            "The workflow service is unreachable; closure cannot be approved now. Retry later."
        ) from exc
    handle = client.get_workflow_handle(escalation_workflow_id(escalation_id))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSURE_CATCH_UP.total_seconds()
    while True:
        try:
            result: ClosureApproval = await handle.execute_update(
                ESCALATION_APPROVE_CLOSURE_UPDATE,
                approval,
                result_type=ClosureApproval,
                rpc_timeout=timedelta(seconds=10),
            )
            return result
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == NOT_CAUGHT_UP:
                if loop.time() < deadline:
                    await asyncio.sleep(0.2)
                    continue
                raise Conflict(
                    "The escalation's workflow has not caught up with its latest change; retry."
                ) from exc
            reason = cause.message if isinstance(cause, ApplicationError) else str(exc)
            raise ClosureRefused(f"Closure refused: {reason}", reasons=reason.split("; ")) from exc
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND and loop.time() < deadline:
                await asyncio.sleep(0.2)
                continue
            log.warning("closure_update_failed", escalation_id=escalation_id, error=repr(exc))
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise Conflict(
                    "The escalation's workflow is not running yet; retry shortly."
                ) from exc
            raise ServiceUnavailable(
                "The workflow service did not answer; closure was not approved. Retry later."
            ) from exc


def _raising_team(caller: Identity, data: EscalationCreate) -> str:
    if caller.role is Role.PARTNER:
        if data.team is not None and data.team != caller.team:
            raise Forbidden("A partner raises escalations for its own team only.")
        if data.source is not Source.PARTNER:
            raise Forbidden("A partner may only raise escalations of source `partner`.")
        return caller.team
    if not caller.is_staff:
        raise Forbidden(f"The role {caller.role.value} may not raise escalations.")
    if data.team is None:
        raise field_error(
            "team", "Staff must name the team an escalation concerns.", code="missing"
        )
    return data.team
