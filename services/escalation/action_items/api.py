"""HTTP routes of action items: `/api/v1/escalations/{id}/action-items` and
`/api/v1/action-items...`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.idempotency import IDEMPOTENCY_HEADER
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.escalation.action_items import service
from services.escalation.action_items.domain import ItemStatus
from services.escalation.action_items.schemas import (
    ActionItemCreate,
    ActionItemPage,
    ActionItemRead,
    ActionItemTransitionCreate,
    ActionItemUpdate,
)
from services.escalation.people.resolution import GatewayCalendarsDep
from services.escalation.schemas import PRINTABLE_PATTERN
from services.escalation.signals import WorkflowContext
from services.escalation.writes import MAX_ID, outcome_response

router = APIRouter(tags=["action items"])

EscalationIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The escalation's id")]
ItemIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The action item's id")]
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
StatusQuery = Annotated[list[ItemStatus] | None, Query(description="Repeatable")]
OwnerQuery = Annotated[str | None, Query(max_length=200, pattern=PRINTABLE_PATTERN)]
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Not allowed now (`allowed_actions` lists what is)"}
}


@router.post(
    "/api/v1/escalations/{escalation_id}/action-items",
    status_code=201,
    response_model=ActionItemRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Add an action item",
)
async def add_action_item(
    escalation_id: EscalationIdPath,
    body: ActionItemCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    calendars: GatewayCalendarsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add an action item with one owner. Without `due_at` it is due N business days from now
    by the escalation's severity (sev1 5, sev2 10, sev3 15, sev4 20), counted on the item's own
    `calendar`, else the owner's calendar from the person directory (a gateway calendar), else
    the program office default. Without `owner_manager` the ladder's second level is the owner's
    manager in the directory. Staff only; 409 once the escalation is closed. Honours
    `Idempotency-Key`."""
    outcome = await service.create_item(
        session,
        caller=caller,
        escalation_id=escalation_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        calendars=calendars,
        idempotency_key=idempotency_key,
    )
    return outcome_response(outcome, location=service.item_path(int(outcome.body["id"])))


@router.get(
    "/api/v1/escalations/{escalation_id}/action-items",
    response_model=ActionItemPage,
    responses=PROBLEM_RESPONSES,
    summary="List an escalation's action items",
)
async def list_escalation_items(
    escalation_id: EscalationIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    status: StatusQuery = None,
    owner: OwnerQuery = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ActionItemPage:
    """The escalation's action items, newest first, filtered by status and owner."""
    return await service.list_items(
        session,
        caller=caller,
        filters=service.ItemFilters(statuses=status or (), owner=owner),
        cursor=cursor,
        limit=limit,
        escalation_id=escalation_id,
    )


@router.get(
    "/api/v1/action-items",
    response_model=ActionItemPage,
    responses=PROBLEM_RESPONSES,
    summary="List action items across escalations",
)
async def list_action_items(
    session: SessionDep,
    caller: CurrentCaller,
    status: StatusQuery = None,
    owner: OwnerQuery = None,
    due_before: AwareDatetime | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ActionItemPage:
    """Every visible action item, newest first: e.g. one owner's open items, or those due before
    an instant. A partner sees the items of its own team's escalations."""
    return await service.list_items(
        session,
        caller=caller,
        filters=service.ItemFilters(statuses=status or (), owner=owner, due_before=due_before),
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/api/v1/action-items/{item_id}",
    response_model=ActionItemRead,
    responses=PROBLEM_RESPONSES,
    summary="Read an action item",
)
async def read_action_item(
    item_id: ItemIdPath, session: SessionDep, caller: CurrentCaller
) -> ActionItemRead:
    """One action item; 404 if missing or not visible to the caller."""
    item, _ = await service.get_item(session, caller=caller, item_id=item_id)
    return service.to_read(item)


@router.patch(
    "/api/v1/action-items/{item_id}",
    response_model=ActionItemRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Edit an action item",
)
async def edit_action_item(
    item_id: ItemIdPath,
    body: ActionItemUpdate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    calendars: GatewayCalendarsDep,
) -> ActionItemRead:
    """Change title, description, owner, owner's manager, priority, due date, link or calendar;
    only the fields given change (`calendar: null` goes back to the owner's calendar). Moving
    the due date restarts the overdue ladder. Staff only."""
    return await service.update_item(
        session,
        caller=caller,
        item_id=item_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        calendars=calendars,
    )


@router.post(
    "/api/v1/action-items/{item_id}/transitions",
    response_model=ActionItemRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT_RESPONSE},
    summary="Move an action item through its statuses",
)
async def transition_action_item(
    item_id: ItemIdPath,
    body: ActionItemTransitionCreate,
    session: SessionDep,
    caller: CurrentCaller,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Apply an action: start, block (`reason`), unblock, complete (`evidence`),
    propose_not_doing (`justification`), accept_not_doing / reject_not_doing (`reason`; program
    manager only), reopen. 409 names the caller's `allowed_actions`."""
    outcome = await service.transition_item(
        session,
        caller=caller,
        item_id=item_id,
        data=body,
        context=WorkflowContext.of(runtime.settings),
        idempotency_key=idempotency_key,
    )
    return outcome_response(outcome)
