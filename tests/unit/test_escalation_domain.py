"""Pure rules of the escalation service and the EscalationWorkflow's planning: state machines,
closure rules, business-day due dates, ISO weeks, the ladder plan and quiet hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.common.business_time import Calendar
from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import Role
from services.escalation.action_items.domain import (
    ItemAction,
    ItemStatus,
    allowed_item_actions,
    plan_item_transition,
)
from services.escalation.domain import (
    DEFAULT_CALENDAR_SPEC,
    Action,
    EscalationStatus,
    Severity,
    Source,
    add_business_days,
    allowed_actions,
    closure_blockers,
    default_due_at,
    plan_transition,
)
from services.escalation.gaps.domain import (
    GapAction,
    GapStatus,
    iso_week,
    plan_gap_transition,
    weeks_between,
)
from services.escalation.schemas import CorrectiveAction, FiveWhysChain, RcaPut
from workflows import escalation_rules
from workflows.contracts import (
    ActionItemFacts,
    EscalationFacts,
    EscalationFollowUp,
    ItemChase,
    OwnerCalendar,
)
from workflows.escalation import (
    CALENDAR_RETRY,
    NOT_CAUGHT_UP,
    calendar_of,
    calendars_to_fetch,
    closure_refusal,
    next_open,
    pending_notices,
)

S = EscalationStatus
INDIA = Calendar.from_spec(DEFAULT_CALENDAR_SPEC)
IST = INDIA.zone


# --- escalation lifecycle


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        (S.OPEN, Action.MITIGATE, S.MITIGATING),
        (S.OPEN, Action.START_RCA, S.RCA_IN_PROGRESS),
        (S.MITIGATING, Action.START_RCA, S.RCA_IN_PROGRESS),
        (S.RCA_IN_PROGRESS, Action.OPEN_ACTIONS, S.ACTIONS_OPEN),
        (S.OPEN, Action.OPEN_ACTIONS, S.ACTIONS_OPEN),
        (S.ACTIONS_OPEN, Action.REQUEST_CLOSURE, S.PENDING_CLOSURE),
        (S.PENDING_CLOSURE, Action.REOPEN_ACTIONS, S.ACTIONS_OPEN),
    ],
)
def test_lifecycle_transitions(status: S, action: Action, target: S) -> None:
    assert plan_transition(status=status, action=action, role=Role.ANALYST) is target


def test_close_only_through_approval_and_only_from_pending_closure() -> None:
    with pytest.raises(InvalidTransition) as refused:
        plan_transition(status=S.PENDING_CLOSURE, action=Action.CLOSE, role=Role.PROGRAM_MANAGER)
    assert "closure-approval" in refused.value.detail
    assert "close" not in refused.value.extra["allowed_actions"]
    assert (
        plan_transition(
            status=S.PENDING_CLOSURE,
            action=Action.CLOSE,
            role=Role.PROGRAM_MANAGER,
            via_approval=True,
        )
        is S.CLOSED
    )
    with pytest.raises(InvalidTransition):
        plan_transition(
            status=S.ACTIONS_OPEN, action=Action.CLOSE, role=Role.PROGRAM_MANAGER, via_approval=True
        )
    assert "close" in allowed_actions(S.PENDING_CLOSURE, Role.PROGRAM_MANAGER)
    assert "close" not in allowed_actions(S.PENDING_CLOSURE, Role.ANALYST)


def test_invalid_transitions_name_the_allowed_ones_and_partners_are_refused() -> None:
    with pytest.raises(InvalidTransition) as refused:
        plan_transition(status=S.CLOSED, action=Action.MITIGATE, role=Role.ANALYST)
    assert refused.value.extra == {"current_status": "closed", "allowed_actions": []}
    for role in (Role.PARTNER, Role.APPROVER):
        with pytest.raises(Forbidden):
            plan_transition(status=S.OPEN, action=Action.MITIGATE, role=role)
        assert allowed_actions(S.OPEN, role) == []


def test_closure_blockers() -> None:
    assert closure_blockers(source="executive", rca_present=False, items=[]) == []
    assert closure_blockers(source="sev2_ticket", rca_present=True, items=[(1, "done")]) == []
    reasons = closure_blockers(
        source="coe",
        rca_present=False,
        items=[(3, "open"), (1, "not_doing_proposed"), (2, "not_doing"), (4, "done")],
    )
    assert reasons[0] == "2 action item(s) still open: #1, #3"
    assert "RCA" in reasons[1]
    assert closure_blockers(source="partner", rca_present=False, items=[(1, "blocked")]) == [
        "1 action item(s) still open: #1"
    ]


# --- follow-up policy: business days


def test_sev2_items_are_due_in_ten_indian_business_days_skipping_weekends_and_holidays() -> None:
    # Friday 18 Dec 2026 10:00 IST; Christmas (Friday 25th) is a public holiday in India.
    start = datetime(2026, 12, 18, 10, 0, tzinfo=IST)
    due = default_due_at(severity=Severity.SEV2, calendar=INDIA, now=start)
    # 21 22 23 24 | 28 29 30 31 | 1 4 -> Monday 4 Jan 2027, at the close of business (18:30 IST).
    assert due == datetime(2027, 1, 4, 18, 30, tzinfo=IST)
    assert due.tzinfo is UTC
    assert add_business_days(INDIA, start, 1) == datetime(2026, 12, 21, 18, 30, tzinfo=IST)
    # Sev-1: five business days, 21 22 23 24 28 (Christmas skipped).
    assert default_due_at(severity=Severity.SEV1, calendar=INDIA, now=start) == datetime(
        2026, 12, 28, 18, 30, tzinfo=IST
    )
    assert add_business_days(INDIA, start, 0) == start


def test_business_days_on_an_always_open_calendar_are_calendar_days() -> None:
    start = datetime(2026, 12, 18, 10, 0, tzinfo=UTC)
    always = Calendar.always_open_in("UTC")
    assert add_business_days(always, start, 3) == start + timedelta(days=3)
    with pytest.raises(ValueError, match="negative"):
        add_business_days(always, start, -1)


# --- action items


def test_item_transitions_roles_and_required_fields() -> None:
    given: dict[str, str | None] = {}
    blocked = plan_item_transition(
        status=ItemStatus.OPEN, action=ItemAction.BLOCK, role=Role.ANALYST, given={"reason": "x"}
    )
    assert blocked.target is ItemStatus.BLOCKED
    with pytest.raises(ValidationFailed) as missing:
        plan_item_transition(
            status=ItemStatus.OPEN,
            action=ItemAction.COMPLETE,
            role=Role.ANALYST,
            given={"evidence": " "},
        )
    assert missing.value.extra["errors"][0]["field"] == "body.evidence"
    with pytest.raises(Forbidden):
        plan_item_transition(
            status=ItemStatus.NOT_DOING_PROPOSED,
            action=ItemAction.ACCEPT_NOT_DOING,
            role=Role.ADMIN,
            given=given,
        )
    with pytest.raises(Forbidden):
        plan_item_transition(
            status=ItemStatus.OPEN, action=ItemAction.START, role=Role.PARTNER, given=given
        )
    accepted = plan_item_transition(
        status=ItemStatus.NOT_DOING_PROPOSED,
        action=ItemAction.ACCEPT_NOT_DOING,
        role=Role.PROGRAM_MANAGER,
        given=given,
    )
    assert accepted.target is ItemStatus.NOT_DOING
    with pytest.raises(InvalidTransition) as refused:
        plan_item_transition(
            status=ItemStatus.DONE, action=ItemAction.START, role=Role.ANALYST, given=given
        )
    assert refused.value.extra["allowed_actions"] == ["reopen"]
    assert allowed_item_actions(ItemStatus.NOT_DOING_PROPOSED, Role.ANALYST) == []
    assert allowed_item_actions(ItemStatus.NOT_DOING_PROPOSED, Role.PROGRAM_MANAGER) == [
        "accept_not_doing",
        "reject_not_doing",
    ]


# --- gaps


def test_gap_transitions_and_weeks() -> None:
    assert (
        plan_gap_transition(
            status=GapStatus.IDENTIFIED, action=GapAction.ACCEPT, role=Role.ANALYST, reason=None
        )
        is GapStatus.ACCEPTED
    )
    with pytest.raises(ValidationFailed):
        plan_gap_transition(
            status=GapStatus.IN_PROGRESS, action=GapAction.CLOSE, role=Role.ANALYST, reason=""
        )
    with pytest.raises(InvalidTransition):
        plan_gap_transition(
            status=GapStatus.CLOSED, action=GapAction.WONT_FIX, role=Role.ANALYST, reason="x"
        )
    with pytest.raises(Forbidden):
        plan_gap_transition(
            status=GapStatus.IDENTIFIED, action=GapAction.ACCEPT, role=Role.PARTNER, reason=None
        )
    # 2026 has 53 ISO weeks; the week is taken in UTC.
    assert iso_week(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == "2026-W53"
    assert iso_week(datetime(2027, 1, 1, 1, 0, tzinfo=IST)) == "2026-W53"
    assert weeks_between(date(2026, 12, 23), date(2027, 1, 5)) == [
        "2026-W52",
        "2026-W53",
        "2027-W01",
    ]


# --- RCA structure


def test_rca_structure_is_enforced() -> None:
    FiveWhysChain.model_validate({"problem": "p", "steps": [{"why": "w", "because": "b"}] * 5})
    for steps in ([], [{"why": "w", "because": "b"}] * 6, [{"why": "", "because": "b"}]):
        with pytest.raises(ValidationError):
            FiveWhysChain.model_validate({"problem": "p", "steps": steps})
    with pytest.raises(ValidationError, match="exactly one"):
        CorrectiveAction.model_validate({"description": "d"})
    CorrectiveAction.model_validate({"description": "d", "action_item_id": 4})
    with pytest.raises(ValidationError):
        RcaPut.model_validate(
            {
                "what_happened": "x",
                "impact": "y",
                "five_whys": [{"problem": "p", "steps": [{"why": "w", "because": "b"}]}],
                "root_cause_category": "cosmic_rays",
            }
        )


# --- the workflow's plan


def facts_item(due: datetime, **kw: object) -> ActionItemFacts:
    values: dict[str, object] = {
        "item_id": 7,
        "title": "t",
        "owner": "owner",
        "owner_manager": "manager",
        "due_at": due,
        "status": "open",
        "calendar": {"timezone": "UTC", "always_open": True},
        **kw,
    }
    return ActionItemFacts(**values)  # type: ignore[arg-type]


DUE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = EscalationFollowUp(reminder_lead_seconds=3600, ladder_delay_seconds=3600, ladder_repeats=2)


def plan(
    item: ActionItemFacts, chase: ItemChase, *, now: datetime, pm: str | None = "pm"
) -> list[tuple[datetime, str]]:
    notices = pending_notices(
        escalation_id=5, item=item, chase=chase, program_manager=pm, follow_up=HOUR, now=now
    )
    return [(n.at, n.event_id) for n in sorted(notices, key=lambda n: (n.at, n.order))]


def test_ladder_plan_in_order_with_repeats_and_episodes() -> None:
    item = facts_item(DUE)
    chase = ItemChase(item_id=7, due_at=DUE)
    hour = timedelta(hours=1)
    assert plan(item, chase, now=DUE - 2 * hour) == [
        (DUE - hour, "escalation-5:item-7:reminder:1"),
        (DUE, "escalation-5:item-7:ladder:owner:1"),
        (DUE + hour, "escalation-5:item-7:ladder:owner_manager:1"),
        (DUE + 2 * hour, "escalation-5:item-7:ladder:program_manager:1"),
        (DUE + 3 * hour, "escalation-5:item-7:ladder:program_manager:1:repeat-1"),
        (DUE + 4 * hour, "escalation-5:item-7:ladder:program_manager:1:repeat-2"),
    ]
    # Already overdue: no reminder. Sent levels are not planned again.
    sent = ItemChase(item_id=7, due_at=DUE, episode=3, levels_sent=["owner"], repeats_sent=1)
    assert [e for _, e in plan(item, sent, now=DUE + hour)] == [
        "escalation-5:item-7:ladder:owner_manager:3",
        "escalation-5:item-7:ladder:program_manager:3",
        "escalation-5:item-7:ladder:program_manager:3:repeat-2",
    ]
    # Without a manager the ladder goes owner -> program manager.
    alone = facts_item(DUE, owner_manager=None)
    assert [e for _, e in plan(alone, chase, now=DUE)][:2] == [
        "escalation-5:item-7:ladder:owner:1",
        "escalation-5:item-7:ladder:program_manager:1",
    ]
    # Done, not_doing and a proposed not_doing are not chased.
    for status in ("done", "not_doing", "not_doing_proposed"):
        assert plan(facts_item(DUE, status=status), chase, now=DUE) == []


def test_quiet_hours_push_notices_to_the_next_open_instant() -> None:
    saturday_noon = datetime(2026, 12, 5, 12, 0, tzinfo=IST)
    monday_open = datetime(2026, 12, 7, 9, 30, tzinfo=IST)
    assert next_open(INDIA, saturday_noon) == monday_open
    tuesday = datetime(2026, 12, 8, 11, 0, tzinfo=IST)
    assert next_open(INDIA, tuesday) == tuesday
    # Due on Saturday: the owner hears on Monday morning; the Friday-evening reminder (lead 1h from
    # a Saturday-noon due is Saturday 11:00, pushed to Monday, past the due) is dropped.
    item = facts_item(saturday_noon, calendar=DEFAULT_CALENDAR_SPEC)
    notices = plan(
        item, ItemChase(item_id=7, due_at=saturday_noon), now=saturday_noon - timedelta(days=1)
    )
    assert notices[0] == (monday_open, "escalation-5:item-7:ladder:owner:1")
    assert all("reminder" not in e for _, e in notices)


def test_closure_refusal_on_the_workflow_facts() -> None:
    facts = EscalationFacts(
        event_id="e",
        escalation_id=5,
        version=4,
        status="pending_closure",
        source="sev2_ticket",
        severity="sev2",
        team="t",
        title="x",
        owner="o",
        program_manager=None,
        rca_present=False,
        items=[facts_item(DUE, status="done")],
    )
    stale = closure_refusal(facts, expected_version=5)
    assert stale is not None
    assert stale.type == NOT_CAUGHT_UP
    missing = closure_refusal(facts, expected_version=4)
    assert missing is not None
    assert "RCA" in missing.message
    facts.rca_present = True
    assert closure_refusal(facts, expected_version=4) is None
    facts.status = "actions_open"
    refusal = closure_refusal(facts, expected_version=4)
    assert refusal is not None
    assert "pending_closure" in refusal.message
    assert closure_refusal(None, expected_version=1) is not None


def test_shared_rules_match_the_service_vocabularies() -> None:
    """The workflow's rules (workflows/escalation_rules.py) speak the service's statuses."""
    items = {s.value for s in ItemStatus}
    assert items >= escalation_rules.CHASED_ITEM_STATUSES
    assert items >= escalation_rules.RESOLVED_ITEM_STATUSES
    assert not escalation_rules.CHASED_ITEM_STATUSES & escalation_rules.RESOLVED_ITEM_STATUSES
    # A proposed not_doing is neither chased nor resolved: it waits on the program manager.
    assert "not_doing_proposed" not in escalation_rules.CHASED_ITEM_STATUSES
    assert {"sev2_ticket", "coe"} == escalation_rules.RCA_REQUIRED_SOURCES
    assert {s.value for s in Source} >= escalation_rules.RCA_REQUIRED_SOURCES


def test_the_calendar_an_item_is_chased_on() -> None:
    office = {"timezone": "Europe/Berlin", "always_open": True}
    fetched = {
        "office": OwnerCalendar(calendar_id="office", fetched_at=DUE, spec=office),
        "gone": OwnerCalendar(calendar_id="gone", fetched_at=DUE),
        "broken": OwnerCalendar(calendar_id="broken", fetched_at=DUE, spec={"timezone": "x"}),
    }
    own = facts_item(DUE, calendar_id="office")
    assert calendar_of(own, fetched).timezone == "UTC"  # the item's own calendar wins
    owner = facts_item(DUE, calendar={}, calendar_id="office")
    assert calendar_of(owner, fetched).timezone == "Europe/Berlin"
    for missing in ("gone", "broken", "never-fetched"):
        fallback = calendar_of(facts_item(DUE, calendar={}, calendar_id=missing), fetched)
        assert fallback == INDIA, missing
    assert calendar_of(facts_item(DUE, calendar={}), fetched) == INDIA


def test_which_owner_calendars_are_fetched() -> None:
    refresh = timedelta(hours=1)
    facts = EscalationFacts(
        event_id="e",
        escalation_id=5,
        version=1,
        status="actions_open",
        source="coe",
        severity="sev2",
        team="t",
        title="x",
        owner="o",
        program_manager=None,
        rca_present=False,
        items=[
            facts_item(DUE, item_id=1, calendar={}, calendar_id="b"),
            facts_item(DUE, item_id=2, calendar={}, calendar_id="a"),
            facts_item(DUE, item_id=3, calendar={}, calendar_id="a"),
            # Its own calendar, resolved or not chased: nothing to fetch.
            facts_item(DUE, item_id=4, calendar_id="own"),
            facts_item(DUE, item_id=5, calendar={}, calendar_id="done", status="done"),
            facts_item(DUE, item_id=6, calendar={}, calendar_id=None),
        ],
    )
    assert calendars_to_fetch(facts, {}, refresh=refresh, now=DUE) == ["a", "b"]
    fresh = {
        "a": OwnerCalendar(calendar_id="a", fetched_at=DUE, spec={}),
        "b": OwnerCalendar(calendar_id="b", fetched_at=DUE, failed=True),
    }
    assert calendars_to_fetch(facts, fresh, refresh=refresh, now=DUE + timedelta(minutes=1)) == []
    # A failed fetch is retried sooner than a good calendar is refreshed.
    later = DUE + CALENDAR_RETRY
    assert calendars_to_fetch(facts, fresh, refresh=refresh, now=later) == ["b"]
    assert calendars_to_fetch(facts, fresh, refresh=refresh, now=DUE + refresh) == ["a", "b"]
