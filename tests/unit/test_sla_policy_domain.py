"""SLA policy rules: matching by order with a catch-all, and what a valid policy is."""

from __future__ import annotations

import itertools

import pytest

from services.gateway.sla import domain
from services.gateway.sla.domain import Rule
from services.intake.domain import Priority, RequestStatus, RequestType

SEEDS = [
    Rule(id="p0-critical", order=10, priorities=["P0"]),
    Rule(id="p1-high", order=20, priorities=["P1"]),
    Rule(id="p2-normal", order=30, priorities=["P2"]),
    Rule(id="default", order=1000),
]


def test_mirrored_vocabularies_match_intake() -> None:
    # The gateway may not import intake; this test is what keeps the copies honest.
    assert set(domain.REQUEST_TYPES) == {t.value for t in RequestType}
    assert set(domain.PRIORITIES) == {p.value for p in Priority}
    assert set(domain.REQUEST_STATUSES) == {s.value for s in RequestStatus}
    assert set(domain.PAUSABLE_STATUSES) == {s.value for s in RequestStatus} - {
        "new",
        "resolved",
        "closed",
    }


@pytest.mark.parametrize(
    ("request_type", "priority"), list(itertools.product(domain.REQUEST_TYPES, domain.PRIORITIES))
)
def test_seeded_defaults_cover_every_request(request_type: str, priority: str) -> None:
    expected = {"P0": "p0-critical", "P1": "p1-high", "P2": "p2-normal", "P3": "default"}
    rule = domain.first_match(SEEDS, request_type=request_type, priority=priority)
    assert rule is not None
    assert rule.id == expected[priority]


def test_first_match_is_by_order_not_by_position() -> None:
    rules = [
        Rule(id="late", order=50, request_types=["deep_dive"]),
        Rule(id="early", order=5, request_types=["deep_dive"], priorities=["P1", "P2"]),
        Rule(id="any", order=100),
    ]
    assert domain.first_match(rules, request_type="deep_dive", priority="P1").id == "early"  # type: ignore[union-attr]
    assert domain.first_match(rules, request_type="deep_dive", priority="P3").id == "late"  # type: ignore[union-attr]
    assert domain.first_match(rules, request_type="other", priority="P1").id == "any"  # type: ignore[union-attr]
    # A catch-all placed first shadows everything after it.
    shadowing = [*rules, Rule(id="first", order=1)]
    for request_type, priority in itertools.product(domain.REQUEST_TYPES, domain.PRIORITIES):
        match = domain.first_match(shadowing, request_type=request_type, priority=priority)
        assert match is not None
        assert match.id == "first"


def test_both_dimensions_must_match() -> None:
    rule = Rule(id="r", order=1, request_types=["rule_change"], priorities=["P0"])
    assert domain.matches(rule, request_type="rule_change", priority="P0")
    assert not domain.matches(rule, request_type="rule_change", priority="P1")
    assert not domain.matches(rule, request_type="deep_dive", priority="P0")
    assert domain.first_match([rule], request_type="deep_dive", priority="P0") is None
    assert domain.first_match([], request_type="deep_dive", priority="P0") is None


def test_catch_all_detection() -> None:
    assert domain.is_catch_all(Rule(id="a", order=1))
    assert not domain.is_catch_all(Rule(id="a", order=1, priorities=["P3"]))
    assert not domain.is_catch_all(Rule(id="a", order=1, request_types=["other"]))
    assert domain.has_catch_all(SEEDS)
    assert not domain.has_catch_all(SEEDS[:3])
    assert not domain.has_catch_all([])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT4H", 14_400), ("PT90M", 5_400), ("PT30S", 30), ("PT1H30M15S", 5_415), ("pt8h", 28_800)],
)
def test_targets_in_hours_minutes_seconds(text: str, seconds: int) -> None:
    assert domain.parse_target(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P1D", "state it in hours"),
        ("P1W", "state it in hours"),
        ("PT0S", "longer than zero"),
        ("PT0.5S", "whole number of seconds"),
        ("PT20001H", "at most 20000 hours"),
        ("8 hours", "ISO-8601"),
        ("PT", "ISO-8601"),
        ("", "ISO-8601"),
    ],
)
def test_bad_targets_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        domain.parse_target(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT72H", 259_200), ("P3D", 259_200), ("P1DT2H", 93_600), ("PT30M", 1_800)],
)
def test_wall_durations_allow_days(text: str, seconds: int) -> None:
    assert domain.parse_wall_duration(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "P1M", "P1Y", "PT0S", "3 days", "P1DT", "P5000D"])
def test_bad_wall_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"ISO-8601|longer than zero|at most"):
        domain.parse_wall_duration(text)


@pytest.mark.parametrize("values", [[], [50], [50, 75, 90], [1, 99]])
def test_good_thresholds(values: list[int]) -> None:
    assert domain.check_thresholds(values) == values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0], "1 to 99"),
        ([100], "1 to 99"),
        ([50, 50], "strictly increasing"),
        ([90, 75], "strictly increasing"),
    ],
)
def test_bad_thresholds(values: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        domain.check_thresholds(values)


def test_pause_statuses() -> None:
    assert domain.check_pause_statuses([]) == []
    assert domain.check_pause_statuses(["waiting_on_requester", "triaged"]) == [
        "waiting_on_requester",
        "triaged",
    ]
    for status in ("new", "resolved", "closed", "waiting"):
        with pytest.raises(ValueError, match="cannot pause"):
            domain.check_pause_statuses([status])
    with pytest.raises(ValueError, match="repeat"):
        domain.check_pause_statuses(["in_progress", "in_progress"])


def test_choices() -> None:
    assert domain.check_choices(None, allowed=domain.PRIORITIES) is None
    assert domain.check_choices(["P1"], allowed=domain.PRIORITIES) == ["P1"]
    with pytest.raises(ValueError, match="null to match any"):
        domain.check_choices([], allowed=domain.PRIORITIES)
    with pytest.raises(ValueError, match="is not one of"):
        domain.check_choices(["P9"], allowed=domain.PRIORITIES)
    with pytest.raises(ValueError, match="repeat"):
        domain.check_choices(["P1", "P1"], allowed=domain.PRIORITIES)
