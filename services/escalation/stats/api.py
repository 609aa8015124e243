"""`GET /api/v1/stats/escalations` (the gateway routes `/api/v1/stats/escalations` here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.errors import PROBLEM_RESPONSES
from services.common.service_app import CurrentCaller, SessionDep
from services.common.stats import PeriodDep
from services.escalation.stats import service
from services.escalation.stats.schemas import EscalationStatsRead

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])

TeamQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$", description="One team"),
]


@router.get(
    "/escalations",
    response_model=EscalationStatsRead,
    responses=PROBLEM_RESPONSES,
    summary="Escalation stats of a period",
)
async def escalation_stats(
    period: PeriodDep, session: SessionDep, caller: CurrentCaller, team: TeamQuery = None
) -> EscalationStatsRead:
    """Escalations opened (by source and severity) and closed, how many are open at the end of
    the period, closure time (count, p50, p90), action items created, completed and overdue,
    and gaps identified, quantified and closed (the ISO weeks the period touches). The period is
    `week=2026-W48` or `from`/`to` (UTC dates, both included); default the current ISO week.
    Staff only (403 for partners and approvers); 422 for a bad period."""
    return await service.escalation_stats(session, caller=caller, period=period, team=team)
