"""The pure rules of issue 4 (K1): the priority score matrix (table-tested, as README documents
it), `details` validation by field kind, who edits what, least-loaded choice, comment effects."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.errors import Forbidden, ValidationFailed
from services.common.identity import Identity, Role
from services.gateway.routing import resolve
from services.intake.assignment.domain import PRIORITY_WEIGHTS, least_loaded, load_of
from services.intake.comments.domain import CommentEffects, Visibility, plan_comment
from services.intake.domain import Action, Priority, RequestStatus, plan_transition
from services.intake.triage.domain import (
    PARTNER_EDITABLE,
    STAFF_EDITABLE,
    FieldKind,
    FieldSpec,
    check_details,
    details_errors,
    editable_fields,
)
from services.intake.triage.scoring import (
    Level,
    ScoreInput,
    Urgency,
    impact_level,
    priority_of_score,
    score_request,
    urgency_level,
)

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
L, M, H, C = Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL

# The README's matrix, written out independently of scoring.SCORE_MATRIX: (impact, urgency) ->
# (score, proposed priority).
README_MATRIX = {
    (L, L): (10, "P3"), (L, M): (20, "P3"), (L, H): (35, "P2"), (L, C): (50, "P2"),
    (M, L): (20, "P3"), (M, M): (40, "P2"), (M, H): (55, "P2"), (M, C): (70, "P1"),
    (H, L): (35, "P2"), (H, M): (55, "P2"), (H, H): (75, "P1"), (H, C): (85, "P0"),
    (C, L): (50, "P2"), (C, M): (70, "P1"), (C, H): (85, "P0"), (C, C): (100, "P0"),
}  # fmt: skip
# Inputs that land on each level: accounts affected and money at risk per week.
ACCOUNTS = {L: 99, M: 100, H: 1_000, C: 10_000}
MONEY = {L: Decimal("999.99"), M: Decimal(1_000), H: Decimal(10_000), C: Decimal(100_000)}
URGENCY = {L: Urgency.LOW, M: Urgency.MEDIUM, H: Urgency.HIGH, C: Urgency.CRITICAL}
DUE_IN = {L: timedelta(days=31), M: timedelta(days=30), H: timedelta(days=7), C: timedelta(days=2)}


@pytest.mark.parametrize(("impact", "urgency"), list(itertools.product(Level, Level)))
def test_every_cell_of_the_matrix(impact: Level, urgency: Level) -> None:
    expected = README_MATRIX[(impact, urgency)]
    by_field = score_request(
        ScoreInput(accounts_affected=ACCOUNTS[impact], urgency=URGENCY[urgency]), now=NOW
    )
    by_money_and_due = score_request(
        ScoreInput(money_at_risk_per_week=MONEY[impact], due_at=NOW + DUE_IN[urgency]), now=NOW
    )
    for score in (by_field, by_money_and_due):
        assert (score.impact, score.urgency) == (impact, urgency)
        assert (score.score, score.proposed_priority.value) == expected


@pytest.mark.parametrize(
    ("accounts", "money", "level"),
    [
        (None, None, M),  # unknown counts as medium
        (0, None, L),
        (99, None, L),
        (100, None, M),
        (999, None, M),
        (1_000, None, H),
        (9_999, None, H),
        (10_000, None, C),
        (None, Decimal(0), L),
        (None, Decimal("999.99"), L),
        (None, Decimal(1_000), M),
        (None, Decimal("99999.99"), H),
        (None, Decimal(100_000), C),
        # The larger of the two wins.
        (5, Decimal(200_000), C),
        (50_000, Decimal(1), C),
        (150, Decimal(20_000), H),
    ],
)
def test_impact_is_the_larger_of_accounts_and_money(
    accounts: int | None, money: Decimal | None, level: Level
) -> None:
    assert impact_level(accounts, money) is level


@pytest.mark.parametrize(
    ("urgency", "due_in", "level"),
    [
        (None, None, M),
        (Urgency.LOW, None, L),
        (Urgency.CRITICAL, None, C),
        (None, timedelta(hours=1), C),
        (None, timedelta(days=2), C),
        (None, timedelta(days=2, seconds=1), H),
        (None, timedelta(days=7), H),
        (None, timedelta(days=8), M),
        (None, timedelta(days=30), M),
        (None, timedelta(days=365), L),
        (None, timedelta(days=-1), C),  # overdue is as urgent as it gets
        # The larger of the two wins.
        (Urgency.LOW, timedelta(days=1), C),
        (Urgency.HIGH, timedelta(days=100), H),
    ],
)
def test_urgency_is_the_larger_of_the_field_and_the_due_date(
    urgency: Urgency | None, due_in: timedelta | None, level: Level
) -> None:
    due = NOW + due_in if due_in is not None else None
    assert urgency_level(urgency, due, now=NOW) is level


def test_no_information_proposes_the_historic_default_p2() -> None:
    score = score_request(ScoreInput(), now=NOW)
    assert (score.score, score.proposed_priority) == (40, Priority.P2)
    assert score.as_event_data() == {
        "impact_level": "medium",
        "urgency_level": "medium",
        "priority_score": 40,
        "proposed_priority": "P2",
    }


@pytest.mark.parametrize(
    ("score", "priority"),
    [
        (0, "P3"),
        (29, "P3"),
        (30, "P2"),
        (59, "P2"),
        (60, "P1"),
        (79, "P1"),
        (80, "P0"),
        (100, "P0"),
    ],
)
def test_priority_bands(score: int, priority: str) -> None:
    assert priority_of_score(score).value == priority


SPECS = [
    FieldSpec("dataset", FieldKind.STRING, required=True),
    FieldSpec("rows", FieldKind.INTEGER),
    FieldSpec("precision", FieldKind.NUMBER),
    FieldSpec("pii", FieldKind.BOOLEAN),
    FieldSpec("since", FieldKind.DATE),
]


def test_valid_details_pass() -> None:
    check_details(
        SPECS,
        {"dataset": "orders", "rows": 10, "precision": 0.5, "pii": False, "since": "2026-01-31"},
    )
    check_details(SPECS, {"dataset": "orders", "precision": 3})


@pytest.mark.parametrize(
    ("details", "field", "code"),
    [
        ({}, "dataset", "missing"),
        ({"dataset": None}, "dataset", "missing"),
        ({"dataset": "  "}, "dataset", "invalid"),
        ({"dataset": 5}, "dataset", "invalid"),
        ({"dataset": "x" * 2001}, "dataset", "invalid"),
        ({"dataset": "a\x00b"}, "dataset", "invalid"),
        ({"dataset": "x", "rows": 1.5}, "rows", "invalid"),
        ({"dataset": "x", "rows": True}, "rows", "invalid"),
        ({"dataset": "x", "rows": "10"}, "rows", "invalid"),
        ({"dataset": "x", "rows": 2**63}, "rows", "invalid"),
        ({"dataset": "x", "precision": "0.5"}, "precision", "invalid"),
        ({"dataset": "x", "precision": False}, "precision", "invalid"),
        ({"dataset": "x", "precision": float("nan")}, "precision", "invalid"),
        ({"dataset": "x", "pii": 1}, "pii", "invalid"),
        ({"dataset": "x", "since": "2026-02-30"}, "since", "invalid"),
        ({"dataset": "x", "since": "20260101"}, "since", "invalid"),
        ({"dataset": "x", "since": 20260101}, "since", "invalid"),
        ({"dataset": "x", "typo": 1}, "typo", "unexpected"),
    ],
)
def test_invalid_details_name_the_field(details: dict[str, object], field: str, code: str) -> None:
    errors = details_errors(SPECS, details)
    assert [(e["field"], e["code"]) for e in errors] == [(f"body.details.{field}", code)]
    with pytest.raises(ValidationFailed) as caught:
        check_details(SPECS, details)
    assert f"details.{field}" in caught.value.detail


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_details(SPECS, {"rows": "x", "other": 1})
    fields = {e["field"] for e in caught.value.extra["errors"]}
    assert fields == {"body.details.dataset", "body.details.rows", "body.details.other"}


def test_partners_edit_the_description_fields_staff_also_triage_and_assignment() -> None:
    assert editable_fields(Role.PARTNER) == PARTNER_EDITABLE
    assert {"priority", "assignee", "queue"}.isdisjoint(PARTNER_EDITABLE)
    for role in (Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM):
        assert editable_fields(role) == STAFF_EDITABLE
    assert editable_fields(Role.APPROVER) == frozenset()


def test_load_is_open_work_weighted_by_priority() -> None:
    assert dict(PRIORITY_WEIGHTS) == {
        Priority.P0: 8,
        Priority.P1: 4,
        Priority.P2: 2,
        Priority.P3: 1,
    }
    assert load_of([Priority.P0, Priority.P3, Priority.P3]) == 10
    assert load_of([]) == 0


@pytest.mark.parametrize(
    ("members", "loads", "chosen"),
    [
        ([], {}, None),
        (["ann"], {"ann": 100}, "ann"),
        (["ann", "bob"], {"ann": 8, "bob": 2}, "bob"),
        # One P0 (8) weighs more than three P2s (6).
        (["ann", "bob"], {"ann": 8, "bob": 6}, "bob"),
        (["ann", "bob", "cy"], {"ann": 1, "bob": 1}, "cy"),  # no open work = 0
        (["bob", "ann"], {"ann": 3, "bob": 3}, "ann"),  # ties: the name sorting first
    ],
)
def test_least_loaded(members: list[str], loads: dict[str, int], chosen: str | None) -> None:
    assert least_loaded(members, loads) == chosen


PARTNER = Identity(subject="key-p", team="buyer-risk", role=Role.PARTNER)
ANALYST = Identity(subject="key-a", team="risk-mining", role=Role.ANALYST)
APPROVER = Identity(subject="key-x", team="risk-mining", role=Role.APPROVER)
S = RequestStatus


@pytest.mark.parametrize(
    ("caller", "visibility", "asks", "status", "responded", "effects"),
    [
        (ANALYST, Visibility.PUBLIC, False, S.NEW, False, CommentEffects(first_response=True)),
        (ANALYST, Visibility.PUBLIC, False, S.NEW, True, CommentEffects()),
        (ANALYST, Visibility.INTERNAL, False, S.NEW, False, CommentEffects()),
        (
            ANALYST,
            Visibility.PUBLIC,
            True,
            S.IN_PROGRESS,
            True,
            CommentEffects(action=Action.REQUEST_INFO),
        ),
        (
            PARTNER,
            Visibility.PUBLIC,
            False,
            S.WAITING_ON_REQUESTER,
            True,
            CommentEffects(action=Action.PROVIDE_INFO),
        ),
        (PARTNER, Visibility.PUBLIC, False, S.IN_PROGRESS, False, CommentEffects()),
        # Staff answering while the request waits on the requester does not end the wait.
        (ANALYST, Visibility.PUBLIC, False, S.WAITING_ON_REQUESTER, True, CommentEffects()),
    ],
)
def test_comment_effects(
    caller: Identity,
    visibility: Visibility,
    asks: bool,
    status: RequestStatus,
    responded: bool,
    effects: CommentEffects,
) -> None:
    assert (
        plan_comment(
            caller=caller,
            visibility=visibility,
            asks_requester=asks,
            status=status,
            first_response_at_known=responded,
        )
        == effects
    )


@pytest.mark.parametrize(
    ("caller", "visibility", "asks", "error"),
    [
        (PARTNER, Visibility.INTERNAL, False, Forbidden),
        (PARTNER, Visibility.PUBLIC, True, Forbidden),
        (APPROVER, Visibility.PUBLIC, False, Forbidden),
        (ANALYST, Visibility.INTERNAL, True, ValidationFailed),
    ],
)
def test_comment_refusals(
    caller: Identity, visibility: Visibility, asks: bool, error: type[Exception]
) -> None:
    with pytest.raises(error):
        plan_comment(
            caller=caller,
            visibility=visibility,
            asks_requester=asks,
            status=S.IN_PROGRESS,
            first_response_at_known=False,
        )


@pytest.mark.parametrize("reason", [None, "", "  "])
def test_reopen_needs_a_reason(reason: str | None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_transition(status=S.RESOLVED, action=Action.REOPEN, role=Role.PARTNER, reason=reason)
    assert caught.value.extra["errors"][0]["field"] == "body.reason"
    plan_transition(status=S.RESOLVED, action=Action.REOPEN, role=Role.PARTNER, reason="again")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/request-types",
        "/api/v1/request-types/deep_dive",
        "/api/v1/request-queues/emea/members/key-a",
        "/api/v1/requests/queue",
        "/api/v1/requests/7/comments/3/revisions",
        "/api/v1/requests/7/auto-assign",
    ],
)
def test_the_gateway_routes_the_new_paths_to_intake(path: str) -> None:
    assert resolve(path) == "intake"
