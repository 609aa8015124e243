"""The intake service in-process (ASGITransport + lifespan) on each backend, with the real Temporal
dev server and a worker: filing, lists, transitions, events, idempotency, errors, and the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client, WorkflowExecutionStatus

from riskdesk.temporal_server import free_port
from services.common.db import make_engine
from services.common.errors import Conflict
from services.common.identity import Identity, Role, sign_identity
from services.common.migrations import upgrade
from services.common.pagination import encode_cursor
from services.common.service_app import ServiceRuntime
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.intake import service
from services.intake.app import create_app
from services.intake.models import Request
from services.intake.schemas import TransitionCreate
from workflows.contracts import RequestEventSignal, RequestLifecycleState
from workflows.request_lifecycle import RequestLifecycleWorkflow
from workflows.worker import build_worker

T = TypeVar("T")
PROBLEM = "application/problem+json"
# PostgreSQL tables live for the whole session; start its ids at a random base once.
_PG_ID_BASE = random.randint(10**7, 10**9)


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool]) -> T:
    """Poll until `check` holds: the outbox and the workflow are asynchronous."""
    deadline = asyncio.get_running_loop().time() + 20
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
    """Apply the migrations and move the request id sequence to a random start.

    Every test's SQLite file starts ids at 1 while the Temporal dev server lives for the whole
    session: without the offset, `request-1` of one test would signal another test's workflow.
    """
    url = settings.database_url_of("intake")
    await asyncio.to_thread(upgrade, service="intake", database_url=url)
    engine = make_engine(url, schema="intake", pool_size=1)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                await connection.execute(
                    text("INSERT INTO sqlite_sequence (name, seq) VALUES ('request', :n)"),
                    {"n": random.randint(10**6, 2 * 10**9)},
                )
            else:
                await connection.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('request', 'id'),"
                        " GREATEST(:n, (SELECT last_value FROM request_id_seq)))"
                    ),
                    {"n": _PG_ID_BASE},
                )
    finally:
        await engine.dispose()


@dataclass
class Intake:
    """A running intake app, its HTTP client, and a Temporal client."""

    http: httpx.AsyncClient
    settings: Settings
    temporal: Client | None
    as_: Callable[..., dict[str, str]]
    runtime: ServiceRuntime

    async def file(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"request_type": "mo_investigation", "title": "Coupon abuse ring", **fields}
        response = await self.http.post("/api/v1/requests", json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def act(
        self, request_id: int, headers: dict[str, str], action: str, **extra: Any
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/requests/{request_id}/transitions",
            json={"action": action, **extra},
            headers=headers,
        )


@asynccontextmanager
async def running_intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], *, worker: bool
) -> AsyncIterator[Intake]:
    """The app with its lifespan (outbox dispatcher included) and, if asked, a worker."""
    await migrate(settings)
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")
        )
        temporal = None
        if worker:
            temporal = await connect_temporal(settings.temporal_address, "default")
            await stack.enter_async_context(build_worker(temporal, settings))
        yield Intake(
            http=http,
            settings=settings,
            temporal=temporal,
            as_=identity_headers,
            runtime=app.state.runtime,
        )


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[Intake]:
    async with running_intake(settings, identity_headers, worker=True) as running:
        yield running


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


async def test_request_flows_from_filing_to_closed_and_its_workflow_follows(
    intake: Intake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-partner")
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")
    due = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    response = await intake.http.post(
        "/api/v1/requests",
        json={
            "request_type": "deep_dive",
            "title": "  Refund fraud via gift cards  ",
            "description": "# Context\nSeen in **EU**.",
            "priority": "P1",
            "due_at": due,
            "marketplace": "DE",
            "impact": {
                "accounts_affected": 120,
                "money_at_risk_per_week": "2500.50",
                "currency": "EUR",
            },
            "external_refs": ["https://tickets.example/T-1"],
            "tags": ["refunds", "Gift-Cards", "refunds"],
        },
        headers=partner,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    request_id = created["id"]
    assert response.headers["location"] == f"/api/v1/requests/{request_id}"
    assert created["title"] == "Refund fraud via gift cards"
    assert (created["team"], created["requested_by"]) == (unique_team, "key-partner")
    assert (created["status"], created["priority"], created["version"]) == ("new", "P1", 1)
    assert created["tags"] == ["gift-cards", "refunds"]
    assert created["impact"] == {
        "accounts_affected": 120,
        "money_at_risk_per_week": "2500.50",
        "currency": "EUR",
    }
    # The 201 adds `similar` (open look-alikes at filing time) to the request itself.
    assert created.pop("similar") == []
    assert (
        await intake.http.get(f"/api/v1/requests/{request_id}", headers=partner)
    ).json() == created

    # The outbox started the workflow request-<id> on the worker's task queue.
    assert intake.temporal is not None
    handle = intake.temporal.get_workflow_handle_for(
        RequestLifecycleWorkflow.run, f"request-{request_id}"
    )

    async def state() -> RequestLifecycleState:
        return await handle.query(RequestLifecycleWorkflow.state)

    await eventually(state, lambda s: s.status == "new" and s.events_seen == 1)

    steps = [
        (analyst, "triage", {}, "triaged"),
        (analyst, "start", {}, "in_progress"),
        (analyst, "request_info", {"note": "Which marketplaces?"}, "waiting_on_requester"),
        (partner, "provide_info", {"note": "DE and FR"}, "in_progress"),
        (analyst, "resolve", {}, "resolved"),
        (partner, "reopen", {"reason": "still happening"}, "in_progress"),
        (analyst, "resolve", {}, "resolved"),
    ]
    for version, (who, action, extra, status) in enumerate(steps, start=2):
        moved = await intake.act(request_id, who, action, **extra)
        assert moved.status_code == 200, moved.text
        assert (moved.json()["status"], moved.json()["version"]) == (status, version)
    await eventually(state, lambda s: s.status == "resolved" and s.events_seen == 8)

    closed = await intake.act(request_id, partner, "close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["resolution"] == "done"
    assert closed.json()["closed_at"] is not None

    result = await asyncio.wait_for(handle.result(), timeout=20)
    assert (result.status, result.events_seen, result.version) == ("closed", 9, 9)
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    # The audit trail: every change, oldest first, paged.
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = await intake.http.get(
            f"/api/v1/requests/{request_id}/events", params=params, headers=partner
        )
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [e["action"] for e in seen] == [None] + [s[1] for s in steps] + ["close"]
    assert [e["request_version"] for e in seen] == list(range(1, 10))
    assert seen[0]["kind"] == "created"
    assert seen[0]["to_status"] == "new"
    assert seen[3]["data"] == {"note": "Which marketplaces?"}
    assert (seen[4]["actor"], seen[4]["actor_role"]) == ("key-partner", "partner")
    assert seen[-1]["from_status"] == "resolved"
    assert seen[-1]["to_status"] == "closed"
    assert result.last_event_id == seen[-1]["id"]

    # No transition leaves closed.
    refused = await intake.act(request_id, analyst, "reopen")
    assert assert_problem(refused, 409, "invalid-transition")["allowed_actions"] == []


async def test_a_repeated_event_reaches_the_workflow_but_is_ignored(
    intake: Intake, unique_team: str
) -> None:
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    created = await intake.file(analyst, team=unique_team)
    assert intake.temporal is not None
    handle = intake.temporal.get_workflow_handle_for(
        RequestLifecycleWorkflow.run, f"request-{created['id']}"
    )

    async def state() -> RequestLifecycleState:
        return await handle.query(RequestLifecycleWorkflow.state)

    await eventually(state, lambda s: s.events_seen == 1)
    triaged = await intake.act(created["id"], analyst, "triage")
    assert triaged.status_code == 200
    before = await eventually(state, lambda s: s.status == "triaged")
    events = (
        await intake.http.get(f"/api/v1/requests/{created['id']}/events", headers=analyst)
    ).json()["items"]
    last = events[-1]
    redelivered = RequestEventSignal(
        event_id=last["id"],
        request_id=created["id"],
        kind=last["kind"],
        action=last["action"],
        from_status=last["from_status"],
        to_status="new",  # a wrong status: applying it would show
        priority="P0",
        actor=last["actor"],
        occurred_at=datetime.fromisoformat(last["occurred_at"]),
        version=last["request_version"],
    )
    await handle.signal(RequestLifecycleWorkflow.request_event, redelivered)
    # A signal sent after the repeat is processed after it; once it shows, the repeat was ignored.
    await handle.signal(
        RequestLifecycleWorkflow.request_event,
        RequestEventSignal(
            event_id=str(uuid.uuid4()),
            request_id=created["id"],
            kind="probe",
            action=None,
            from_status="triaged",
            to_status="triaged",
            priority="P2",
            actor="test",
            occurred_at=datetime.now(UTC),
            version=0,
        ),
    )
    after = await eventually(state, lambda s: s.events_seen == before.events_seen + 1)
    assert (after.status, after.priority) == ("triaged", "P2")


async def test_list_filters_and_cursor(intake: Intake, unique_team: str) -> None:
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    other_team = f"{unique_team}-other"
    specs = [
        {"request_type": "data_request", "priority": "P0", "tags": ["ato"]},
        {"request_type": "deep_dive", "priority": "P1", "tags": ["ato", "refunds"]},
        {"request_type": "deep_dive", "priority": "P2"},
        {"request_type": "rule_change", "priority": "P3", "tags": ["refunds"]},
        {"request_type": "other", "priority": "P2"},
    ]
    ids = [(await intake.file(analyst, team=unique_team, **spec))["id"] for spec in specs]
    await intake.file(analyst, team=other_team)
    assert (await intake.act(ids[0], analyst, "triage")).status_code == 200
    assert (await intake.act(ids[1], analyst, "reject", reason="out of scope")).status_code == 200

    async def listed(headers: dict[str, str], **params: Any) -> list[int]:
        response = await intake.http.get("/api/v1/requests", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    newest_first = list(reversed(ids))
    assert await listed(analyst, team=unique_team) == newest_first
    assert await listed(partner) == newest_first  # forced to its own team
    assert await listed(partner, team=other_team) == []
    assert await listed(analyst, team=unique_team, status="triaged") == [ids[0]]
    assert await listed(analyst, team=unique_team, status=["triaged", "closed"]) == [ids[1], ids[0]]
    assert await listed(analyst, team=unique_team, request_type="deep_dive") == [ids[2], ids[1]]
    assert await listed(analyst, team=unique_team, priority=["P0", "P3"]) == [ids[3], ids[0]]
    assert await listed(analyst, team=unique_team, tag="ato") == [ids[1], ids[0]]
    assert await listed(partner, tag="refunds", status="new") == [ids[3]]
    assert await listed(analyst, team=unique_team, assignee="nobody") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await listed(analyst, team=unique_team, created_after=future) == []
    assert await listed(analyst, team=unique_team, created_after=past) == newest_first
    assert await listed(analyst, team=unique_team, created_before=past) == []

    # Cursor paging visits every row once, in order.
    pages: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"team": unique_team, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await intake.http.get("/api/v1/requests", params=params, headers=analyst)).json()
        assert len(page["items"]) <= 2
        pages += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == newest_first

    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJpZCI6ICJ4In0"},  # {"id": "x"}
        {"cursor": encode_cursor({"id": 2**40})},
        {"limit": 0},
        {"limit": 201},
        {"status": "sleeping"},
        {"priority": "P9"},
        {"request_type": "nope"},
        {"created_after": "yesterday"},
        {"created_after": "2026-01-01T00:00:00"},  # no zone
        {"tag": "Not A Tag"},
    ):
        response = await intake.http.get("/api/v1/requests", params=params, headers=analyst)
        assert_problem(response, 422, "validation-error")


async def test_idempotency_key_replays_refuses_reuse_and_survives_a_race(
    intake: Intake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-idem")
    body = {"request_type": "data_request", "title": "Export chargebacks"}
    keyed = {**partner, "Idempotency-Key": "file-1"}
    first = await intake.http.post("/api/v1/requests", json=body, headers=keyed)
    again = await intake.http.post("/api/v1/requests", json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"

    reused = await intake.http.post(
        "/api/v1/requests", json={**body, "title": "Something else"}, headers=keyed
    )
    assert_problem(reused, 422, "idempotency-key-reused")
    # The same key from another caller is that caller's own key.
    other = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-idem-2")
    separate = await intake.http.post(
        "/api/v1/requests", json=body, headers={**other, "Idempotency-Key": "file-1"}
    )
    assert separate.status_code == 201
    assert separate.json()["id"] != first.json()["id"]

    racing = {**partner, "Idempotency-Key": "race-1"}
    responses = await asyncio.gather(
        *(intake.http.post("/api/v1/requests", json=body, headers=racing) for _ in range(4))
    )
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.json()["id"] for r in responses}) == 1

    listed = await intake.http.get("/api/v1/requests", params={"limit": 200}, headers=partner)
    assert len(listed.json()["items"]) == 3  # first, separate, race: no doubles

    # Transitions honour the key too: a retried transition is not a 409.
    analyst = {**intake.as_(team="risk-mining", role=Role.ANALYST), "Idempotency-Key": "t-1"}
    triage = await intake.act(first.json()["id"], analyst, "triage")
    retried = await intake.act(first.json()["id"], analyst, "triage")
    assert (triage.status_code, retried.status_code) == (200, 200)
    assert retried.json() == triage.json()

    bad_key = await intake.http.post(
        "/api/v1/requests", json=body, headers={**partner, "Idempotency-Key": "x" * 201}
    )
    assert_problem(bad_key, 422)


async def test_other_teams_requests_are_invisible_to_a_partner(
    intake: Intake, unique_team: str
) -> None:
    owner = intake.as_(team=unique_team, role=Role.PARTNER)
    stranger = intake.as_(team=f"{unique_team}-b", role=Role.PARTNER)
    created = await intake.file(owner)
    request_id = created["id"]
    for response in (
        await intake.http.get(f"/api/v1/requests/{request_id}", headers=stranger),
        await intake.http.get(f"/api/v1/requests/{request_id}/events", headers=stranger),
        await intake.act(request_id, stranger, "close"),
        await intake.http.get("/api/v1/requests/2147483000", headers=owner),
    ):
        body = assert_problem(response, 404, "not-found")
        assert body["detail"].startswith("Request ")
    # The message for another team's request is the one for a missing request.
    missing = await intake.http.get("/api/v1/requests/2147483000", headers=stranger)
    hidden = await intake.http.get(f"/api/v1/requests/{request_id}", headers=stranger)
    assert missing.json()["detail"].replace("2147483000", "N") == hidden.json()["detail"].replace(
        str(request_id), "N"
    )
    # Staff and approvers (read-only) see it.
    for role in (Role.ANALYST, Role.APPROVER):
        seen = await intake.http.get(
            f"/api/v1/requests/{request_id}", headers=intake.as_(team="hq", role=role)
        )
        assert seen.status_code == 200
    for path in ("/api/v1/requests/abc", "/api/v1/requests/0", "/api/v1/requests/99999999999"):
        assert_problem(await intake.http.get(path, headers=owner), 422, "validation-error")


async def test_transition_refusals(intake: Intake, unique_team: str) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    approver = intake.as_(team="risk-mining", role=Role.APPROVER)
    request_id = (await intake.file(partner))["id"]

    # 409 names the actions allowed in this state for THIS caller.
    staff_409 = assert_problem(
        await intake.act(request_id, analyst, "close"), 409, "invalid-transition"
    )
    assert staff_409["current_status"] == "new"
    assert staff_409["allowed_actions"] == ["mark_duplicate", "reject", "triage"]
    partner_409 = assert_problem(await intake.act(request_id, partner, "close"), 409)
    assert partner_409["allowed_actions"] == []

    assert_problem(await intake.act(request_id, partner, "triage"), 403, "forbidden")
    assert_problem(await intake.act(request_id, approver, "triage"), 403, "forbidden")
    assert_problem(
        await intake.http.post(
            "/api/v1/requests",
            json={"request_type": "other", "title": "x", "team": "t"},
            headers=approver,
        ),
        403,
    )

    missing_reason = assert_problem(await intake.act(request_id, analyst, "reject"), 422)
    assert missing_reason["errors"][0]["field"] == "body.reason"
    missing_dup = assert_problem(await intake.act(request_id, analyst, "mark_duplicate"), 422)
    assert missing_dup["errors"][0]["field"] == "body.duplicate_of"
    assert_problem(await intake.act(request_id, analyst, "triage", duplicate_of=1), 422)
    assert_problem(await intake.act(request_id, analyst, "fly"), 422)
    assert_problem(await intake.act(request_id, analyst, "triage", extra=True), 422)

    # mark_duplicate: not itself, not another team's, no loops through earlier duplicates.
    first = (await intake.file(partner))["id"]
    other_team = (await intake.file(intake.as_(team=f"{unique_team}-x", role=Role.PARTNER)))["id"]
    assert_problem(
        await intake.act(request_id, analyst, "mark_duplicate", duplicate_of=request_id), 422
    )
    assert_problem(
        await intake.act(request_id, analyst, "mark_duplicate", duplicate_of=other_team), 422
    )
    assert_problem(
        await intake.act(request_id, analyst, "mark_duplicate", duplicate_of=2**31 - 2), 422
    )
    done = await intake.act(first, analyst, "mark_duplicate", duplicate_of=request_id)
    assert done.status_code == 200, done.text
    assert (done.json()["resolution"], done.json()["duplicate_of"]) == ("duplicate", request_id)
    loop = assert_problem(
        await intake.act(request_id, analyst, "mark_duplicate", duplicate_of=first), 422
    )
    assert loop["errors"][0]["field"] == "body.duplicate_of"
    # Nothing of the refused attempts was recorded.
    events = await intake.http.get(f"/api/v1/requests/{request_id}/events", headers=partner)
    assert [e["kind"] for e in events.json()["items"]] == ["created"]


async def test_concurrent_transitions_have_one_winner(intake: Intake, unique_team: str) -> None:
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    request_id = (await intake.file(analyst, team=unique_team))["id"]
    responses = await asyncio.gather(*(intake.act(request_id, analyst, "triage") for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    for loser in (r for r in responses if r.status_code == 409):
        assert_problem(loser, 409)
    current = (await intake.http.get(f"/api/v1/requests/{request_id}", headers=analyst)).json()
    assert (current["status"], current["version"]) == ("triaged", 2)
    events = await intake.http.get(f"/api/v1/requests/{request_id}/events", headers=analyst)
    assert len(events.json()["items"]) == 2


async def test_a_transition_based_on_a_stale_read_loses(intake: Intake, unique_team: str) -> None:
    # Deterministic version of the race: session `slow` read the request (version 1) before
    # session `fast` moved it; slow's compare-and-set on the version must then fail.
    analyst = Identity(subject="key-a", team="risk-mining", role=Role.ANALYST)
    request_id = (await intake.file(intake.as_(team=unique_team, role=Role.PARTNER)))["id"]
    sessions = intake.runtime.sessionmaker
    async with sessions() as slow, sessions() as fast:
        stale = await slow.get(Request, request_id)
        assert stale is not None
        assert stale.version == 1
        won = await service.transition_request(
            fast,
            caller=analyst,
            request_id=request_id,
            data=TransitionCreate(action="reject", reason="spam"),
            task_queue=intake.settings.task_queue,
        )
        assert won.body["status"] == "closed"
        with pytest.raises(Conflict) as lost:
            await service.transition_request(
                slow,
                caller=analyst,
                request_id=request_id,
                data=TransitionCreate(action="triage"),
                task_queue=intake.settings.task_queue,
            )
        assert lost.value.to_problem()["status"] == 409
    current = await intake.http.get(
        f"/api/v1/requests/{request_id}", headers=intake.as_(team="hq", role=Role.ANALYST)
    )
    assert (current.json()["status"], current.json()["version"]) == ("closed", 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x"}, "body.request_type"),
        ({"request_type": "fraud", "title": "x"}, "body.request_type"),
        ({"request_type": "other", "title": "   "}, "body.title"),
        ({"request_type": "other", "title": "x" * 201}, "body.title"),
        ({"request_type": "other", "title": 42}, "body.title"),
        ({"request_type": "other", "title": "x", "priority": "P4"}, "body.priority"),
        ({"request_type": "other", "title": "x", "description": "d" * 20_001}, "body.description"),
        ({"request_type": "other", "title": "x", "due_at": "2020-01-01T00:00:00Z"}, "body.due_at"),
        ({"request_type": "other", "title": "x", "due_at": "2999-01-01T00:00:00"}, "body.due_at"),
        ({"request_type": "other", "title": "x", "tags": ["no spaces"]}, "body.tags.0"),
        (
            {"request_type": "other", "title": "x", "tags": [f"t{i}" for i in range(21)]},
            "body.tags",
        ),
        (
            {"request_type": "other", "title": "x", "external_refs": ["r" * 501]},
            "body.external_refs.0",
        ),
        ({"request_type": "other", "title": "a\x00b"}, "body.title"),
        ({"request_type": "other", "title": "x", "surprise": 1}, "body.surprise"),
        (
            {
                "request_type": "other",
                "title": "x",
                "impact": {"accounts_affected": -1, "money_at_risk_per_week": 1, "currency": "USD"},
            },
            "body.impact.accounts_affected",
        ),
        (
            {
                "request_type": "other",
                "title": "x",
                "impact": {"accounts_affected": 1, "money_at_risk_per_week": 1, "currency": "usd"},
            },
            "body.impact.currency",
        ),
        ([1, 2], "body"),
    ],
)
async def test_invalid_bodies_are_422_problems(
    intake: Intake, unique_team: str, body: Any, field: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    response = await intake.http.post("/api/v1/requests", json=body, headers=partner)
    problem = assert_problem(response, 422, "validation-error")
    assert any(e["field"] == field for e in problem["errors"]), problem["errors"]


async def test_malformed_input_and_team_rules(intake: Intake, unique_team: str) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    bad_json = await intake.http.post(
        "/api/v1/requests",
        content=b'{"request_type": "other", "title": ',
        headers={**partner, "content-type": "application/json"},
    )
    assert_problem(bad_json, 400, "bad-request")
    # A lone surrogate (valid JSON escape, not encodable text) must not reach the database.
    surrogate = await intake.http.post(
        "/api/v1/requests",
        content=b'{"request_type": "other", "title": "a\\ud800b"}',
        headers={**partner, "content-type": "application/json"},
    )
    assert surrogate.status_code in (400, 422), surrogate.text
    assert surrogate.headers["content-type"].startswith(PROBLEM)
    # A staff member must say which team; a partner may not file for another team.
    no_team = assert_problem(
        await intake.http.post(
            "/api/v1/requests", json={"request_type": "other", "title": "x"}, headers=analyst
        ),
        422,
    )
    assert no_team["errors"][0]["field"] == "body.team"
    assert_problem(
        await intake.http.post(
            "/api/v1/requests",
            json={"request_type": "other", "title": "x", "team": "someone-else"},
            headers=partner,
        ),
        403,
    )
    own = await intake.file(partner, team=unique_team)
    assert own["team"] == unique_team
    assert_problem(await intake.http.delete("/api/v1/requests", headers=partner), 405)


async def test_calls_without_a_valid_identity_are_401(intake: Intake, unique_team: str) -> None:
    forged = sign_identity(
        Identity(subject="mallory", team=unique_team, role=Role.ADMIN),
        secret="not-the-secret" * 3,
        ttl_seconds=60,
    )
    expired = sign_identity(
        Identity(subject="late", team=unique_team, role=Role.ADMIN),
        secret=intake.settings.identity_secret,
        ttl_seconds=10,
        now=1_000_000.0,
    )
    for headers in ({}, {"X-Riskdesk-Identity": forged}, {"X-Riskdesk-Identity": expired}):
        for response in (
            await intake.http.get("/api/v1/requests", headers=headers),
            await intake.http.post(
                "/api/v1/requests", json={"request_type": "other", "title": "x"}, headers=headers
            ),
        ):
            assert_problem(response, 401, "unauthorized")
    assert (await intake.http.get("/healthz")).status_code == 200


async def test_requests_are_accepted_while_temporal_is_down_and_delivered_later(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    down = make_settings(temporal_address=f"127.0.0.1:{free_port()}")
    partner = identity_headers(team=unique_team, role=Role.PARTNER)
    async with running_intake(down, identity_headers, worker=False) as intake:
        created = await intake.file(partner)
        moved = await intake.act(
            created["id"], identity_headers(team="hq", role=Role.ANALYST), "triage"
        )
        assert moved.status_code == 200
        ready = await intake.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["outbox_pending"] >= 2
        assert ready.json()["temporal_connected"] is False

    # Temporal is back (same database, real address): the waiting events are delivered in order.
    up = down.model_copy(update={"temporal_address": make_settings().temporal_address})
    async with running_intake(up, identity_headers, worker=True) as intake:
        assert intake.temporal is not None
        handle = intake.temporal.get_workflow_handle_for(
            RequestLifecycleWorkflow.run, f"request-{created['id']}"
        )
        state = await eventually(
            lambda: handle.query(RequestLifecycleWorkflow.state),
            lambda s: s.events_seen == 2,
        )
        assert (state.status, state.version) == ("triaged", 2)
        ready = await eventually(
            lambda: intake.http.get("/readyz"), lambda r: r.json()["outbox_pending"] == 0
        )
        assert ready.json()["temporal_connected"] is True
