"""SOP stats as SQL aggregates (COUNT/FILTER, a UNION for the parity scope, percentiles)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Forbidden
from services.common.identity import Identity
from services.common.stats import Period, PeriodRead, duration_stats, ratio, seconds_between
from services.sop.rules.models import Rule, RuleDeprecation
from services.sop.sops.domain import RolloutStatus
from services.sop.sops.models import Sop, SopAdoption, SopRollout, SopRolloutOrg, SopVersion
from services.sop.stats.schemas import ParityStats, RuleStats, SopStatsRead


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [column >= period.start, column < period.end]


async def sop_stats(
    session: AsyncSession, *, caller: Identity, period: Period, team: str | None
) -> SopStatsRead:
    """Every SOP number of `period` (optionally of one owning team). Staff only."""
    if not caller.is_staff:
        raise Forbidden(f"The role {caller.role.value} may not read stats.")
    as_of = period.as_of()
    of_team: list[ColumnElement[bool]] = [Sop.owning_team == team] if team is not None else []

    def versions(*where: ColumnElement[bool]) -> Any:
        query = select(func.count()).select_from(SopVersion).where(*where)
        if team is not None:
            query = query.join(Sop, Sop.id == SopVersion.sop_id).where(*of_team)
        return query

    submitted = (
        await session.execute(versions(*_within(SopVersion.submitted_at, period)))
    ).scalar_one()
    approved = (
        await session.execute(versions(*_within(SopVersion.approved_at, period)))
    ).scalar_one()
    cycle_where = list(_within(SopVersion.approved_at, period))
    if team is not None:
        cycle_where.append(SopVersion.sop_id.in_(select(Sop.id).where(*of_team)))
    cycle = await duration_stats(
        session,
        seconds_between(session, SopVersion.submitted_at, SopVersion.approved_at),
        cycle_where,
    )
    reviews_overdue = (
        await session.execute(
            select(func.count()).select_from(Sop).where(Sop.next_review_at < as_of, *of_team)
        )
    ).scalar_one()
    acks = (
        select(func.count())
        .select_from(SopRolloutOrg)
        .join(SopRollout, SopRollout.id == SopRolloutOrg.rollout_id)
        .where(
            SopRollout.status != RolloutStatus.CANCELLED.value,
            SopRolloutOrg.due_at < as_of,
            or_(SopRolloutOrg.acknowledged_at.is_(None), SopRolloutOrg.acknowledged_at > as_of),
        )
    )
    if team is not None:
        acks = acks.join(Sop, Sop.id == SopRollout.sop_id).where(*of_team)
    acknowledgements_overdue = (await session.execute(acks)).scalar_one()

    parity = await _parity(session, of_team)

    rules = (
        select(
            func.count().filter(RuleDeprecation.outcome == "deprecated"),
            func.count().filter(RuleDeprecation.outcome == "retained"),
        )
        .select_from(RuleDeprecation)
        .where(*_within(RuleDeprecation.finished_at, period))
    )
    if team is not None:
        rules = rules.join(Rule, Rule.id == RuleDeprecation.rule_id).where(Rule.team == team)
    deprecated, retained = (await session.execute(rules)).one()

    return SopStatsRead(
        period=PeriodRead.of(period, as_of),
        team=team,
        versions_submitted=int(submitted),
        versions_approved=int(approved),
        approval_cycle_time=cycle,
        reviews_overdue=int(reviews_overdue),
        acknowledgements_overdue=int(acknowledgements_overdue),
        parity=parity,
        rules=RuleStats(deprecated=int(deprecated), retained=int(retained)),
    )


async def _parity(session: AsyncSession, of_team: list[ColumnElement[bool]]) -> ParityStats:
    """The same rule as `GET /parity` (sops/domain.py `parity_of`), counted in SQL: an SOP's
    orgs are those any of its (not cancelled) rollouts targeted or that adopted a version; a
    pair is at parity when the org's version in effect is the newest effective one or newer."""
    scope = union(
        select(SopAdoption.sop_id, SopAdoption.org_id),
        select(SopRollout.sop_id, SopRolloutOrg.org_id)
        .join(SopRolloutOrg, SopRolloutOrg.rollout_id == SopRollout.id)
        .where(SopRollout.status != RolloutStatus.CANCELLED.value),
    ).subquery()
    computed_at = utcnow()
    pairs, at_parity = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(SopAdoption.version_number >= Sop.effective_version),
            )
            .select_from(scope)
            .join(Sop, Sop.id == scope.c.sop_id)
            .outerjoin(
                SopAdoption,
                and_(SopAdoption.sop_id == scope.c.sop_id, SopAdoption.org_id == scope.c.org_id),
            )
            .where(Sop.effective_version.is_not(None), *of_team)
        )
    ).one()
    return ParityStats(
        computed_at=computed_at,
        pairs=int(pairs),
        at_parity=int(at_parity),
        parity=ratio(int(at_parity), int(pairs)),
    )
