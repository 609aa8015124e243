"""Use cases of the MO repository: create, read, list, change MOs and find similar ones.

Keyword-only functions taking an AsyncSession and the verified caller, raising DomainErrors. Links
to rules live in `mo_rule_link` (the same rows a rule lists as its MOs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import NotFound, ValidationFailed
from services.common.identity import Identity, Role
from services.common.pagination import decode_cursor, encode_cursor
from services.sop.mos.domain import MoStatus, MoText, check_status_change, rank
from services.sop.mos.matching_service import enqueue_mo_embedding
from services.sop.mos.models import Mo, MoReference, MoRuleLink
from services.sop.mos.schemas import (
    ImpactRead,
    IndicatorsRead,
    MoCreate,
    MoPage,
    MoRead,
    MoUpdate,
    SimilarityRead,
    SimilarMo,
    SimilarMoList,
)
from services.sop.rules.domain import field_error, require_writer
from services.sop.rules.idempotency import Outcome, run_idempotent
from services.sop.rules.models import Rule
from services.sop.rules.schemas import MAX_INT

MOS_PATH = "/api/v1/mos"
REQUEST, ESCALATION = "request", "escalation"
# How many of the newest visible MOs a similarity search scores; rapidfuzz does ~1M pairs/s, so
# this keeps a search well under 100 ms while covering any realistic repository.
MAX_SCAN = 5000


@dataclass(frozen=True, slots=True)
class MoFilters:
    """Filters of `GET /mos`."""

    statuses: Sequence[MoStatus] = ()
    team: str | None = None
    rule_id: str | None = None
    request_id: int | None = None
    escalation_id: int | None = None


def mo_path(mo_id: int) -> str:
    """The URL path of one MO."""
    return f"{MOS_PATH}/{mo_id}"


@dataclass
class _Links:
    rule_ids: list[str]
    request_ids: list[int]
    escalation_ids: list[int]


async def _links(session: AsyncSession, mo_ids: Sequence[int]) -> dict[int, _Links]:
    result = {mo_id: _Links([], [], []) for mo_id in mo_ids}
    if not mo_ids:
        return result
    for mo_id, rule_id in await session.execute(
        select(MoRuleLink.mo_id, MoRuleLink.rule_id)
        .where(MoRuleLink.mo_id.in_(mo_ids))
        .order_by(MoRuleLink.rule_id)
    ):
        result[mo_id].rule_ids.append(rule_id)
    for mo_id, kind, ref_id in await session.execute(
        select(MoReference.mo_id, MoReference.kind, MoReference.ref_id)
        .where(MoReference.mo_id.in_(mo_ids))
        .order_by(MoReference.ref_id)
    ):
        target = result[mo_id].request_ids if kind == REQUEST else result[mo_id].escalation_ids
        target.append(ref_id)
    return result


def _read(mo: Mo, links: _Links) -> MoRead:
    has_impact = any(
        v is not None
        for v in (
            mo.impact_accounts_affected,
            mo.impact_money_at_risk_per_week,
            mo.impact_notes,
        )
    )
    return MoRead(
        id=mo.id,
        name=mo.name,
        summary=mo.summary,
        team=mo.team,
        status=MoStatus(mo.status),
        indicators=IndicatorsRead(
            signals=mo.signals, behaviours=mo.behaviours, entity_types=mo.entity_types
        ),
        first_seen_at=mo.first_seen_at,
        impact=ImpactRead(
            accounts_affected=mo.impact_accounts_affected,
            money_at_risk_per_week=mo.impact_money_at_risk_per_week,
            currency=mo.impact_currency,
            notes=mo.impact_notes,
        )
        if has_impact
        else None,
        rule_ids=links.rule_ids,
        request_ids=links.request_ids,
        escalation_ids=links.escalation_ids,
        version=mo.version,
        created_by=mo.created_by,
        created_at=mo.created_at,
        updated_at=mo.updated_at,
    )


async def to_read(session: AsyncSession, mo: Mo) -> MoRead:
    """The API view of an MO with its links."""
    return _read(mo, (await _links(session, [mo.id]))[mo.id])


async def _check_rules(session: AsyncSession, *, caller: Identity, rule_ids: Sequence[str]) -> None:
    if not rule_ids:
        return
    found = await session.execute(select(Rule.id, Rule.team).where(Rule.id.in_(rule_ids)))
    visible = {rule_id for rule_id, team in found if caller.can_see_team(team)}
    missing = sorted(set(rule_ids) - visible)
    if missing:
        raise field_error("rule_ids", f"Unknown rule ids: {', '.join(missing)}.", code="unknown")


async def _set_links(
    session: AsyncSession,
    *,
    mo_id: int,
    rule_ids: Sequence[str] | None,
    request_ids: Sequence[int] | None,
    escalation_ids: Sequence[int] | None,
) -> None:
    current = (await _links(session, [mo_id]))[mo_id]
    if rule_ids is not None:
        for rule_id in set(rule_ids) - set(current.rule_ids):
            session.add(MoRuleLink(mo_id=mo_id, rule_id=rule_id))
        for rule_id in set(current.rule_ids) - set(rule_ids):
            link = await session.get(MoRuleLink, (mo_id, rule_id))
            if link is not None:
                await session.delete(link)
    for kind, wanted, have in (
        (REQUEST, request_ids, current.request_ids),
        (ESCALATION, escalation_ids, current.escalation_ids),
    ):
        if wanted is None:
            continue
        for ref_id in set(wanted) - set(have):
            session.add(MoReference(mo_id=mo_id, kind=kind, ref_id=ref_id))
        for ref_id in set(have) - set(wanted):
            ref = await session.get(MoReference, (mo_id, kind, ref_id))
            if ref is not None:
                await session.delete(ref)


async def create_mo(
    session: AsyncSession,
    *,
    caller: Identity,
    data: MoCreate,
    task_queue: str,
    idempotency_key: str | None = None,
) -> Outcome:
    """Record an MO with its indicators, impact and links; honours `Idempotency-Key`. Its
    embedding is computed by the worker (outbox -> MoEmbeddingWorkflow)."""
    require_writer(caller, "record MOs")

    async def effect() -> tuple[int, dict[str, Any]]:
        await _check_rules(session, caller=caller, rule_ids=data.rule_ids)
        now = utcnow()
        impact = data.impact
        mo = Mo(
            name=data.name,
            summary=data.summary,
            team=data.team,
            status=data.status.value,
            signals=list(data.indicators.signals),
            behaviours=list(data.indicators.behaviours),
            entity_types=list(data.indicators.entity_types),
            first_seen_at=data.first_seen_at,
            impact_accounts_affected=impact.accounts_affected if impact else None,
            impact_money_at_risk_per_week=impact.money_at_risk_per_week if impact else None,
            impact_currency=impact.currency if impact else None,
            impact_notes=impact.notes if impact else None,
            version=1,
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
        )
        session.add(mo)
        await session.flush()
        enqueue_mo_embedding(session, mo_id=mo.id, task_queue=task_queue)
        await _set_links(
            session,
            mo_id=mo.id,
            rule_ids=data.rule_ids,
            request_ids=data.request_ids,
            escalation_ids=data.escalation_ids,
        )
        await session.flush()
        return 201, (await to_read(session, mo)).model_dump(mode="json")

    return await run_idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        method="POST",
        path=MOS_PATH,
        payload=data.model_dump(mode="json"),
        effect=effect,
    )


async def get_mo(session: AsyncSession, *, caller: Identity, mo_id: int) -> Mo:
    """An MO the caller may see; 404 if missing or another team's (for a partner)."""
    mo = await session.get(Mo, mo_id)
    if mo is None or not caller.can_see_team(mo.team):
        raise NotFound(f"MO {mo_id} was not found.")
    return mo


def _partner_team(caller: Identity, team: str | None) -> tuple[str | None, bool]:
    """The team filter to apply, and whether the result is empty by construction."""
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return team, True
        return caller.team, False
    return team, False


async def list_mos(
    session: AsyncSession, *, caller: Identity, filters: MoFilters, cursor: str | None, limit: int
) -> MoPage:
    """MOs matching `filters`, newest first; a partner sees only its own team's."""
    team, empty = _partner_team(caller, filters.team)
    if empty:
        return MoPage(items=[], next_cursor=None)
    query = select(Mo)
    if team is not None:
        query = query.where(Mo.team == team)
    if filters.statuses:
        query = query.where(Mo.status.in_([s.value for s in filters.statuses]))
    if filters.rule_id is not None:
        query = query.where(
            Mo.id.in_(select(MoRuleLink.mo_id).where(MoRuleLink.rule_id == filters.rule_id))
        )
    for kind, ref_id in ((REQUEST, filters.request_id), (ESCALATION, filters.escalation_id)):
        if ref_id is not None:
            query = query.where(
                Mo.id.in_(
                    select(MoReference.mo_id).where(
                        MoReference.kind == kind, MoReference.ref_id == ref_id
                    )
                )
            )
    if cursor is not None:
        after = decode_cursor(cursor, required=("id",))["id"]
        if type(after) is not int or not 0 <= after <= MAX_INT:
            raise ValidationFailed(
                "The cursor is not one this list returned.",
                errors=[{"field": "query.cursor", "message": "invalid", "code": "cursor_invalid"}],
            )
        query = query.where(Mo.id < after)
    rows = list((await session.execute(query.order_by(Mo.id.desc()).limit(limit + 1))).scalars())
    page = rows[:limit]
    links = await _links(session, [m.id for m in page])
    return MoPage(
        items=[_read(m, links[m.id]) for m in page],
        next_cursor=encode_cursor({"id": page[-1].id}) if len(rows) > limit else None,
    )


async def update_mo(
    session: AsyncSession, *, caller: Identity, mo_id: int, data: MoUpdate, task_queue: str
) -> MoRead:
    """Change an MO; a status change must follow suspected -> confirmed -> mitigated (409).
    The worker then re-embeds it if its text changed, and tells intake the catalog moved."""
    require_writer(caller, "change MOs")
    mo = await get_mo(session, caller=caller, mo_id=mo_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "summary", "team", "status", "indicators"):
        if name in changes and changes[name] is None:
            raise field_error(name, f"{name} cannot be null.", code="null")
    if data.status is not None:
        check_status_change(MoStatus(mo.status), data.status)
        mo.status = data.status.value
    if data.rule_ids is not None:
        await _check_rules(session, caller=caller, rule_ids=data.rule_ids)
    for name in ("name", "summary", "team", "first_seen_at"):
        if name in changes:
            setattr(mo, name, getattr(data, name))
    if data.indicators is not None:
        mo.signals = list(data.indicators.signals)
        mo.behaviours = list(data.indicators.behaviours)
        mo.entity_types = list(data.indicators.entity_types)
    if "impact" in changes:
        impact = data.impact
        mo.impact_accounts_affected = impact.accounts_affected if impact else None
        mo.impact_money_at_risk_per_week = impact.money_at_risk_per_week if impact else None
        mo.impact_currency = impact.currency if impact else None
        mo.impact_notes = impact.notes if impact else None
    await _set_links(
        session,
        mo_id=mo.id,
        rule_ids=data.rule_ids,
        request_ids=data.request_ids,
        escalation_ids=data.escalation_ids,
    )
    mo.version += 1
    mo.updated_at = utcnow()
    enqueue_mo_embedding(session, mo_id=mo.id, task_queue=task_queue)
    await session.commit()
    return await to_read(session, mo)


def _text(mo: Mo) -> MoText:
    return MoText(
        name=mo.name, summary=mo.summary, indicators=[*mo.signals, *mo.behaviours, *mo.entity_types]
    )


async def _search(
    session: AsyncSession,
    *,
    caller: Identity,
    query: MoText,
    exclude: int | None,
    min_score: float,
    limit: int,
) -> SimilarMoList:
    team, _ = _partner_team(caller, None)
    scan = select(Mo).order_by(Mo.id.desc()).limit(MAX_SCAN)
    if team is not None:
        scan = scan.where(Mo.team == team)
    if exclude is not None:
        scan = scan.where(Mo.id != exclude)
    mos = {m.id: m for m in (await session.execute(scan)).scalars()}
    ranked = rank(query, [(m.id, _text(m)) for m in mos.values()], min_score=min_score, limit=limit)
    links = await _links(session, [mo_id for mo_id, _ in ranked])
    return SimilarMoList(
        items=[
            SimilarMo(
                mo=_read(mos[mo_id], links[mo_id]),
                similarity=SimilarityRead(
                    score=s.score, name=s.name, summary=s.summary, indicators=s.indicators
                ),
            )
            for mo_id, s in ranked
        ]
    )


async def similar_to_text(
    session: AsyncSession, *, caller: Identity, q: str, min_score: float, limit: int
) -> SimilarMoList:
    """MOs whose name, summary or indicators resemble free text, best first."""
    return await _search(
        session,
        caller=caller,
        query=MoText.of_query(q),
        exclude=None,
        min_score=min_score,
        limit=limit,
    )


async def similar_to_mo(
    session: AsyncSession, *, caller: Identity, mo_id: int, min_score: float, limit: int
) -> SimilarMoList:
    """MOs resembling one MO (field by field), best first; the MO itself is left out."""
    mo = await get_mo(session, caller=caller, mo_id=mo_id)
    return await _search(
        session, caller=caller, query=_text(mo), exclude=mo.id, min_score=min_score, limit=limit
    )
