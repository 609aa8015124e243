"""Program-office pages: the escalations board, the SOP approval inbox, parity, rule candidates."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from temporalio.service import RPCError

from services.gateway.console.upstream import ConsoleProblem
from services.gateway.console.web import (
    CurrentViewer,
    Viewer,
    problem_flash,
    read_form,
    redirect,
    render,
)
from services.gateway.runtime import get_runtime
from workflows.contracts import (
    ESCALATION_STATE_QUERY,
    EscalationWorkflowState,
    escalation_workflow_id,
)

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)

MAX_ID = 2**31 - 1
BOARD_COLUMNS = (
    "open",
    "mitigating",
    "rca_in_progress",
    "actions_open",
    "pending_closure",
    "closed",
)
OPEN_ITEM_STATUSES = ("open", "in_progress", "blocked", "not_doing_proposed")
LADDER_QUERY_SECONDS = 3.0
# The inbox looks at this many SOPs (newest first); an office has tens, not thousands.
INBOX_SOPS = 100
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def _overdue(item: dict[str, Any], now: datetime) -> bool:
    due = datetime.fromisoformat(str(item["due_at"]))
    return item["status"] in OPEN_ITEM_STATUSES and due < now


@router.get("/escalations")
async def escalations_board(request: Request, viewer: CurrentViewer) -> Response:
    """Escalations by status, each with its open and overdue action items."""
    escalations, items = await asyncio.gather(
        viewer.api.get("/api/v1/escalations", {"limit": 100}),
        viewer.api.get("/api/v1/action-items", {"status": list(OPEN_ITEM_STATUSES), "limit": 200}),
    )
    now = datetime.now(UTC)
    open_items: dict[int, int] = {}
    overdue: dict[int, int] = {}
    for item in items["items"]:
        open_items[item["escalation_id"]] = open_items.get(item["escalation_id"], 0) + 1
        if _overdue(item, now):
            overdue[item["escalation_id"]] = overdue.get(item["escalation_id"], 0) + 1
    columns: dict[str, list[dict[str, Any]]] = {status: [] for status in BOARD_COLUMNS}
    for escalation in escalations["items"]:
        columns.setdefault(escalation["status"], []).append(escalation)
    return render(
        request,
        "escalations.html",
        viewer=viewer,
        columns=columns,
        open_items=open_items,
        overdue=overdue,
        total=len(escalations["items"]),
    )


async def ladder_state(
    request: Request, escalation_id: int
) -> tuple[dict[str, Any] | None, str | None]:
    """What the escalation's workflow has chased so far (its `state` query), or why not known."""
    temporal = get_runtime(request).temporal
    if temporal is None:
        return None, "Temporal is not configured."
    try:
        client = await temporal.client()
        handle = client.get_workflow_handle(escalation_workflow_id(escalation_id))
        state = await asyncio.wait_for(
            handle.query(ESCALATION_STATE_QUERY, result_type=EscalationWorkflowState),
            timeout=LADDER_QUERY_SECONDS,
        )
    except (RPCError, TimeoutError, OSError, RuntimeError) as exc:
        log.info("console_ladder_unavailable", escalation_id=escalation_id, error=repr(exc))
        return (
            None,
            "The follow-up workflow cannot answer now (not started yet, or Temporal is down).",
        )
    return asdict(state), None


@router.get("/escalations/{escalation_id}")
async def escalation_detail(
    request: Request, viewer: CurrentViewer, escalation_id: IdPath
) -> Response:
    """One escalation: its facts, its action items and the overdue ladder's state."""
    escalation = await viewer.api.get(f"/api/v1/escalations/{escalation_id}")
    items, (ladder, ladder_error) = await asyncio.gather(
        viewer.api.get(f"/api/v1/escalations/{escalation_id}/action-items", {"limit": 200}),
        ladder_state(request, escalation_id),
    )
    now = datetime.now(UTC)
    chases = {c["item_id"]: c for c in (ladder or {}).get("chases", [])}
    return render(
        request,
        "escalation.html",
        viewer=viewer,
        escalation=escalation,
        items=items["items"],
        overdue={item["id"] for item in items["items"] if _overdue(item, now)},
        chases=chases,
        ladder=ladder,
        ladder_error=ladder_error,
    )


async def _in_review(viewer: Viewer, sop: dict[str, Any]) -> dict[str, Any] | None:
    number = sop["latest_version"]
    base = f"/api/v1/sops/{sop['id']}/versions/{number}"
    version = await viewer.api.get(base)
    if version["status"] != "in_review":
        return None
    approval = await viewer.api.get(f"{base}/approval")
    stages = approval.get("stages", [])
    current = approval.get("current_stage", 0)
    stage = stages[current] if 0 <= current < len(stages) else None
    decided = stage is not None and viewer.subject in stage["approvals"] + stage["rejections"]
    return {
        "sop": sop,
        "version": version,
        "approval": approval,
        "stage": stage,
        "mine": stage is not None and viewer.subject in stage["approvers"] and not decided,
        "decided": decided,
    }


@router.get("/sops")
async def sop_inbox(request: Request, viewer: CurrentViewer) -> Response:
    """SOP versions in review: those waiting on this key's decision first, then the rest."""
    sops = await viewer.api.get("/api/v1/sops", {"limit": INBOX_SOPS})
    reviews = [
        review
        for review in await asyncio.gather(*(_in_review(viewer, sop) for sop in sops["items"]))
        if review is not None
    ]
    return render(
        request,
        "sops.html",
        viewer=viewer,
        mine=[r for r in reviews if r["mine"]],
        others=[r for r in reviews if not r["mine"]],
        sops=sops["items"],
    )


@router.post("/sops/{sop_id}/versions/{number}/decisions")
async def decide(
    request: Request, viewer: CurrentViewer, sop_id: IdPath, number: IdPath
) -> Response:
    """Approve or reject a version (the sop service checks the approver and the stage)."""
    form = await read_form(request)
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        return redirect(request, "/sops", flash=("error", "Choose approve or reject."))
    body: dict[str, Any] = {"decision": decision}
    if form.get("comment", "").strip():
        body["comment"] = form["comment"].strip()
    try:
        result = await viewer.api.post(f"/api/v1/sops/{sop_id}/versions/{number}/decisions", body)
    except ConsoleProblem as problem:
        return redirect(request, "/sops", flash=problem_flash(problem))
    outcome = result.get("outcome") or f"stage {result.get('stage_status', 'open')}"
    verb = "Approved" if decision == "approve" else "Rejected"
    return redirect(
        request, "/sops", flash=("ok", f"{verb} SOP {sop_id} version {number} ({outcome}).")
    )


@router.get("/parity")
async def parity(request: Request, viewer: CurrentViewer) -> Response:
    """The parity matrix: for each SOP and org, the version in effect and any lag."""
    matrix = await viewer.api.get("/api/v1/parity")
    orgs = sorted({row["org"] for sop in matrix["sops"] for row in sop["orgs"]})
    cells = {(sop["sop_id"], row["org"]): row for sop in matrix["sops"] for row in sop["orgs"]}
    return render(request, "parity.html", viewer=viewer, matrix=matrix, orgs=orgs, cells=cells)


@router.get("/rules/candidates")
async def rule_candidates(
    request: Request,
    viewer: CurrentViewer,
    no_hits_days: Annotated[int | None, Query(ge=1, le=3650)] = None,
) -> Response:
    """Detection rules that no longer catch anything: deprecation candidates, with the numbers."""
    candidates = await viewer.api.get(
        "/api/v1/rules/deprecation-candidates", {"no_hits_days": no_hits_days}
    )
    return render(request, "rules.html", viewer=viewer, candidates=candidates)
