"""Issue 8, reliability 3, on the whole stack: a partner's webhook receiver that first answers too
slowly (past `RISKDESK_WEBHOOK_TIMEOUT_SECONDS`), then fails with 500, then recovers. Real SLA
events (a warning, then the breach, of two requests) arrive after the recovery, once each as the
receiver answered them, in order per request, and the gateway's delivery record shows the
timeout and the 500 before the success.

The rest of item 3 runs against the gateway and worker in tests/workflows/test_notification_delivery.py
with a real receiver: down then up (`test_receiver_down_then_up_gets_everything_in_order`), 500s with
growing backoff (`test_receiver_failing_twice_gets_it_on_the_third_attempt`), and a receiver that
never recovers ending dead and replayed by an admin
(`test_receiver_that_never_recovers_ends_dead_and_replay_delivers`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.sla_lateness import (
    WebhookReceiver,
    api,
    create_partner,
    create_policy,
    subscribe,
)
from tests.faults.checks import Counts
from tests.faults.conftest import Faults

pytestmark = pytest.mark.timeout(180)

WARNING_AT = 4  # seconds after filing: the 50 % warning of an 8 s first-response target
BREACH_AT = 8
REQUESTS = 2
# Longer than the stack's webhook timeout (tests/faults/stack.py sets 2 s).
SLOW_SECONDS = 3.0


@dataclass
class Call:
    """One call the receiver got: what it was and how it answered."""

    event_id: str
    type: str
    request_id: int
    answer: str  # "slow" (answered after the sender's timeout), "500" or "ok"
    idempotency_key: str


@dataclass
class ScriptedReceiver(WebhookReceiver):
    """Answers its first calls as scripted (`slow`, `500`), every later one 200 at once."""

    script: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            document: dict[str, Any] = json.loads(await request.body())
            answer = self.script.pop(0) if self.script else "ok"
            data = document.get("data") or {}
            self.calls.append(
                Call(
                    str(document.get("id")),
                    str(document.get("type")),
                    int(data.get("request_id", -1)),
                    answer,
                    request.headers.get("idempotency-key", ""),
                )
            )
            if answer == "slow":
                await asyncio.sleep(SLOW_SECONDS)
                return Response(status_code=200)
            return Response(status_code=500 if answer == "500" else 200)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def test_slow_then_failing_receiver_gets_every_event_once_in_order_after_recovery(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    client, admin = faults.client, faults.admin_key
    existing = (await api(client, "GET", "/api/v1/sla/policies", admin))["items"]
    await create_policy(
        client,
        admin,
        policy_id=f"faults-p2-{uuid.uuid4().hex[:6]}",
        order=min(p["order"] for p in existing) - 1,
        priorities=["P2"],
        first_response=f"PT{BREACH_AT}S",
        resolution="PT1H",
        thresholds=[50],
    )
    receiver = ScriptedReceiver(script=["slow", "500", "500"])
    team = f"slow-hook-{uuid.uuid4().hex[:6]}"
    partner = await create_partner(client, admin, team)
    async with receiver.running():
        subscription = await subscribe(
            client, partner, receiver.url, ["sla.warning", "sla.breached"]
        )
        ids = []
        for number in range(REQUESTS):
            body = {"request_type": "deep_dive", "title": f"Slow hook {number}", "priority": "P2"}
            created = await api(client, "POST", "/api/v1/requests", partner, expect=201, json=body)
            ids.append(int(created["id"]))
        expected = {
            f"request-{i}:first_response:{kind}": i
            for i in ids
            for kind in ("warning:50:0", "breached:0")
        }

        def answered() -> list[Call]:
            return [c for c in receiver.calls if c.answer == "ok"]

        deadline = time.monotonic() + BREACH_AT + 90
        while {c.event_id for c in answered()} < set(expected):
            assert time.monotonic() < deadline, [vars(c) for c in receiver.calls]
            await asyncio.sleep(0.25)
        await asyncio.sleep(2)  # room for a (wrong) repeat

    ok = answered()
    assert sorted(c.event_id for c in ok) == sorted(expected), [vars(c) for c in receiver.calls]
    for request_id in ids:
        order = [c.type for c in ok if c.request_id == request_id]
        assert order == ["sla.warning", "sla.breached"], order
    # Every attempt at one event carried the same Idempotency-Key: the event id.
    assert all(c.idempotency_key == c.event_id for c in receiver.calls)
    first = receiver.calls[0]
    attempts_of_first = [c.answer for c in receiver.calls if c.event_id == first.event_id]
    assert attempts_of_first == ["slow", "500", "500", "ok"], attempts_of_first

    page = await api(
        client, "GET", f"/api/v1/subscriptions/{subscription['id']}/deliveries", partner
    )
    deliveries = {d["event_id"]: d for d in page["items"]}
    assert set(deliveries) == set(expected)
    assert {d["status"] for d in deliveries.values()} == {"delivered"}
    record = deliveries[first.event_id]
    outcomes = [(a["outcome"], a["status_code"]) for a in record["attempts"]]
    assert outcomes == [("failed", None), ("failed", 500), ("failed", 500), ("delivered", 200)]
    assert record["attempts"][0]["error"], record  # the timeout, in words

    counts = Counts()
    counts["events due (2 requests x warning + breach)"] = len(expected)
    counts["calls the receiver got"] = len(receiver.calls)
    counts["answered slowly (sender timed out)"] = sum(c.answer == "slow" for c in receiver.calls)
    counts["answered 500"] = sum(c.answer == "500" for c in receiver.calls)
    counts["accepted (200), once per event"] = len(ok)
    counts["in order per request (warning, breach)"] = REQUESTS
    with capsys.disabled():
        print("\n" + counts.render("slow, then failing webhook receiver: what was checked"))
