"""Pure parts of stats and the weekly report: periods, the stats routes, the RAG rule, charts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.common.errors import ValidationFailed
from services.common.stats import (
    current_week,
    previous_week,
    resolve_period,
    week_period,
)
from services.gateway.reports.catalog import METRICS, Direction, values_of
from services.gateway.reports.charts import bar_chart, trend_line
from services.gateway.reports.rag import Rag, improved, rag
from services.gateway.reports.render import sparkline
from services.gateway.routing import resolve

NOW = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)  # a Saturday of 2026-W48


def test_weeks_and_periods() -> None:
    period = week_period("2026-W48")
    assert (period.start, period.end) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert period.as_of(NOW) == NOW  # still running: now
    assert week_period("2026-W47").as_of(NOW) == datetime(2026, 11, 23, tzinfo=UTC)
    assert current_week(NOW) == "2026-W48"
    assert previous_week("2026-W01") == "2025-W52"
    assert previous_week("2027-W01", 1) == "2026-W53"
    dates = resolve_period(week=None, from_=date(2026, 11, 23), to=date(2026, 11, 29))
    assert dates == period
    assert resolve_period(week=None, from_=None, to=None, now=NOW) == period
    short = resolve_period(week=None, from_=date(2026, 11, 24), to=date(2026, 11, 24))
    assert (short.week, short.end - short.start) == (None, datetime(2, 1, 2) - datetime(2, 1, 1))
    for bad in (
        {"week": "2026-W54", "from_": None, "to": None},
        {"week": "2026-W48", "from_": date(2026, 1, 1), "to": None},
        {"week": None, "from_": date(2026, 1, 2), "to": date(2026, 1, 1)},
        {"week": None, "from_": date(2025, 1, 1), "to": date(2026, 6, 1)},
    ):
        with pytest.raises(ValidationFailed):
            resolve_period(**bad)


def test_stats_paths_route_by_their_second_segment() -> None:
    assert resolve("/api/v1/stats/intake") == "intake"
    assert resolve("/api/v1/stats/escalations") == "escalation"
    assert resolve("/api/v1/stats/sops") == "sop"
    assert resolve("/api/v1/stats/other") is None
    assert resolve("/api/v1/stats") is None
    assert resolve("/api/v1/gaps/stats") == "escalation"


@pytest.mark.parametrize(
    ("value", "goal", "direction", "unit", "expected"),
    [
        (95, 95, Direction.HIGHER, "percent", Rag.GREEN),
        (90, 95, Direction.HIGHER, "percent", Rag.AMBER),  # band 9.5
        (85, 95, Direction.HIGHER, "percent", Rag.RED),
        (40, 40, Direction.LOWER, "hours", Rag.GREEN),
        (44, 40, Direction.LOWER, "hours", Rag.AMBER),  # band 4
        (44.1, 40, Direction.LOWER, "hours", Rag.RED),
        (1, 0, Direction.LOWER, "count", Rag.AMBER),  # a count's band is at least 1
        (2, 0, Direction.LOWER, "count", Rag.RED),
        (None, 5, Direction.LOWER, "count", Rag.NONE),
        (3, None, Direction.HIGHER, "count", Rag.NONE),
    ],
)
def test_rag_is_direction_aware(
    value: float | None, goal: float | None, direction: Direction, unit: str, expected: Rag
) -> None:
    assert rag(value, goal, direction=direction, unit=unit) is expected


def test_improvement_follows_the_direction() -> None:
    assert improved(3, 1, Direction.HIGHER) is True
    assert improved(3, 1, Direction.LOWER) is False
    assert improved(1, 1, Direction.LOWER) is None
    assert improved(None, 1, Direction.LOWER) is None


def test_metric_values_from_the_sources() -> None:
    sources = {
        "intake": {"filed": 7, "resolution": {"p50_seconds": 7200.0}, "sla": {"attainment": 0.9}},
        "escalation": {"closure_time": {"p50_seconds": 172800.0}},
        "sop": {"parity": {"parity": None}},
        "aging": {"buckets": {"30+": 2}},
    }
    values = values_of(sources)
    assert set(values) == {m.key for m in METRICS}
    assert values["requests_filed"] == 7
    assert values["resolution_p50_hours"] == 2
    assert values["sla_attainment_pct"] == 90
    assert values["escalation_closure_p50_days"] == 2
    assert values["aging_30_plus"] == 2
    assert values["sop_parity_pct"] is None
    assert values["backlog"] is None


def test_charts_escape_and_skip_missing_weeks() -> None:
    svg = trend_line([("W1", 1.0), ("W2", None), ("W3", 3.0)], goal=2.0, title="<b>x</b>")
    assert svg.count("<polyline") == 2  # the missing week breaks the line
    assert 'class="goal"' in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg
    bars = bar_chart([("0-2", 3.0), ("30+", 0.0)], title="aging")
    assert bars.count("<rect") == 2
    assert sparkline([1.0, None, 8.0]) == "▁ █"
    assert sparkline([None, None]) == ""
