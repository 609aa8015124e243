"""The weekly report as HTML (inline SVG charts) and Markdown, from its JSON form.

`render_html(report)` is the HTML *body* (a `<section>`, no `<html>` around it) for pages that
embed it, such as the console's report page; `render_page(report)` wraps it in a standalone
document. Both take the dict `GET /api/v1/reports/weekly` answers with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from services.gateway.reports.charts import RAG_COLOURS, bar_chart, trend_line

SPARKS = "▁▂▃▄▅▆▇█"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


def _signed(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value > 0 else "") + _num(value)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return " ".join(str(text).split()).replace("|", "\\|")


def sparkline(values: list[float | None]) -> str:
    """Unicode block sparkline (a space for a week without a value)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    return "".join(
        " " if v is None else SPARKS[round((v - low) / span * (len(SPARKS) - 1))] for v in values
    )


# HTML templates escape everything; the Markdown one is not HTML (its text goes through `md`).
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=StrictUndefined,
)
_env.filters.update(num=_num, signed=_signed, md=_md)


def render_html(report: dict[str, Any]) -> str:
    """The report's HTML body: the metric table with a trend chart per metric, and the aging
    bar chart (inline SVG)."""
    charts = {
        m["key"]: trend_line(
            [(p["week"], p["value"]) for p in m["trend"]],
            goal=m["goal"],
            colour=RAG_COLOURS.get(m["rag"], RAG_COLOURS["none"]),
            title=f"{m['label']}, last {len(m['trend'])} weeks",
        )
        for m in report["metrics"]
    }
    aging_chart = bar_chart(
        [(bucket, float(count)) for bucket, count in report["aging"]["buckets"].items()],
        title="Open requests by age bucket",
    )
    return _env.get_template("weekly_body.html.j2").render(
        r=report, charts=charts, aging_chart=aging_chart
    )


def render_page(report: dict[str, Any]) -> str:
    """A standalone HTML document of the report."""
    body = Markup(render_html(report))  # noqa: S704 - rendered by the autoescaping template
    return _env.get_template("weekly_page.html.j2").render(r=report, body=body)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the metric table with sparklines, the path to green of every
    red or amber metric, and the aging buckets."""
    sparks = {m["key"]: sparkline([p["value"] for p in m["trend"]]) for m in report["metrics"]}
    return _env.get_template("weekly.md.j2").render(r=report, sparks=sparks)
