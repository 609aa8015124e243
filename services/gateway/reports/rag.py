"""The RAG rule of the weekly report (pure).

With a goal `g` and an amber band `a` (a fraction of the goal, default 10 %; at least 1 for
counts, so a goal of 0 still has a band):

- higher is better: green when value >= g; amber when value >= g - band; red below;
- lower is better: green when value <= g; amber when value <= g + band; red above;
- no status ("none") when the metric has no goal or no value this week (e.g. nothing resolved,
  so there is no resolution time).
"""

from __future__ import annotations

from enum import StrEnum

from services.gateway.reports.catalog import Direction


class Rag(StrEnum):
    """A metric's status against its goal."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    NONE = "none"


RULE = (
    "Green: at or better than the goal. Amber: worse, but within the amber band (a fraction of "
    "the goal, default 10 %, at least 1 for counts). Red: beyond the band. 'Better' follows the "
    "metric's direction (higher or lower is better). No status without a goal or a value."
)


def band(goal: float, amber_within: float, unit: str) -> float:
    """How far past the goal a value may be and still be amber."""
    width = abs(goal) * amber_within
    return max(width, 1.0) if unit == "count" else width


def rag(
    value: float | None,
    goal: float | None,
    *,
    direction: Direction,
    amber_within: float = 0.1,
    unit: str = "count",
) -> Rag:
    """The status of `value` against `goal` (see the module docstring)."""
    if value is None or goal is None:
        return Rag.NONE
    width = band(goal, amber_within, unit)
    if direction is Direction.HIGHER:
        if value >= goal:
            return Rag.GREEN
        return Rag.AMBER if value >= goal - width else Rag.RED
    if value <= goal:
        return Rag.GREEN
    return Rag.AMBER if value <= goal + width else Rag.RED


def improved(value: float | None, previous: float | None, direction: Direction) -> bool | None:
    """Whether the change from last week is for the better (None when either is missing or
    nothing changed)."""
    if value is None or previous is None or value == previous:
        return None
    return value > previous if direction is Direction.HIGHER else value < previous
