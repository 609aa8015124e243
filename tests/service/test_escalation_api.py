"""The escalation service in-process (ASGITransport + lifespan) on each backend, with the real
Temporal dev server, a worker, and a tiny real HTTP receiver for the gateway's `/internal/events`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from riskdesk.temporal_server import free_port
from services.common.db import make_engine
from services.common.identity import Role, verify_identity
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.escalation.app import create_app
from workflows.contracts import EscalationWorkflowState
from workflows.worker import build_worker

T = TypeVar("T")
PROBLEM = "application/problem+json"
_PG_ID_BASE = random.randint(10**7, 10**9)


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, within: float = 30
) -> T:
    """Poll until `check` holds: the outbox, the workflow and the receiver are asynchronous."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            value = await probe()
            if check(value):
                return value
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition never held") from exc
        else:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.1)


async def migrate(settings: Settings) -> None:
    """Apply the migrations and start the escalation ids at a random base.

    The Temporal dev server lives for the whole session while every test's SQLite file starts ids
    at 1: without the offset, `escalation-1` of one test would signal another test's workflow.
    """
    url = settings.database_url_of("escalation")
    await asyncio.to_thread(upgrade, service="escalation", database_url=url)
    engine = make_engine(url, schema="escalation", pool_size=1)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                await connection.execute(
                    text("INSERT INTO sqlite_sequence (name, seq) VALUES ('escalation', :n)"),
                    {"n": random.randint(10**6, 2 * 10**9)},
                )
            else:
                await connection.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('escalation', 'id'),"
                        " GREATEST(:n, (SELECT last_value FROM escalation_id_seq)))"
                    ),
                    {"n": _PG_ID_BASE},
                )
    finally:
        await engine.dispose()


@asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[None]:
    """Run an ASGI app under uvicorn on `port` in this event loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@dataclass
class EventsReceiver:
    """Stands in for the gateway's `POST /internal/events`: records every call (repeats too)."""

    secret: str
    port: int = field(default_factory=free_port)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def events(request: Request) -> JSONResponse:
            # The worker signs as `system`, like every internal call.
            identity = verify_identity(
                request.headers.get("x-riskdesk-identity"), secret=self.secret
            )
            body = json.loads(await request.body())
            body["_caller_role"] = identity.role.value
            self.calls.append(body)
            return JSONResponse({"event_id": body["event_id"], "deliveries": 0}, status_code=202)

        return Starlette(routes=[Route("/internal/events", events, methods=["POST"])])

    def of(self, escalation_id: int) -> list[dict[str, Any]]:
        """The calls about one escalation, in arrival order."""
        return [
            c
            for c in self.calls
            if c["subject"] == {"kind": "escalation", "id": str(escalation_id)}
        ]


@dataclass
class EscalationStack:
    """A running escalation app (lifespan, outbox), its HTTP client, a worker and a receiver."""

    http: httpx.AsyncClient
    settings: Settings
    temporal_client: Client | None
    receiver: EventsReceiver

    @property
    def temporal(self) -> Client:
        assert self.temporal_client is not None, "this stack runs without Temporal"
        return self.temporal_client

    async def post(self, path: str, headers: dict[str, str], **body: Any) -> httpx.Response:
        return await self.http.post(path, json=body, headers=headers)

    async def raise_escalation(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {
            "source": "sev2_ticket",
            "severity": "sev2",
            "title": "Gift-card fraud wave",
            "owner": "analyst-1",
            "program_manager": "pm-1",
            **fields,
        }
        response = await self.http.post("/api/v1/escalations", json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def add_item(
        self, escalation_id: int, headers: dict[str, str], **fields: Any
    ) -> dict[str, Any]:
        body = {"title": "Add velocity rule", "owner": "owner-1", **fields}
        response = await self.http.post(
            f"/api/v1/escalations/{escalation_id}/action-items", json=body, headers=headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def act(
        self, escalation_id: int, headers: dict[str, str], action: str, **extra: Any
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/escalations/{escalation_id}/transitions",
            json={"action": action, **extra},
            headers=headers,
        )

    async def act_item(
        self, item_id: int, headers: dict[str, str], action: str, **extra: Any
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/action-items/{item_id}/transitions",
            json={"action": action, **extra},
            headers=headers,
        )


@asynccontextmanager
async def running_escalation(
    settings: Settings, *, worker: bool = True
) -> AsyncIterator[EscalationStack]:
    """The app with its lifespan (outbox dispatcher included), a worker, and the receiver (the
    worker's `gateway` URL points at it)."""
    receiver = EventsReceiver(secret=settings.identity_secret)
    settings = settings.model_copy(update={"gateway_port": receiver.port})
    await migrate(settings)
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(serve(receiver.app(), receiver.port))
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://escalation")
        )
        temporal = None
        if worker:
            temporal = await connect_temporal(settings.temporal_address, "default")
            await stack.enter_async_context(build_worker(temporal, settings))
        yield EscalationStack(
            http=http, settings=settings, temporal_client=temporal, receiver=receiver
        )


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """The response is a problem+json of `status` (and `slug`); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


@pytest.fixture
async def esc(settings: Settings) -> AsyncIterator[EscalationStack]:
    async with running_escalation(settings) as running:
        yield running


def staff(
    identity_headers: Callable[..., dict[str, str]], role: Role = Role.ANALYST, **kw: Any
) -> dict[str, str]:
    return identity_headers(team="risk-mining", role=role, **kw)


async def history_event_types(temporal: Client, workflow_id: str) -> list[str]:
    handle = temporal.get_workflow_handle(workflow_id)
    return [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]


RCA = {
    "what_happened": "A gift-card resale ring cashed out through new accounts.",
    "impact": "1,200 accounts, USD 80k.",
    "five_whys": [
        {
            "problem": "The ring went undetected for 9 days",
            "steps": [
                {"why": "Why was it not flagged?", "because": "No velocity rule on gift cards"},
                {"why": "Why no rule?", "because": "Gift cards were out of scope of the model"},
            ],
        }
    ],
    "root_cause_category": "rule_gap",
    "contributing_factors": ["Holiday season volume"],
    "what_went_well": ["Partner escalated within an hour"],
    "lessons_learned": ["Review scope of gift-card coverage quarterly"],
}


async def test_a_sev2_with_three_items_is_driven_to_closure_through_the_api(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers, subject="analyst-1")
    pm = staff(identity_headers, Role.PROGRAM_MANAGER, subject="pm-1")
    escalation = await esc.raise_escalation(
        analyst,
        team=unique_team,
        external_ref="SEV2-4411",
        timeline=[{"at": "2026-11-20T10:00:00Z", "entry": "Spike in gift-card redemptions"}],
    )
    eid = escalation["id"]
    assert escalation["status"] == "open"
    assert escalation["rca_version"] == 0

    before = datetime.now(UTC)
    items = [
        await esc.add_item(eid, analyst, title=f"Item {n}", owner=f"owner-{n}") for n in range(3)
    ]
    # Default due: 10 business days (Sev-2) on the owner's (default India) calendar.
    due = datetime.fromisoformat(items[0]["due_at"])
    assert timedelta(days=11) < due - before < timedelta(days=30)
    assert items[0]["calendar"]["timezone"] == "Asia/Kolkata"

    for action in ("mitigate", "start_rca", "open_actions"):
        response = await esc.act(eid, analyst, action)
        assert response.status_code == 200, response.text
    refused = await esc.act(eid, analyst, "close")
    body = assert_problem(refused, 409, "invalid-transition")
    assert "closure-approval" in body["detail"]
    assert "close" not in body["allowed_actions"]

    # Approval before pending_closure: 409 naming what is allowed.
    early = await esc.http.post(f"/api/v1/escalations/{eid}/closure-approval", json={}, headers=pm)
    assert "request_closure" in assert_problem(early, 409, "invalid-transition")["allowed_actions"]
    assert (await esc.act(eid, analyst, "request_closure")).status_code == 200

    async def approve(headers: dict[str, str] = pm) -> httpx.Response:
        return await esc.http.post(
            f"/api/v1/escalations/{eid}/closure-approval", json={"note": "done"}, headers=headers
        )

    # Only the program manager approves.
    assert_problem(await approve(analyst), 403, "forbidden")
    # The workflow's update validator refuses: three open items.
    refusal = assert_problem(await approve(), 409, "closure-refused")
    assert "3 action item(s) still open" in refusal["detail"]
    ids = [i["id"] for i in items]
    assert all(f"#{i}" in refusal["detail"] for i in ids)

    for item in items[:2]:
        done = await esc.act_item(item["id"], analyst, "complete", evidence="Rule R-77 live")
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "done"
    proposed = await esc.act_item(
        items[2]["id"], analyst, "propose_not_doing", justification="Covered by R-77"
    )
    assert proposed.json()["status"] == "not_doing_proposed"
    # A proposed not_doing still blocks closure until the program manager accepts it.
    assert "1 action item(s) still open" in assert_problem(await approve(), 409)["detail"]
    assert_problem(await esc.act_item(items[2]["id"], analyst, "accept_not_doing"), 403)
    accepted = await esc.act_item(items[2]["id"], pm, "accept_not_doing", note="agreed")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "not_doing"
    assert accepted.json()["not_doing_decided_by"] == "pm-1"

    # Sev-2: the RCA is missing.
    refusal = assert_problem(await approve(), 409, "closure-refused")
    assert "RCA" in refusal["detail"]
    rca = await esc.http.put(
        f"/api/v1/escalations/{eid}/rca",
        json={
            **RCA,
            "corrective_actions": [{"description": "velocity rule", "action_item_id": ids[0]}],
        },
        headers=analyst,
    )
    assert rca.status_code == 200, rca.text
    assert rca.json()["version"] == 1

    approved = await approve()
    assert approved.status_code == 200, approved.text
    result = approved.json()
    assert result["approved_by"] == "pm-1"
    assert result["note"] == "done"
    assert result["escalation"]["status"] == "closed"
    assert result["escalation"]["closure_approved_by"] == "pm-1"
    assert result["escalation"]["closed_at"] is not None

    workflow_id = f"escalation-{eid}"
    handle = esc.temporal.get_workflow_handle(workflow_id, result_type=EscalationWorkflowState)
    await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
    state = await handle.result()
    assert state.status == "closed"
    assert state.approval is not None
    assert state.approval.approved_by == "pm-1"
    # Refused updates wrote nothing: the history holds exactly one (accepted) update.
    types = await history_event_types(esc.temporal, workflow_id)
    assert types.count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED" not in types

    # Closed is terminal: no edits, no items, no second approval.
    assert_problem(await approve(), 409, "invalid-transition")
    assert_problem(
        await esc.http.patch(f"/api/v1/escalations/{eid}", json={"title": "x"}, headers=analyst),
        409,
    )
    assert_problem(
        await esc.http.post(
            f"/api/v1/escalations/{eid}/action-items",
            json={"title": "late", "owner": "o"},
            headers=analyst,
        ),
        409,
    )


async def test_closure_of_an_executive_escalation_needs_no_rca(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers)
    pm = staff(identity_headers, Role.PROGRAM_MANAGER, subject="pm-2")
    escalation = await esc.raise_escalation(
        analyst, team=unique_team, source="executive", severity="sev1"
    )
    eid = escalation["id"]
    assert (await esc.act(eid, analyst, "request_closure")).status_code == 200
    approved = await esc.http.post(
        f"/api/v1/escalations/{eid}/closure-approval", json={}, headers=pm
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["escalation"]["status"] == "closed"


async def test_item_status_machine_and_not_doing_acceptance(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers)
    pm = staff(identity_headers, Role.PROGRAM_MANAGER)
    eid = (await esc.raise_escalation(analyst, team=unique_team))["id"]
    item = await esc.add_item(eid, analyst, owner_manager="mgr-1", priority="P1")
    iid = item["id"]

    body = assert_problem(await esc.act_item(iid, analyst, "block"), 422, "validation-error")
    assert body["errors"][0]["field"] == "body.reason"
    blocked = await esc.act_item(iid, analyst, "block", reason="waiting on ML data")
    assert blocked.json()["status"] == "blocked"
    assert blocked.json()["blocked_reason"] == "waiting on ML data"
    conflict = assert_problem(await esc.act_item(iid, analyst, "start"), 409, "invalid-transition")
    assert conflict["allowed_actions"] == ["complete", "propose_not_doing", "unblock"]
    unblocked = await esc.act_item(iid, analyst, "unblock")
    assert unblocked.json()["status"] == "in_progress"
    assert unblocked.json()["blocked_reason"] is None

    assert_problem(await esc.act_item(iid, analyst, "propose_not_doing"), 422)
    await esc.act_item(iid, analyst, "propose_not_doing", justification="superseded")
    # Only the program manager decides; a rejection needs a reason and reopens the item.
    assert_problem(await esc.act_item(iid, analyst, "reject_not_doing", reason="no"), 403)
    assert_problem(await esc.act_item(iid, pm, "reject_not_doing"), 422)
    rejected = await esc.act_item(iid, pm, "reject_not_doing", reason="still needed")
    assert rejected.json()["status"] == "open"
    assert rejected.json()["not_doing_decision_note"] == "still needed"
    assert_problem(await esc.act_item(iid, pm, "accept_not_doing"), 409, "invalid-transition")

    done = await esc.act_item(iid, analyst, "complete", evidence="https://wiki/evidence")
    assert done.json()["completion_evidence"] == "https://wiki/evidence"
    assert done.json()["completed_at"] is not None
    reopened = await esc.act_item(iid, analyst, "reopen")
    assert reopened.json()["status"] == "open"
    assert reopened.json()["completed_at"] is None

    # A partner of the team reads the item but may not move it.
    partner = identity_headers(team=unique_team, role=Role.PARTNER)
    assert (await esc.http.get(f"/api/v1/action-items/{iid}", headers=partner)).status_code == 200
    assert_problem(await esc.act_item(iid, partner, "start"), 403)
    outsider = identity_headers(team="someone-else", role=Role.PARTNER)
    assert_problem(await esc.http.get(f"/api/v1/action-items/{iid}", headers=outsider), 404)

    # PATCH edits; an explicit due date is kept; unknown items are 404 problems.
    patched = await esc.http.patch(
        f"/api/v1/action-items/{iid}",
        json={"due_at": "2030-01-02T03:04:05+05:30", "owner_manager": None},
        headers=analyst,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["due_at"].startswith("2030-01-01T21:34:05")
    assert patched.json()["owner_manager"] is None
    assert_problem(
        await esc.http.patch(f"/api/v1/action-items/{iid}", json={"owner": None}, headers=analyst),
        422,
    )
    assert_problem(await esc.http.get("/api/v1/action-items/999999999", headers=analyst), 404)
    bad_calendar = await esc.http.post(
        f"/api/v1/escalations/{eid}/action-items",
        json={"title": "t", "owner": "o", "calendar": {"timezone": "Mars/Base"}},
        headers=analyst,
    )
    assert assert_problem(bad_calendar, 422)["errors"][0]["field"].startswith("body.calendar")


async def test_rca_is_versioned_and_structured(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers, subject="author-1")
    eid = (await esc.raise_escalation(analyst, team=unique_team, source="coe"))["id"]
    other = (await esc.raise_escalation(analyst, team=unique_team))["id"]
    foreign_item = await esc.add_item(other, analyst)
    assert_problem(await esc.http.get(f"/api/v1/escalations/{eid}/rca", headers=analyst), 404)

    first = await esc.http.put(
        f"/api/v1/escalations/{eid}/rca",
        json={
            **RCA,
            "corrective_actions": [
                {
                    "description": "Add a gift-card velocity rule",
                    "new_action_item": {"title": "Velocity rule", "owner": "rules-1"},
                }
            ],
        },
        headers=analyst,
    )
    assert first.status_code == 200, first.text
    v1 = first.json()
    assert v1["version"] == 1
    assert v1["author"] == "author-1"
    created = v1["corrective_actions"][0]
    assert created["created"] is True
    item = (
        await esc.http.get(f"/api/v1/action-items/{created['action_item_id']}", headers=analyst)
    ).json()
    assert item["rca_version"] == 1
    assert item["escalation_id"] == eid

    second = await esc.http.put(
        f"/api/v1/escalations/{eid}/rca",
        json={
            **RCA,
            "root_cause_category": "model_gap",
            "corrective_actions": [
                {"description": "same rule", "action_item_id": created["action_item_id"]}
            ],
        },
        headers=analyst,
    )
    assert second.json()["version"] == 2
    assert second.json()["corrective_actions"][0]["created"] is False
    latest = await esc.http.get(f"/api/v1/escalations/{eid}/rca", headers=analyst)
    assert latest.json()["version"] == 2
    assert latest.json()["root_cause_category"] == "model_gap"
    old = await esc.http.get(f"/api/v1/escalations/{eid}/rca?version=1", headers=analyst)
    assert old.json()["root_cause_category"] == "rule_gap"
    assert_problem(
        await esc.http.get(f"/api/v1/escalations/{eid}/rca?version=3", headers=analyst), 404
    )
    read = (await esc.http.get(f"/api/v1/escalations/{eid}", headers=analyst)).json()
    assert read["rca_version"] == 2

    async def put(doc: dict[str, Any]) -> httpx.Response:
        return await esc.http.put(f"/api/v1/escalations/{eid}/rca", json=doc, headers=analyst)

    six_steps = {"problem": "p", "steps": [{"why": "w", "because": "b"}] * 6}
    for broken in (
        {**RCA, "five_whys": []},
        {**RCA, "five_whys": [six_steps]},
        {**RCA, "five_whys": [{"problem": "p", "steps": []}]},
        {**RCA, "root_cause_category": "bad_luck"},
        {**RCA, "what_happened": ""},
        {**RCA, "corrective_actions": [{"description": "d"}]},
        {
            **RCA,
            "corrective_actions": [
                {
                    "description": "d",
                    "action_item_id": 1,
                    "new_action_item": {"title": "t", "owner": "o"},
                }
            ],
        },
        {**RCA, "surprise": True},
    ):
        assert_problem(await put(broken), 422, "validation-error")
    linked_elsewhere = await put(
        {**RCA, "corrective_actions": [{"description": "d", "action_item_id": foreign_item["id"]}]}
    )
    assert assert_problem(linked_elsewhere, 422)["errors"][0]["field"] == (
        "body.corrective_actions.0.action_item_id"
    )
    # Nothing of the refused PUTs was stored.
    latest = await esc.http.get(f"/api/v1/escalations/{eid}/rca", headers=analyst)
    assert latest.json()["version"] == 2
    partner = identity_headers(team=unique_team, role=Role.PARTNER)
    assert_problem(
        await esc.http.put(f"/api/v1/escalations/{eid}/rca", json=RCA, headers=partner), 403
    )


async def test_transitions_patch_lists_and_visibility(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers)
    partner = identity_headers(team=unique_team, role=Role.PARTNER, subject="partner-1")
    outsider = identity_headers(team=f"{unique_team}-x", role=Role.PARTNER)
    a = await esc.raise_escalation(analyst, team=unique_team, owner="o-a")
    b = await esc.raise_escalation(analyst, team=unique_team, source="coe", severity="sev3")
    c = await esc.raise_escalation(analyst, team=f"{unique_team}-x")
    by_partner = await esc.raise_escalation(
        partner, source="partner", severity="sev3", owner="partner-1"
    )
    assert by_partner["team"] == unique_team
    assert by_partner["created_by"] == "partner-1"

    # Partners: own team only, source partner only.
    assert_problem(
        await esc.http.post(
            "/api/v1/escalations",
            json={"source": "sev2_ticket", "severity": "sev2", "title": "t", "owner": "o"},
            headers=partner,
        ),
        403,
    )
    assert_problem(
        await esc.http.post(
            "/api/v1/escalations",
            json={"source": "sev2_ticket", "severity": "sev2", "title": "t", "owner": "o"},
            headers=analyst,
        ),
        422,
    )
    assert_problem(await esc.http.get(f"/api/v1/escalations/{c['id']}", headers=partner), 404)
    assert_problem(await esc.act(a["id"], partner, "mitigate"), 403)

    async def listed(headers: dict[str, str], **params: Any) -> list[int]:
        ids: list[int] = []
        cursor = None
        while True:
            query = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
            response = await esc.http.get("/api/v1/escalations", params=query, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            ids += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return ids

    mine = [by_partner["id"], b["id"], a["id"]]
    assert await listed(partner) == mine
    assert await listed(outsider, team=unique_team) == []
    assert await listed(analyst, team=unique_team) == mine
    assert await listed(analyst, team=unique_team, source="coe") == [b["id"]]
    assert await listed(analyst, team=unique_team, owner="o-a") == [a["id"]]
    assert await listed(analyst, team=unique_team, severity="sev3") == [by_partner["id"], b["id"]]

    moved = await esc.act(a["id"], analyst, "mitigate")
    assert moved.json()["status"] == "mitigating"
    assert await listed(analyst, team=unique_team, status="mitigating") == [a["id"]]
    again = assert_problem(await esc.act(a["id"], analyst, "mitigate"), 409, "invalid-transition")
    assert again["current_status"] == "mitigating"
    assert again["allowed_actions"] == ["open_actions", "request_closure", "start_rca"]
    assert_problem(await esc.act(a["id"], analyst, "explode"), 422)

    patched = await esc.http.patch(
        f"/api/v1/escalations/{a['id']}",
        json={"severity": "sev1", "program_manager": None, "customer_impact": "Buyers charged"},
        headers=analyst,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["severity"] == "sev1"
    assert patched.json()["program_manager"] is None
    assert patched.json()["version"] == moved.json()["version"] + 1
    assert_problem(
        await esc.http.patch(f"/api/v1/escalations/{a['id']}", json={}, headers=analyst), 422
    )
    assert_problem(
        await esc.http.patch(
            f"/api/v1/escalations/{a['id']}", json={"title": None}, headers=analyst
        ),
        422,
    )
    assert_problem(
        await esc.http.get("/api/v1/escalations", params={"cursor": "!!"}, headers=analyst), 422
    )
    assert_problem(await esc.http.get("/api/v1/escalations/0", headers=analyst), 422)
    assert_problem(
        await esc.http.post(
            "/api/v1/escalations",
            content=b"{not json",
            headers={**analyst, "content-type": "application/json"},
        ),
        400,
    )

    # Action item lists: per escalation, and across escalations by owner.
    item_a = await esc.add_item(a["id"], analyst, owner=f"{unique_team}-owner")
    await esc.add_item(b["id"], analyst, owner=f"{unique_team}-owner")
    per = await esc.http.get(f"/api/v1/escalations/{a['id']}/action-items", headers=partner)
    assert [i["id"] for i in per.json()["items"]] == [item_a["id"]]
    across = await esc.http.get(
        "/api/v1/action-items", params={"owner": f"{unique_team}-owner"}, headers=analyst
    )
    assert len(across.json()["items"]) == 2
    hidden = await esc.http.get(
        "/api/v1/action-items", params={"owner": f"{unique_team}-owner"}, headers=outsider
    )
    assert hidden.json()["items"] == []


async def test_idempotency_key_replays_the_first_escalation(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers)
    body = {"source": "coe", "severity": "sev2", "title": "t", "owner": "o", "team": unique_team}
    headers = {**analyst, "Idempotency-Key": "k-1"}
    first = await esc.http.post("/api/v1/escalations", json=body, headers=headers)
    second = await esc.http.post("/api/v1/escalations", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    reused = await esc.http.post(
        "/api/v1/escalations", json={**body, "title": "other"}, headers=headers
    )
    assert_problem(reused, 422, "idempotency-key-reused")


async def test_gap_register_and_weekly_stats(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers)
    partner = identity_headers(team=unique_team, role=Role.PARTNER)
    impact = {
        "accounts_per_week": 120,
        "money_per_week": "5400.50",
        "currency": "USD",
        "method": "30-day sample",
    }

    async def record(**fields: Any) -> dict[str, Any]:
        response = await esc.http.post(
            "/api/v1/gaps",
            json={"title": "No gift-card velocity signal", "owning_team": unique_team, **fields},
            headers=analyst,
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    g1 = await record(
        impact=impact, links=[{"kind": "escalation", "ref": "42"}, {"kind": "rule", "ref": "R-77"}]
    )
    g2 = await record(charter_owner="ml-lead", target_date="2027-03-31")
    g3 = await record()
    assert g1["status"] == "identified"
    assert g1["quantified_at"] is not None
    assert g1["impact"]["money_per_week"] == "5400.50"
    assert g2["quantified_at"] is None
    assert {(link["kind"], link["ref"]) for link in g1["links"]} == {
        ("escalation", "42"),
        ("rule", "R-77"),
    }

    quantified = await esc.http.patch(
        f"/api/v1/gaps/{g2['id']}", json={"impact": impact}, headers=analyst
    )
    assert quantified.status_code == 200, quantified.text
    assert quantified.json()["quantified_at"] is not None
    relinked = await esc.http.patch(
        f"/api/v1/gaps/{g2['id']}",
        json={"links": [{"kind": "request", "ref": "7"}]},
        headers=analyst,
    )
    assert relinked.json()["links"] == [{"kind": "request", "ref": "7"}]

    async def act(gap_id: int, action: str, **extra: Any) -> httpx.Response:
        return await esc.http.post(
            f"/api/v1/gaps/{gap_id}/transitions", json={"action": action, **extra}, headers=analyst
        )

    assert_problem(await act(g1["id"], "close", reason="fixed"), 409, "invalid-transition")
    for action in ("accept", "start"):
        assert (await act(g1["id"], action)).status_code == 200
    assert_problem(await act(g1["id"], "close"), 422)
    closed = await act(g1["id"], "close", reason="R-77 live")
    assert closed.json()["status"] == "closed"
    assert closed.json()["resolution_note"] == "R-77 live"
    assert (await act(g3["id"], "wont_fix", reason="not worth it")).json()["status"] == "wont_fix"

    stats = await esc.http.get(
        "/api/v1/gaps/stats", params={"owning_team": unique_team}, headers=analyst
    )
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert (body["identified"], body["quantified"], body["closed"]) == (3, 2, 1)
    year, week, _ = datetime.now(UTC).isocalendar()
    this_week = body["weeks"][-1]
    assert this_week == {
        "week": f"{year}-W{week:02d}",
        "identified": 3,
        "quantified": 2,
        "closed": 1,
    }
    assert len(body["weeks"]) == 12
    assert all(w["identified"] == 0 for w in body["weeks"][:-1])

    # The partner owning the gaps sees them (and their stats); others' filters are ignored.
    listed = await esc.http.get("/api/v1/gaps", params={"status": "closed"}, headers=partner)
    assert [g["id"] for g in listed.json()["items"]] == [g1["id"]]
    linked = await esc.http.get(
        "/api/v1/gaps", params={"link_kind": "rule", "link_ref": "R-77"}, headers=partner
    )
    assert [g["id"] for g in linked.json()["items"]] == [g1["id"]]
    partner_stats = await esc.http.get(
        "/api/v1/gaps/stats", params={"owning_team": "x"}, headers=partner
    )
    assert partner_stats.json()["identified"] == 3
    assert_problem(
        await esc.http.post(
            "/api/v1/gaps", json={"title": "t", "owning_team": "x"}, headers=partner
        ),
        403,
    )

    # Reopening takes the closure out of the weekly count.
    assert (await act(g1["id"], "reopen")).json()["status"] == "identified"
    again = await esc.http.get(
        "/api/v1/gaps/stats", params={"owning_team": unique_team}, headers=analyst
    )
    assert again.json()["closed"] == 0
    assert_problem(
        await esc.http.get(
            "/api/v1/gaps/stats",
            params={"since": "2026-12-01", "until": "2026-01-01"},
            headers=analyst,
        ),
        422,
    )
    assert_problem(
        await esc.http.post(
            "/api/v1/gaps",
            json={"title": "t", "owning_team": "x", "impact": {**impact, "currency": "usd"}},
            headers=analyst,
        ),
        422,
    )


async def test_writes_work_while_temporal_is_down_and_approval_says_so(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    settings = make_settings(temporal_address=f"127.0.0.1:{free_port()}")
    analyst = staff(identity_headers)
    pm = staff(identity_headers, Role.PROGRAM_MANAGER)
    async with running_escalation(settings, worker=False) as esc:
        eid = (await esc.raise_escalation(analyst, team=unique_team, source="executive"))["id"]
        await esc.add_item(eid, analyst)
        assert (await esc.act(eid, analyst, "request_closure")).status_code == 200
        refused = await esc.http.post(
            f"/api/v1/escalations/{eid}/closure-approval", json={}, headers=pm
        )
        assert_problem(refused, 503, "not-ready")
        # The escalation did not close; its events wait in the outbox.
        read = await esc.http.get(f"/api/v1/escalations/{eid}", headers=analyst)
        assert read.json()["status"] == "pending_closure"
        ready = (await esc.http.get("/readyz")).json()
        assert ready["outbox_pending"] == 3


def pending_task_stacks() -> str:
    """Every pending asyncio task with its stack: what a hung burst is waiting on."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        out.write(f"--- {task!r}\n")
        task.print_stack(limit=25, file=out)
    return out.getvalue()


async def test_concurrent_changes_never_fail_with_a_500(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    analyst = staff(identity_headers)
    escalation = await esc.raise_escalation(analyst, team=unique_team)
    eid = escalation["id"]
    items = [await esc.add_item(eid, analyst, title=f"i{n}") for n in range(3)]
    version = (await esc.http.get(f"/api/v1/escalations/{eid}", headers=analyst)).json()["version"]
    burst = asyncio.gather(
        *(
            esc.http.patch(f"/api/v1/escalations/{eid}", json={"summary": f"s{n}"}, headers=analyst)
            for n in range(4)
        ),
        *(esc.act_item(i["id"], analyst, "start") for i in items),
        *(
            esc.http.put(f"/api/v1/escalations/{eid}/rca", json=RCA, headers=analyst)
            for _ in range(2)
        ),
    )
    # This burst once hung on SQLite until pytest's 300 s timeout with nothing to show for it; if
    # it ever stalls again, fail within a minute with every pending task's stack.
    done, _ = await asyncio.wait({burst}, timeout=60)
    if not done:
        stacks = pending_task_stacks()
        burst.cancel()
        raise AssertionError("the burst of concurrent writes stalled:\n" + stacks)
    responses = burst.result()
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "conflict")
    final = (await esc.http.get(f"/api/v1/escalations/{eid}", headers=analyst)).json()
    # Every accepted change bumped the version exactly once.
    assert final["version"] == version + statuses.count(200)
    rca_accepted = [r for r in responses[-2:] if r.status_code == 200]
    assert final["rca_version"] == len(rca_accepted)
