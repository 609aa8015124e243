"""Subscriptions and event fan-out through the real gateway app and database (no worker here).

Delivery itself (Temporal, webhooks, e-mail) is tested in tests/workflows/test_notification_delivery.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.common.identity import Identity, Role, sign_identity
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.keys.service import create_key
from services.gateway.models import OutboxEvent
from services.gateway.notifications.models import Delivery
from services.gateway.runtime import GatewayRuntime
from workflows.contracts import DELIVER_SIGNAL, SUBSCRIPTION_DELIVERY_WORKFLOW

PROBLEM = "application/problem+json"


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    runtime: GatewayRuntime
    settings: Settings

    async def key(self, *, team: str, role: Role = Role.PARTNER) -> dict[str, str]:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name="test")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    def system(self, role: Role = Role.SYSTEM) -> dict[str, str]:
        token = sign_identity(
            Identity(subject="worker", team="risk-mining", role=role),
            secret=self.settings.identity_secret,
            ttl_seconds=60,
        )
        return {"X-Riskdesk-Identity": token}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


@pytest.fixture
async def gateway(make_settings: Callable[..., Settings]) -> AsyncIterator[Gateway]:
    # Temporal is unreachable on purpose: fan-out must not depend on it (rows wait in the outbox).
    settings = make_settings(temporal_address="127.0.0.1:1")
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(app=app, client=client, runtime=app.state.runtime, settings=settings)


def webhook(**extra: Any) -> dict[str, Any]:
    return {
        "event_types": ["sla.warning", "sla.breached"],
        "channel": "webhook",
        "url": "https://hooks.example.com/riskdesk",
        **extra,
    }


def event(team: str, *, type_: str = "sla.warning", event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or f"request-1:resolution:warning:50:{uuid.uuid4().hex}",
        "type": type_,
        "team": team,
        "occurred_at": datetime.now(UTC).isoformat(),
        "subject": {"kind": "request", "id": "1"},
        "data": {"request_id": 1, "clock": "resolution", "threshold": 50},
    }


async def test_partner_creates_reads_lists_and_deletes_own_subscription(
    gateway: Gateway, unique_team: str
) -> None:
    partner = await gateway.key(team=unique_team)
    created = await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=partner)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["team"] == unique_team  # defaults to the caller's team
    assert body["active"] is True
    assert body["secret"].startswith("whsec_")
    assert len(body["secret"]) > 40
    assert created.headers["cache-control"] == "no-store"

    got = await gateway.client.get(f"/api/v1/subscriptions/{body['id']}", headers=partner)
    assert got.status_code == 200
    assert "secret" not in got.json()  # shown once only
    assert got.json()["event_types"] == ["sla.warning", "sla.breached"]

    listed = await gateway.client.get("/api/v1/subscriptions", headers=partner)
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]

    deleted = await gateway.client.delete(f"/api/v1/subscriptions/{body['id']}", headers=partner)
    assert deleted.status_code == 204
    again = await gateway.client.get(f"/api/v1/subscriptions/{body['id']}", headers=partner)
    assert again.json()["active"] is False
    assert again.json()["deactivated_at"] is not None
    # Deleting twice is harmless.
    twice = await gateway.client.delete(f"/api/v1/subscriptions/{body['id']}", headers=partner)
    assert twice.status_code == 204


async def test_partner_never_sees_or_deletes_another_teams_subscription(
    gateway: Gateway, unique_team: str
) -> None:
    owner = await gateway.key(team=unique_team)
    other = await gateway.key(team=f"{unique_team}-other")
    created = (
        await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=owner)
    ).json()
    sid = created["id"]
    for method, path in [
        ("GET", f"/api/v1/subscriptions/{sid}"),
        ("DELETE", f"/api/v1/subscriptions/{sid}"),
        ("GET", f"/api/v1/subscriptions/{sid}/deliveries"),
    ]:
        assert_problem(await gateway.client.request(method, path, headers=other), 404)
    listed = await gateway.client.get("/api/v1/subscriptions", headers=other)
    assert listed.json()["items"] == []
    # A partner asking for another team's list still gets only its own.
    filtered = await gateway.client.get(
        "/api/v1/subscriptions", params={"team": unique_team}, headers=other
    )
    assert filtered.json()["items"] == []
    # Subscribing another team is refused.
    refused = await gateway.client.post(
        "/api/v1/subscriptions", json=webhook(team=unique_team), headers=other
    )
    problem = assert_problem(refused, 422)
    assert problem["errors"][0]["field"] == "body.team"
    # The owner's subscription is untouched.
    still = await gateway.client.get(f"/api/v1/subscriptions/{sid}", headers=owner)
    assert still.json()["active"] is True


async def test_staff_subscribes_any_team_and_lists_everything_paginated(
    gateway: Gateway, unique_team: str
) -> None:
    analyst = await gateway.key(team="risk-mining", role=Role.ANALYST)
    ids = []
    for n in range(3):
        response = await gateway.client.post(
            "/api/v1/subscriptions",
            json={
                "team": unique_team,
                "event_types": ["aging.digest"],
                "channel": "email",
                "email": f"owner{n}@example.com",
            },
            headers=analyst,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"team": unique_team, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await gateway.client.get("/api/v1/subscriptions", params=params, headers=analyst)
        ).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    bad = await gateway.client.get(
        "/api/v1/subscriptions", params={"cursor": "not-a-cursor"}, headers=analyst
    )
    assert_problem(bad, 422)


@pytest.mark.parametrize(
    ("body", "field_hint"),
    [
        ({"event_types": [], "channel": "webhook", "url": "https://a.example"}, "event_types"),
        ({"event_types": ["sla.nope"], "channel": "webhook", "url": "https://a.example"}, "0"),
        ({"event_types": ["sla.warning"], "channel": "sms", "url": "https://a.example"}, "channel"),
        ({"event_types": ["sla.warning"], "channel": "webhook"}, "body"),
        ({"event_types": ["sla.warning"], "channel": "email"}, "body"),
        (
            {"event_types": ["sla.warning"], "channel": "email", "email": "not-an-address"},
            "body",
        ),
        (
            {"event_types": ["sla.warning"], "channel": "email", "email": "a@b.co\r\nBcc: x@y.z"},
            "body",
        ),
        (
            {
                "event_types": ["sla.warning"],
                "channel": "webhook",
                "url": "https://a.example",
                "email": "a@b.co",
            },
            "body",
        ),
        ({"event_types": ["sla.warning"], "channel": "webhook", "url": "ftp://a.example"}, "url"),
        (
            {"event_types": ["sla.warning"], "channel": "webhook", "url": "http://example.com/h"},
            "url",
        ),
        ({"event_types": ["sla.warning"], "channel": "webhook", "url": "https://"}, "url"),
        (
            {"event_types": ["sla.warning"], "channel": "webhook", "url": "https://u:p@a.example"},
            "url",
        ),
        (
            {"event_types": ["sla.warning"], "channel": "webhook", "url": "https://a:99999/x"},
            "url",
        ),
        (
            {
                "event_types": ["sla.warning"],
                "channel": "webhook",
                "url": "https://a.example",
                "extra": 1,
            },
            "extra",
        ),
        ({"event_types": ["sla.warning"], "channel": "webhook", "url": "x" * 3000}, "url"),
    ],
)
async def test_invalid_subscriptions_are_422_problems(
    gateway: Gateway, unique_team: str, body: dict[str, Any], field_hint: str
) -> None:
    partner = await gateway.key(team=unique_team)
    response = await gateway.client.post("/api/v1/subscriptions", json=body, headers=partner)
    problem = assert_problem(response, 422)
    assert any(field_hint in error["field"] for error in problem["errors"]), problem
    listed = await gateway.client.get("/api/v1/subscriptions", headers=partner)
    assert listed.json()["items"] == []


async def test_plain_http_webhooks_only_to_localhost_and_never_in_production(
    gateway: Gateway, unique_team: str
) -> None:
    partner = await gateway.key(team=unique_team)
    for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]:8080/"):
        response = await gateway.client.post(
            "/api/v1/subscriptions", json=webhook(url=url), headers=partner
        )
        assert response.status_code == 201, (url, response.text)
    from services.common.webhook_target import url_problem

    # Without RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS (production), https only.
    assert url_problem("http://127.0.0.1/h", allow_private=False) is not None
    assert url_problem("https://127.0.0.1/h", allow_private=False) is None


async def test_bad_paths_and_no_key_are_problems(gateway: Gateway, unique_team: str) -> None:
    assert_problem(await gateway.client.get("/api/v1/subscriptions"), 401)
    partner = await gateway.key(team=unique_team)
    assert_problem(await gateway.client.get("/api/v1/subscriptions/0", headers=partner), 422)
    assert_problem(await gateway.client.get("/api/v1/subscriptions/abc", headers=partner), 422)
    assert_problem(
        await gateway.client.get("/api/v1/subscriptions/999999999", headers=partner), 404
    )
    bad_json = await gateway.client.post(
        "/api/v1/subscriptions",
        content=b"{not json",
        headers={**partner, "Content-Type": "application/json"},
    )
    assert_problem(bad_json, 400)


async def test_internal_routes_need_the_system_identity(gateway: Gateway, unique_team: str) -> None:
    partner_key = await gateway.key(team=unique_team)
    admin_key = await gateway.key(team=unique_team, role=Role.ADMIN)
    calls = [
        ("POST", "/internal/events", event(unique_team)),
        ("GET", "/internal/deliveries/1", None),
        ("POST", "/internal/deliveries/1/attempts", {"outcome": "delivered"}),
        ("POST", "/internal/deliveries/1/dead", {}),
    ]
    for method, path, body in calls:
        assert_problem(await gateway.client.request(method, path, json=body), 401)
        # An API key, even an admin's, is not the worker's identity.
        assert_problem(
            await gateway.client.request(method, path, json=body, headers=admin_key), 401
        )
        assert_problem(
            await gateway.client.request(method, path, json=body, headers=partner_key), 401
        )
        forged = {"X-Riskdesk-Identity": "v1.garbage.sig"}
        assert_problem(await gateway.client.request(method, path, json=body, headers=forged), 401)
        for role in (Role.ADMIN, Role.ANALYST, Role.PARTNER):
            assert_problem(
                await gateway.client.request(method, path, json=body, headers=gateway.system(role)),
                403,
            )


async def test_event_fans_out_once_to_matching_active_subscriptions(
    gateway: Gateway, unique_team: str
) -> None:
    partner = await gateway.key(team=unique_team)
    other_team = await gateway.key(team=f"{unique_team}-x")
    warnings = (
        await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=partner)
    ).json()
    only_breaches = (
        await gateway.client.post(
            "/api/v1/subscriptions", json=webhook(event_types=["sla.breached"]), headers=partner
        )
    ).json()
    gone = (
        await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=partner)
    ).json()
    await gateway.client.delete(f"/api/v1/subscriptions/{gone['id']}", headers=partner)
    elsewhere = (
        await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=other_team)
    ).json()

    body = event(unique_team)
    first = await gateway.client.post("/internal/events", json=body, headers=gateway.system())
    assert first.status_code == 202, first.text
    assert first.json() == {"event_id": body["event_id"], "deliveries": 1}
    repeat = await gateway.client.post("/internal/events", json=body, headers=gateway.system())
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    # Concurrent repeats: still exactly one fan-out.
    racing = await asyncio.gather(
        *(
            gateway.client.post("/internal/events", json=body, headers=gateway.system())
            for _ in range(5)
        )
    )
    assert {r.status_code for r in racing} == {200}

    async with gateway.runtime.sessionmaker() as session:
        deliveries = list(
            (
                await session.execute(select(Delivery).where(Delivery.event_id == body["event_id"]))
            ).scalars()
        )
        assert [d.subscription_id for d in deliveries] == [warnings["id"]]
        outbox = list(
            (
                await session.execute(
                    select(OutboxEvent).where(
                        OutboxEvent.workflow_id == f"subscription-{warnings['id']}"
                    )
                )
            ).scalars()
        )
    assert len(outbox) == 1
    assert outbox[0].workflow_type == SUBSCRIPTION_DELIVERY_WORKFLOW
    assert outbox[0].signal_name == DELIVER_SIGNAL
    assert outbox[0].signal_args == [{"delivery_id": deliveries[0].id, "generation": 0}]
    assert outbox[0].task_queue == gateway.settings.task_queue
    # Temporal is down: the row waits in the outbox rather than failing the call.
    assert outbox[0].dispatched_at is None
    for sub in (only_breaches, gone, elsewhere):
        listed = await gateway.client.get(
            f"/api/v1/subscriptions/{sub['id']}/deliveries",
            headers=other_team if sub is elsewhere else partner,
        )
        assert listed.json()["items"] == []
    listed = await gateway.client.get(
        f"/api/v1/subscriptions/{warnings['id']}/deliveries", headers=partner
    )
    (item,) = listed.json()["items"]
    assert item["status"] == "pending"
    assert item["event_type"] == "sla.warning"
    assert item["attempts"] == []


async def test_delivery_bookkeeping_and_replay_rules(gateway: Gateway, unique_team: str) -> None:
    partner = await gateway.key(team=unique_team)
    admin = await gateway.key(team="risk-mining", role=Role.ADMIN)
    sub = (
        await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=partner)
    ).json()
    posted = event(unique_team)
    await gateway.client.post("/internal/events", json=posted, headers=gateway.system())
    deliveries = f"/api/v1/subscriptions/{sub['id']}/deliveries"
    (item,) = (await gateway.client.get(deliveries, headers=partner)).json()["items"]
    did = item["id"]
    system = gateway.system()

    worker_view = (await gateway.client.get(f"/internal/deliveries/{did}", headers=system)).json()
    assert worker_view["subscription"]["secret"] == sub["secret"]
    assert worker_view["delivery"] == {
        "id": did,
        "status": "pending",
        "generation": 0,
        "attempts": 0,
    }
    assert worker_view["event"]["event_id"] == posted["event_id"]
    assert_problem(await gateway.client.get("/internal/deliveries/999999", headers=system), 404)
    assert_problem(
        await gateway.client.post(
            f"/internal/deliveries/{did}/attempts", json={"outcome": "maybe"}, headers=system
        ),
        422,
    )

    # Replaying a pending delivery is a conflict; a partner may not replay at all.
    replay = f"{deliveries}/{did}/replay"
    assert_problem(await gateway.client.post(replay, headers=admin), 409)
    assert_problem(await gateway.client.post(replay, headers=partner), 403)
    assert_problem(await gateway.client.post(f"{deliveries}/999999/replay", headers=admin), 404)

    failed = {"outcome": "failed", "status_code": 500, "error": "receiver answered 500"}
    r = await gateway.client.post(
        f"/internal/deliveries/{did}/attempts", json=failed, headers=system
    )
    assert r.status_code == 204
    # A stale generation does not kill it; the current one does.
    r = await gateway.client.post(
        f"/internal/deliveries/{did}/dead", json={"generation": 7}, headers=system
    )
    assert r.status_code == 204
    assert (await gateway.client.get(deliveries, headers=partner)).json()["items"][0][
        "status"
    ] == "pending"
    await gateway.client.post(
        f"/internal/deliveries/{did}/dead",
        json={"error": "gave up", "generation": 0},
        headers=system,
    )
    (dead,) = (await gateway.client.get(deliveries, headers=partner)).json()["items"]
    assert dead["status"] == "dead"
    dead_letters = await gateway.client.get(deliveries, params={"status": "dead"}, headers=admin)
    assert [d["id"] for d in dead_letters.json()["items"]] == [did]
    none_pending = await gateway.client.get(deliveries, params={"status": "pending"}, headers=admin)
    assert none_pending.json()["items"] == []
    assert_problem(
        await gateway.client.get(deliveries, params={"status": "lost"}, headers=admin), 422
    )
    assert dead["last_error"] == "gave up"
    assert [a["status_code"] for a in dead["attempts"]] == [500]

    replayed = await gateway.client.post(replay, headers=admin)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["status"] == "pending"
    assert replayed.json()["replays"] == 1
    assert len(replayed.json()["attempts"]) == 1
    async with gateway.runtime.sessionmaker() as session:
        signals = [
            row.signal_args[0]
            for row in (
                await session.execute(
                    select(OutboxEvent)
                    .where(OutboxEvent.workflow_id == f"subscription-{sub['id']}")
                    .order_by(OutboxEvent.seq)
                )
            ).scalars()
        ]
    assert signals == [
        {"delivery_id": did, "generation": 0},
        {"delivery_id": did, "generation": 1},
    ]
    delivered = {"outcome": "delivered", "status_code": 200, "duration_ms": 12}
    await gateway.client.post(
        f"/internal/deliveries/{did}/attempts", json=delivered, headers=system
    )
    # Dead after delivered changes nothing.
    await gateway.client.post(f"/internal/deliveries/{did}/dead", json={}, headers=system)
    (done,) = (await gateway.client.get(deliveries, headers=partner)).json()["items"]
    assert done["status"] == "delivered"
    assert done["attempt_count"] == 2
    assert done["delivered_at"] is not None

    # A deactivated subscription's dead delivery cannot be replayed.
    await gateway.client.post("/internal/events", json=event(unique_team), headers=system)
    newest = (await gateway.client.get(deliveries, headers=partner)).json()["items"][0]
    await gateway.client.post(f"/internal/deliveries/{newest['id']}/dead", json={}, headers=system)
    await gateway.client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=partner)
    assert_problem(
        await gateway.client.post(f"{deliveries}/{newest['id']}/replay", headers=admin), 409
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("event_id"),
        lambda e: e.update(event_id=""),
        lambda e: e.update(event_id="x" * 201),
        lambda e: e.update(type="Not A Type"),
        lambda e: e.update(occurred_at="2026-01-01T00:00:00"),
        lambda e: e.update(subject={"kind": "request"}),
        lambda e: e.update(team="bad team!"),
        lambda e: e.update(data=[1, 2]),
    ],
)
async def test_invalid_events_are_422_problems(
    gateway: Gateway, unique_team: str, mutate: Callable[[dict[str, Any]], Any]
) -> None:
    body = event(unique_team)
    mutate(body)
    response = await gateway.client.post("/internal/events", json=body, headers=gateway.system())
    assert_problem(response, 422)


async def test_deliveries_are_paginated_newest_first(gateway: Gateway, unique_team: str) -> None:
    partner = await gateway.key(team=unique_team)
    sub = (
        await gateway.client.post("/api/v1/subscriptions", json=webhook(), headers=partner)
    ).json()
    posted = []
    for _ in range(3):
        body = event(unique_team)
        posted.append(body["event_id"])
        await gateway.client.post("/internal/events", json=body, headers=gateway.system())
    path = f"/api/v1/subscriptions/{sub['id']}/deliveries"
    first = (await gateway.client.get(path, params={"limit": 2}, headers=partner)).json()
    assert [d["event_id"] for d in first["items"]] == posted[:0:-1]
    second = (
        await gateway.client.get(
            path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=partner
        )
    ).json()
    assert [d["event_id"] for d in second["items"]] == posted[:1]
    assert second["next_cursor"] is None
