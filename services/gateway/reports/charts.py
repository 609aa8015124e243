"""Server-rendered inline SVG charts (pure functions: numbers in, SVG text out; no JS).

Every label is escaped: metric names and week labels come from the report, and an SVG inline in
HTML is markup like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

RAG_COLOURS: Mapping[str, str] = {
    "green": "#2e7d32",
    "amber": "#ef8f00",
    "red": "#c62828",
    "none": "#607d8b",
}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def trend_line(
    points: Sequence[tuple[str, float | None]],
    *,
    goal: float | None = None,
    colour: str = RAG_COLOURS["none"],
    width: int = 240,
    height: int = 64,
    title: str = "",
) -> Markup:
    """A line over the weeks (gaps where a week has no value) with a dashed goal line."""
    pad = 6
    known = [v for _, v in points if v is not None]
    scale_values = known + ([goal] if goal is not None else [])
    if not points:
        return Markup("")
    low = min(scale_values, default=0.0)
    high = max(scale_values, default=1.0)
    if high == low:
        high, low = high + 1.0, low - 1.0 if low != 0 else 0.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return height - pad - (value - low) / (high - low) * (height - 2 * pad)

    parts = [
        f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    if goal is not None:
        parts.append(
            f'<line class="goal" x1="{pad}" x2="{width - pad}" y1="{y(goal):.1f}" '
            f'y2="{y(goal):.1f}" stroke="#9e9e9e" stroke-dasharray="4 3"/>'
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for index, (_week, value) in enumerate(points):
        if value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        segment.append(f"{pad + index * step:.1f},{y(value):.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(seg)}"/>'
        )
    for index, (week, value) in enumerate(points):
        if value is not None:
            parts.append(
                f'<circle cx="{pad + index * step:.1f}" cy="{y(value):.1f}" r="2.5" '
                f'fill="{colour}"><title>{escape(week)}: {_fmt(value)}</title></circle>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label in it went through escape()


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    width: int = 360,
    height: int = 160,
    colour: str = "#3f51b5",
    title: str = "",
) -> Markup:
    """Vertical bars with their value above and their label below."""
    pad_top, pad_bottom, pad_side = 18, 22, 8
    if not bars:
        return Markup("")
    top = max((value for _, value in bars), default=0.0) or 1.0
    slot = (width - 2 * pad_side) / len(bars)
    bar_width = slot * 0.6
    usable = height - pad_top - pad_bottom
    parts = [
        f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (label, value) in enumerate(bars):
        bar_height = value / top * usable
        x = pad_side + index * slot + (slot - bar_width) / 2
        y = pad_top + usable - bar_height
        centre = x + bar_width / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{bar_height:.1f}" '
            f'fill="{colour}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            f'<text x="{centre:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="11">'
            f"{_fmt(value)}</text>"
            f'<text x="{centre:.1f}" y="{height - 6}" text-anchor="middle" font-size="11">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label in it went through escape()
