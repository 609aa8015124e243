"""The weekly flash report page: the report's own HTML body (charts included) inside the console.

The report is the gateway's own (services/gateway/reports): it is read in-process with the same
use case as `GET /api/v1/reports/weekly`, for staff only, like the API.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from markupsafe import Markup

from services.common.errors import DomainError
from services.gateway.console.web import SECURITY_HEADERS, CurrentViewer, render
from services.gateway.reports import service as reports
from services.gateway.reports.render import render_html, render_markdown
from services.gateway.reports.schemas import WeeklyReportRead
from services.gateway.runtime import get_runtime

router = APIRouter(include_in_schema=False)

WEEK = re.compile(r"^\d{4}-W\d{2}$")


@router.get("/reports/weekly")
@router.get("/reports/weekly.md")
async def weekly_report(
    request: Request,
    viewer: CurrentViewer,
    week: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """The weekly report (default: the current ISO week) with its trend and aging charts;
    `/reports/weekly.md` is the same report as Markdown text."""
    chosen = week if week and WEEK.fullmatch(week) else reports.default_week()
    markdown = request.url.path.endswith(".md")
    if not viewer.is_staff:
        return render(
            request,
            "report.html",
            viewer=viewer,
            week=chosen,
            report_html=None,
            report_error="The weekly report is for staff (analysts, program managers, admins).",
            status_code=403,
        )
    runtime = get_runtime(request)
    try:
        async with runtime.sessionmaker() as session:
            report = await reports.read(session, runtime=runtime, week=chosen)
    except DomainError as exc:
        return render(
            request,
            "report.html",
            viewer=viewer,
            week=chosen,
            report_html=None,
            report_error=f"The report cannot be built now: {exc.detail}",
            status_code=exc.status,
        )
    validated = WeeklyReportRead.model_validate(report).model_dump(mode="json")
    if markdown:
        return PlainTextResponse(render_markdown(validated), headers=SECURITY_HEADERS)
    body = render_html(validated)
    return render(
        request,
        "report.html",
        viewer=viewer,
        week=chosen,
        # The reports module renders with an autoescaping template of its own.
        report_html=Markup(body),  # noqa: S704
        report_error=None,
    )
