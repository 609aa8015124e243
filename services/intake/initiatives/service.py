"""Use cases of OP1 initiatives: propose, list, read, edit (If-Match), move, and the roadmap.

Keyword-only functions taking the request's AsyncSession and the verified caller, raising
DomainErrors. Writes are a compare-and-set on `version`, so of two concurrent changes one loses
with a 409 (or a 412 when the caller named the version it read).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from services.common.idempotency import Outcome, fingerprint, run_idempotent
from services.common.identity import Identity, Role
from services.common.pagination import decode_cursor, encode_cursor
from services.intake.initiatives.domain import (
    PARTNER_EDITABLE,
    PROPOSER_ROLES,
    ROADMAP_STATUSES,
    STAFF_EDITABLE,
    Benefit,
    InitiativeAction,
    InitiativeStatus,
    SourceKind,
    TransitionFields,
    confidence_value,
    field_error,
    plan_transition,
    quarter_bounds,
    quarters_of,
    realisation,
    rice_score,
    value_usd,
)
from services.intake.initiatives.models import Initiative
from services.intake.initiatives.schemas import (
    BenefitInput,
    BenefitRead,
    InitiativeCreate,
    InitiativePage,
    InitiativeRead,
    InitiativeTransition,
    InitiativeUpdate,
    RealisationRead,
    RoadmapItem,
    RoadmapQuarter,
    RoadmapRead,
    RoadmapTotals,
)
from services.intake.models import IdempotencyKey
from services.intake.schemas import MAX_ID
from services.intake.triage.changes import expected_version

INITIATIVES_PATH = "/api/v1/initiatives"
# A year's roadmap is a planning document of some hundreds of items; refuse to build an unbounded one.
MAX_ROADMAP_ITEMS = 5000
CENT, TENTH = Decimal("0.01"), Decimal("0.1")


class Sort(StrEnum):
    """Sort orders of `GET /initiatives` (a leading `-` is descending; ties broken by id)."""

    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    SCORE = "score"
    SCORE_DESC = "-score"


@dataclass(frozen=True, slots=True)
class InitiativeFilters:
    """Filters of `GET /initiatives`; each is served by an index ending in `id`."""

    statuses: Sequence[InitiativeStatus] = ()
    team: str | None = None
    source_kind: SourceKind | None = None
    quarter: str | None = None
    ai: bool | None = None


def initiative_path(initiative_id: int) -> str:
    """The URL path of one initiative (the `Location` of a new one)."""
    return f"{INITIATIVES_PATH}/{initiative_id}"


def _benefit_of(data: BenefitInput) -> Benefit:
    return Benefit(
        accounts_protected_per_year=data.accounts_protected_per_year,
        money_saved_per_year=data.money_saved_per_year,
        currency=data.currency,
        analyst_hours_saved_per_year=data.analyst_hours_saved_per_year,
    )


def _cents(value: Decimal | int | None) -> Decimal:
    # Rows just written hold the input's Decimal ("10"), rows read back the column's scale
    # ("10.0"): answer the column's scale either way.
    return Decimal(value or 0).quantize(CENT)


def _tenths(value: Decimal | int | None) -> Decimal:
    return Decimal(value or 0).quantize(TENTH)


def expected_of(row: Initiative) -> Benefit:
    """The expected benefit stored on a row."""
    return Benefit(
        accounts_protected_per_year=row.expected_accounts_protected,
        money_saved_per_year=_cents(row.expected_money_saved),
        currency=row.expected_currency,
        analyst_hours_saved_per_year=_tenths(row.expected_analyst_hours),
    )


def realised_of(row: Initiative) -> Benefit | None:
    """The realised benefit stored on a row, once measured."""
    if row.realised_currency is None:
        return None
    return Benefit(
        accounts_protected_per_year=row.realised_accounts_protected or 0,
        money_saved_per_year=_cents(row.realised_money_saved),
        currency=row.realised_currency,
        analyst_hours_saved_per_year=_tenths(row.realised_analyst_hours),
    )


def _benefit_read(benefit: Benefit) -> BenefitRead:
    return BenefitRead(
        accounts_protected_per_year=benefit.accounts_protected_per_year,
        money_saved_per_year=benefit.money_saved_per_year,
        currency=benefit.currency,
        analyst_hours_saved_per_year=benefit.analyst_hours_saved_per_year,
        value_usd=value_usd(benefit),
    )


def to_read(row: Initiative) -> InitiativeRead:
    """The API view of an initiative row."""
    expected = expected_of(row)
    realised = realised_of(row)
    return InitiativeRead(
        id=row.id,
        team=row.team,
        source_kind=SourceKind(row.source_kind),
        title=row.title,
        problem=row.problem,
        proposal=row.proposal,
        ai=row.ai,
        expected_benefit=_benefit_read(expected),
        effort_person_weeks=_tenths(row.effort_person_weeks),
        confidence=row.confidence,
        reach=row.reach,
        dependencies=list(row.dependencies),
        target_quarter=row.target_quarter,
        score=row.score,
        status=InitiativeStatus(row.status),
        drop_reason=row.drop_reason,
        realised_benefit=_benefit_read(realised) if realised else None,
        realisation=RealisationRead(**realisation(expected=expected, realised=realised))
        if realised
        else None,
        proposed_by=row.proposed_by,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        committed_at=row.committed_at,
        delivered_at=row.delivered_at,
        measured_at=row.measured_at,
        closed_at=row.closed_at,
    )


def _proposing_team(caller: Identity, team: str | None) -> str:
    if caller.role not in PROPOSER_ROLES:
        raise Forbidden(f"The role {caller.role.value} may not propose initiatives.")
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            raise Forbidden("A partner proposes initiatives for its own team only.")
        return caller.team
    if team is None:
        raise field_error("team", "Staff must name the team an initiative is for.", code="missing")
    return team


async def create_initiative(
    session: AsyncSession,
    *,
    caller: Identity,
    data: InitiativeCreate,
    idempotency_key: str | None = None,
) -> Outcome:
    """Propose an initiative (status `proposed`), scored at once; honours `Idempotency-Key`."""
    team = _proposing_team(caller, data.team)
    source_kind = data.source_kind or (SourceKind.PARTNER if caller.role is Role.PARTNER else None)
    if source_kind is None:
        raise field_error(
            "source_kind", "Staff say which kind of team the idea comes from.", code="missing"
        )

    async def effect() -> tuple[int, dict[str, Any]]:
        now = utcnow()
        confidence = confidence_value(data.confidence)
        row = Initiative(
            team=team,
            source_kind=source_kind.value,
            title=data.title,
            problem=data.problem,
            proposal=data.proposal,
            ai=data.ai,
            effort_person_weeks=data.effort_person_weeks,
            confidence=confidence,
            reach=data.reach,
            dependencies=list(dict.fromkeys(data.dependencies)),
            target_quarter=data.target_quarter,
            score=rice_score(
                benefit=_benefit_of(data.expected_benefit),
                confidence=confidence,
                effort_person_weeks=data.effort_person_weeks,
            ),
            status=InitiativeStatus.PROPOSED.value,
            proposed_by=caller.subject,
            version=1,
            created_at=now,
            updated_at=now,
            **_expected_columns(data.expected_benefit),
        )
        session.add(row)
        await session.flush()
        return 201, to_read(row).model_dump(mode="json")

    return await run_idempotent(
        session,
        IdempotencyKey,
        subject=caller.subject,
        key=idempotency_key,
        request_fingerprint=fingerprint("POST", INITIATIVES_PATH, data.model_dump(mode="json")),
        effect=effect,
    )


def _expected_columns(benefit: BenefitInput) -> dict[str, Any]:
    return {
        "expected_accounts_protected": benefit.accounts_protected_per_year,
        "expected_money_saved": benefit.money_saved_per_year,
        "expected_currency": benefit.currency,
        "expected_analyst_hours": benefit.analyst_hours_saved_per_year,
    }


async def get_initiative(
    session: AsyncSession, *, caller: Identity, initiative_id: int
) -> Initiative:
    """An initiative the caller may see; 404 if missing or another team's (for a partner)."""
    row = await session.get(Initiative, initiative_id)
    if row is None or not caller.can_see_team(row.team):
        raise NotFound(f"Initiative {initiative_id} was not found.")
    return row


def _visible_team(caller: Identity, team: str | None) -> tuple[bool, str | None]:
    """(whether anything is visible, the team to narrow to) for a list by `caller`."""
    if caller.role is Role.PARTNER:
        if team is not None and team != caller.team:
            return False, None
        return True, caller.team
    return True, team


async def list_initiatives(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: InitiativeFilters,
    sort: Sort,
    cursor: str | None,
    limit: int,
) -> InitiativePage:
    """Initiatives matching every filter in `sort` order (keyset pages); partners see their own."""
    visible, team = _visible_team(caller, filters.team)
    if not visible:
        return InitiativePage(items=[], next_cursor=None)
    query: Select[Initiative] = select(Initiative)
    if team is not None:
        query = query.where(Initiative.team == team)
    if filters.statuses:
        query = query.where(Initiative.status.in_([s.value for s in filters.statuses]))
    if filters.source_kind is not None:
        query = query.where(Initiative.source_kind == filters.source_kind.value)
    if filters.quarter is not None:
        query = query.where(Initiative.target_quarter == filters.quarter)
    if filters.ai is not None:
        query = query.where(Initiative.ai == filters.ai)
    by_score = sort in (Sort.SCORE, Sort.SCORE_DESC)
    descending = sort in (Sort.SCORE_DESC, Sort.CREATED_AT_DESC)
    if cursor is not None:
        query = query.where(_after(cursor, by_score=by_score, descending=descending))
    order: tuple[Any, ...]
    if by_score:
        order = (
            (Initiative.score.desc(), Initiative.id.desc())
            if descending
            else (Initiative.score, Initiative.id)
        )
    else:
        order = (Initiative.id.desc(),) if descending else (Initiative.id,)
    rows = list((await session.execute(query.order_by(*order).limit(limit + 1))).scalars())
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(
            {"s": last.score, "id": last.id} if by_score else {"id": last.id}
        )
    return InitiativePage(items=[to_read(row) for row in page], next_cursor=next_cursor)


def _after(cursor: str, *, by_score: bool, descending: bool) -> Any:
    """The keyset condition "after the cursor's row" in the list's order."""
    key = decode_cursor(cursor, required=("s", "id") if by_score else ("id",))
    last_id = key["id"]
    if type(last_id) is not int or not 0 <= last_id <= MAX_ID:
        raise _bad_cursor()
    if not by_score:
        return Initiative.id < last_id if descending else Initiative.id > last_id
    score = key["s"]
    if type(score) not in (int, float):
        raise _bad_cursor()
    if descending:
        return or_(
            Initiative.score < score, and_(Initiative.score == score, Initiative.id < last_id)
        )
    return or_(Initiative.score > score, and_(Initiative.score == score, Initiative.id > last_id))


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this list returned.",
        errors=[{"field": "query.cursor", "message": "invalid cursor", "code": "cursor_invalid"}],
    )


async def _write(
    session: AsyncSession, row: Initiative, values: dict[str, Any], *, stale: Exception
) -> None:
    """Compare-and-set `values` on the version loaded; `stale` if another change came first."""
    result = await session.execute(
        update(Initiative)
        .where(Initiative.id == row.id, Initiative.version == row.version)
        .values(**values, version=row.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise stale
    await session.refresh(row)


async def update_initiative(
    session: AsyncSession,
    *,
    caller: Identity,
    initiative_id: int,
    data: InitiativeUpdate,
    if_match: str | None,
) -> Initiative:
    """Edit an initiative (If-Match required) and re-score it.

    Staff edit until delivery; a partner edits its own team's only while it is proposed. A field
    that always has a value cannot be cleared with null (`reach` and `target_quarter` can).
    """
    version = expected_version(if_match)
    row = await get_initiative(session, caller=caller, initiative_id=initiative_id)
    status = InitiativeStatus(row.status)
    if caller.role is Role.PARTNER:
        if status not in PARTNER_EDITABLE:
            raise Conflict(
                f"Initiative {initiative_id} is {status.value}: a partner edits it only while "
                "it is proposed.",
                current_status=status.value,
            )
    elif caller.role not in PROPOSER_ROLES:
        raise Forbidden(f"The role {caller.role.value} may not edit initiatives.")
    elif status not in STAFF_EDITABLE:
        raise Conflict(
            f"Initiative {initiative_id} is {status.value}; it is no longer edited.",
            current_status=status.value,
        )
    if version != row.version:
        raise PreconditionFailed(
            f"Initiative {initiative_id} is at version {row.version}; reload it.",
            current_version=row.version,
        )
    changes = data.model_dump(exclude_unset=True)
    nullable = {"reach", "target_quarter"}
    for name, value in changes.items():
        if value is None and name not in nullable:
            raise field_error(name, f"{name} cannot be null.", code="null")
    values: dict[str, Any] = {}
    for name in ("title", "problem", "proposal", "ai", "reach", "target_quarter"):
        if name in changes:
            values[name] = getattr(data, name)
    if data.source_kind is not None:
        values["source_kind"] = data.source_kind.value
    if data.dependencies is not None:
        values["dependencies"] = list(dict.fromkeys(data.dependencies))
    if data.expected_benefit is not None:
        values.update(_expected_columns(data.expected_benefit))
    if data.effort_person_weeks is not None:
        values["effort_person_weeks"] = data.effort_person_weeks
    if data.confidence is not None:
        values["confidence"] = confidence_value(data.confidence)
    benefit = (
        _benefit_of(data.expected_benefit)
        if data.expected_benefit is not None
        else expected_of(row)
    )
    values["score"] = rice_score(
        benefit=benefit,
        confidence=values.get("confidence", row.confidence),
        effort_person_weeks=Decimal(values.get("effort_person_weeks", row.effort_person_weeks)),
    )
    await _write(
        session,
        row,
        values,
        stale=PreconditionFailed(
            f"Initiative {initiative_id} changed meanwhile; reload it.",
            current_version=row.version + 1,
        ),
    )
    await session.commit()
    return row


async def transition_initiative(
    session: AsyncSession,
    *,
    caller: Identity,
    initiative_id: int,
    data: InitiativeTransition,
    idempotency_key: str | None = None,
) -> Outcome:
    """Apply one action of the state machine (staff only); honours `Idempotency-Key`."""

    async def effect() -> tuple[int, dict[str, Any]]:
        row = await get_initiative(session, caller=caller, initiative_id=initiative_id)
        target = plan_transition(
            status=InitiativeStatus(row.status),
            action=data.action,
            role=caller.role,
            fields=TransitionFields(
                reason=data.reason,
                target_quarter=data.target_quarter,
                has_realised=data.realised is not None,
            ),
            current_quarter=row.target_quarter,
        )
        now = utcnow()
        values: dict[str, Any] = {"status": target.value}
        if data.action is InitiativeAction.COMMIT:
            values["committed_at"] = now
            if data.target_quarter is not None:
                values["target_quarter"] = data.target_quarter
        elif data.action is InitiativeAction.DELIVER:
            values["delivered_at"] = now
        elif data.action is InitiativeAction.MEASURE:
            assert data.realised is not None
            values.update(
                measured_at=now,
                closed_at=now,
                realised_accounts_protected=data.realised.accounts_protected_per_year,
                realised_money_saved=data.realised.money_saved_per_year,
                realised_currency=data.realised.currency,
                realised_analyst_hours=data.realised.analyst_hours_saved_per_year,
            )
        elif data.action is InitiativeAction.DROP:
            values.update(closed_at=now, drop_reason=(data.reason or "").strip())
        await _write(
            session,
            row,
            values,
            stale=Conflict(
                f"Initiative {initiative_id} changed meanwhile; reload it and retry.",
                current_version=row.version,
            ),
        )
        return 200, to_read(row).model_dump(mode="json")

    return await run_idempotent(
        session,
        IdempotencyKey,
        subject=caller.subject,
        key=idempotency_key,
        request_fingerprint=fingerprint(
            "POST", f"{initiative_path(initiative_id)}/transitions", data.model_dump(mode="json")
        ),
        effect=effect,
    )


# --- roadmap ------------------------------------------------------------------------------------


def _totals(rows: Sequence[Initiative]) -> RoadmapTotals:
    money: dict[str, Decimal] = defaultdict(Decimal)
    expected_value = realised_value = expected_of_measured = Decimal(0)
    accounts, hours, effort = 0, Decimal(0), Decimal(0)
    for row in rows:
        expected = expected_of(row)
        value = value_usd(expected)
        expected_value += value
        accounts += expected.accounts_protected_per_year
        hours += expected.analyst_hours_saved_per_year
        effort += _tenths(row.effort_person_weeks)
        money[expected.currency] += expected.money_saved_per_year
        realised = realised_of(row)
        if realised is not None:
            realised_value += value_usd(realised)
            expected_of_measured += value
    return RoadmapTotals(
        initiatives=len(rows),
        by_status=dict(sorted(Counter(row.status for row in rows).items())),
        ai_initiatives=sum(row.ai for row in rows),
        effort_person_weeks=effort,
        expected_accounts_protected_per_year=accounts,
        expected_money_saved_per_year_by_currency=dict(sorted(money.items())),
        expected_analyst_hours_saved_per_year=hours,
        expected_value_usd=expected_value,
        realised_value_usd=realised_value,
        expected_value_usd_of_measured=expected_of_measured,
        realisation=round(float(realised_value / expected_of_measured), 4)
        if expected_of_measured
        else None,
    )


def _item(row: Initiative) -> RoadmapItem:
    realised = realised_of(row)
    return RoadmapItem(
        id=row.id,
        title=row.title,
        team=row.team,
        source_kind=SourceKind(row.source_kind),
        ai=row.ai,
        status=InitiativeStatus(row.status),
        score=row.score,
        effort_person_weeks=_tenths(row.effort_person_weeks),
        expected_value_usd=value_usd(expected_of(row)),
        realised_value_usd=value_usd(realised) if realised else None,
    )


async def roadmap(
    session: AsyncSession, *, caller: Identity, year: int, team: str | None = None
) -> RoadmapRead:
    """The year's committed, in-progress, delivered and measured initiatives by quarter (best
    score first) with totals per quarter and for the year; a partner sees its own team's."""
    visible, team = _visible_team(caller, team)
    first, last = quarter_bounds(year)
    rows: list[Initiative] = []
    if visible:
        query = select(Initiative).where(
            Initiative.target_quarter >= first,
            Initiative.target_quarter <= last,
            Initiative.status.in_([s.value for s in ROADMAP_STATUSES]),
        )
        if team is not None:
            query = query.where(Initiative.team == team)
        query = query.order_by(Initiative.score.desc(), Initiative.id).limit(MAX_ROADMAP_ITEMS + 1)
        rows = list((await session.execute(query)).scalars())
        if len(rows) > MAX_ROADMAP_ITEMS:
            raise ValidationFailed(
                f"The {year} roadmap has more than {MAX_ROADMAP_ITEMS} initiatives; narrow it "
                "with `team`.",
                errors=[{"field": "query.team", "message": "too many items", "code": "too_many"}],
            )
    by_quarter: dict[str, list[Initiative]] = defaultdict(list)
    for row in rows:
        assert row.target_quarter is not None
        by_quarter[row.target_quarter].append(row)
    return RoadmapRead(
        year=year,
        quarters=[
            RoadmapQuarter(
                quarter=quarter,
                items=[_item(row) for row in by_quarter[quarter]],
                totals=_totals(by_quarter[quarter]),
            )
            for quarter in quarters_of(year)
        ],
        totals=_totals(rows),
    )
