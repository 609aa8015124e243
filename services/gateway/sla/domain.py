"""Pure rules of SLA policies: which policy a request gets, and what a valid policy is. No I/O.

A request gets the first policy, by ascending `order`, whose request types and priorities both
match (`None` matches anything). A policy with both `None` is a catch-all; one must always exist,
so every request has an SLA (ServiceNow and Jira Service Management both end on a default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from services.common.business_time import CalendarError, parse_business_duration

# The intake service's vocabularies, mirrored here because a service never imports another:
# they change rarely, and a policy naming a type or status intake does not know would silently
# never match or never pause, which is worse than refusing it.
REQUEST_TYPES = (
    "mo_investigation",
    "deep_dive",
    "data_request",
    "rule_change",
    "systemic_gap_report",
    "other",
)
PRIORITIES = ("P0", "P1", "P2", "P3")
REQUEST_STATUSES = (
    "new",
    "triaged",
    "in_progress",
    "waiting_on_requester",
    "resolved",
    "closed",
)
# A clock cannot pause before it has really started (new) or after it has stopped for good.
PAUSABLE_STATUSES = ("triaged", "in_progress", "waiting_on_requester")

DEFAULT_WARNING_THRESHOLDS = (50, 75, 90)
DEFAULT_PAUSE_STATUSES = ("waiting_on_requester",)
DEFAULT_AUTO_CLOSE_AFTER = "PT72H"
# Bounds that keep a deadline computable (business time scans at most ten years ahead).
MAX_TARGET = timedelta(hours=20_000)
MAX_AUTO_CLOSE = timedelta(days=3_650)

SLUG_PATTERN = r"^[a-z0-9-]{2,40}$"
# Path segments of the policies collection that are not policy ids.
RESERVED_POLICY_IDS = frozenset({"match"})

_WALL_DURATION = re.compile(
    r"^P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE
)


class PolicyRule(Protocol):
    """What matching needs of a policy."""

    @property
    def order(self) -> int: ...

    @property
    def request_types(self) -> Sequence[str] | None: ...

    @property
    def priorities(self) -> Sequence[str] | None: ...


RuleT = TypeVar("RuleT", bound=PolicyRule)


@dataclass(frozen=True, slots=True)
class Rule:
    """A plain policy rule (the seeds, tests and the catch-all check use it)."""

    id: str
    order: int
    request_types: Sequence[str] | None = None
    priorities: Sequence[str] | None = None


def matches(rule: PolicyRule, *, request_type: str, priority: str) -> bool:
    """Whether `rule` applies to a request of this type and priority."""
    return (rule.request_types is None or request_type in rule.request_types) and (
        rule.priorities is None or priority in rule.priorities
    )


def is_catch_all(rule: PolicyRule) -> bool:
    """A catch-all matches every request."""
    return rule.request_types is None and rule.priorities is None


def first_match(rules: Iterable[RuleT], *, request_type: str, priority: str) -> RuleT | None:
    """The matching rule with the lowest `order`, or None if none matches."""
    for rule in sorted(rules, key=lambda candidate: candidate.order):
        if matches(rule, request_type=request_type, priority=priority):
            return rule
    return None


def has_catch_all(rules: Iterable[PolicyRule]) -> bool:
    """Whether some rule matches every request."""
    return any(is_catch_all(rule) for rule in rules)


def parse_target(text: str) -> int:
    """Whole seconds of a business-time target ("PT4H", "PT90M", "PT30S"); ValueError if not."""
    try:
        value = parse_business_duration(text)
    except CalendarError as exc:
        raise ValueError(exc.message) from exc
    return _whole_seconds(value, upper=MAX_TARGET)


def parse_wall_duration(text: str) -> int:
    """Whole seconds of a wall-clock duration; days are allowed here ("P3D", "PT72H")."""
    match = _WALL_DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or text.strip().upper() in ("P", "PT"):
        raise ValueError("must be an ISO-8601 duration such as PT72H or P3D")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return _whole_seconds(value, upper=MAX_AUTO_CLOSE)


def _whole_seconds(value: timedelta, *, upper: timedelta) -> int:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    if value > upper:
        raise ValueError(f"must be at most {int(upper.total_seconds() // 3600)} hours")
    if value.microseconds:
        raise ValueError("must be a whole number of seconds")
    return int(value.total_seconds())


def check_thresholds(values: Sequence[int]) -> list[int]:
    """Warning thresholds: percents 1..99, strictly increasing (may be empty: no warnings)."""
    for index, value in enumerate(values):
        if not 1 <= value <= 99:
            raise ValueError(f"item {index} ({value}) must be a percent from 1 to 99")
        if index and value <= values[index - 1]:
            raise ValueError("must be strictly increasing, e.g. [50, 75, 90]")
    return list(values)


def check_pause_statuses(values: Sequence[str]) -> list[str]:
    """Pause statuses: distinct intake statuses a running clock can be in."""
    for value in values:
        if value not in PAUSABLE_STATUSES:
            raise ValueError(
                f"{value!r} cannot pause a clock; use some of {', '.join(PAUSABLE_STATUSES)}"
            )
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a status")
    return list(values)


def check_choices(values: Sequence[str] | None, *, allowed: Sequence[str]) -> list[str] | None:
    """A non-empty list of distinct allowed values, or None (= any)."""
    if values is None:
        return None
    if not values:
        raise ValueError("must not be empty; use null to match any")
    for value in values:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a value")
    return list(values)
