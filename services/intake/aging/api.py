"""Intake's aging route: the data behind the gateway's `GET /api/v1/alerts/aging` and the daily
aging sweep. Not forwarded by the gateway (it only forwards `/api/v1`)."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.errors import PROBLEM_RESPONSES
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.intake.aging import service
from services.intake.aging.schemas import AgingQuery, AgingRead

router = APIRouter(prefix="/internal/requests/aging", tags=["internal"])


@router.post("", response_model=AgingRead, responses=PROBLEM_RESPONSES, summary="Aging report")
async def aging_report(
    body: AgingQuery, session: SessionDep, caller: CurrentCaller, runtime: RuntimeDep
) -> AgingRead:
    """Open requests (neither resolved nor closed) counted per team, assignee and age bucket
    (business days on the given calendar), and the stale ones (no update for N business days),
    longest idle first. A read, but a POST: the calendar object travels in the body. Scoped by
    the caller like the request list: the worker (system) and staff see every team, a partner
    only its own. 422 for a bad calendar or filter."""
    return await service.aging_report(
        session,
        caller=caller,
        query=body,
        default_stale_days=runtime.settings.aging_stale_business_days,
    )
