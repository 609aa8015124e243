"""Request pages: the queues, one request (SLA clocks, comments, history, actions), filing one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from services.common.identity import Role
from services.gateway.console.upstream import ConsoleProblem
from services.gateway.console.web import (
    CurrentViewer,
    Viewer,
    problem_flash,
    read_form,
    redirect,
    render,
)

router = APIRouter(include_in_schema=False)

MAX_ID = 2**31 - 1
PAGE_SIZE = 50
OPEN_STATUSES = ("new", "triaged", "in_progress", "waiting_on_requester")
STATUSES = (*OPEN_STATUSES, "resolved", "closed")
PRIORITIES = ("P0", "P1", "P2", "P3")
REQUEST_TYPES = (
    "mo_investigation",
    "deep_dive",
    "data_request",
    "rule_change",
    "systemic_gap_report",
    "other",
)
# "Breaching soon": the earliest running SLA deadline falls within this window (overdue included).
BREACHING_WINDOW = timedelta(hours=8)
# "Stale": no change for this long (the aging alerts count business days; a queue needs no calendar).
STALE_AFTER = timedelta(days=5)
VIEWS = {
    "team": "My team's",
    "mine": "Mine",
    "breaching": "Breaching soon",
    "stale": "Stale",
}
# The buttons a request shows, mirroring intake's state machine (intake still decides: a refused
# action comes back as its 409 with the actions allowed now).
STATUS_ACTIONS: dict[str, tuple[str, ...]] = {
    "new": ("triage", "reject", "mark_duplicate"),
    "triaged": ("start", "reject", "mark_duplicate"),
    "in_progress": ("request_info", "resolve", "reject", "mark_duplicate"),
    "waiting_on_requester": ("provide_info", "resolve", "reject", "mark_duplicate"),
    "resolved": ("reopen", "close"),
    "closed": (),
}
PARTNER_ACTIONS = frozenset({"provide_info", "reopen", "close"})
NEEDS_REASON = frozenset({"reject", "reopen"})
ACTIONS = frozenset(a for actions in STATUS_ACTIONS.values() for a in actions)

RequestIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
Text = Annotated[str | None, Query(max_length=200)]


def actions_for(viewer: Viewer, status: str) -> list[str]:
    """The actions this viewer's role may take from `status` (approvers take none)."""
    actions = STATUS_ACTIONS.get(status, ())
    if viewer.is_staff:
        return list(actions)
    if viewer.role is Role.PARTNER:
        return [a for a in actions if a in PARTNER_ACTIONS]
    return []


def _choice(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None


@router.get("/")
async def queues(
    request: Request,
    viewer: CurrentViewer,
    view: Annotated[str, Query(max_length=20)] = "team",
    status: Text = None,
    priority: Text = None,
    request_type: Text = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    team: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The request queues (my team's, mine, breaching soon, stale) with filters."""
    view = view if view in VIEWS else "team"
    filters = {
        "status": _choice(status, STATUSES),
        "priority": _choice(priority, PRIORITIES),
        "request_type": _choice(request_type, REQUEST_TYPES),
        "q": (q or "").strip() or None,
        "team": (team or "").strip() or None if viewer.is_staff else None,
    }
    params: dict[str, Any] = {**filters, "limit": PAGE_SIZE, "cursor": cursor}
    if filters["status"] is None and view != "team":
        params["status"] = list(OPEN_STATUSES)
    now = datetime.now(UTC)
    # "team": a partner's list is its own team's already; staff see every team (or the one
    # they filter on), since staff work every partner team's requests.
    if view == "mine" and viewer.is_staff:
        params["assignee"] = viewer.subject
    elif view == "breaching":
        params["due_before"] = (now + BREACHING_WINDOW).isoformat()
        params["sort"] = "due"
    elif view == "stale":
        params["updated_before"] = (now - STALE_AFTER).isoformat()
        params["sort"] = "updated_at"
    page = await viewer.api.get("/api/v1/requests", params)
    items: list[dict[str, Any]] = page["items"]
    if view == "mine" and not viewer.is_staff:
        # A partner's "mine" is what this key filed (intake has no requester filter: per page).
        items = [item for item in items if item.get("requested_by") == viewer.subject]
    return render(
        request,
        "queues.html",
        viewer=viewer,
        view=view,
        views={**VIEWS, "team": "My team's" if not viewer.is_staff else "All teams"},
        filters=filters,
        items=items,
        next_cursor=page.get("next_cursor"),
        statuses=STATUSES,
        priorities=PRIORITIES,
        request_types=REQUEST_TYPES,
        now=now.isoformat(),
    )


async def _optional(call: Any) -> tuple[Any, str | None]:
    # Parts of a page that may fail alone (the SLA needs Temporal): the page shows the rest.
    try:
        return await call, None
    except ConsoleProblem as problem:
        return None, problem.detail


@router.get("/requests/new")
async def new_request_page(request: Request, viewer: CurrentViewer) -> Response:
    """The form to file a request."""
    return _new_form(request, viewer, values={}, errors=[], error=None)


def _new_form(
    request: Request,
    viewer: Viewer,
    *,
    values: dict[str, str],
    errors: list[str],
    error: str | None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "request_new.html",
        viewer=viewer,
        values=values,
        errors=errors,
        error=error,
        request_types=REQUEST_TYPES,
        priorities=PRIORITIES,
        # A fresh key per form shown: a corrected form is a new request, a double post is not.
        idempotency_key=uuid.uuid4().hex,
        status_code=status_code,
    )


def _request_body(form: dict[str, str], viewer: Viewer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_type": form.get("request_type", ""),
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "priority": form.get("priority") or "P2",
    }
    for name in ("marketplace", "team"):
        if form.get(name, "").strip():
            body[name] = form[name].strip()
    if not viewer.is_staff:
        body.pop("team", None)
    tags = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    if tags:
        body["tags"] = tags
    if form.get("accounts_affected", "").strip() or form.get("money_at_risk", "").strip():
        body["impact"] = {
            "accounts_affected": form.get("accounts_affected", "").strip() or "0",
            "money_at_risk_per_week": form.get("money_at_risk", "").strip() or "0",
            "currency": form.get("currency", "").strip().upper() or "USD",
        }
    return body


@router.post("/requests/new")
async def file_request(request: Request, viewer: CurrentViewer) -> Response:
    """File the request through intake; back to the form with intake's field errors if refused."""
    form = await read_form(request)
    key = form.get("idempotency_key", "")[:64] or None
    try:
        created = await viewer.api.post(
            "/api/v1/requests", _request_body(form, viewer), idempotency_key=key
        )
    except ConsoleProblem as problem:
        return _new_form(
            request,
            viewer,
            values=form,
            errors=problem.errors,
            error=f"{problem.title}: {problem.detail}",
            status_code=problem.status,
        )
    return redirect(
        request, f"/requests/{int(created['id'])}", flash=("ok", f"Request {created['id']} filed.")
    )


@router.get("/requests/{request_id}")
async def request_detail(
    request: Request, viewer: CurrentViewer, request_id: RequestIdPath
) -> Response:
    """One request: fields, SLA clocks, comments, history and the actions the role allows."""
    base = f"/api/v1/requests/{request_id}"
    item = await viewer.api.get(base)
    (sla, sla_error), (comments, _), (events, _) = await asyncio.gather(
        _optional(viewer.api.get(f"{base}/sla")),
        _optional(viewer.api.get(f"{base}/comments", {"limit": 200})),
        _optional(viewer.api.get(f"{base}/events", {"limit": 200})),
    )
    return render(
        request,
        "request.html",
        viewer=viewer,
        item=item,
        sla=sla,
        sla_error=sla_error,
        comments=(comments or {}).get("items", []),
        events=(events or {}).get("items", []),
        actions=actions_for(viewer, item["status"]),
        needs_reason=NEEDS_REASON,
    )


@router.post("/requests/{request_id}/transitions")
async def transition(
    request: Request, viewer: CurrentViewer, request_id: RequestIdPath
) -> Response:
    """Apply an action (triage, start, resolve, ...) through intake."""
    form = await read_form(request)
    action = form.get("action", "")
    back = f"/requests/{request_id}"
    if action not in ACTIONS:
        return redirect(request, back, flash=("error", "Unknown action."))
    body: dict[str, Any] = {"action": action}
    if form.get("reason", "").strip():
        body["reason"] = form["reason"].strip()
    if action == "mark_duplicate":
        duplicate_of = form.get("duplicate_of", "").strip()
        if not duplicate_of.isdigit():
            return redirect(request, back, flash=("error", "Give the id of the original request."))
        body["duplicate_of"] = int(duplicate_of)
    try:
        updated = await viewer.api.post(f"/api/v1/requests/{request_id}/transitions", body)
    except ConsoleProblem as problem:
        return redirect(request, back, flash=problem_flash(problem))
    status = str(updated.get("status", "")).replace("_", " ")
    return redirect(
        request, back, flash=("ok", f"Done: {action.replace('_', ' ')} (now {status}).")
    )


@router.post("/requests/{request_id}/comments")
async def comment(request: Request, viewer: CurrentViewer, request_id: RequestIdPath) -> Response:
    """Add a comment (staff may make it internal, or a question to the requester)."""
    form = await read_form(request)
    back = f"/requests/{request_id}"
    body: dict[str, Any] = {"body": form.get("body", "")}
    if viewer.is_staff:
        body["visibility"] = "internal" if form.get("visibility") == "internal" else "public"
        body["asks_requester"] = form.get("asks_requester") == "on"
    try:
        await viewer.api.post(f"/api/v1/requests/{request_id}/comments", body)
    except ConsoleProblem as problem:
        return redirect(request, back, flash=problem_flash(problem))
    return redirect(request, back, flash=("ok", "Comment added."))
