"""`GET /api/v1/stats/intake` (the gateway routes `/api/v1/stats/intake` here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.errors import PROBLEM_RESPONSES
from services.common.service_app import CurrentCaller, SessionDep
from services.common.stats import PeriodDep
from services.intake.stats import service
from services.intake.stats.schemas import IntakeStatsRead

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])

TeamQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description="One team"),
]


@router.get(
    "/intake",
    response_model=IntakeStatsRead,
    responses=PROBLEM_RESPONSES,
    summary="Intake stats of a period",
)
async def intake_stats(
    period: PeriodDep, session: SessionDep, caller: CurrentCaller, team: TeamQuery = None
) -> IntakeStatsRead:
    """Requests filed (by team and type), closed (by resolution), the backlog at the end of the
    period, business time to first response and to resolution (count, p50, p90 of the clocks
    that stopped in the period), SLA attainment and breaches, and the reopen rate. The period is
    `week=2026-W48` or `from`/`to` (UTC dates, both included); default the current ISO week.
    Staff only (403 for partners and approvers); 422 for a bad period."""
    return await service.intake_stats(session, caller=caller, period=period, team=team)
