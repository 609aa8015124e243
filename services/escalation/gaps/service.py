"""Use cases of the systemic-gap register: record, list, edit, transition gaps; weekly counts.

A partner sees the gaps its own team owns; only staff write. The weekly counts are three indexed
GROUP BYs over the stored ISO weeks of each milestone (identified, first quantified, closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.idempotency import fingerprint
from services.common.identity import Identity, Role
from services.common.pagination import encode_cursor
from services.escalation.access import require_staff
from services.escalation.gaps.domain import (
    GapAction,
    GapStatus,
    LinkKind,
    iso_week,
    plan_gap_transition,
    weeks_between,
)
from services.escalation.gaps.models import Gap, GapLink
from services.escalation.gaps.schemas import (
    GapCreate,
    GapImpact,
    GapImpactRead,
    GapLinkIn,
    GapLinkRead,
    GapPage,
    GapRead,
    GapStats,
    GapTransitionCreate,
    GapUpdate,
    GapWeek,
)
from services.escalation.writes import Outcome, cursor_id, idempotent

GAPS_PATH = "/api/v1/gaps"
DEFAULT_STATS_WEEKS = 12
MAX_STATS_DAYS = 3 * 366
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 1, 1)


@dataclass(frozen=True, slots=True)
class GapFilters:
    """Filters of `GET /gaps`."""

    statuses: Sequence[GapStatus] = ()
    owning_team: str | None = None
    link_kind: LinkKind | None = None
    link_ref: str | None = None


def gap_path(gap_id: int) -> str:
    """The URL path of one gap."""
    return f"{GAPS_PATH}/{gap_id}"


def to_read(gap: Gap) -> GapRead:
    """The API view of a gap row."""
    impact = None
    if gap.impact_currency is not None:
        impact = GapImpactRead(
            accounts_per_week=gap.impact_accounts_per_week or 0,
            money_per_week=gap.impact_money_per_week or 0,
            currency=gap.impact_currency,
            method=gap.impact_method or "",
        )
    return GapRead.model_validate(
        {
            **{n: getattr(gap, n) for n in GapRead.model_fields if n not in ("impact", "links")},
            "impact": impact,
            "links": [GapLinkRead(kind=LinkKind(r.kind), ref=r.ref) for r in gap.link_rows],
        }
    )


def _impact_columns(impact: GapImpact | None) -> dict[str, Any]:
    return {
        "impact_accounts_per_week": impact.accounts_per_week if impact else None,
        "impact_money_per_week": impact.money_per_week if impact else None,
        "impact_currency": impact.currency if impact else None,
        "impact_method": impact.method if impact else None,
    }


def _link_rows(links: Sequence[GapLinkIn]) -> list[GapLink]:
    unique = dict.fromkeys((link.kind.value, link.ref) for link in links)
    return [GapLink(kind=kind, ref=ref) for kind, ref in sorted(unique)]


async def create_gap(
    session: AsyncSession,
    *,
    caller: Identity,
    data: GapCreate,
    idempotency_key: str | None = None,
) -> Outcome:
    """Record a newly identified gap (staff only)."""
    require_staff(caller, "record gaps")

    async def effect() -> tuple[int, dict[str, Any]]:
        now = utcnow()
        gap = Gap(
            title=data.title,
            description=data.description,
            owning_team=data.owning_team,
            status=GapStatus.IDENTIFIED.value,
            charter_owner=data.charter_owner,
            target_date=data.target_date,
            identified_at=now,
            identified_week=iso_week(now),
            quantified_at=now if data.impact else None,
            quantified_week=iso_week(now) if data.impact else None,
            created_by=caller.subject,
            version=1,
            created_at=now,
            updated_at=now,
            link_rows=_link_rows(data.links),
            **_impact_columns(data.impact),
        )
        session.add(gap)
        await session.flush()
        return 201, to_read(gap).model_dump(mode="json")

    return await idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint("POST", GAPS_PATH, data.model_dump(mode="json")),
        effect=effect,
    )


async def get_gap(session: AsyncSession, *, caller: Identity, gap_id: int) -> Gap:
    """A gap the caller may see (partners: their team's); 404 otherwise."""
    gap = await session.get(Gap, gap_id)
    if gap is None or not caller.can_see_team(gap.owning_team):
        raise NotFound(f"Gap {gap_id} was not found.")
    return gap


async def list_gaps(
    session: AsyncSession, *, caller: Identity, filters: GapFilters, cursor: str | None, limit: int
) -> GapPage:
    """Gaps matching `filters`, newest first."""
    team = filters.owning_team
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return GapPage(items=[], next_cursor=None)
        team = caller.team
    query = select(Gap)
    if team is not None:
        query = query.where(Gap.owning_team == team)
    if filters.statuses:
        query = query.where(Gap.status.in_([s.value for s in filters.statuses]))
    if filters.link_kind is not None and filters.link_ref is not None:
        query = query.where(
            Gap.id.in_(
                select(GapLink.gap_id).where(
                    GapLink.kind == filters.link_kind.value, GapLink.ref == filters.link_ref
                )
            )
        )
    if cursor is not None:
        query = query.where(Gap.id < cursor_id(cursor))
    rows = list((await session.execute(query.order_by(Gap.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return GapPage(items=[to_read(r) for r in rows[:limit]], next_cursor=next_cursor)


async def update_gap(
    session: AsyncSession, *, caller: Identity, gap_id: int, data: GapUpdate
) -> GapRead:
    """Change editable fields; the first impact given marks the gap quantified (that week)."""
    gap = await get_gap(session, caller=caller, gap_id=gap_id)
    require_staff(caller, "edit gaps")
    changes: dict[str, Any] = {}
    for name in data.model_fields_set - {"impact", "links"}:
        changes[name] = getattr(data, name)
    if "impact" in data.model_fields_set:
        changes.update(_impact_columns(data.impact))
        if data.impact is not None and gap.quantified_at is None:
            now = utcnow()
            changes.update(quantified_at=now, quantified_week=iso_week(now))
    await _change(session, gap, changes)
    if data.links is not None:
        gap.link_rows = _link_rows(data.links)
        await session.flush()
    await session.commit()
    await session.refresh(gap)
    return to_read(gap)


async def transition_gap(
    session: AsyncSession,
    *,
    caller: Identity,
    gap_id: int,
    data: GapTransitionCreate,
    idempotency_key: str | None = None,
) -> Outcome:
    """Apply one action of the gap's status machine."""

    async def effect() -> tuple[int, dict[str, Any]]:
        gap = await get_gap(session, caller=caller, gap_id=gap_id)
        target = plan_gap_transition(
            status=GapStatus(gap.status), action=data.action, role=caller.role, reason=data.reason
        )
        now = utcnow()
        changes: dict[str, Any] = {"status": target.value}
        if data.action in (GapAction.CLOSE, GapAction.WONT_FIX):
            changes["resolution_note"] = data.reason
        if target is GapStatus.CLOSED:
            changes.update(closed_at=now, closed_week=iso_week(now))
        elif data.action is GapAction.REOPEN:
            # A reopened gap no longer counts as closed in the week it had closed.
            changes.update(closed_at=None, closed_week=None, resolution_note=None)
        await _change(session, gap, changes)
        return 200, to_read(gap).model_dump(mode="json")

    return await idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{gap_path(gap_id)}/transitions", data.model_dump(mode="json")
        ),
        effect=effect,
    )


async def gap_stats(
    session: AsyncSession,
    *,
    caller: Identity,
    since: date | None,
    until: date | None,
    owning_team: str | None,
) -> GapStats:
    """Gaps identified, quantified and closed per ISO week (UTC) from `since` to `until`."""
    until = until or utcnow().date()
    since = since or until - timedelta(weeks=DEFAULT_STATS_WEEKS - 1)
    if (
        since > until
        or (until - since).days > MAX_STATS_DAYS
        or not EARLIEST_DAY <= since <= until < LATEST_DAY
    ):
        raise ValidationFailed(
            "since must not be after until, the range is at most three years, within 2000-2099.",
            errors=[{"field": "query.since", "message": "invalid range", "code": "invalid"}],
        )
    if caller.role is Role.PARTNER:
        owning_team = caller.team
    weeks = weeks_between(since, until)
    counts: dict[str, dict[str, int]] = {w: {} for w in weeks}
    for name, column in (
        ("identified", Gap.identified_week),
        ("quantified", Gap.quantified_week),
        ("closed", Gap.closed_week),
    ):
        for week, count in await _count_by_week(session, column, weeks, owning_team):
            counts[week][name] = count
    rows = [
        GapWeek(
            week=w,
            identified=counts[w].get("identified", 0),
            quantified=counts[w].get("quantified", 0),
            closed=counts[w].get("closed", 0),
        )
        for w in weeks
    ]
    return GapStats(
        since=since,
        until=until,
        weeks=rows,
        identified=sum(r.identified for r in rows),
        quantified=sum(r.quantified for r in rows),
        closed=sum(r.closed for r in rows),
    )


async def _count_by_week(
    session: AsyncSession,
    column: InstrumentedAttribute[Any],
    weeks: list[str],
    owning_team: str | None,
) -> list[tuple[str, int]]:
    query = select(column, func.count()).where(column >= weeks[0], column <= weeks[-1])
    if owning_team is not None:
        query = query.where(Gap.owning_team == owning_team)
    result = await session.execute(query.group_by(column))
    return [(str(week), int(count)) for week, count in result.all()]


async def _change(session: AsyncSession, gap: Gap, changes: dict[str, Any]) -> None:
    result = await session.execute(
        update(Gap)
        .where(Gap.id == gap.id, Gap.version == gap.version)
        .values(**changes, version=gap.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise Conflict(
            f"Gap {gap.id} changed meanwhile; reload it and retry.", current_version=gap.version
        )
    await session.refresh(gap)
