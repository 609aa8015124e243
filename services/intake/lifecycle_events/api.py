"""Intake's catch-up route for the request workflows (worker only; the gateway does not route it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from services.common.errors import PROBLEM_RESPONSES
from services.common.pagination import MAX_LIMIT
from services.common.service_app import SessionDep, require_system
from services.intake.lifecycle_events import service
from services.intake.lifecycle_events.schemas import LifecycleEventPage
from services.intake.schemas import MAX_ID

# The role is checked before the query is validated (403 before 422).
router = APIRouter(
    prefix="/internal/requests", tags=["internal"], dependencies=[Depends(require_system)]
)


@router.get(
    "/{request_id}/lifecycle-events",
    response_model=LifecycleEventPage,
    responses=PROBLEM_RESPONSES,
    summary="A request's events as workflow signals (worker only)",
)
async def list_lifecycle_events(
    request_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The request's id")],
    session: SessionDep,
    after_version: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Only events that produced a later version")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = MAX_LIMIT,
) -> LifecycleEventPage:
    """The request's events after `after_version`, oldest first, shaped as the `request_event`
    signals the outbox delivers (with the priority right after each change). The request's
    workflow reads them before it raises an SLA breach, so events whose signals are still on the
    way count. System role only (403 otherwise); 404 for an unknown request; `has_more` when the
    page stopped at `limit` (ask again after the last item's `version`)."""
    return await service.list_lifecycle_events(
        session, request_id=request_id, after_version=after_version, limit=limit
    )
