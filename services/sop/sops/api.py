"""HTTP routes of SOPs (`/api/v1/sops`, `/api/v1/rollouts`, `/api/v1/parity`, `/api/v1/orgs`)
and the internal routes the SOP workflows report to (`/internal/sops...`, system role only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Forbidden, Problem
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.identity import Identity, Role
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.sop.sops import service
from services.sop.sops.schemas import (
    MAX_ID,
    ORG_PATTERN,
    PRINTABLE_PATTERN,
    AcknowledgementCreate,
    ApprovalOutcomeIn,
    ApprovalRead,
    DecisionCreate,
    DecisionRead,
    DiffRead,
    DueReviewRead,
    OrgRead,
    ParityRead,
    ReviewCreate,
    RolloutCreate,
    RolloutRead,
    SopCreate,
    SopEventIn,
    SopEventPage,
    SopPage,
    SopRead,
    SopUpdate,
    SopVersionPage,
    SopVersionRead,
    VersionCreate,
    VersionUpdate,
)

sops_router = APIRouter(prefix=service.SOPS_PATH, tags=["sops"])
rollouts_router = APIRouter(prefix=service.ROLLOUTS_PATH, tags=["sops"])
parity_router = APIRouter(prefix="/api/v1", tags=["sops"])
internal_router = APIRouter(prefix="/internal/sops", tags=["internal"], include_in_schema=False)

SopIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The SOP's id")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The version number (1, 2, ...)")]
RolloutIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The rollout's id")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description="Retrying with the same key and body returns the first response, no effect.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not allowed in the current state"}
}


def _write_response(outcome: service.Outcome, *, location: str | None = None) -> JSONResponse:
    return outcome.to_response(location=location)


@sops_router.post(
    "",
    status_code=201,
    response_model=SopRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Create an SOP",
)
async def create_sop(
    body: SopCreate,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Create an SOP (key like `SOP-ACC-012`, owning team, approval policy, review interval) with
    its first version as a draft. Staff only; 409 if the key exists. Honours `Idempotency-Key`."""
    outcome = await service.create_sop(
        session, caller=caller, data=body, idempotency_key=idempotency_key
    )
    return _write_response(outcome, location=service.sop_path(int(outcome.body["id"])))


@sops_router.get("", response_model=SopPage, responses=PROBLEM_RESPONSES, summary="List SOPs")
async def list_sops(
    session: SessionDep,
    _caller: CurrentCaller,
    owning_team: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE_PATTERN)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SopPage:
    """SOPs, newest first, optionally of one owning team; each says its effective and latest
    version and whether its periodic review is ok, due soon or overdue."""
    return await service.list_sops(session, owning_team=owning_team, cursor=cursor, limit=limit)


@sops_router.get(
    "/{sop_id}", response_model=SopRead, responses=PROBLEM_RESPONSES, summary="Read an SOP"
)
async def read_sop(sop_id: SopIdPath, session: SessionDep, _caller: CurrentCaller) -> SopRead:
    """One SOP."""
    return await service.to_sop_read(session, await service.get_sop(session, sop_id=sop_id))


@sops_router.patch(
    "/{sop_id}", response_model=SopRead, responses=PROBLEM_RESPONSES, summary="Change an SOP"
)
async def update_sop(
    sop_id: SopIdPath, body: SopUpdate, session: SessionDep, caller: CurrentCaller
) -> SopRead:
    """Change title, owner, approval policy (applies to the next submission) or review interval."""
    return await service.update_sop(session, caller=caller, sop_id=sop_id, data=body)


@sops_router.post(
    "/{sop_id}/reviews",
    response_model=SopRead,
    responses=PROBLEM_RESPONSES,
    summary="Record a periodic review",
)
async def record_review(
    sop_id: SopIdPath, body: ReviewCreate, session: SessionDep, caller: CurrentCaller
) -> SopRead:
    """Record that the SOP was reviewed: the next review is due one review interval from now."""
    return await service.record_review(session, caller=caller, sop_id=sop_id, note=body.note)


@sops_router.get(
    "/{sop_id}/events",
    response_model=SopEventPage,
    responses=PROBLEM_RESPONSES,
    summary="An SOP's audit trail",
)
async def list_sop_events(
    sop_id: SopIdPath,
    session: SessionDep,
    _caller: CurrentCaller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SopEventPage:
    """Every event of an SOP, oldest first: versions, submissions, each decision with its actor
    and comment, approval outcomes, rollouts, reminders, escalations, acknowledgements."""
    return await service.list_events(session, sop_id=sop_id, cursor=cursor, limit=limit)


@sops_router.get(
    "/{sop_id}/diff", response_model=DiffRead, responses=PROBLEM_RESPONSES, summary="Diff versions"
)
async def diff_versions(
    sop_id: SopIdPath,
    session: SessionDep,
    _caller: CurrentCaller,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_ID)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_ID)],
) -> DiffRead:
    """A unified diff of the markdown of two versions (`?from=1&to=2`)."""
    return await service.diff_versions(
        session, sop_id=sop_id, from_version=from_version, to_version=to_version
    )


@sops_router.post(
    "/{sop_id}/versions",
    status_code=201,
    response_model=SopVersionRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Start a new version",
)
async def create_version(
    sop_id: SopIdPath,
    body: VersionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """A new draft version with its change summary; 409 while another one is a draft or in
    review. Honours `Idempotency-Key`."""
    outcome = await service.create_version(
        session, caller=caller, sop_id=sop_id, data=body, idempotency_key=idempotency_key
    )
    location = f"{service.sop_path(sop_id)}/versions/{outcome.body['number']}"
    return _write_response(outcome, location=location)


@sops_router.get(
    "/{sop_id}/versions",
    response_model=SopVersionPage,
    responses=PROBLEM_RESPONSES,
    summary="List an SOP's versions",
)
async def list_versions(
    sop_id: SopIdPath,
    session: SessionDep,
    _caller: CurrentCaller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SopVersionPage:
    """An SOP's versions, oldest first."""
    return await service.list_versions(session, sop_id=sop_id, cursor=cursor, limit=limit)


@sops_router.get(
    "/{sop_id}/versions/{number}",
    response_model=SopVersionRead,
    responses=PROBLEM_RESPONSES,
    summary="Read a version",
)
async def read_version(
    sop_id: SopIdPath, number: VersionPath, session: SessionDep, _caller: CurrentCaller
) -> SopVersionRead:
    """One version with its content and status."""
    version = await service.get_version(session, sop_id=sop_id, number=number)
    return SopVersionRead.model_validate(version)


@sops_router.patch(
    "/{sop_id}/versions/{number}",
    response_model=SopVersionRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Edit a draft",
)
async def update_version(
    sop_id: SopIdPath,
    number: VersionPath,
    body: VersionUpdate,
    session: SessionDep,
    caller: CurrentCaller,
) -> SopVersionRead:
    """Edit the content or change summary of a draft (409 once submitted)."""
    return await service.update_version(
        session, caller=caller, sop_id=sop_id, number=number, data=body
    )


@sops_router.post(
    "/{sop_id}/versions/{number}/submit",
    response_model=SopVersionRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Submit a draft for approval",
)
async def submit_version(
    sop_id: SopIdPath,
    number: VersionPath,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> SopVersionRead:
    """Move a draft to review and start its approval workflow (stages in order, each with its
    quorum). 422 if a stage's quorum cannot be met without the author, who never approves."""
    return await service.submit_version(
        session,
        caller=caller,
        sop_id=sop_id,
        number=number,
        task_queue=runtime.settings.task_queue,
    )


@sops_router.post(
    "/{sop_id}/versions/{number}/decisions",
    response_model=DecisionRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Approve or reject a version",
)
async def decide(
    sop_id: SopIdPath,
    number: VersionPath,
    body: DecisionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> DecisionRead:
    """An approver of the current stage approves or rejects (a rejection needs a comment). 403
    for the author or a non-approver, 409 for a second decision or a closed stage. Returns the
    stage's status and, when this decision ended the approval, its outcome."""
    return await service.decide(
        session,
        caller=caller,
        sop_id=sop_id,
        number=number,
        data=body,
        temporal=runtime.temporal,
    )


@sops_router.get(
    "/{sop_id}/versions/{number}/approval",
    response_model=ApprovalRead,
    responses=PROBLEM_RESPONSES,
    summary="Where a version's approval stands",
)
async def read_approval(
    sop_id: SopIdPath,
    number: VersionPath,
    session: SessionDep,
    _caller: CurrentCaller,
    runtime: RuntimeDep,
) -> ApprovalRead:
    """The stages of the latest review round: approvers, quorum, approvals, rejections, status."""
    return await service.approval_state(
        session, sop_id=sop_id, number=number, temporal=runtime.temporal
    )


@sops_router.post(
    "/{sop_id}/versions/{number}/retire",
    response_model=SopVersionRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Retire the effective version",
)
async def retire_version(
    sop_id: SopIdPath, number: VersionPath, session: SessionDep, caller: CurrentCaller
) -> SopVersionRead:
    """Retire the effective version without a successor (program managers)."""
    return await service.retire_version(session, caller=caller, sop_id=sop_id, number=number)


@sops_router.post(
    "/{sop_id}/versions/{number}/rollouts",
    status_code=201,
    response_model=RolloutRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Roll an approved version out",
)
async def create_rollout(
    sop_id: SopIdPath,
    number: VersionPath,
    body: RolloutCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Roll an approved version out to orgs in waves (start and due time per wave). Org leads
    are reminded until they acknowledge and escalated when overdue. Program managers only."""
    outcome = await service.create_rollout(
        session,
        caller=caller,
        sop_id=sop_id,
        number=number,
        data=body,
        task_queue=runtime.settings.task_queue,
        idempotency_key=idempotency_key,
    )
    return _write_response(outcome, location=service.rollout_path(int(outcome.body["id"])))


@rollouts_router.get(
    "/{rollout_id}", response_model=RolloutRead, responses=PROBLEM_RESPONSES, summary="A rollout"
)
async def read_rollout(
    rollout_id: RolloutIdPath, session: SessionDep, _caller: CurrentCaller
) -> RolloutRead:
    """A rollout and each org's state: scheduled, pending, overdue or acknowledged."""
    rollout = await service.get_rollout(session, rollout_id=rollout_id)
    return await service.to_rollout_read(session, rollout)


@rollouts_router.post(
    "/{rollout_id}/acknowledgements",
    response_model=RolloutRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Acknowledge a rollout for an org",
)
async def acknowledge(
    rollout_id: RolloutIdPath,
    body: AcknowledgementCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> RolloutRead:
    """The org's lead (or a program manager) acknowledges the new version and, now or later,
    records training completion. The first acknowledgement makes the version effective."""
    return await service.acknowledge(
        session,
        caller=caller,
        rollout_id=rollout_id,
        data=body,
        task_queue=runtime.settings.task_queue,
    )


@parity_router.get(
    "/parity", response_model=ParityRead, responses=PROBLEM_RESPONSES, summary="SOP parity"
)
async def read_parity(
    session: SessionDep,
    _caller: CurrentCaller,
    sop_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    org: Annotated[str | None, Query(pattern=ORG_PATTERN)] = None,
) -> ParityRead:
    """For every SOP and org: the version in effect, whether it is the newest effective one, and
    how long a laggard has lagged; parity per SOP and overall."""
    return await service.parity(session, sop_id=sop_id, org=org)


@parity_router.get(
    "/orgs", response_model=list[OrgRead], responses=PROBLEM_RESPONSES, summary="Orgs and sites"
)
async def list_orgs(session: SessionDep, _caller: CurrentCaller) -> list[OrgRead]:
    """The sites and partner orgs SOPs are rolled out to, with their leads."""
    return await service.list_orgs(session)


def _system(caller: Identity) -> None:
    if caller.role is not Role.SYSTEM:
        raise Forbidden("Internal routes are for the worker only.")


@internal_router.post("/{sop_id}/events", status_code=204)
async def record_event(
    sop_id: SopIdPath, body: SopEventIn, session: SessionDep, caller: CurrentCaller
) -> Response:
    """Record an event a workflow reports (a repeated event id is a no-op)."""
    _system(caller)
    await service.record_event(session, sop_id=sop_id, data=body)
    return Response(status_code=204)


@internal_router.put("/versions/{version_id}/approval-outcome", response_model=SopVersionRead)
async def finish_approval(
    version_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: ApprovalOutcomeIn,
    session: SessionDep,
    caller: CurrentCaller,
) -> SopVersionRead:
    """Apply how an approval round ended (a repeat or a stale round changes nothing)."""
    _system(caller)
    return await service.finish_approval(session, version_id=version_id, data=body)


@internal_router.get("/reviews/due", response_model=list[DueReviewRead])
async def due_reviews(
    session: SessionDep,
    caller: CurrentCaller,
    remind_before_days: Annotated[int, Query(ge=0, le=3650)] = 30,
) -> list[DueReviewRead]:
    """SOPs whose periodic review is due within the window, or overdue."""
    _system(caller)
    return await service.due_reviews(session, remind_before_days=remind_before_days)


ROUTERS = [sops_router, rollouts_router, parity_router, internal_router]
