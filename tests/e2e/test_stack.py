"""The foundation's acceptance test: the stack launched exactly as `riskdesk up` does.

A real `riskdesk up` child process (Temporal dev server, four services, worker) on free ports and a
temporary data dir; everything goes through the gateway over real HTTP with real API keys, and the
workflow is checked in Temporal itself. Then the launcher is stopped with SIGINT and started again
on the same data, which must still be there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from riskdesk.temporal_server import free_port
from services.common.errors import PROBLEM_MEDIA_TYPE
from services.common.settings import SERVICE_NAMES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

RISKDESK = str(Path(sys.executable).parent / "riskdesk")
START_TIMEOUT = 90.0


@dataclass
class RunningStack:
    """A launched `riskdesk up` and what it published in stack.json."""

    process: subprocess.Popen[bytes]
    output: Path
    info: dict[str, Any]
    admin_key: str

    @property
    def gateway(self) -> str:
        return str(self.info["gateway_url"])


def stack_environment(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    """The environment of a test stack: no inherited RISKDESK_*, every port free, its own data."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKDESK_")}
    env.update(
        RISKDESK_DATA_DIR=str(tmp_path / "data"),
        RISKDESK_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        RISKDESK_TEMPORAL_UI_PORT=str(free_port()),
        RISKDESK_TASK_QUEUE=f"e2e-{uuid.uuid4().hex[:8]}",
        RISKDESK_OUTBOX_POLL_SECONDS="0.2",
        RISKDESK_LOG_LEVEL="INFO",
        **{f"RISKDESK_{service.upper()}_PORT": str(free_port()) for service in SERVICE_NAMES},
    )
    if database_url:
        env["RISKDESK_DATABASE_URL"] = database_url
    return env


def launch(env: dict[str, str], output: Path) -> RunningStack:
    """Start `riskdesk up` and wait for its stack.json; fail with its output if it gives up."""
    data_dir = Path(env["RISKDESK_DATA_DIR"])
    stack_file = data_dir / "stack.json"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [RISKDESK, "up"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not stack_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            logs = "\n".join(
                f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}"
                for log in sorted((data_dir / "logs").glob("*.log"))
            )
            pytest.fail(f"riskdesk up did not start:\n{output.read_text()}\n{logs}")
        time.sleep(0.2)
    info = json.loads(stack_file.read_text())
    admin_key = (data_dir / "admin.key").read_text().strip()
    return RunningStack(process=process, output=output, info=info, admin_key=admin_key)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGINT the launcher (Ctrl-C) and wait for it; kill it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a problem+json document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert all(body[field] for field in ("type", "title", "detail")), body
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_key(
    client: httpx.AsyncClient, admin_key: str, *, team: str, role: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/keys",
        json={"name": f"e2e {role} {team}", "team": team, "role": role},
        headers=bearer(admin_key),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["key"].startswith("rk_")
    return created


async def transition(
    client: httpx.AsyncClient, key: str, request_id: int, action: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/requests/{request_id}/transitions",
        json={"action": action, **extra},
        headers=bearer(key),
    )


async def check_workflow(stack: RunningStack, request_id: int, actions: list[str]) -> None:
    """The request's workflow ran to completion and received one signal per change."""
    client = await Client.connect(stack.info["temporal_address"])
    handle = client.get_workflow_handle(f"request-{request_id}")
    await asyncio.wait_for(handle.result(), timeout=30)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    signals = [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    # One signal for the creation (signal-with-start) and one per transition.
    assert signals == ["request_event"] * (1 + len(actions))


def test_a_dying_child_stops_the_stack_with_exit_1(tmp_path: Path) -> None:
    env = stack_environment(tmp_path, None)
    stack = launch(env, tmp_path / "up.log")
    try:
        pids = {name: pid for name, pid in stack.info["pids"].items() if name != "launcher"}
        os.kill(pids["sop"], signal.SIGKILL)
        code = stack.process.wait(timeout=40)
    finally:
        stop(stack.process)
    output = stack.output.read_text()
    assert code == 1, output
    assert "sop was killed by SIGKILL" in output
    assert not [name for name, pid in pids.items() if pid_alive(pid)]


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The scratch PostgreSQL on the postgresql backend; None (a SQLite file each) on sqlite."""
    # Resolved in a sync fixture: postgres_url runs its own event loop to create the database.
    return str(request.getfixturevalue("postgres_url")) if backend == "postgresql" else None


async def test_a_partner_request_flows_end_to_end(database_url: str | None, tmp_path: Path) -> None:
    env = stack_environment(tmp_path, database_url)
    data_dir = Path(env["RISKDESK_DATA_DIR"])
    stack = await asyncio.to_thread(launch, env, tmp_path / "up-1.log")
    try:
        request_id = await exercise_the_api(stack)
    finally:
        code = await asyncio.to_thread(stop, stack.process)
    first_output = stack.output.read_text()
    assert code == 0, first_output

    # The launcher printed what a person needs, and cleaned up after itself.
    assert stack.admin_key in first_output
    assert stack.gateway in first_output
    assert stack.info["temporal_ui_url"] in first_output
    assert "ready in" in first_output
    assert stat.S_IMODE((data_dir / "admin.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "demo-partner.key").stat().st_mode) == 0o600
    assert not (data_dir / "stack.json").exists()
    children = {name: pid for name, pid in stack.info["pids"].items() if name != "launcher"}
    assert set(children) == {"temporal", *SERVICE_NAMES, "worker"}
    assert not [name for name, pid in children.items() if pid_alive(pid)]
    for name in children:
        assert (data_dir / "logs" / f"{name}.log").exists()

    seeded = json.loads((data_dir / "demo-seeded").read_text())
    assert len(seeded["requests"]) == 3
    partner_key = (data_dir / "demo-partner.key").read_text()

    # A second start reuses the data: the same admin key, the request still there, no re-seeding.
    again = await asyncio.to_thread(launch, env, tmp_path / "up-2.log")
    try:
        assert again.admin_key == stack.admin_key
        assert (data_dir / "demo-partner.key").read_text() == partner_key
        assert json.loads((data_dir / "demo-seeded").read_text()) == seeded
        admin = bearer(again.admin_key)
        async with httpx.AsyncClient(base_url=again.gateway, timeout=15) as client:
            response = await client.get(f"/api/v1/requests/{request_id}", headers=admin)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "closed"
            for demo_id in seeded["requests"]:
                demo = await client.get(f"/api/v1/requests/{demo_id}", headers=admin)
                assert demo.status_code == 200, demo.text
                assert demo.json()["team"] == "buyer-risk"
    finally:
        code = await asyncio.to_thread(stop, again.process)
    assert code == 0, again.output.read_text()


async def exercise_the_api(stack: RunningStack) -> int:
    """Keys, the happy path, the workflow and the unhappy paths through the gateway."""
    team_a, team_b = f"team-a-{uuid.uuid4().hex[:6]}", f"team-b-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=stack.gateway, timeout=15) as client:
        partner_a = (await create_key(client, stack.admin_key, team=team_a, role="partner"))["key"]
        partner_b = (await create_key(client, stack.admin_key, team=team_b, role="partner"))["key"]
        analyst = (await create_key(client, stack.admin_key, team="risk-mining", role="analyst"))[
            "key"
        ]
        doomed = await create_key(client, stack.admin_key, team=team_a, role="partner")

        # Partner A files a request; a replay with the same Idempotency-Key gives the same one.
        body = {
            "request_type": "mo_investigation",
            "title": "Refund abuse through reshipped parcels",
            "description": "Accounts claim non-delivery on parcels that were reshipped.",
            "priority": "P1",
            "impact": {
                "accounts_affected": 42,
                "money_at_risk_per_week": "9100.50",
                "currency": "USD",
            },
            "tags": ["refund-abuse"],
        }
        idempotency = {"Idempotency-Key": f"e2e-{uuid.uuid4().hex}"}
        filed = await client.post(
            "/api/v1/requests", json=body, headers={**bearer(partner_a), **idempotency}
        )
        assert filed.status_code == 201, filed.text
        request = filed.json()
        request_id = int(request["id"])
        assert request["status"] == "new"
        assert request["team"] == team_a
        replay = await client.post(
            "/api/v1/requests", json=body, headers={**bearer(partner_a), **idempotency}
        )
        assert replay.status_code == 201
        assert replay.json()["id"] == request_id

        # Staff work it; the partner closes it.
        for action, status in (
            ("triage", "triaged"),
            ("start", "in_progress"),
            ("resolve", "resolved"),
        ):
            response = await transition(client, analyst, request_id, action)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == status
        closed = await transition(client, partner_a, request_id, "close")
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"

        events = await client.get(
            f"/api/v1/requests/{request_id}/events", headers=bearer(partner_a)
        )
        assert events.status_code == 200, events.text
        items = events.json()["items"]
        assert [e["action"] for e in items[1:]] == ["triage", "start", "resolve", "close"]
        assert [e["to_status"] for e in items] == [
            "new",
            "triaged",
            "in_progress",
            "resolved",
            "closed",
        ]

        await check_workflow(stack, request_id, ["triage", "start", "resolve", "close"])

        # Unhappy paths, every one a problem document.
        json_headers = {**bearer(partner_a), "Content-Type": "application/json"}
        assert_problem(
            await client.post("/api/v1/requests", content=b'{"title": ', headers=json_headers), 400
        )
        wrong_types = await client.post(
            "/api/v1/requests",
            json={"request_type": "mo_investigation", "title": 123, "priority": "P9"},
            headers=bearer(partner_a),
        )
        fields = {e["field"] for e in assert_problem(wrong_types, 422)["errors"]}
        assert {f.rsplit(".", 1)[-1] for f in fields} >= {"title", "priority"}
        unknown = await client.post(
            "/api/v1/requests", json={**body, "colour": "red"}, headers=bearer(partner_a)
        )
        assert any(e["field"].endswith("colour") for e in assert_problem(unknown, 422)["errors"])

        fresh = await client.post("/api/v1/requests", json=body, headers=bearer(partner_a))
        assert fresh.status_code == 201, fresh.text
        forbidden = assert_problem(
            await transition(client, analyst, fresh.json()["id"], "resolve"), 409
        )
        assert "triage" in forbidden["allowed_actions"]
        assert "resolve" not in forbidden["allowed_actions"]

        assert_problem(
            await client.get(f"/api/v1/requests/{request_id}", headers=bearer(partner_b)), 404
        )
        assert_problem(
            await client.get(f"/api/v1/requests/{request_id}/events", headers=bearer(partner_b)),
            404,
        )

        assert_problem(await client.get("/api/v1/requests"), 401)
        assert_problem(await client.get("/api/v1/requests", headers=bearer("rk_nope_nope")), 401)
        assert (
            await client.get("/api/v1/requests", headers=bearer(doomed["key"]))
        ).status_code == 200
        revoked = await client.post(
            f"/api/v1/keys/{doomed['id']}/revoke", headers=bearer(stack.admin_key)
        )
        assert revoked.status_code == 200, revoked.text
        # The gateway may trust a verified key for a few seconds (its key cache): wait that out.
        deadline = time.monotonic() + 15
        while True:
            response = await client.get("/api/v1/requests", headers=bearer(doomed["key"]))
            if response.status_code == 401 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert_problem(response, 401)

    async with httpx.AsyncClient(timeout=15) as direct:
        intake = stack.info["services"]["intake"]
        assert_problem(await direct.get(f"{intake}/api/v1/requests/{request_id}"), 401)
        assert (await direct.get(f"{intake}/healthz")).status_code == 200
    return request_id
