"""Use cases of the rule inventory: rules, weekly metrics, candidates, and monitored deprecation.

Functions are keyword-only, take an AsyncSession and the verified caller, and raise DomainErrors.
A proposal, its rule status change and its workflow start (outbox row) commit in ONE transaction.
The workflow drives the rest through the internal endpoints (`begin_monitoring`, `check_monitoring`,
`record_outcome`); decisions go to the workflow as a Temporal update, whose validator is the
authority on whether a decision is allowed now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from services.common.db import utcnow
from services.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from services.common.identity import Identity, Role
from services.common.logging import current_request_id
from services.common.outbox import enqueue_signal
from services.common.pagination import decode_cursor, encode_cursor
from services.common.temporal import TemporalConnector
from services.sop.models import OutboxEvent
from services.sop.mos.models import Mo, MoRuleLink
from services.sop.rules.domain import (
    DEFAULT_MONITORING_SECONDS,
    Criteria,
    DeprecationStage,
    RuleAction,
    RuleKind,
    RuleStatus,
    Snapshot,
    candidate_findings,
    evaluate_monitoring,
    field_error,
    plan_rule_transition,
    require_decider,
    require_writer,
    week_start_of,
    weighted_precision,
)
from services.sop.rules.idempotency import Outcome, run_idempotent
from services.sop.rules.ml_models import (
    ModelCriteria,
    ReportedMetric,
    evaluate_model_monitoring,
    metric_errors,
    model_candidate_findings,
    model_hits,
    weighted_model_precision,
)
from services.sop.rules.models import Rule, RuleDeprecation, RuleMetricSnapshot
from services.sop.rules.schemas import (
    CandidateFindingRead,
    CandidateList,
    CandidateRead,
    DecisionCreate,
    DeprecationCreate,
    DeprecationPage,
    DeprecationRead,
    MetricBulkCreate,
    MetricBulkResult,
    MetricCreate,
    MetricFields,
    MetricPage,
    MetricRead,
    MetricWritten,
    MonitoringCheck,
    MonitoringStarted,
    OutcomeCreate,
    RuleCreate,
    RulePage,
    RuleRead,
    RuleUpdate,
)
from workflows.contracts import (
    RULE_DEPRECATION_DECIDE_UPDATE,
    RULE_DEPRECATION_NOT_CAUGHT_UP,
    RULE_DEPRECATION_SIGNAL,
    RULE_DEPRECATION_WORKFLOW,
    RuleDeprecationDecision,
    RuleDeprecationInput,
    RuleDeprecationState,
    rule_deprecation_workflow_id,
)

RULES_PATH = "/api/v1/rules"
INTERNAL_RULES_PATH = "/internal/rules"
# Statuses the non-impacting test looks at: a rule already being deprecated is not a candidate.
CANDIDATE_STATUSES = (RuleStatus.ACTIVE.value, RuleStatus.RETAINED.value)
# How long a decision waits for the workflow to catch up with the monitoring check it recorded.
CATCH_UP_SECONDS = 5.0
OPEN_STAGES = (
    DeprecationStage.PROPOSED.value,
    DeprecationStage.MONITORING.value,
    DeprecationStage.AWAITING_APPROVAL.value,
)


@dataclass(frozen=True, slots=True)
class RuleFilters:
    """Filters of `GET /rules`."""

    statuses: Sequence[RuleStatus] = ()
    team: str | None = None
    owner: str | None = None
    mo_id: int | None = None
    kind: RuleKind | None = None


def rule_path(rule_id: str) -> str:
    """The URL path of one rule."""
    return f"{RULES_PATH}/{rule_id}"


async def _mo_ids_of(session: AsyncSession, rule_ids: Sequence[str]) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {rule_id: [] for rule_id in rule_ids}
    if not rule_ids:
        return result
    rows = await session.execute(
        select(MoRuleLink.rule_id, MoRuleLink.mo_id)
        .where(MoRuleLink.rule_id.in_(rule_ids))
        .order_by(MoRuleLink.rule_id, MoRuleLink.mo_id)
    )
    for rule_id, mo_id in rows:
        result[rule_id].append(mo_id)
    return result


def _read(rule: Rule, mo_ids: list[int]) -> RuleRead:
    return RuleRead(
        id=rule.id,
        name=rule.name,
        owner=rule.owner,
        team=rule.team,
        description=rule.description,
        kind=RuleKind(rule.kind),
        status=RuleStatus(rule.status),
        mo_ids=mo_ids,
        deployed_at=rule.deployed_at,
        last_fired_at=rule.last_fired_at,
        replaced_by=rule.replaced_by,
        merged_into=rule.merged_into,
        version=rule.version,
        created_by=rule.created_by,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def to_read(session: AsyncSession, rule: Rule) -> RuleRead:
    """The API view of a rule (with its linked MOs)."""
    return _read(rule, (await _mo_ids_of(session, [rule.id]))[rule.id])


async def _check_mos(
    session: AsyncSession, *, caller: Identity, mo_ids: Sequence[int], field_name: str
) -> None:
    if not mo_ids:
        return
    found = await session.execute(select(Mo.id, Mo.team).where(Mo.id.in_(mo_ids)))
    # An MO the caller may not see is reported exactly like a missing one.
    visible = {mo_id for mo_id, team in found if caller.can_see_team(team)}
    missing = sorted(set(mo_ids) - visible)
    if missing:
        raise field_error(
            field_name, f"Unknown MO ids: {', '.join(map(str, missing))}.", code="unknown"
        )


async def _set_mo_links(session: AsyncSession, *, rule_id: str, mo_ids: Sequence[int]) -> None:
    current = set((await _mo_ids_of(session, [rule_id]))[rule_id])
    wanted = set(mo_ids)
    for mo_id in wanted - current:
        session.add(MoRuleLink(mo_id=mo_id, rule_id=rule_id))
    for mo_id in current - wanted:
        link = await session.get(MoRuleLink, (mo_id, rule_id))
        if link is not None:
            await session.delete(link)


async def create_rule(
    session: AsyncSession,
    *,
    caller: Identity,
    data: RuleCreate,
    idempotency_key: str | None = None,
) -> Outcome:
    """Add a rule to the inventory (status active); 409 if its id is taken."""
    require_writer(caller, "add rules")

    async def effect() -> tuple[int, dict[str, Any]]:
        if await session.get(Rule, data.id) is not None:
            raise Conflict(f"Rule {data.id} already exists.")
        await _check_mos(session, caller=caller, mo_ids=data.mo_ids, field_name="mo_ids")
        now = utcnow()
        rule = Rule(
            id=data.id,
            name=data.name,
            owner=data.owner,
            team=data.team,
            description=data.description,
            kind=data.kind.value,
            status=RuleStatus.ACTIVE.value,
            deployed_at=data.deployed_at or now,
            last_fired_at=None,
            replaced_by=None,
            merged_into=None,
            version=1,
            created_by=caller.subject,
            created_at=now,
            updated_at=now,
        )
        session.add(rule)
        await session.flush()
        await _set_mo_links(session, rule_id=rule.id, mo_ids=data.mo_ids)
        return 201, _read(rule, list(data.mo_ids)).model_dump(mode="json")

    return await run_idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        method="POST",
        path=RULES_PATH,
        payload=data.model_dump(mode="json"),
        effect=effect,
    )


async def get_rule(session: AsyncSession, *, caller: Identity, rule_id: str) -> Rule:
    """A rule the caller may see; 404 if missing or another team's (for a partner)."""
    rule = await session.get(Rule, rule_id)
    if rule is None or not caller.can_see_team(rule.team):
        raise NotFound(f"Rule {rule_id} was not found.")
    return rule


async def list_rules(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: RuleFilters,
    cursor: str | None,
    limit: int,
) -> RulePage:
    """Rules matching `filters`, by id; a partner sees only its own team's."""
    team = filters.team
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return RulePage(items=[], next_cursor=None)
        team = caller.team
    query = select(Rule)
    if team is not None:
        query = query.where(Rule.team == team)
    if filters.statuses:
        query = query.where(Rule.status.in_([s.value for s in filters.statuses]))
    if filters.owner is not None:
        query = query.where(Rule.owner == filters.owner)
    if filters.kind is not None:
        query = query.where(Rule.kind == filters.kind.value)
    if filters.mo_id is not None:
        query = query.where(
            Rule.id.in_(select(MoRuleLink.rule_id).where(MoRuleLink.mo_id == filters.mo_id))
        )
    if cursor is not None:
        after = decode_cursor(cursor, required=("id",))["id"]
        if not isinstance(after, str):
            raise ValidationFailed(
                "The cursor is not one this list returned.",
                errors=[{"field": "query.cursor", "message": "invalid", "code": "cursor_invalid"}],
            )
        query = query.where(Rule.id > after)
    rows = list((await session.execute(query.order_by(Rule.id).limit(limit + 1))).scalars())
    page = rows[:limit]
    links = await _mo_ids_of(session, [r.id for r in page])
    return RulePage(
        items=[_read(r, links[r.id]) for r in page],
        next_cursor=encode_cursor({"id": page[-1].id}) if len(rows) > limit else None,
    )


async def _check_successor(
    session: AsyncSession, *, caller: Identity, rule_id: str, other: str | None, field_name: str
) -> None:
    if other is None:
        return
    if other == rule_id:
        raise field_error(field_name, "A rule cannot succeed itself.", code="invalid")
    target = await session.get(Rule, other)
    if target is None or not caller.can_see_team(target.team):
        raise field_error(field_name, f"Unknown rule {other}.", code="unknown")
    if target.status == RuleStatus.DEPRECATED.value:
        raise field_error(field_name, f"Rule {other} is deprecated itself.", code="invalid")


async def update_rule(
    session: AsyncSession, *, caller: Identity, rule_id: str, data: RuleUpdate
) -> RuleRead:
    """Change a rule's descriptive fields, MO links and replaced-by/merged-into links."""
    require_writer(caller, "change rules")
    rule = await get_rule(session, caller=caller, rule_id=rule_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "owner", "team", "description"):
        if name in changes and changes[name] is None:
            raise field_error(name, f"{name} cannot be null.", code="null")
    if (
        "replaced_by" in changes
        and "merged_into" in changes
        and data.replaced_by
        and data.merged_into
    ):
        raise field_error(
            "merged_into", "Give replaced_by or merged_into, not both.", code="invalid"
        )
    await _check_successor(
        session, caller=caller, rule_id=rule_id, other=data.replaced_by, field_name="replaced_by"
    )
    await _check_successor(
        session, caller=caller, rule_id=rule_id, other=data.merged_into, field_name="merged_into"
    )
    if data.mo_ids is not None:
        await _check_mos(session, caller=caller, mo_ids=data.mo_ids, field_name="mo_ids")
        await _set_mo_links(session, rule_id=rule_id, mo_ids=data.mo_ids)
    for name, value in changes.items():
        if name != "mo_ids":
            setattr(rule, name, value)
    rule.version += 1
    rule.updated_at = utcnow()
    await session.commit()
    return await to_read(session, rule)


# --- metrics ------------------------------------------------------------------------------


def _fire_of(week_start: date, hits: int, last_fired_at: datetime | None) -> datetime | None:
    """When a snapshot says the rule last fired; hits without a time count as the week's end."""
    if last_fired_at is not None:
        return last_fired_at
    if hits > 0:
        week_end = datetime.combine(week_start + timedelta(days=7), time.min, tzinfo=UTC)
        return min(week_end, utcnow())
    return None


async def _refresh_last_fired(session: AsyncSession, rule: Rule) -> None:
    fired, hit_week = (
        await session.execute(
            select(
                func.max(RuleMetricSnapshot.last_fired_at),
                func.max(RuleMetricSnapshot.week_start).filter(
                    RuleMetricSnapshot.hits > 0, RuleMetricSnapshot.last_fired_at.is_(None)
                ),
            ).where(RuleMetricSnapshot.rule_id == rule.id)
        )
    ).one()
    candidates = [v for v in (fired, _fire_of(hit_week, 1, None) if hit_week else None) if v]
    latest = max(candidates, default=None)
    if latest != rule.last_fired_at:
        rule.last_fired_at = latest


def _reported(data: MetricFields) -> ReportedMetric:
    return ReportedMetric(
        given=frozenset(data.model_fields_set),
        hits=data.hits,
        true_positive_rate=data.true_positive_rate,
        precision=data.precision,
        recall=data.recall,
        threshold=data.threshold,
        volume_actioned=data.volume_actioned,
    )


def _metric_errors(rule: Rule, data: MetricFields, *, prefix: str) -> list[dict[str, str]]:
    """What is wrong with a snapshot for this rule's kind (a model reports other fields)."""
    return metric_errors(RuleKind(rule.kind), _reported(data), prefix=prefix)


async def _write_metric(
    session: AsyncSession, *, caller: Identity, rule: Rule, data: MetricFields, now: datetime
) -> MetricWritten:
    reported = _reported(data)
    is_model = rule.kind == RuleKind.MODEL.value
    values = {
        "hits": model_hits(reported) if is_model else data.hits,
        "true_positive_rate": data.true_positive_rate,
        "actioned_accounts": data.actioned_accounts,
        "last_fired_at": data.last_fired_at,
        "precision": data.precision,
        "recall": data.recall,
        "threshold": data.threshold,
        "volume_actioned": data.volume_actioned,
    }
    existing = (
        await session.execute(
            select(RuleMetricSnapshot).where(
                RuleMetricSnapshot.rule_id == rule.id,
                RuleMetricSnapshot.week_start == data.week_start,
            )
        )
    ).scalar_one_or_none()
    if existing is None:
        row = RuleMetricSnapshot(
            rule_id=rule.id,
            week_start=data.week_start,
            recorded_by=caller.subject,
            recorded_at=now,
            updated_at=now,
            **values,
        )
        session.add(row)
        result = "created"
    elif all(getattr(existing, k) == v for k, v in values.items()):
        row, result = existing, "unchanged"
    else:
        for key, value in values.items():
            setattr(existing, key, value)
        existing.recorded_by = caller.subject
        existing.updated_at = now
        row, result = existing, "replaced"
    await session.flush()
    return MetricWritten.model_validate(
        {**MetricRead.model_validate(row).model_dump(), "result": result}
    )


async def record_metric(
    session: AsyncSession, *, caller: Identity, rule_id: str, data: MetricCreate
) -> MetricWritten:
    """Store one weekly snapshot; idempotent per (rule, week)."""
    require_writer(caller, "post rule metrics")
    for attempt in range(2):
        rule = await get_rule(session, caller=caller, rule_id=rule_id)
        errors = _metric_errors(rule, data, prefix="body")
        if errors:
            raise ValidationFailed(f"This snapshot does not fit a {rule.kind}.", errors=errors)
        try:
            written = await _write_metric(
                session, caller=caller, rule=rule, data=data, now=utcnow()
            )
            await _refresh_last_fired(session, rule)
            await session.commit()
            return written
        except IntegrityError:
            # Two posts of the same new week raced: the loser retries as a replacement.
            await session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


async def record_metrics_bulk(
    session: AsyncSession, *, caller: Identity, data: MetricBulkCreate
) -> MetricBulkResult:
    """Store many snapshots in one transaction; unknown rules make the whole batch a 422."""
    require_writer(caller, "post rule metrics")
    keys = [(item.rule_id, item.week_start) for item in data.items]
    duplicates = {k for k in keys if keys.count(k) > 1} if len(set(keys)) != len(keys) else set()
    if duplicates:
        raise ValidationFailed(
            "A batch may carry one snapshot per rule and week.",
            errors=[
                {
                    "field": f"body.items.{i}",
                    "message": "duplicate rule and week",
                    "code": "duplicate",
                }
                for i, k in enumerate(keys)
                if k in duplicates
            ],
        )
    for attempt in range(2):
        wanted = sorted({item.rule_id for item in data.items})
        rules = {
            r.id: r
            for r in (await session.execute(select(Rule).where(Rule.id.in_(wanted)))).scalars()
            if caller.can_see_team(r.team)
        }
        unknown = [
            {"field": f"body.items.{i}.rule_id", "message": "unknown rule", "code": "unknown"}
            for i, item in enumerate(data.items)
            if item.rule_id not in rules
        ]
        if unknown:
            raise ValidationFailed("Some snapshots name unknown rules.", errors=unknown)
        misfits = [
            error
            for i, item in enumerate(data.items)
            for error in _metric_errors(rules[item.rule_id], item, prefix=f"body.items.{i}")
        ]
        if misfits:
            raise ValidationFailed("Some snapshots do not fit their rule's kind.", errors=misfits)
        now = utcnow()
        try:
            written = [
                await _write_metric(
                    session, caller=caller, rule=rules[item.rule_id], data=item, now=now
                )
                for item in data.items
            ]
            for rule in rules.values():
                await _refresh_last_fired(session, rule)
            await session.commit()
        except IntegrityError:
            await session.rollback()
            if attempt:
                raise
            continue
        return MetricBulkResult(
            created=sum(w.result == "created" for w in written),
            replaced=sum(w.result == "replaced" for w in written),
            unchanged=sum(w.result == "unchanged" for w in written),
            items=written,
        )
    raise AssertionError("unreachable")


async def list_metrics(
    session: AsyncSession, *, caller: Identity, rule_id: str, cursor: str | None, limit: int
) -> MetricPage:
    """A rule's weekly snapshots, newest week first."""
    await get_rule(session, caller=caller, rule_id=rule_id)
    query = select(RuleMetricSnapshot).where(RuleMetricSnapshot.rule_id == rule_id)
    if cursor is not None:
        raw = decode_cursor(cursor, required=("w",))["w"]
        try:
            before = date.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            before = None
        if before is None:
            raise ValidationFailed(
                "The cursor is not one this list returned.",
                errors=[{"field": "query.cursor", "message": "invalid", "code": "cursor_invalid"}],
            )
        query = query.where(RuleMetricSnapshot.week_start < before)
    rows = list(
        (
            await session.execute(
                query.order_by(RuleMetricSnapshot.week_start.desc()).limit(limit + 1)
            )
        ).scalars()
    )
    page = rows[:limit]
    return MetricPage(
        items=[MetricRead.model_validate(r) for r in page],
        next_cursor=encode_cursor({"w": page[-1].week_start.isoformat()})
        if len(rows) > limit
        else None,
    )


def _snapshot(row: RuleMetricSnapshot) -> Snapshot:
    return Snapshot(
        week_start=row.week_start,
        hits=row.hits,
        true_positive_rate=row.true_positive_rate,
        actioned_accounts=row.actioned_accounts,
        last_fired_at=row.last_fired_at,
        updated_at=row.updated_at,
        precision=row.precision,
        recall=row.recall,
        threshold=row.threshold,
        volume_actioned=row.volume_actioned,
    )


async def list_candidates(
    session: AsyncSession,
    *,
    caller: Identity,
    criteria: Criteria | ModelCriteria,
    team: str | None = None,
    limit: int = 500,
) -> CandidateList:
    """Active (or retained) rules the non-impacting test flags, quietest first; with
    `ModelCriteria`, the ML models the model criteria flag instead."""
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return CandidateList(criteria=criteria.to_dict(), items=[])
        team = caller.team
    if isinstance(criteria, ModelCriteria):
        return await _model_candidates(session, criteria=criteria, team=team, limit=limit)
    now = utcnow()
    quiet_cutoff = now - timedelta(days=criteria.no_hits_days)
    precision_from = week_start_of(now.date()) - timedelta(weeks=criteria.precision_weeks)
    scope: list[ColumnElement[bool]] = [
        Rule.kind == RuleKind.RULE.value,
        Rule.status.in_(CANDIDATE_STATUSES),
    ]
    if team is not None:
        scope.append(Rule.team == team)
    quiet = select(Rule.id).where(
        *scope,
        or_(
            Rule.last_fired_at <= quiet_cutoff,
            and_(Rule.last_fired_at.is_(None), Rule.deployed_at <= quiet_cutoff),
        ),
    )
    hit_weighted = RuleMetricSnapshot.hits * RuleMetricSnapshot.true_positive_rate
    imprecise = (
        select(RuleMetricSnapshot.rule_id)
        .join(Rule, Rule.id == RuleMetricSnapshot.rule_id)
        .where(
            *scope,
            RuleMetricSnapshot.week_start >= precision_from,
            RuleMetricSnapshot.hits > 0,
            RuleMetricSnapshot.true_positive_rate.is_not(None),
        )
        .group_by(RuleMetricSnapshot.rule_id)
        .having(
            func.sum(hit_weighted) < criteria.precision_floor * func.sum(RuleMetricSnapshot.hits)
        )
    )
    ids = set((await session.execute(quiet)).scalars()) | set(
        (await session.execute(imprecise)).scalars()
    )
    if not ids:
        return CandidateList(criteria=criteria.to_dict(), items=[])
    rules = list((await session.execute(select(Rule).where(Rule.id.in_(ids)))).scalars())
    recent: dict[str, list[Snapshot]] = {rule_id: [] for rule_id in ids}
    for row in (
        await session.execute(
            select(RuleMetricSnapshot).where(
                RuleMetricSnapshot.rule_id.in_(ids), RuleMetricSnapshot.week_start >= precision_from
            )
        )
    ).scalars():
        recent[row.rule_id].append(_snapshot(row))
    links = await _mo_ids_of(session, [r.id for r in rules])
    items: list[CandidateRead] = []
    for rule in rules:
        findings = candidate_findings(
            deployed_at=rule.deployed_at,
            last_fired_at=rule.last_fired_at,
            recent=recent[rule.id],
            now=now,
            criteria=criteria,
        )
        if not findings:
            continue
        quiet_since = rule.last_fired_at
        items.append(
            CandidateRead(
                rule=_read(rule, links[rule.id]),
                findings=[CandidateFindingRead(reason=f.reason, detail=f.detail) for f in findings],
                days_since_last_hit=(now - quiet_since).total_seconds() / 86_400
                if quiet_since
                else None,
                precision=weighted_precision(recent[rule.id]),
                weeks_considered=criteria.precision_weeks,
            )
        )
    # Quietest first: never-fired rules, then by how long ago they last fired.
    items.sort(
        key=lambda c: (c.rule.last_fired_at is not None, c.rule.last_fired_at or now, c.rule.id)
    )
    return CandidateList(criteria=criteria.to_dict(), items=items[:limit])


async def _model_candidates(
    session: AsyncSession, *, criteria: ModelCriteria, team: str | None, limit: int
) -> CandidateList:
    """Active (or retained) models the model criteria flag, least volume first.

    Models are few next to rules (dozens, not thousands): each is judged in Python on its
    snapshots of the last `criteria.weeks` weeks, read through the (kind, id) index.
    """
    now = utcnow()
    since = week_start_of(now.date()) - timedelta(weeks=criteria.weeks)
    query = select(Rule).where(
        Rule.kind == RuleKind.MODEL.value, Rule.status.in_(CANDIDATE_STATUSES)
    )
    if team is not None:
        query = query.where(Rule.team == team)
    models = list((await session.execute(query.order_by(Rule.id))).scalars())
    recent: dict[str, list[Snapshot]] = {model.id: [] for model in models}
    if models:
        for row in (
            await session.execute(
                select(RuleMetricSnapshot).where(
                    RuleMetricSnapshot.rule_id.in_(list(recent)),
                    RuleMetricSnapshot.week_start >= since,
                )
            )
        ).scalars():
            recent[row.rule_id].append(_snapshot(row))
    links = await _mo_ids_of(session, [m.id for m in models])
    flagged: list[tuple[int, CandidateRead]] = []
    for model in models:
        findings = model_candidate_findings(
            recent=recent[model.id], now=now, deployed_at=model.deployed_at, criteria=criteria
        )
        if not findings:
            continue
        volume = sum(s.volume_actioned or 0 for s in recent[model.id])
        last = model.last_fired_at
        flagged.append(
            (
                volume,
                CandidateRead(
                    rule=_read(model, links[model.id]),
                    findings=[
                        CandidateFindingRead(reason=f.reason, detail=f.detail) for f in findings
                    ],
                    days_since_last_hit=(now - last).total_seconds() / 86_400 if last else None,
                    precision=weighted_model_precision(recent[model.id]),
                    weeks_considered=criteria.weeks,
                ),
            )
        )
    flagged.sort(key=lambda pair: (pair[0], pair[1].rule.id))
    return CandidateList(criteria=criteria.to_dict(), items=[c for _, c in flagged[:limit]])


# --- deprecation ------------------------------------------------------------------------------


def deprecation_read(row: RuleDeprecation) -> DeprecationRead:
    """The API view of a deprecation."""
    return DeprecationRead.model_validate(
        {
            **{
                name: getattr(row, name)
                for name in DeprecationRead.model_fields
                if name != "workflow_id"
            },
            "workflow_id": rule_deprecation_workflow_id(row.rule_id),
        }
    )


async def _set_status(session: AsyncSession, rule: Rule, action: RuleAction, **values: Any) -> None:
    """Move a rule through its state machine with a compare-and-set on its version."""
    target = plan_rule_transition(RuleStatus(rule.status), action)
    result = await session.execute(
        update(Rule)
        .where(Rule.id == rule.id, Rule.version == rule.version)
        .values(status=target.value, version=rule.version + 1, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise Conflict(f"Rule {rule.id} changed meanwhile; reload it and retry.")
    await session.refresh(rule)


async def propose_deprecation(
    session: AsyncSession,
    *,
    caller: Identity,
    rule_id: str,
    data: DeprecationCreate,
    task_queue: str,
    default_monitoring_seconds: int = DEFAULT_MONITORING_SECONDS,
    idempotency_key: str | None = None,
) -> Outcome:
    """Propose deprecating a rule: records the proposal and starts its workflow (outbox)."""
    require_writer(caller, "propose rule deprecations")

    async def effect() -> tuple[int, dict[str, Any]]:
        row = await _propose(
            session,
            caller=caller,
            rule_id=rule_id,
            data=data,
            task_queue=task_queue,
            default_monitoring_seconds=default_monitoring_seconds,
        )
        return 201, deprecation_read(row).model_dump(mode="json")

    return await run_idempotent(
        session,
        caller=caller,
        key=idempotency_key,
        method="POST",
        path=f"{rule_path(rule_id)}/deprecation",
        payload=data.model_dump(mode="json"),
        effect=effect,
    )


async def _propose(
    session: AsyncSession,
    *,
    caller: Identity,
    rule_id: str,
    data: DeprecationCreate,
    task_queue: str,
    default_monitoring_seconds: int,
) -> RuleDeprecation:
    rule = await get_rule(session, caller=caller, rule_id=rule_id)
    await _check_successor(
        session, caller=caller, rule_id=rule_id, other=data.replaced_by, field_name="replaced_by"
    )
    await _check_successor(
        session, caller=caller, rule_id=rule_id, other=data.merged_into, field_name="merged_into"
    )
    await _set_status(session, rule, RuleAction.PROPOSE_DEPRECATION)
    given = data.criteria.model_dump(exclude_none=True) if data.criteria else {}
    criteria = _criteria_for(RuleKind(rule.kind), given)
    now = utcnow()
    row = RuleDeprecation(
        rule_id=rule.id,
        stage=DeprecationStage.PROPOSED.value,
        reason=data.reason,
        proposed_by=caller.subject,
        proposed_at=now,
        monitoring_seconds=data.monitoring_seconds or default_monitoring_seconds,
        criteria=criteria,
        replaced_by=data.replaced_by,
        merged_into=data.merged_into,
    )
    session.add(row)
    await session.flush()
    start = RuleDeprecationInput(
        rule_id=rule.id,
        deprecation_id=row.id,
        team=rule.team,
        reason=row.reason,
        proposed_by=row.proposed_by,
        monitoring_seconds=row.monitoring_seconds,
        trace_request_id=current_request_id(),
    )
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=rule_deprecation_workflow_id(rule.id),
        workflow_type=RULE_DEPRECATION_WORKFLOW,
        task_queue=task_queue,
        start_arg=start,
        signal_name=RULE_DEPRECATION_SIGNAL,
        signal_arg=start,
    )
    return row


# Criteria that only one kind takes: the other kind's proposal refuses them.
RULE_ONLY_CRITERIA = ("no_hits_days", "precision_weeks")
MODEL_ONLY_CRITERIA = ("volume_floor",)


def _criteria_for(kind: RuleKind, given: dict[str, Any]) -> dict[str, Any]:
    """The stored criteria of a proposal: the kind's defaults overridden by what was given."""
    foreign = RULE_ONLY_CRITERIA if kind is RuleKind.MODEL else MODEL_ONLY_CRITERIA
    wrong = [name for name in foreign if name in given]
    if wrong:
        raise ValidationFailed(
            f"A {kind.value} is not judged on {', '.join(wrong)}.",
            errors=[
                {
                    "field": f"body.criteria.{name}",
                    "message": f"not a criterion of a {kind.value}",
                    "code": "unexpected",
                }
                for name in wrong
            ],
        )
    if kind is RuleKind.MODEL:
        return ModelCriteria.from_dict(given).to_dict()
    return Criteria.from_dict(given).to_dict()


async def list_deprecations(
    session: AsyncSession, *, caller: Identity, rule_id: str, limit: int = 50
) -> DeprecationPage:
    """A rule's deprecation proposals, newest first."""
    await get_rule(session, caller=caller, rule_id=rule_id)
    rows = (
        await session.execute(
            select(RuleDeprecation)
            .where(RuleDeprecation.rule_id == rule_id)
            .order_by(RuleDeprecation.id.desc())
            .limit(limit)
        )
    ).scalars()
    return DeprecationPage(items=[deprecation_read(r) for r in rows])


async def current_deprecation(
    session: AsyncSession, *, caller: Identity, rule_id: str
) -> DeprecationRead:
    """The rule's latest deprecation proposal; 404 if it never had one."""
    row = await _latest(
        session, rule_id=(await get_rule(session, caller=caller, rule_id=rule_id)).id
    )
    if row is None:
        raise NotFound(f"Rule {rule_id} has no deprecation proposal.")
    return deprecation_read(row)


async def _latest(session: AsyncSession, *, rule_id: str) -> RuleDeprecation | None:
    return (
        await session.execute(
            select(RuleDeprecation)
            .where(RuleDeprecation.rule_id == rule_id)
            .order_by(RuleDeprecation.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def decide_deprecation(
    session: AsyncSession,
    *,
    caller: Identity,
    rule_id: str,
    data: DecisionCreate,
    temporal: TemporalConnector,
    wait_seconds: float,
) -> tuple[int, DeprecationRead]:
    """Approve or reject a clean monitoring period through the workflow's `decide` update.

    200 with the finished deprecation once the workflow recorded the outcome, or 202 if it was
    accepted but not recorded within `wait_seconds` (it will be). The workflow's validator has
    the last word (403 for the role, 409 for the stage), so two racing decisions cannot both win.
    """
    require_decider(caller)
    rule = await get_rule(session, caller=caller, rule_id=rule_id)
    row = await _latest(session, rule_id=rule.id)
    if row is None or row.stage != DeprecationStage.AWAITING_APPROVAL.value:
        stage = row.stage if row else None
        raise Conflict(
            f"Rule {rule_id} has no deprecation awaiting approval"
            + (f" (its latest is {stage})." if stage else "."),
            stage=stage,
        )
    deprecation_id = row.id
    # End this session's read transaction: the workflow writes the outcome while we wait.
    await session.rollback()
    try:
        client = await temporal.client()
    except Exception as exc:
        raise ServiceUnavailable("Temporal is unreachable; try the decision again.") from exc
    handle = client.get_workflow_handle(rule_deprecation_workflow_id(rule_id))
    decision = RuleDeprecationDecision(
        deprecation_id=deprecation_id,
        decision=data.decision.value,
        actor=caller.subject,
        role=caller.role.value,
        comment=data.comment,
    )
    # The check activity records `awaiting_approval` here a workflow task before the workflow
    # itself sees it; its validator says so (NotCaughtUp) and the decision is tried again.
    catch_up_deadline = asyncio.get_running_loop().time() + CATCH_UP_SECONDS
    while True:
        try:
            pending = await handle.start_update(
                RULE_DEPRECATION_DECIDE_UPDATE,
                decision,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                result_type=RuleDeprecationState,
            )
            break
        except WorkflowUpdateFailedError as exc:
            behind = (
                isinstance(exc.cause, ApplicationError)
                and exc.cause.type == RULE_DEPRECATION_NOT_CAUGHT_UP
            )
            if behind and asyncio.get_running_loop().time() < catch_up_deadline:
                await asyncio.sleep(0.2)
                continue
            raise _refusal(exc) from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict(
                    f"The deprecation workflow of rule {rule_id} is not running."
                ) from exc
            raise ServiceUnavailable("Temporal did not take the decision; try again.") from exc
    status_code = 200
    try:
        await asyncio.wait_for(pending.result(), timeout=wait_seconds)
    except TimeoutError:
        status_code = 202
    except WorkflowUpdateFailedError as exc:
        raise _refusal(exc) from exc
    refreshed = await session.get(RuleDeprecation, deprecation_id)
    assert refreshed is not None
    return status_code, deprecation_read(refreshed)


def _refusal(exc: WorkflowUpdateFailedError) -> Forbidden | Conflict:
    cause = exc.cause
    message = str(cause.message if isinstance(cause, ApplicationError) else exc)
    if isinstance(cause, ApplicationError) and cause.type == "Forbidden":
        return Forbidden(message)
    return Conflict(message)


# --- internal: the workflow's steps ----------------------------------------------------------


def _require_system(caller: Identity) -> None:
    if caller.role is not Role.SYSTEM:
        raise Forbidden("Only the worker may drive a deprecation.")


async def _deprecation(
    session: AsyncSession, *, rule_id: str, deprecation_id: int
) -> tuple[Rule, RuleDeprecation]:
    row = await session.get(RuleDeprecation, deprecation_id)
    rule = await session.get(Rule, rule_id)
    if row is None or rule is None or row.rule_id != rule_id:
        raise NotFound(f"Deprecation {deprecation_id} of rule {rule_id} was not found.")
    return rule, row


async def begin_monitoring(
    session: AsyncSession, *, caller: Identity, rule_id: str, deprecation_id: int
) -> MonitoringStarted:
    """Start the monitoring period (idempotent: a repeat returns the window already started)."""
    _require_system(caller)
    rule, row = await _deprecation(session, rule_id=rule_id, deprecation_id=deprecation_id)
    if row.stage == DeprecationStage.PROPOSED.value:
        now = utcnow()
        await _set_status(session, rule, RuleAction.START_MONITORING)
        row.stage = DeprecationStage.MONITORING.value
        row.monitoring_started_at = now
        row.monitoring_ends_at = now + timedelta(seconds=row.monitoring_seconds)
        await session.commit()
    if row.monitoring_started_at is None or row.monitoring_ends_at is None:
        raise Conflict(f"Deprecation {deprecation_id} ended before monitoring began.")
    return MonitoringStarted(
        deprecation_id=row.id, started_at=row.monitoring_started_at, ends_at=row.monitoring_ends_at
    )


async def check_monitoring(
    session: AsyncSession, *, caller: Identity, rule_id: str, deprecation_id: int
) -> MonitoringCheck:
    """Check the metrics posted during monitoring against the criteria (once; repeats replay)."""
    _require_system(caller)
    rule, row = await _deprecation(session, rule_id=rule_id, deprecation_id=deprecation_id)
    if row.checked_at is not None and row.evidence is not None:
        return MonitoringCheck(
            deprecation_id=row.id,
            clean=bool(row.evidence.get("clean")),
            reason=str(row.evidence.get("verdict", "")),
            evidence=row.evidence,
        )
    if row.stage != DeprecationStage.MONITORING.value or row.monitoring_started_at is None:
        raise Conflict(f"Deprecation {deprecation_id} is not monitoring (stage {row.stage}).")
    started_at = row.monitoring_started_at
    now = utcnow()
    snapshots = [
        _snapshot(s)
        for s in (
            await session.execute(
                select(RuleMetricSnapshot).where(
                    RuleMetricSnapshot.rule_id == rule_id,
                    RuleMetricSnapshot.updated_at >= started_at,
                )
            )
        ).scalars()
    ]
    if rule.kind == RuleKind.MODEL.value:
        verdict = evaluate_model_monitoring(
            snapshots=snapshots,
            started_at=started_at,
            checked_at=now,
            criteria=ModelCriteria.from_dict(row.criteria),
        )
    else:
        verdict = evaluate_monitoring(
            snapshots=snapshots,
            started_at=started_at,
            checked_at=now,
            criteria=Criteria.from_dict(row.criteria),
        )
    row.evidence = {**verdict.evidence, "clean": verdict.clean}
    row.checked_at = now
    if verdict.clean:
        row.stage = DeprecationStage.AWAITING_APPROVAL.value
    await session.commit()
    return MonitoringCheck(
        deprecation_id=row.id, clean=verdict.clean, reason=verdict.reason, evidence=row.evidence
    )


async def record_outcome(
    session: AsyncSession,
    *,
    caller: Identity,
    rule_id: str,
    deprecation_id: int,
    data: OutcomeCreate,
) -> DeprecationRead:
    """End a deprecation: the rule is deprecated (with its successor link) or retained."""
    _require_system(caller)
    rule, row = await _deprecation(session, rule_id=rule_id, deprecation_id=deprecation_id)
    if row.outcome is not None:
        if row.outcome != data.outcome:
            raise Conflict(f"Deprecation {deprecation_id} already ended as {row.outcome}.")
        return deprecation_read(row)
    if data.outcome == "deprecated":
        await _set_status(
            session,
            rule,
            RuleAction.DEPRECATE,
            replaced_by=row.replaced_by or rule.replaced_by,
            merged_into=row.merged_into or rule.merged_into,
        )
        row.stage = DeprecationStage.DEPRECATED.value
    else:
        await _set_status(session, rule, RuleAction.RETAIN)
        row.stage = DeprecationStage.RETAINED.value
    row.outcome = data.outcome
    row.decided_by = data.decided_by
    row.decision_comment = data.comment
    row.finished_at = utcnow()
    await session.commit()
    return deprecation_read(row)
