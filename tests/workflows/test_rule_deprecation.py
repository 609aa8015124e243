"""RuleDeprecationWorkflow on the real stack: the sop service under uvicorn (the worker's activities
call it over HTTP), its outbox, a worker, and the Temporal dev server. A rule with a clean
monitoring period is deprecated on approval; one that fires during monitoring is retained with the
evidence; the `decide` update's validator refuses the wrong role and the wrong stage."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError

from riskdesk.temporal_server import free_port
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.sop.app import create_app
from workflows.contracts import RuleDeprecationDecision, RuleDeprecationState
from workflows.rule_deprecation import RuleDeprecationWorkflow
from workflows.worker import build_worker

T = TypeVar("T")
MONITORING_SECONDS = 3


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], within: float = 30
) -> T:
    """Poll until `check` holds (outbox, timers and activities are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[str]:
    """Run `app` under uvicorn in this event loop (with its lifespan: the outbox dispatcher)."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@dataclass
class Stack:
    http: httpx.AsyncClient
    temporal: Client
    as_: Callable[..., dict[str, str]]
    team: str

    @property
    def analyst(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")

    @property
    def approver(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.APPROVER, subject="key-approver")

    async def rule(self, **fields: Any) -> str:
        rule_id = f"RD-{uuid.uuid4().hex[:10]}"
        body = {"id": rule_id, "name": "stale rule", "owner": "ana", "team": self.team, **fields}
        response = await self.http.post("/api/v1/rules", json=body, headers=self.analyst)
        assert response.status_code == 201, response.text
        return rule_id

    async def propose(self, rule_id: str, **fields: Any) -> dict[str, Any]:
        # Without `monitoring_seconds` the period is the service's setting (the same here).
        response = await self.http.post(
            f"/api/v1/rules/{rule_id}/deprecation",
            json={"reason": "no hits in 90 days", **fields},
            headers=self.analyst,
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def deprecation(self, rule_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/rules/{rule_id}/deprecation", headers=self.analyst)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def status(self, rule_id: str) -> str:
        response = await self.http.get(f"/api/v1/rules/{rule_id}", headers=self.analyst)
        return str(response.json()["status"])

    async def decide(self, rule_id: str, headers: dict[str, str], **body: Any) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/rules/{rule_id}/deprecation/decisions", json=body, headers=headers
        )


@pytest.fixture
async def stack(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> AsyncIterator[Stack]:
    # The worker reaches the sop service at its port; the gateway port has no listener, so
    # the optional rule.* notifications fail fast and are given up (they never hold the flow).
    settings = make_settings(
        sop_port=free_port(), gateway_port=free_port(), rule_monitoring_seconds=MONITORING_SECONDS
    )
    await asyncio.to_thread(upgrade, service="sop", database_url=settings.database_url_of("sop"))
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(create_app(settings), settings.sop_port))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        temporal = await connect_temporal(settings.temporal_address, "default")
        await stack.enter_async_context(build_worker(temporal, settings))
        yield Stack(http=http, temporal=temporal, as_=identity_headers, team=unique_team)


async def test_a_rule_with_a_clean_monitoring_period_is_deprecated_on_approval(
    stack: Stack,
) -> None:
    successor = await stack.rule(name="successor")
    rule_id = await stack.rule()
    proposal = await stack.propose(
        rule_id, replaced_by=successor, monitoring_seconds=MONITORING_SECONDS
    )
    assert await stack.status(rule_id) == "deprecation_proposed"

    monitoring = await eventually(
        lambda: stack.deprecation(rule_id), lambda d: d["stage"] == "monitoring"
    )
    assert await stack.status(rule_id) == "monitoring"
    started = datetime.fromisoformat(monitoring["monitoring_started_at"])
    ends = datetime.fromisoformat(monitoring["monitoring_ends_at"])
    assert ends - started == timedelta(seconds=MONITORING_SECONDS)
    # The platform keeps reporting while the rule runs in shadow: a quiet week is no evidence.
    this_week = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    quiet = await stack.http.post(
        f"/api/v1/rules/{rule_id}/metrics",
        json={"week_start": this_week.isoformat(), "hits": 0},
        headers=stack.analyst,
    )
    assert quiet.status_code in (200, 201), quiet.text
    # Too early: nothing awaits approval while it monitors.
    early = await stack.decide(rule_id, stack.approver, decision="approve")
    assert early.status_code == 409, early.text

    checked = await eventually(
        lambda: stack.deprecation(rule_id), lambda d: d["stage"] == "awaiting_approval"
    )
    evidence = checked["evidence"]
    assert (evidence["clean"], evidence["fired"], evidence["hits"]) == (True, False, 0)
    assert evidence["snapshots_posted"] == 1
    assert evidence["verdict"] == "No hits during monitoring."
    assert await stack.status(rule_id) == "monitoring"

    # The validator is the authority: a decision from a role that may not decide is refused by
    # the workflow itself (nothing is written), even when it bypasses the API.
    handle = stack.temporal.get_workflow_handle_for(
        RuleDeprecationWorkflow.run, proposal["workflow_id"]
    )
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            RuleDeprecationWorkflow.decide,
            RuleDeprecationDecision(
                deprecation_id=proposal["id"], decision="approve", actor="x", role="analyst"
            ),
        )
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            RuleDeprecationWorkflow.decide,
            RuleDeprecationDecision(
                deprecation_id=proposal["id"] + 1, decision="approve", actor="x", role="approver"
            ),
        )
    refused = await stack.decide(rule_id, stack.analyst, decision="approve")
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")

    approved = await stack.decide(rule_id, stack.approver, decision="approve", comment="agreed")
    assert approved.status_code == 200, approved.text
    done = approved.json()
    assert (done["stage"], done["outcome"], done["decided_by"]) == (
        "deprecated",
        "deprecated",
        "key-approver",
    )
    assert done["decision_comment"] == "agreed"
    rule = (await stack.http.get(f"/api/v1/rules/{rule_id}", headers=stack.analyst)).json()
    assert (rule["status"], rule["replaced_by"]) == ("deprecated", successor)

    result: RuleDeprecationState = await asyncio.wait_for(handle.result(), timeout=30)
    assert (result.stage, result.outcome) == ("deprecated", "deprecated")
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    again = await stack.decide(rule_id, stack.approver, decision="approve")
    assert again.status_code == 409, again.text
    # Deprecated is terminal: no new proposal, and the rule is no candidate any more.
    terminal = await stack.http.post(
        f"/api/v1/rules/{rule_id}/deprecation", json={"reason": "again"}, headers=stack.analyst
    )
    assert terminal.status_code == 409, terminal.text


async def test_a_rule_that_fires_during_monitoring_is_retained_with_the_evidence(
    stack: Stack,
) -> None:
    rule_id = await stack.rule()
    first = await stack.propose(rule_id)
    await eventually(lambda: stack.deprecation(rule_id), lambda d: d["stage"] == "monitoring")
    this_week = datetime.now(UTC).date() - timedelta(days=datetime.now(UTC).weekday())
    fired_at = datetime.now(UTC).replace(microsecond=0)
    posted = await stack.http.post(
        "/api/v1/rules/metrics",
        json={
            "items": [
                {
                    "rule_id": rule_id,
                    "week_start": this_week.isoformat(),
                    "hits": 7,
                    "true_positive_rate": 0.6,
                    "actioned_accounts": 3,
                    "last_fired_at": fired_at.isoformat(),
                }
            ]
        },
        headers=stack.analyst,
    )
    assert posted.status_code == 200, posted.text

    retained = await eventually(
        lambda: stack.deprecation(rule_id), lambda d: d["stage"] == "retained"
    )
    assert (retained["outcome"], retained["decided_by"]) == ("retained", "system")
    evidence = retained["evidence"]
    assert (evidence["clean"], evidence["fired"], evidence["hits"]) == (False, True, 7)
    assert evidence["actioned_accounts"] == 3
    assert datetime.fromisoformat(evidence["last_fired_at"]) == fired_at
    assert evidence["weeks"][0]["week_start"] == this_week.isoformat()
    assert retained["decision_comment"] == "Fired during monitoring (7 hits)."
    assert await stack.status(rule_id) == "retained"
    # No approval was asked for: a decision now is refused.
    late = await stack.decide(rule_id, stack.approver, decision="approve")
    assert late.status_code == 409, late.text

    # A retained rule may be proposed again: the same workflow id runs a new proposal, and a
    # rejection after a clean period retains it with the approver's comment.
    handle = stack.temporal.get_workflow_handle(first["workflow_id"])
    await asyncio.wait_for(handle.result(), timeout=30)
    second = await stack.propose(rule_id, criteria={"precision_floor": 0.9})
    assert second["monitoring_seconds"] == MONITORING_SECONDS
    assert second["id"] != first["id"]
    assert second["criteria"]["precision_floor"] == 0.9
    await eventually(
        lambda: stack.deprecation(rule_id), lambda d: d["stage"] == "awaiting_approval"
    )
    rejected = await stack.decide(
        rule_id, stack.approver, decision="reject", comment="needed for Q4 campaigns"
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["stage"], rejected.json()["decision_comment"]) == (
        "retained",
        "needed for Q4 campaigns",
    )
    assert await stack.status(rule_id) == "retained"
    history = await stack.http.get(f"/api/v1/rules/{rule_id}/deprecations", headers=stack.analyst)
    assert [d["outcome"] for d in history.json()["items"]] == ["retained", "retained"]
