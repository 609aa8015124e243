"""Use cases of SOPs: versions, submission and decisions, rollouts and acknowledgements, parity,
periodic reviews, and the internal endpoints the SOP workflows report to.

Every function is keyword-only and raises DomainErrors. A change, its `sop_event` row and the
workflow signal it causes (an outbox row) commit in ONE transaction. Decisions are the exception
by design: they go to the approval workflow as a Temporal update, whose validator is the authority
on who may decide; the workflow records each accepted decision back here through an activity.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
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
from services.sop.models import IdempotencyKey, OutboxEvent
from services.sop.sops.domain import (
    OUTCOME_ACTIONS,
    ApprovalOutcome,
    OrgStanding,
    RolloutStatus,
    VersionAction,
    VersionStatus,
    parity_of,
    plan_stages,
    plan_version_transition,
    review_state,
    unified_diff,
)
from services.sop.sops.models import (
    Org,
    Sop,
    SopAdoption,
    SopEvent,
    SopRollout,
    SopRolloutOrg,
    SopVersion,
)
from services.sop.sops.schemas import (
    MAX_ID,
    AcknowledgementCreate,
    ApprovalOutcomeIn,
    ApprovalPolicy,
    ApprovalRead,
    DecisionCreate,
    DecisionRead,
    DiffRead,
    DueReviewRead,
    OrgParityRead,
    OrgRead,
    ParityRead,
    RolloutCreate,
    RolloutOrgRead,
    RolloutRead,
    SopCreate,
    SopEventIn,
    SopEventPage,
    SopEventRead,
    SopPage,
    SopParityRead,
    SopRead,
    SopUpdate,
    SopVersionPage,
    SopVersionRead,
    VersionCreate,
    VersionUpdate,
)
from workflows.contracts import (
    SOP_APPROVAL_OPENED_SIGNAL,
    SOP_APPROVAL_STATE_QUERY,
    SOP_APPROVAL_WORKFLOW,
    SOP_DECIDE_UPDATE,
    SOP_ROLLOUT_SIGNAL,
    SOP_ROLLOUT_WORKFLOW,
    ApprovalStageSpec,
    RolloutOrgTarget,
    SopApprovalInput,
    SopApprovalOpened,
    SopApprovalState,
    SopDecisionInput,
    SopDecisionResult,
    SopRolloutInput,
    SopRolloutSignal,
    sop_approval_workflow_id,
    sop_rollout_workflow_id,
)

SOPS_PATH = "/api/v1/sops"
ROLLOUTS_PATH = "/api/v1/rollouts"
WRITER_ROLES = frozenset({Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM})
ROLLOUT_MANAGER_ROLES = frozenset({Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM})
REVIEW_REMINDER_WINDOW = timedelta(days=30)
# A decision may arrive before the outbox has started the approval workflow: wait that long.
WORKFLOW_START_WAIT_SECONDS = 10.0
# Validator refusals of the `decide` update (ApplicationError types) and how they are answered.
DECISION_REFUSALS: dict[str, Callable[[str], Exception]] = {
    "SelfApproval": Forbidden,
    "NotAnApprover": Forbidden,
    "AlreadyDecided": Conflict,
    "StageClosed": Conflict,
    "ApprovalClosed": Conflict,
    "CommentRequired": lambda message: ValidationFailed(
        message, errors=[{"field": "body.comment", "message": message, "code": "missing"}]
    ),
}


def sop_path(sop_id: int) -> str:
    """The URL path of one SOP."""
    return f"{SOPS_PATH}/{sop_id}"


def rollout_path(rollout_id: int) -> str:
    """The URL path of one rollout."""
    return f"{ROLLOUTS_PATH}/{rollout_id}"


# --- reads ---------------------------------------------------------------------------------


async def get_sop(session: AsyncSession, *, sop_id: int) -> Sop:
    """An SOP, or 404."""
    sop = await session.get(Sop, sop_id)
    if sop is None:
        raise NotFound(f"SOP {sop_id} was not found.")
    return sop


async def get_version(session: AsyncSession, *, sop_id: int, number: int) -> SopVersion:
    """Version `number` of an SOP, or 404."""
    await get_sop(session, sop_id=sop_id)
    version = (
        await session.execute(
            select(SopVersion).where(SopVersion.sop_id == sop_id, SopVersion.number == number)
        )
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"SOP {sop_id} has no version {number}.")
    return version


async def to_sop_read(session: AsyncSession, sop: Sop) -> SopRead:
    """The API view of an SOP."""
    latest = (
        await session.execute(
            select(func.max(SopVersion.number)).where(SopVersion.sop_id == sop.id)
        )
    ).scalar_one()
    return SopRead(
        id=sop.id,
        key=sop.key,
        title=sop.title,
        owning_team=sop.owning_team,
        owner=sop.owner,
        approval_policy=sop.approval_policy,
        review_interval_days=sop.review_interval_days,
        next_review_at=sop.next_review_at,
        last_reviewed_at=sop.last_reviewed_at,
        review_status=review_state(
            sop.next_review_at, now=utcnow(), remind_before=REVIEW_REMINDER_WINDOW
        ),
        effective_version=sop.effective_version,
        latest_version=int(latest or 0),
        created_by=sop.created_by,
        created_at=sop.created_at,
        updated_at=sop.updated_at,
    )


async def list_sops(
    session: AsyncSession, *, owning_team: str | None, cursor: str | None, limit: int
) -> SopPage:
    """SOPs, newest first, optionally of one owning team."""
    query = select(Sop)
    if owning_team is not None:
        query = query.where(Sop.owning_team == owning_team)
    if cursor is not None:
        query = query.where(Sop.id < _cursor_int(cursor, "id"))
    rows = list((await session.execute(query.order_by(Sop.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return SopPage(
        items=[await to_sop_read(session, row) for row in rows[:limit]], next_cursor=next_cursor
    )


async def list_versions(
    session: AsyncSession, *, sop_id: int, cursor: str | None, limit: int
) -> SopVersionPage:
    """An SOP's versions, oldest first."""
    await get_sop(session, sop_id=sop_id)
    query = select(SopVersion).where(SopVersion.sop_id == sop_id)
    if cursor is not None:
        query = query.where(SopVersion.number > _cursor_int(cursor, "n"))
    rows = list(
        (await session.execute(query.order_by(SopVersion.number).limit(limit + 1))).scalars()
    )
    next_cursor = encode_cursor({"n": rows[limit - 1].number}) if len(rows) > limit else None
    return SopVersionPage(
        items=[SopVersionRead.model_validate(row) for row in rows[:limit]], next_cursor=next_cursor
    )


async def diff_versions(
    session: AsyncSession, *, sop_id: int, from_version: int, to_version: int
) -> DiffRead:
    """A unified diff of the content of two versions of one SOP."""
    old = await get_version(session, sop_id=sop_id, number=from_version)
    new = await get_version(session, sop_id=sop_id, number=to_version)
    sop = await get_sop(session, sop_id=sop_id)
    return DiffRead(
        sop_id=sop_id,
        from_version=from_version,
        to_version=to_version,
        diff=unified_diff(
            old.content,
            new.content,
            old_label=f"{sop.key} v{from_version}",
            new_label=f"{sop.key} v{to_version}",
        ),
    )


async def list_events(
    session: AsyncSession, *, sop_id: int, cursor: str | None, limit: int
) -> SopEventPage:
    """An SOP's audit trail, oldest first."""
    await get_sop(session, sop_id=sop_id)
    query = select(SopEvent).where(SopEvent.sop_id == sop_id)
    if cursor is not None:
        query = query.where(SopEvent.seq > _cursor_int(cursor, "s"))
    rows = list((await session.execute(query.order_by(SopEvent.seq).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"s": rows[limit - 1].seq}) if len(rows) > limit else None
    return SopEventPage(
        items=[SopEventRead.model_validate(row) for row in rows[:limit]], next_cursor=next_cursor
    )


async def list_orgs(session: AsyncSession) -> list[OrgRead]:
    """Every org, by id."""
    rows = (await session.execute(select(Org).order_by(Org.id))).scalars()
    return [OrgRead.model_validate(row) for row in rows]


# --- SOPs and versions ---------------------------------------------------------------------


async def create_sop(
    session: AsyncSession,
    *,
    caller: Identity,
    data: SopCreate,
    idempotency_key: str | None = None,
) -> Outcome:
    """Create an SOP and its first version (a draft); 409 if the key is taken."""
    _require(caller, WRITER_ROLES, "create SOPs")

    async def effect() -> tuple[int, dict[str, Any]]:
        if (
            await session.execute(select(Sop.id).where(Sop.key == data.key))
        ).scalar_one_or_none() is not None:
            raise Conflict(f"An SOP with key {data.key} already exists.")
        now = utcnow()
        sop = Sop(
            key=data.key,
            title=data.title,
            owning_team=data.owning_team,
            owner=data.owner or caller.subject,
            approval_policy=data.approval_policy.model_dump(mode="json"),
            review_interval_days=data.review_interval_days,
            next_review_at=now + timedelta(days=data.review_interval_days),
            last_reviewed_at=None,
            effective_version=None,
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
        )
        session.add(sop)
        await session.flush()
        version = _new_version(sop, number=1, content=data.content, summary=data.change_summary)
        version.author = caller.subject
        session.add(version)
        _event(session, sop_id=sop.id, kind="created", actor=caller.subject, version_number=1)
        await session.flush()
        return 201, (await to_sop_read(session, sop)).model_dump(mode="json")

    return await _idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint("POST", SOPS_PATH, data.model_dump(mode="json")),
        effect=effect,
    )


async def update_sop(
    session: AsyncSession, *, caller: Identity, sop_id: int, data: SopUpdate
) -> SopRead:
    """Change an SOP's title, owner, approval policy or review interval.

    A new review interval moves the next review to one interval after the last review (or after
    creation). A new policy applies to the next submission; a round in review keeps its own."""
    _require(caller, WRITER_ROLES, "change SOPs")
    sop = await get_sop(session, sop_id=sop_id)
    changes = data.model_dump(exclude_unset=True, mode="json")
    for name in ("title", "owner", "approval_policy"):
        if changes.get(name) is not None:
            setattr(sop, name, changes[name])
    if data.review_interval_days is not None:
        sop.review_interval_days = data.review_interval_days
        sop.next_review_at = (sop.last_reviewed_at or sop.created_at) + timedelta(
            days=data.review_interval_days
        )
    sop.updated_at = utcnow()
    _event(session, sop_id=sop.id, kind="updated", actor=caller.subject, data=changes)
    await session.commit()
    return await to_sop_read(session, sop)


async def create_version(
    session: AsyncSession,
    *,
    caller: Identity,
    sop_id: int,
    data: VersionCreate,
    idempotency_key: str | None = None,
) -> Outcome:
    """Start a new draft version; 409 while another version is a draft or in review."""
    _require(caller, WRITER_ROLES, "write SOP versions")

    async def effect() -> tuple[int, dict[str, Any]]:
        sop = await get_sop(session, sop_id=sop_id)
        versions = list(
            (await session.execute(select(SopVersion).where(SopVersion.sop_id == sop_id))).scalars()
        )
        open_ = [v for v in versions if v.status in (VersionStatus.DRAFT, VersionStatus.IN_REVIEW)]
        if open_:
            raise Conflict(
                f"Version {open_[0].number} of {sop.key} is still {open_[0].status}; "
                "finish or edit it instead.",
                open_version=open_[0].number,
            )
        number = max(v.number for v in versions) + 1
        version = _new_version(
            sop, number=number, content=data.content, summary=data.change_summary
        )
        version.author = caller.subject
        session.add(version)
        sop.updated_at = version.created_at
        _event(
            session,
            sop_id=sop.id,
            kind="version_created",
            actor=caller.subject,
            version_number=number,
        )
        await session.flush()
        return 201, SopVersionRead.model_validate(version).model_dump(mode="json")

    return await _idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{sop_path(sop_id)}/versions", data.model_dump(mode="json")
        ),
        effect=effect,
    )


async def update_version(
    session: AsyncSession, *, caller: Identity, sop_id: int, number: int, data: VersionUpdate
) -> SopVersionRead:
    """Edit a draft version (409 in any other status)."""
    _require(caller, WRITER_ROLES, "edit SOP versions")
    version = await get_version(session, sop_id=sop_id, number=number)
    plan_version_transition(VersionStatus(version.status), VersionAction.EDIT)
    if data.content is not None:
        version.content = data.content
    if data.change_summary is not None:
        version.change_summary = data.change_summary
    version.updated_at = utcnow()
    _event(
        session, sop_id=sop_id, kind="version_edited", actor=caller.subject, version_number=number
    )
    await session.commit()
    return SopVersionRead.model_validate(version)


async def submit_version(
    session: AsyncSession,
    *,
    caller: Identity,
    sop_id: int,
    number: int,
    task_queue: str,
) -> SopVersionRead:
    """Send a draft to review: starts this round's approval workflow (through the outbox).

    422 if a stage's quorum cannot be reached without the author (who never approves)."""
    _require(caller, WRITER_ROLES, "submit SOP versions")
    sop = await get_sop(session, sop_id=sop_id)
    version = await get_version(session, sop_id=sop_id, number=number)
    target = plan_version_transition(VersionStatus(version.status), VersionAction.SUBMIT)
    policy = ApprovalPolicy.model_validate(sop.approval_policy)
    stages = plan_stages(
        [(s.name, s.approvers, s.min_approvals, s.min_percent) for s in policy.stages],
        author=version.author,
    )
    now = utcnow()
    version.status = target.value
    version.review_round += 1
    version.submitted_at = version.updated_at = now
    event = _event(
        session,
        sop_id=sop_id,
        kind="submitted",
        actor=caller.subject,
        version_number=number,
        data={"review_round": version.review_round},
    )
    await session.flush()
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=sop_approval_workflow_id(version.id, version.review_round),
        workflow_type=SOP_APPROVAL_WORKFLOW,
        task_queue=task_queue,
        start_arg=SopApprovalInput(
            version_id=version.id,
            sop_id=sop.id,
            sop_key=sop.key,
            version_number=number,
            review_round=version.review_round,
            author=version.author,
            owner=sop.owner,
            team=sop.owning_team,
            stages=[
                ApprovalStageSpec(name=s.name, approvers=list(s.approvers), required=s.required)
                for s in stages
            ],
            reject_returns_to_draft=policy.reject_returns_to_draft,
            reminder_interval_seconds=policy.reminder_interval.total_seconds(),
            escalate_after_seconds=policy.escalate_after.total_seconds(),
        ),
        signal_name=SOP_APPROVAL_OPENED_SIGNAL,
        signal_arg=SopApprovalOpened(
            event_id=event.event_id, trace_request_id=current_request_id()
        ),
    )
    await session.commit()
    return SopVersionRead.model_validate(version)


async def decide(
    session: AsyncSession,
    *,
    caller: Identity,
    sop_id: int,
    number: int,
    data: DecisionCreate,
    temporal: TemporalConnector,
) -> DecisionRead:
    """Hand a decision to the version's approval workflow (a Temporal update).

    The update's validator refuses the author (403), a caller who is not an approver of the
    current stage (403), a second decision or a closed stage (409) and a rejection without a
    comment (422); a refused update leaves no trace in the workflow's history."""
    version = await get_version(session, sop_id=sop_id, number=number)
    if version.status != VersionStatus.IN_REVIEW:
        raise Conflict(
            f"Version {number} is {version.status}, not in review; decisions are closed.",
            current=version.status,
        )
    workflow_id = sop_approval_workflow_id(version.id, version.review_round)
    # Release the read transaction: the workflow records the decision here meanwhile.
    await session.rollback()
    handle = (await _temporal(temporal)).get_workflow_handle(workflow_id)
    request = SopDecisionInput(
        actor=caller.subject,
        decision=data.decision.value,
        comment=data.comment or None,
        trace_request_id=current_request_id(),
    )
    deadline = asyncio.get_running_loop().time() + WORKFLOW_START_WAIT_SECONDS
    while True:
        try:
            result = await handle.execute_update(
                SOP_DECIDE_UPDATE, request, result_type=SopDecisionResult
            )
            break
        except WorkflowUpdateFailedError as error:
            raise _refusal(error) from error
        except RPCError as error:
            # Not started yet (the outbox is on its way), or already finished.
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise ServiceUnavailable(f"Temporal refused the decision: {error}") from error
            if asyncio.get_running_loop().time() > deadline:
                raise Conflict(
                    f"The approval of version {number} is not running; retry shortly."
                ) from error
            await asyncio.sleep(0.2)
    return DecisionRead(
        actor=caller.subject,
        decision=data.decision,
        stage=result.stage,
        stage_name=result.stage_name,
        stage_status=result.stage_status,
        outcome=result.outcome,
    )


async def approval_state(
    session: AsyncSession, *, sop_id: int, number: int, temporal: TemporalConnector
) -> ApprovalRead:
    """The current (or last) approval round of a version, as its workflow reports it."""
    version = await get_version(session, sop_id=sop_id, number=number)
    if version.review_round == 0:
        raise NotFound(f"Version {number} was never submitted.")
    handle = (await _temporal(temporal)).get_workflow_handle(
        sop_approval_workflow_id(version.id, version.review_round)
    )
    try:
        state = await handle.query(SOP_APPROVAL_STATE_QUERY, result_type=SopApprovalState)
    except RPCError as error:
        raise NotFound(f"The approval of version {number} has not started yet.") from error
    return ApprovalRead.model_validate(state, from_attributes=True)


async def retire_version(
    session: AsyncSession, *, caller: Identity, sop_id: int, number: int
) -> SopVersionRead:
    """Retire the effective version without a successor (the SOP no longer applies)."""
    _require(caller, ROLLOUT_MANAGER_ROLES, "retire SOP versions")
    sop = await get_sop(session, sop_id=sop_id)
    version = await get_version(session, sop_id=sop_id, number=number)
    target = plan_version_transition(VersionStatus(version.status), VersionAction.RETIRE)
    now = utcnow()
    version.status, version.ended_at, version.updated_at = target.value, now, now
    sop.effective_version = None
    sop.updated_at = now
    _event(session, sop_id=sop_id, kind="retired", actor=caller.subject, version_number=number)
    await session.commit()
    return SopVersionRead.model_validate(version)


async def record_review(
    session: AsyncSession, *, caller: Identity, sop_id: int, note: str | None
) -> SopRead:
    """Record a periodic review: the next one is due one review interval from now."""
    _require(caller, WRITER_ROLES, "record SOP reviews")
    sop = await get_sop(session, sop_id=sop_id)
    now = utcnow()
    sop.last_reviewed_at = now
    sop.next_review_at = now + timedelta(days=sop.review_interval_days)
    sop.updated_at = now
    _event(
        session,
        sop_id=sop_id,
        kind="reviewed",
        actor=caller.subject,
        comment=note,
        data={"next_review_at": sop.next_review_at.isoformat()},
    )
    await session.commit()
    return await to_sop_read(session, sop)


# --- rollouts -------------------------------------------------------------------------------


async def create_rollout(
    session: AsyncSession,
    *,
    caller: Identity,
    sop_id: int,
    number: int,
    data: RolloutCreate,
    task_queue: str,
    idempotency_key: str | None = None,
) -> Outcome:
    """Roll an approved version out to orgs in waves; starts the rollout workflow."""
    _require(caller, ROLLOUT_MANAGER_ROLES, "roll out SOPs")

    async def effect() -> tuple[int, dict[str, Any]]:
        sop = await get_sop(session, sop_id=sop_id)
        version = await get_version(session, sop_id=sop_id, number=number)
        target = plan_version_transition(VersionStatus(version.status), VersionAction.ROLL_OUT)
        now = utcnow()
        known = {org.id: org for org in (await session.execute(select(Org))).scalars()}
        seen: set[str] = set()
        for index, wave in enumerate(data.waves):
            starts_at = wave.starts_at or now
            if wave.due_at <= starts_at:
                raise _field(f"waves.{index}.due_at", "due_at must be after starts_at", "invalid")
            for org in wave.orgs:
                if org not in known:
                    raise _field(f"waves.{index}.orgs", f"unknown org {org!r}", "unknown")
                if org in seen:
                    raise _field(f"waves.{index}.orgs", f"org {org!r} is in two waves", "duplicate")
                seen.add(org)
        rollout = SopRollout(
            sop_id=sop_id,
            version_id=version.id,
            version_number=number,
            status=RolloutStatus.IN_PROGRESS.value,
            reminder_interval_seconds=int(data.reminder_interval.total_seconds()),
            created_by=caller.subject,
            created_at=now,
            ended_at=None,
        )
        session.add(rollout)
        await session.flush()
        for index, wave in enumerate(data.waves, start=1):
            for org in wave.orgs:
                session.add(
                    SopRolloutOrg(
                        rollout_id=rollout.id,
                        org_id=org,
                        wave=index,
                        starts_at=wave.starts_at or now,
                        due_at=wave.due_at,
                        reminders_sent=0,
                        late=False,
                    )
                )
        version.status, version.updated_at = target.value, now
        sop.updated_at = now
        event = _event(
            session,
            sop_id=sop_id,
            kind="rollout_created",
            actor=caller.subject,
            version_number=number,
            rollout_id=rollout.id,
            data={"orgs": sorted(seen)},
        )
        await session.flush()
        await _signal_rollout(
            session, rollout, event_id=event.event_id, kind="created", task_queue=task_queue
        )
        return 201, (await to_rollout_read(session, rollout)).model_dump(mode="json")

    return await _idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{sop_path(sop_id)}/versions/{number}/rollouts", data.model_dump(mode="json")
        ),
        effect=effect,
    )


async def get_rollout(session: AsyncSession, *, rollout_id: int) -> SopRollout:
    """A rollout, or 404."""
    rollout = await session.get(SopRollout, rollout_id)
    if rollout is None:
        raise NotFound(f"Rollout {rollout_id} was not found.")
    return rollout


async def to_rollout_read(session: AsyncSession, rollout: SopRollout) -> RolloutRead:
    """The API view of a rollout, each org's state computed now."""
    now = utcnow()
    orgs = await _rollout_orgs(session, rollout.id)
    return RolloutRead(
        id=rollout.id,
        sop_id=rollout.sop_id,
        version_number=rollout.version_number,
        status=RolloutStatus(rollout.status),
        reminder_interval_seconds=rollout.reminder_interval_seconds,
        created_by=rollout.created_by,
        created_at=rollout.created_at,
        ended_at=rollout.ended_at,
        orgs=[
            RolloutOrgRead(
                org=row.org_id,
                wave=row.wave,
                starts_at=row.starts_at,
                due_at=row.due_at,
                state=_org_state(row, now),
                acknowledged_at=row.acknowledged_at,
                acknowledged_by=row.acknowledged_by,
                training_completed_at=row.training_completed_at,
                reminders_sent=row.reminders_sent,
                escalated_at=row.escalated_at,
                late=row.late,
            )
            for row in orgs
        ],
    )


async def acknowledge(
    session: AsyncSession,
    *,
    caller: Identity,
    rollout_id: int,
    data: AcknowledgementCreate,
    task_queue: str,
) -> RolloutRead:
    """An org lead acknowledges a rollout (training completion may follow in a later call).

    The first acknowledgement makes the version effective: it supersedes the previous versions
    and cancels their unfinished rollouts. The last one completes the rollout."""
    rollout = await get_rollout(session, rollout_id=rollout_id)
    org = await session.get(Org, data.org)
    row = await session.get(SopRolloutOrg, (rollout_id, data.org))
    if org is None or row is None:
        raise _field("org", f"Org {data.org!r} is not part of rollout {rollout_id}.", "unknown")
    if caller.subject != org.lead_subject and caller.role not in ROLLOUT_MANAGER_ROLES:
        raise Forbidden(f"Only the lead of {org.id} (or a program manager) acknowledges for it.")
    if rollout.status == RolloutStatus.CANCELLED:
        raise Conflict(f"Rollout {rollout_id} was cancelled.", current=rollout.status)
    now = utcnow()
    if row.acknowledged_at is not None:
        if data.training_completed and row.training_completed_at is None:
            row.training_completed_at = now
            _event(
                session,
                sop_id=rollout.sop_id,
                kind="training_completed",
                actor=caller.subject,
                version_number=rollout.version_number,
                rollout_id=rollout_id,
                data={"org": org.id},
            )
            await session.commit()
        return await to_rollout_read(session, rollout)
    row.acknowledged_at, row.acknowledged_by = now, caller.subject
    row.late = now > row.due_at
    row.note = data.note
    if data.training_completed:
        row.training_completed_at = now
    await _adopt(
        session, sop_id=rollout.sop_id, org_id=org.id, number=rollout.version_number, at=now
    )
    await _take_effect(
        session, rollout=rollout, actor=caller.subject, at=now, task_queue=task_queue
    )
    event = _event(
        session,
        sop_id=rollout.sop_id,
        kind="acknowledged",
        actor=caller.subject,
        version_number=rollout.version_number,
        rollout_id=rollout_id,
        comment=data.note,
        data={"org": org.id, "late": row.late, "training_completed": data.training_completed},
    )
    await session.flush()
    pending = [r for r in await _rollout_orgs(session, rollout_id) if r.acknowledged_at is None]
    if not pending:
        rollout.status, rollout.ended_at = RolloutStatus.COMPLETED.value, now
    await _signal_rollout(
        session,
        rollout,
        event_id=event.event_id,
        kind="acknowledged",
        org_id=org.id,
        task_queue=task_queue,
    )
    await session.commit()
    return await to_rollout_read(session, rollout)


# --- parity ---------------------------------------------------------------------------------


async def parity(
    session: AsyncSession, *, sop_id: int | None = None, org: str | None = None
) -> ParityRead:
    """Per SOP and org the version in effect, laggards and for how long, parity % per SOP and
    overall. An SOP's orgs are those any of its (not cancelled) rollouts targeted."""
    now = utcnow()
    sop_query = select(Sop).order_by(Sop.id)
    if sop_id is not None:
        sop_query = sop_query.where(Sop.id == sop_id)
    sops = list((await session.execute(sop_query)).scalars())
    ids = [s.id for s in sops]
    scope: dict[int, set[str]] = {i: set() for i in ids}
    due: dict[tuple[int, int, str], SopRolloutOrg] = {}
    rows = await session.execute(
        select(SopRollout.sop_id, SopRollout.version_number, SopRolloutOrg)
        .join(SopRolloutOrg, SopRolloutOrg.rollout_id == SopRollout.id)
        .where(SopRollout.sop_id.in_(ids), SopRollout.status != RolloutStatus.CANCELLED.value)
    )
    for sid, number, planned in rows:
        scope[sid].add(planned.org_id)
        due[(sid, number, planned.org_id)] = planned
    adoptions: dict[tuple[int, str], SopAdoption] = {
        (a.sop_id, a.org_id): a
        for a in (
            await session.execute(select(SopAdoption).where(SopAdoption.sop_id.in_(ids)))
        ).scalars()
    }
    for sid, org_id in adoptions:
        scope[sid].add(org_id)
    effective_since: dict[int, datetime | None] = {}
    for sop in sops:
        if sop.effective_version is not None:
            effective_since[sop.id] = (
                await session.execute(
                    select(SopVersion.effective_at).where(
                        SopVersion.sop_id == sop.id, SopVersion.number == sop.effective_version
                    )
                )
            ).scalar_one_or_none()
    reads, at_parity, pairs = [], 0, 0
    for sop in sops:
        orgs = sorted(o for o in scope[sop.id] if org is None or o == org)
        standings = [
            OrgStanding(
                org_id=o,
                version_in_effect=adoptions[(sop.id, o)].version_number
                if (sop.id, o) in adoptions
                else None,
                adopted_at=adoptions[(sop.id, o)].adopted_at if (sop.id, o) in adoptions else None,
            )
            for o in orgs
        ]
        rows_, percent = parity_of(
            standings,
            newest_effective=sop.effective_version,
            effective_since=effective_since.get(sop.id),
            now=now,
        )
        if percent is not None:
            pairs += len(rows_)
            at_parity += sum(r.at_parity for r in rows_)
        org_reads = []
        for r in rows_:
            target = (
                due.get((sop.id, sop.effective_version, r.org_id))
                if sop.effective_version is not None
                else None
            )
            org_reads.append(
                OrgParityRead(
                    org=r.org_id,
                    version_in_effect=r.version_in_effect,
                    adopted_at=r.adopted_at,
                    at_parity=r.at_parity,
                    lagging_since=r.lagging_since,
                    lag_seconds=r.lag_seconds,
                    due_at=target.due_at if target is not None else None,
                    overdue=bool(
                        target is not None
                        and target.acknowledged_at is None
                        and target.due_at < now
                    ),
                )
            )
        reads.append(
            SopParityRead(
                sop_id=sop.id,
                key=sop.key,
                title=sop.title,
                newest_effective_version=sop.effective_version,
                effective_since=effective_since.get(sop.id),
                parity_percent=percent,
                laggards=[r.org_id for r in rows_ if percent is not None and not r.at_parity],
                orgs=org_reads,
            )
        )
    overall = round(100.0 * at_parity / pairs, 2) if pairs else None
    return ParityRead(computed_at=now, overall_parity_percent=overall, sops=reads)


# --- internal: what the workflows report ---------------------------------------------------


async def record_event(session: AsyncSession, *, sop_id: int, data: SopEventIn) -> bool:
    """Record an event a workflow reports; a repeated `event_id` changes nothing (False).

    Reminders and escalations of a rollout also update the org's counters."""
    await get_sop(session, sop_id=sop_id)
    exists = (
        await session.execute(select(SopEvent.seq).where(SopEvent.event_id == data.event_id))
    ).scalar_one_or_none()
    if exists is not None:
        return False
    session.add(
        SopEvent(
            event_id=data.event_id,
            sop_id=sop_id,
            version_number=data.version_number,
            rollout_id=data.rollout_id,
            kind=data.kind,
            actor=data.actor,
            comment=data.comment,
            data={**data.data, **({"org": data.org_id} if data.org_id else {})},
            occurred_at=data.occurred_at,
        )
    )
    if data.rollout_id is not None and data.org_id is not None:
        row = await session.get(SopRolloutOrg, (data.rollout_id, data.org_id))
        if row is not None and data.kind == "rollout_reminder":
            row.reminders_sent += 1
        elif row is not None and data.kind == "rollout_escalated":
            row.escalated_at = row.escalated_at or data.occurred_at
    try:
        await session.commit()
    except IntegrityError:
        # The same event recorded concurrently by a retried activity: the first one stands.
        await session.rollback()
        return False
    return True


async def finish_approval(
    session: AsyncSession, *, version_id: int, data: ApprovalOutcomeIn
) -> SopVersionRead:
    """Apply the outcome of an approval round; a repeat (or a stale round) changes nothing."""
    version = await session.get(SopVersion, version_id)
    if version is None:
        raise NotFound(f"SOP version {version_id} was not found.")
    outcome = ApprovalOutcome(data.outcome)
    if version.review_round == data.review_round and version.status == VersionStatus.IN_REVIEW:
        target = plan_version_transition(VersionStatus(version.status), OUTCOME_ACTIONS[outcome])
        now = utcnow()
        version.status, version.updated_at = target.value, now
        if outcome is ApprovalOutcome.APPROVED:
            version.approved_at = now
        elif outcome is ApprovalOutcome.REJECTED:
            version.ended_at = now
        _event(
            session,
            sop_id=version.sop_id,
            kind=outcome.value,
            actor="approval-workflow",
            version_number=version.number,
            data={"review_round": data.review_round},
            event_id=f"sop-version-{version_id}:r{data.review_round}:{outcome.value}",
        )
        await session.commit()
    return SopVersionRead.model_validate(version)


async def due_reviews(session: AsyncSession, *, remind_before_days: int) -> list[DueReviewRead]:
    """SOPs whose next review is within `remind_before_days` (or past), soonest first."""
    now = utcnow()
    rows = (
        await session.execute(
            select(Sop)
            .where(Sop.next_review_at <= now + timedelta(days=remind_before_days))
            .order_by(Sop.next_review_at)
        )
    ).scalars()
    return [
        DueReviewRead(
            sop_id=s.id,
            key=s.key,
            title=s.title,
            team=s.owning_team,
            owner=s.owner,
            next_review_at=s.next_review_at,
            overdue=s.next_review_at <= now,
        )
        for s in rows
    ]


# --- helpers --------------------------------------------------------------------------------


def _new_version(sop: Sop, *, number: int, content: str, summary: str) -> SopVersion:
    now = utcnow()
    return SopVersion(
        sop_id=sop.id,
        number=number,
        status=VersionStatus.DRAFT.value,
        content=content,
        change_summary=summary,
        author="",
        review_round=0,
        created_at=now,
        updated_at=now,
    )


def _event(
    session: AsyncSession,
    *,
    sop_id: int,
    kind: str,
    actor: str,
    version_number: int | None = None,
    rollout_id: int | None = None,
    comment: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> SopEvent:
    event = SopEvent(
        event_id=event_id or str(uuid.uuid4()),
        sop_id=sop_id,
        version_number=version_number,
        rollout_id=rollout_id,
        kind=kind,
        actor=actor,
        comment=comment,
        data=data or {},
        occurred_at=utcnow(),
    )
    session.add(event)
    return event


async def _rollout_orgs(session: AsyncSession, rollout_id: int) -> Sequence[SopRolloutOrg]:
    return list(
        (
            await session.execute(
                select(SopRolloutOrg)
                .where(SopRolloutOrg.rollout_id == rollout_id)
                .order_by(SopRolloutOrg.wave, SopRolloutOrg.org_id)
            )
        ).scalars()
    )


def _org_state(row: SopRolloutOrg, now: datetime) -> str:
    if row.acknowledged_at is not None:
        return "acknowledged"
    if now < row.starts_at:
        return "scheduled"
    return "overdue" if now >= row.due_at else "pending"


async def _adopt(
    session: AsyncSession, *, sop_id: int, org_id: str, number: int, at: datetime
) -> None:
    adoption = await session.get(SopAdoption, (sop_id, org_id))
    if adoption is None:
        session.add(SopAdoption(sop_id=sop_id, org_id=org_id, version_number=number, adopted_at=at))
    elif adoption.version_number < number:
        # Never backwards: acknowledging an older rollout late does not undo a newer adoption.
        adoption.version_number, adoption.adopted_at = number, at


async def _take_effect(
    session: AsyncSession, *, rollout: SopRollout, actor: str, at: datetime, task_queue: str
) -> None:
    """Make the rollout's version effective (once): supersede older versions, cancel their
    unfinished rollouts."""
    version = await session.get(SopVersion, rollout.version_id)
    sop = await session.get(Sop, rollout.sop_id)
    assert version is not None
    assert sop is not None
    if version.status != VersionStatus.ROLLING_OUT:
        return
    # Compare-and-set: of two first acknowledgements racing, only one makes the version effective.
    result = await session.execute(
        update(SopVersion)
        .where(SopVersion.id == version.id, SopVersion.status == VersionStatus.ROLLING_OUT.value)
        .values(status=VersionStatus.EFFECTIVE.value, effective_at=at, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        return
    await session.refresh(version)
    sop.effective_version, sop.updated_at = version.number, at
    _event(session, sop_id=sop.id, kind="effective", actor=actor, version_number=version.number)
    older = (
        await session.execute(
            select(SopVersion).where(
                SopVersion.sop_id == sop.id,
                SopVersion.number < version.number,
                SopVersion.status.in_(
                    [VersionStatus.EFFECTIVE, VersionStatus.ROLLING_OUT, VersionStatus.APPROVED]
                ),
            )
        )
    ).scalars()
    for old in older:
        old.status, old.ended_at, old.updated_at = VersionStatus.SUPERSEDED.value, at, at
        _event(
            session,
            sop_id=sop.id,
            kind="superseded",
            actor=actor,
            version_number=old.number,
            data={"by_version": version.number},
        )
    running = (
        await session.execute(
            select(SopRollout).where(
                SopRollout.sop_id == sop.id,
                SopRollout.version_number < version.number,
                SopRollout.status == RolloutStatus.IN_PROGRESS.value,
            )
        )
    ).scalars()
    for old_rollout in running:
        old_rollout.status, old_rollout.ended_at = RolloutStatus.CANCELLED.value, at
        event = _event(
            session,
            sop_id=sop.id,
            kind="rollout_cancelled",
            actor=actor,
            version_number=old_rollout.version_number,
            rollout_id=old_rollout.id,
            data={"superseded_by": version.number},
        )
        await session.flush()
        await _signal_rollout(
            session, old_rollout, event_id=event.event_id, kind="cancelled", task_queue=task_queue
        )


async def _signal_rollout(
    session: AsyncSession,
    rollout: SopRollout,
    *,
    event_id: str,
    kind: str,
    task_queue: str,
    org_id: str | None = None,
) -> None:
    sop = await session.get(Sop, rollout.sop_id)
    assert sop is not None
    orgs = await _rollout_orgs(session, rollout.id)
    leads = {
        o.id: o.lead_subject
        for o in (
            await session.execute(select(Org).where(Org.id.in_([r.org_id for r in orgs])))
        ).scalars()
    }
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=sop_rollout_workflow_id(rollout.id),
        workflow_type=SOP_ROLLOUT_WORKFLOW,
        task_queue=task_queue,
        start_arg=SopRolloutInput(
            rollout_id=rollout.id,
            sop_id=sop.id,
            sop_key=sop.key,
            version_number=rollout.version_number,
            team=sop.owning_team,
            owner=sop.owner,
            orgs=[
                RolloutOrgTarget(
                    org_id=r.org_id,
                    lead_subject=leads[r.org_id],
                    wave=r.wave,
                    starts_at=r.starts_at,
                    due_at=r.due_at,
                    acknowledged=r.acknowledged_at is not None,
                    reminders_sent=r.reminders_sent,
                    escalated=r.escalated_at is not None,
                )
                for r in orgs
            ],
            reminder_interval_seconds=float(rollout.reminder_interval_seconds),
            cancelled=rollout.status == RolloutStatus.CANCELLED,
        ),
        signal_name=SOP_ROLLOUT_SIGNAL,
        signal_arg=SopRolloutSignal(
            event_id=event_id, kind=kind, org_id=org_id, trace_request_id=current_request_id()
        ),
        event_id=event_id,
    )


async def _temporal(temporal: TemporalConnector) -> Any:
    try:
        return await temporal.client()
    except Exception as error:
        raise ServiceUnavailable(f"Temporal is unreachable: {error!r}") from error


def _refusal(error: WorkflowUpdateFailedError) -> Exception:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in DECISION_REFUSALS:
        return DECISION_REFUSALS[cause.type](cause.message)
    return Conflict(f"The decision was refused: {cause or error}")


def _require(caller: Identity, roles: frozenset[Role], what: str) -> None:
    if caller.role not in roles:
        raise Forbidden(f"The role {caller.role.value} may not {what}.")


def _field(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"field": f"body.{field}", "message": message, "code": code}]
    )


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
