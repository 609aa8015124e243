"""The metrics of the weekly report: what each one is, which way is better, its default goal,
and where its value comes from in the services' stats (`/api/v1/stats/...`) and the aging report.

Durations are shown in hours (request clocks, business time) or days (escalations, SOP
approvals, wall-clock time); ratios as percentages. A metric without a goal has no RAG status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

HOUR, DAY = 3600.0, 86400.0


class Direction(StrEnum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True, slots=True)
class Metric:
    """One line of the report."""

    key: str
    label: str
    area: str
    unit: str
    direction: Direction
    goal: float | None
    value: Callable[[Mapping[str, Any]], float | None]
    amber_within: float = 0.1


def _path(*keys: str, scale: float = 1.0) -> Callable[[Mapping[str, Any]], float | None]:
    """A value found at `keys` in the week's sources, divided by `scale` (None if missing)."""

    def read(sources: Mapping[str, Any]) -> float | None:
        node: Any = sources
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        if node is None:
            return None
        return round(float(node) / scale, 4)

    return read


def _percent(*keys: str) -> Callable[[Mapping[str, Any]], float | None]:
    fraction = _path(*keys)

    def read(sources: Mapping[str, Any]) -> float | None:
        value = fraction(sources)
        return round(value * 100.0, 2) if value is not None else None

    return read


H, L = Direction.HIGHER, Direction.LOWER
METRICS: tuple[Metric, ...] = (
    Metric(
        "requests_filed", "Requests filed", "intake", "count", H, None, _path("intake", "filed")
    ),
    Metric(
        "requests_closed", "Requests closed", "intake", "count", H, None, _path("intake", "closed")
    ),
    Metric(
        "backlog",
        "Open backlog (end of week)",
        "intake",
        "count",
        L,
        50,
        _path("intake", "backlog"),
    ),
    Metric(
        "first_response_p50_hours",
        "Time to first response p50 (business h)",
        "intake",
        "hours",
        L,
        4,
        _path("intake", "first_response", "p50_seconds", scale=HOUR),
    ),
    Metric(
        "first_response_p90_hours",
        "Time to first response p90 (business h)",
        "intake",
        "hours",
        L,
        8,
        _path("intake", "first_response", "p90_seconds", scale=HOUR),
    ),
    Metric(
        "resolution_p50_hours",
        "Time to resolution p50 (business h)",
        "intake",
        "hours",
        L,
        40,
        _path("intake", "resolution", "p50_seconds", scale=HOUR),
    ),
    Metric(
        "resolution_p90_hours",
        "Time to resolution p90 (business h)",
        "intake",
        "hours",
        L,
        80,
        _path("intake", "resolution", "p90_seconds", scale=HOUR),
    ),
    Metric(
        "sla_attainment_pct",
        "SLA attainment (%)",
        "intake",
        "percent",
        H,
        95,
        _percent("intake", "sla", "attainment"),
        amber_within=0.05,
    ),
    Metric(
        "sla_breaches", "SLA breaches", "intake", "count", L, 5, _path("intake", "sla", "breaches")
    ),
    Metric(
        "reopen_rate_pct",
        "Reopen rate (%)",
        "intake",
        "percent",
        L,
        5,
        _percent("intake", "reopen", "rate"),
    ),
    Metric(
        "aging_30_plus",
        "Open requests older than 30 business days",
        "intake",
        "count",
        L,
        5,
        _path("aging", "buckets", "30+"),
    ),
    Metric(
        "escalations_opened",
        "Escalations opened",
        "escalation",
        "count",
        L,
        None,
        _path("escalation", "opened"),
    ),
    Metric(
        "escalations_closed",
        "Escalations closed",
        "escalation",
        "count",
        H,
        None,
        _path("escalation", "closed"),
    ),
    Metric(
        "escalation_closure_p50_days",
        "Escalation closure time p50 (days)",
        "escalation",
        "days",
        L,
        14,
        _path("escalation", "closure_time", "p50_seconds", scale=DAY),
    ),
    Metric(
        "action_items_overdue",
        "Action items overdue (end of week)",
        "escalation",
        "count",
        L,
        5,
        _path("escalation", "action_items", "overdue"),
    ),
    Metric(
        "sop_approval_cycle_p50_days",
        "SOP approval cycle time p50 (days)",
        "sop",
        "days",
        L,
        5,
        _path("sop", "approval_cycle_time", "p50_seconds", scale=DAY),
    ),
    Metric(
        "sop_parity_pct",
        "SOP rollout parity (%)",
        "sop",
        "percent",
        H,
        95,
        _percent("sop", "parity", "parity"),
        amber_within=0.05,
    ),
    Metric(
        "sop_reviews_overdue",
        "SOP reviews overdue (end of week)",
        "sop",
        "count",
        L,
        2,
        _path("sop", "reviews_overdue"),
    ),
    Metric(
        "rules_deprecated",
        "Rules deprecated",
        "sop",
        "count",
        H,
        None,
        _path("sop", "rules", "deprecated"),
    ),
    Metric(
        "gaps_identified",
        "Systemic gaps identified",
        "escalation",
        "count",
        H,
        None,
        _path("escalation", "gaps", "identified"),
    ),
    Metric(
        "gaps_quantified",
        "Systemic gaps quantified",
        "escalation",
        "count",
        H,
        None,
        _path("escalation", "gaps", "quantified"),
    ),
    Metric(
        "gaps_closed",
        "Systemic gaps closed",
        "escalation",
        "count",
        H,
        1,
        _path("escalation", "gaps", "closed"),
    ),
)
BY_KEY: Mapping[str, Metric] = {metric.key: metric for metric in METRICS}
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


def values_of(sources: Mapping[str, Any]) -> dict[str, float | None]:
    """Every metric's value from one week's sources (`intake`, `escalation`, `sop`, `aging`)."""
    return {metric.key: metric.value(sources) for metric in METRICS}
