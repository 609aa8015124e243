"""HTTP routes of escalations, their RCA and closure (`/api/v1/escalations...`, as the gateway
forwards them unchanged)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.escalation import service
from services.escalation.access import get_escalation
from services.escalation.domain import EscalationStatus, Severity, Source
from services.escalation.people.resolution import GatewayCalendarsDep
from services.escalation.schemas import (
    PRINTABLE_PATTERN,
    ClosureApprovalCreate,
    ClosureApprovalRead,
    EscalationCreate,
    EscalationPage,
    EscalationRead,
    EscalationUpdate,
    RcaPut,
    RcaRead,
    TransitionCreate,
)
from services.escalation.signals import WorkflowContext
from services.escalation.writes import MAX_ID, outcome_response

router = APIRouter(prefix=service.ESCALATIONS_PATH, tags=["escalations"])

EscalationIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The escalation's id")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description="Retrying with the same key and body returns the first response, once.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]
SubjectQuery = Annotated[str | None, Query(max_length=200, pattern=PRINTABLE_PATTERN)]
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not allowed now (`allowed_actions` or `reasons`)"}
}


@router.post(
    "",
    status_code=201,
    response_model=EscalationRead,
    responses=PROBLEM_RESPONSES,
    summary="Raise an escalation",
)
async def raise_escalation(
    body: EscalationCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Raise a Sev-2, executive, COE or partner escalation. Staff name the `team`; a partner
    raises `partner` escalations for its own team. Starts its follow-up workflow. Returns 201 with
    `Location`; honours `Idempotency-Key`."""
    outcome = await service.create_escalation(
        session,
        caller=caller,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        idempotency_key=idempotency_key,
    )
    return outcome_response(outcome, location=service.escalation_path(int(outcome.body["id"])))


@router.get(
    "", response_model=EscalationPage, responses=PROBLEM_RESPONSES, summary="List escalations"
)
async def list_escalations(
    session: SessionDep,
    caller: CurrentCaller,
    status: Annotated[list[EscalationStatus] | None, Query(description="Repeatable")] = None,
    source: Source | None = None,
    severity: Severity | None = None,
    team: Annotated[
        str | None,
        Query(max_length=100, pattern=PRINTABLE_PATTERN, description="Partners see their own"),
    ] = None,
    owner: SubjectQuery = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> EscalationPage:
    """Escalations matching every given filter, newest first, one page at a time (pass
    `next_cursor` back as `cursor`). A partner only sees its own team's escalations."""
    filters = service.EscalationFilters(
        statuses=status or (),
        source=source,
        severity=severity,
        team=team,
        owner=owner,
        created_after=created_after,
        created_before=created_before,
    )
    return await service.list_escalations(
        session, caller=caller, filters=filters, cursor=cursor, limit=limit
    )


@router.get(
    "/{escalation_id}",
    response_model=EscalationRead,
    responses=PROBLEM_RESPONSES,
    summary="Read an escalation",
)
async def read_escalation(
    escalation_id: EscalationIdPath, session: SessionDep, caller: CurrentCaller
) -> EscalationRead:
    """One escalation; 404 if it does not exist or is another team's (for a partner)."""
    escalation = await get_escalation(session, caller=caller, escalation_id=escalation_id)
    return service.to_read(escalation)


@router.patch(
    "/{escalation_id}",
    response_model=EscalationRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Edit an escalation",
)
async def edit_escalation(
    escalation_id: EscalationIdPath,
    body: EscalationUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> EscalationRead:
    """Change editable fields (title, summary, severity, owner, program manager, impacts,
    timeline, external reference); only the fields given change. Staff only; 409 once closed."""
    return await service.update_escalation(
        session,
        caller=caller,
        escalation_id=escalation_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
    )


@router.post(
    "/{escalation_id}/transitions",
    response_model=EscalationRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Move an escalation through its life",
)
async def transition_escalation(
    escalation_id: EscalationIdPath,
    body: TransitionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Apply an action: mitigate, start_rca, open_actions, request_closure or reopen_actions.
    `close` needs the program manager's approval (`/closure-approval`). 409 names the caller's
    `allowed_actions` when the state does not allow the action."""
    outcome = await service.transition_escalation(
        session,
        caller=caller,
        escalation_id=escalation_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        idempotency_key=idempotency_key,
    )
    return outcome_response(outcome)


@router.post(
    "/{escalation_id}/closure-approval",
    response_model=ClosureApprovalRead,
    responses={
        **PROBLEM_RESPONSES,
        **CONFLICT_RESPONSE,
        503: {"model": Problem, "description": "The workflow service is unreachable"},
    },
    summary="Approve closing an escalation (program manager)",
)
async def approve_closure(
    escalation_id: EscalationIdPath,
    body: ClosureApprovalCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
) -> ClosureApprovalRead:
    """The program manager approves closing an escalation in `pending_closure`. The approval is
    the `approve_closure` update of the escalation's workflow: its validator refuses (409
    `closure-refused`, with `reasons`) while an action item is open or, for Sev-2 tickets and
    COEs, no RCA is on file. Once accepted, the escalation is closed and returned."""
    return await service.approve_closure(
        session,
        caller=caller,
        escalation_id=escalation_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        temporal=runtime.temporal,
    )


@router.put(
    "/{escalation_id}/rca",
    response_model=RcaRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Write the RCA / COE document (a new version)",
)
async def put_rca(
    escalation_id: EscalationIdPath,
    body: RcaPut,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    calendars: GatewayCalendarsDep,
) -> RcaRead:
    """Store the RCA as the next version: what happened, impact, timeline, five-whys chains (1 to
    5 steps each), a root-cause category, contributing factors, what went well, lessons learned,
    and corrective actions, each linking an action item of this escalation or creating one (due
    by the follow-up policy on its owner's calendar unless `due_at` is given)."""
    return await service.put_rca(
        session,
        caller=caller,
        escalation_id=escalation_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        calendars=calendars,
    )


@router.get(
    "/{escalation_id}/rca",
    response_model=RcaRead,
    responses=PROBLEM_RESPONSES,
    summary="Read the RCA (latest, or `?version=`)",
)
async def read_rca(
    escalation_id: EscalationIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> RcaRead:
    """The latest RCA version, or an older one with `?version=`; 404 when there is none."""
    return await service.get_rca(
        session, caller=caller, escalation_id=escalation_id, version=version
    )
