"""`/api/v1/reports/...` (gateway-owned, staff only) and `/internal/reports/...` (the worker)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.identity import Role
from services.common.stats import WEEK_PATTERN
from services.gateway.auth import SystemCaller, require_role
from services.gateway.keys.models import ApiKey
from services.gateway.reports import service
from services.gateway.reports.catalog import METRIC_PATTERN, METRICS
from services.gateway.reports.render import render_markdown, render_page
from services.gateway.reports.schemas import (
    GoalRead,
    GoalUpdate,
    NoteUpdate,
    NoteWritten,
    WeeklyBuilt,
    WeeklyReportRead,
)
from services.gateway.runtime import RuntimeDep, SessionDep

RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    502: {"model": Problem, "description": "A service the report reads is unavailable"},
    504: {"model": Problem, "description": "A service the report reads did not answer in time"},
}
StaffKey = Annotated[ApiKey, Depends(require_role(Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN))]
ManagerKey = Annotated[ApiKey, Depends(require_role(Role.PROGRAM_MANAGER, Role.ADMIN))]
WeekPath = Annotated[str, Path(pattern=WEEK_PATTERN, description='ISO week, e.g. "2026-W48"')]
MetricPath = Annotated[str, Path(pattern=METRIC_PATTERN, description="A metric key")]
MARKDOWN = "text/markdown; charset=utf-8"

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], responses=RESPONSES)
internal_router = APIRouter(prefix="/internal/reports", include_in_schema=False)


def _format(requested: str | None, request: Request) -> str:
    """`format` wins; else the Accept header (text/html, text/markdown); else JSON."""
    if requested is not None:
        return requested
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return "html"
    if "text/markdown" in accept:
        return "markdown"
    return "json"


@router.get(
    "/weekly",
    summary="The weekly flash report",
    response_model=WeeklyReportRead,
    responses={
        200: {
            "content": {"text/html": {}, "text/markdown": {}},
            "description": "JSON, or HTML / Markdown by `format` or `Accept`",
        }
    },
)
async def weekly_report(
    request: Request,
    key: StaffKey,
    session: SessionDep,
    runtime: RuntimeDep,
    week: Annotated[
        str | None,
        Query(pattern=WEEK_PATTERN, description="ISO week (UTC); default the current week"),
    ] = None,
    format: Annotated[
        Literal["json", "markdown", "html"] | None,
        Query(description="Default: by `Accept` (text/html, text/markdown), else JSON"),
    ] = None,
) -> Response:
    """Every program metric of the week with last week's value and the change, its goal, a RAG
    status (the rule is in `rag_rule`), the last 8 weeks' trend and the path-to-green note of
    each red or amber metric; plus open requests by age bucket. An ended week is built once and
    stored: later reads return it unchanged (notes excepted, which are written afterwards). The
    running week is computed live and not stored. HTML has inline SVG charts (trend per metric,
    aging bars). Staff only (analyst, program_manager, admin); 422 for a week not yet started."""
    chosen = week if week is not None else service.default_week()
    report = await service.read(session, runtime=runtime, week=chosen)
    validated = WeeklyReportRead.model_validate(report).model_dump(mode="json")
    kind = _format(format, request)
    if kind == "html":
        return HTMLResponse(render_page(validated))
    if kind == "markdown":
        return Response(render_markdown(validated), media_type=MARKDOWN)
    return JSONResponse(validated)


@router.get("/goals", summary="Goals of the report's metrics", response_model=list[GoalRead])
async def list_goals(_key: StaffKey, session: SessionDep) -> list[GoalRead]:
    """Every metric with the goal the next report uses (set, or the built-in default)."""
    goals = await service.goals(session)
    return [
        GoalRead(
            metric=m.key,
            label=m.label,
            direction=m.direction.value,
            unit=m.unit,
            target=goals[m.key][0],
            amber_within=goals[m.key][1],
            default=not goals[m.key][2],
        )
        for m in METRICS
    ]


@router.put("/goals/{metric}", summary="Set a metric's goal", response_model=GoalRead)
async def put_goal(
    metric: MetricPath, body: GoalUpdate, key: ManagerKey, session: SessionDep
) -> GoalRead:
    """Set the goal (and amber band) of one metric for reports built from now on; a stored
    report keeps the goal it was built with. Program managers and admins; 404 unknown metric."""
    entry = service.metric_or_404(metric)
    row = await service.set_goal(
        session, metric=metric, target=body.target, amber_within=body.amber_within, by=key.name
    )
    return GoalRead(
        metric=metric,
        label=entry.label,
        direction=entry.direction.value,
        unit=entry.unit,
        target=row.target,
        amber_within=row.amber_within,
        default=False,
    )


@router.put(
    "/weekly/{week}/notes/{metric}",
    summary="Write a metric's path to green",
    response_model=NoteWritten,
)
async def put_note(
    week: WeekPath, metric: MetricPath, body: NoteUpdate, key: StaffKey, session: SessionDep
) -> NoteWritten:
    """The path-to-green note of one metric in one week's report (replaces an earlier one);
    shown with the report, stored or live. Staff; 404 unknown metric, 422 bad or future week."""
    row = await service.set_note(session, week=week, metric=metric, note=body.note, by=key.name)
    return NoteWritten(
        week=row.week,
        metric=row.metric,
        note=row.note,
        author=row.author,
        updated_at=row.updated_at,
    )


@internal_router.post("/weekly/{week}", summary="Build, store and publish a week's report")
async def build_weekly(
    week: WeekPath, _caller: SystemCaller, session: SessionDep, runtime: RuntimeDep
) -> WeeklyBuilt:
    """Build and store the report of an ended week (kept as it is if already stored) and
    publish `report.weekly` to every subscribed team (idempotent per week and team). 409 for
    a week that has not ended. The worker's schedule calls this every Monday."""
    service.check_week(week, field="path.week")
    snapshot, created = await service.build_and_store(session, runtime=runtime, week=week)
    events = await service.publish(session, snapshot=snapshot, settings=runtime.settings)
    return WeeklyBuilt(week=week, built_at=snapshot["built_at"], created=created, events=events)
