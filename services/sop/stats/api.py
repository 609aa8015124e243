"""`GET /api/v1/stats/sops` (the gateway routes `/api/v1/stats/sops` here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.common.errors import PROBLEM_RESPONSES
from services.common.service_app import CurrentCaller, SessionDep
from services.common.stats import PeriodDep
from services.sop.stats import service
from services.sop.stats.schemas import SopStatsRead

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])

TeamQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="One owning team (SOPs) / team (rules)",
    ),
]


@router.get(
    "/sops",
    response_model=SopStatsRead,
    responses=PROBLEM_RESPONSES,
    summary="SOP and rule stats of a period",
)
async def sop_stats(
    period: PeriodDep, session: SessionDep, caller: CurrentCaller, team: TeamQuery = None
) -> SopStatsRead:
    """SOP versions submitted and approved, approval cycle time (count, p50, p90), reviews and
    rollout acknowledgements overdue at the end of the period, rollout parity now (the share of
    SOP/org pairs at the newest effective version), and rule deprecations finished (deprecated,
    retained). The period is `week=2026-W48` or `from`/`to` (UTC dates, both included); default
    the current ISO week. Staff only (403 for partners and approvers); 422 for a bad period."""
    return await service.sop_stats(session, caller=caller, period=period, team=team)
