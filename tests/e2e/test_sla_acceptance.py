"""The SLA engine's acceptance test (issue 3, "Done when").

A partner files a P1 request through the gateway and does nothing else; its team's webhook (a real
receiver in this test, on 127.0.0.1) must receive every `sla.warning` (50/75/90 % of each clock)
and then `sla.breached`, once each, signed with the subscription's secret, at the instants the
calendar gives (never before, and within `LATE` after). The request then shows its breach in the
API: `breached_at`, `?breached=true`, and both clocks breached in `/sla`.

1. The stack exactly as `riskdesk up` launches it (tests/e2e/test_stack.py's launcher).
2. The parts run by the test (Temporal dev server fixture, gateway and intake as `riskdesk serve`,
   the worker as `riskdesk worker`), so the worker can be SIGKILLed between the first warning and
   the breach and started again: delivery must still be exactly once. (`riskdesk up` itself stops
   everything when a child dies, by design.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.sla_lateness import (
    LocalParts,
    Receipt,
    WebhookReceiver,
    api,
    bearer,
    create_partner,
    create_policy,
    file_request,
    instant,
    parts_environment,
    running_parts,
    subscribe,
)
from tests.e2e.test_stack import (  # noqa: F401 (database_url is a fixture)
    assert_problem,
    database_url,
    launch,
    stack_environment,
    stop,
)

# On the embedded default only (`riskdesk up`'s SQLite): each stack start costs a minute, and
# PostgreSQL under a launched stack is covered by tests/e2e/test_stack.py, tests/faults and
# tests/security.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

FIRST_RESPONSE = timedelta(seconds=20)
RESOLUTION = timedelta(seconds=40)
THRESHOLDS = (50, 75, 90)
# Scheduling slack on a shared 2-core machine running the whole stack: an event may arrive this
# late after its instant, never before it (EARLY covers the receiver's and the DB's clock reads).
LATE = 5.0
EARLY = 0.05
# After the last expected event, how long the receiver keeps listening for duplicates.
SETTLE = 4.0
# Fast delivery retries, so a retry after the worker restart does not take minutes.
FAST_DELIVERY = {
    "RISKDESK_DELIVERY_INITIAL_INTERVAL_SECONDS": "0.5",
    "RISKDESK_DELIVERY_MAX_INTERVAL_SECONDS": "2",
    "RISKDESK_WEBHOOK_TIMEOUT_SECONDS": "5",
}


@dataclass(frozen=True)
class Expected:
    """One event the request must cause: its id, type, clock, threshold and instant."""

    event_id: str
    type: str
    clock: str
    threshold: int | None
    due: datetime  # the instant the calendar (24x7) gives for it
    clock_due: datetime  # the clock's deadline, carried as `due_at` in every event


def expected_events(request_id: int, created_at: datetime) -> dict[str, Expected]:
    """Every warning and breach of both clocks, computed from `created_at` and the targets."""
    events: dict[str, Expected] = {}
    for clock, target in (("first_response", FIRST_RESPONSE), ("resolution", RESOLUTION)):
        deadline = created_at + target
        prefix = f"request-{request_id}:{clock}"
        for threshold in THRESHOLDS:
            event_id = f"{prefix}:warning:{threshold}:0"
            events[event_id] = Expected(
                event_id,
                "sla.warning",
                clock,
                threshold,
                created_at + target * threshold / 100,
                deadline,
            )
        event_id = f"{prefix}:breached:0"
        events[event_id] = Expected(event_id, "sla.breached", clock, None, deadline, deadline)
    return events


@dataclass
class Scenario:
    """A P1 request filed by a partner whose team subscribed a webhook to SLA events."""

    client: httpx.AsyncClient
    receiver: WebhookReceiver
    admin_key: str
    partner_key: str
    subscription: dict[str, Any]
    request_id: int = 0
    created_at: datetime | None = None

    @property
    def expected(self) -> dict[str, Expected]:
        assert self.created_at is not None
        return expected_events(self.request_id, self.created_at)

    def receipts(self) -> list[Receipt]:
        """What the receiver got about this request, in arrival order."""
        return [
            r
            for r in self.receiver.receipts
            if r.type.startswith("sla.") and r.data.get("request_id") == self.request_id
        ]

    async def file(self) -> None:
        created = await file_request(self.client, self.partner_key, 1)
        self.request_id = int(created["id"])
        self.created_at = instant(created["created_at"])
        assert created["status"] == "new"
        assert created["priority"] == "P1"

    async def wait_for(self, event_id: str, *, within: float) -> Receipt:
        """The first receipt of this event, waiting up to `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            for receipt in self.receipts():
                if receipt.event_id == event_id:
                    return receipt
            if time.monotonic() > deadline:
                got = [r.event_id for r in self.receipts()]
                raise AssertionError(f"{event_id} did not arrive within {within} s; got {got}")
            await asyncio.sleep(0.1)

    async def wait_for_all(self) -> None:
        """Until every expected event arrived (or too late to matter), then listen a bit more."""
        assert self.created_at is not None
        last_due = max(e.due for e in self.expected.values()).timestamp()
        deadline = last_due + 60
        while {r.event_id for r in self.receipts()} < set(self.expected):
            if time.time() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(SETTLE)


async def set_up(client: httpx.AsyncClient, receiver: WebhookReceiver, admin_key: str) -> Scenario:
    """As admin: a second-level P1 policy on `24x7` before the seeded ones, and a partner key;
    as the partner: a webhook subscription to `sla.warning` and `sla.breached`."""
    # First in match order: below the seeded ones (10+) and any an earlier test left behind on a
    # shared PostgreSQL database (orders are unique).
    existing = (await api(client, "GET", "/api/v1/sla/policies", admin_key))["items"]
    order = min(p["order"] for p in existing) - 1
    assert order >= 0, existing
    policy = await create_policy(
        client,
        admin_key,
        policy_id=f"p1-seconds-{uuid.uuid4().hex[:6]}",
        order=order,
        first_response="PT20S",
        resolution="PT40S",
    )
    matched = await api(
        client,
        "GET",
        "/api/v1/sla/policies/match",
        admin_key,
        params={"request_type": "mo_investigation", "priority": "P1"},
    )
    assert matched["policy_id"] == policy["id"]
    team = f"acme-{uuid.uuid4().hex[:6]}"
    partner = await create_partner(client, admin_key, team)
    subscription = await subscribe(client, partner, receiver.url, ["sla.warning", "sla.breached"])
    assert subscription["secret"]
    return Scenario(client, receiver, admin_key, partner, subscription)


def check_receipts(
    scenario: Scenario, *, on_time_after: datetime | None = None
) -> dict[str, Receipt]:
    """Every expected event arrived once, signed, well-formed, in order per clock, never early,
    and (when due after `on_time_after`, else always) at most LATE seconds after its instant."""
    receipts = scenario.receipts()
    expected = scenario.expected
    ids = [r.event_id for r in receipts]
    assert sorted(ids) == sorted(expected), f"got {ids}, expected each of {sorted(expected)} once"
    secret = scenario.subscription["secret"]
    by_id: dict[str, Receipt] = {}
    for receipt in receipts:
        event = expected[receipt.event_id]
        assert receipt.signed_by(secret), f"bad signature on {receipt.event_id}"
        assert not receipt.signed_by("not-the-secret")
        assert receipt.headers["idempotency-key"] == event.event_id
        assert receipt.headers["x-riskdesk-event"] == event.type
        assert receipt.type == event.type
        assert receipt.document["team"] == scenario.subscription["team"]
        assert receipt.document["subject"] == {"kind": "request", "id": str(scenario.request_id)}
        assert receipt.data["clock"] == event.clock
        assert instant(receipt.document["occurred_at"]) == event.due
        assert instant(receipt.data["due_at"]) == event.clock_due
        if event.threshold is not None:
            assert receipt.data["threshold"] == event.threshold
        else:
            assert instant(receipt.data["breached_at"]) == event.due
        lateness = receipt.arrived_at - event.due.timestamp()
        assert lateness >= -EARLY, f"{event.event_id} arrived {-lateness:.2f} s early"
        if on_time_after is None or event.due > on_time_after:
            assert lateness <= LATE, f"{event.event_id} arrived {lateness:.2f} s late"
        by_id[receipt.event_id] = receipt
    for clock in ("first_response", "resolution"):
        # Per clock, in the calendar's order: the warnings, then the breach — also for events that
        # fell due together while no worker ran (the workflow publishes them one after another).
        order = [r.event_id for r in receipts if r.data["clock"] == clock]
        assert order == sorted(order, key=lambda event_id: expected[event_id].due), order
        assert expected[order[-1]].type == "sla.breached"
    return by_id


async def check_request_shows_the_breach(scenario: Scenario) -> None:
    """The request's breach as the API reports it, to the partner who filed it."""
    client, key, request_id = scenario.client, scenario.partner_key, scenario.request_id
    assert scenario.created_at is not None
    first_breach = scenario.created_at + FIRST_RESPONSE

    request = await api(client, "GET", f"/api/v1/requests/{request_id}", key)
    assert request["breached_at"] is not None, request
    assert instant(request["breached_at"]) == first_breach
    assert request["status"] == "new"

    breached = await api(client, "GET", "/api/v1/requests", key, params={"breached": "true"})
    assert request_id in [item["id"] for item in breached["items"]]
    never = await api(client, "GET", "/api/v1/requests", key, params={"breached": "false"})
    assert request_id not in [item["id"] for item in never["items"]]

    sla = await api(client, "GET", f"/api/v1/requests/{request_id}/sla", key)
    assert sla["request_id"] == request_id
    clocks = {clock["name"]: clock for clock in sla["clocks"]}
    assert set(clocks) == {"first_response", "resolution"}
    for name, target in (("first_response", FIRST_RESPONSE), ("resolution", RESOLUTION)):
        clock = clocks[name]
        assert clock["state"] == "breached", clock
        assert clock["target_seconds"] == target.total_seconds()
        assert clock["remaining_seconds"] == 0
        assert clock["elapsed_seconds"] >= target.total_seconds()
        assert instant(clock["due_at"]) == scenario.created_at + target
        assert instant(clock["breached_at"]) == scenario.created_at + target
        assert clock["warnings_sent"] == list(THRESHOLDS)

    # The gateway's own record: eight deliveries, each delivered on its first attempt.
    deliveries = await api(
        client, "GET", f"/api/v1/subscriptions/{scenario.subscription['id']}/deliveries", key
    )
    mine = [d for d in deliveries["items"] if d["event_id"] in scenario.expected]
    assert sorted(d["event_id"] for d in mine) == sorted(scenario.expected)
    assert all(d["status"] == "delivered" for d in mine), mine


async def test_a_p1_request_warns_then_breaches_once_each_on_the_calendar(
    database_url: str | None,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = stack_environment(tmp_path, database_url)
    env.update(FAST_DELIVERY)
    stack = await asyncio.to_thread(launch, env, tmp_path / "up.log")
    try:
        receiver = WebhookReceiver()
        async with (
            receiver.running(),
            httpx.AsyncClient(base_url=stack.gateway, timeout=15, trust_env=False) as client,
        ):
            scenario = await set_up(client, receiver, stack.admin_key)
            # Another team subscribes the same receiver: were its subscription to get this
            # team's events, every event would arrive twice and the exactly-once check fail.
            outsider = await create_partner(
                client, stack.admin_key, f"other-{uuid.uuid4().hex[:6]}"
            )
            await subscribe(client, outsider, receiver.url, ["sla.warning", "sla.breached"])
            await scenario.file()
            await scenario.wait_for_all()
            check_receipts(scenario)
            await check_request_shows_the_breach(scenario)
            path = f"/api/v1/requests/{scenario.request_id}/sla"
            assert_problem(await client.get(path, headers=bearer(outsider)), 404)
            assert_problem(await client.get(path), 401)
    finally:
        code = await asyncio.to_thread(stop, stack.process)
    assert code == 0, stack.output.read_text()


async def wait_delivered(scenario: Scenario, event_id: str, *, within: float = 15) -> None:
    """Until the gateway recorded this event's delivery as delivered (nothing left in flight)."""
    path = f"/api/v1/subscriptions/{scenario.subscription['id']}/deliveries"
    deadline = time.monotonic() + within
    while True:
        page = await api(scenario.client, "GET", path, scenario.partner_key)
        if any(d["event_id"] == event_id and d["status"] == "delivered" for d in page["items"]):
            return
        assert time.monotonic() < deadline, f"{event_id} never recorded as delivered: {page}"
        await asyncio.sleep(0.1)


async def test_a_worker_killed_between_warning_and_breach_still_notifies_exactly_once(
    database_url: str | None,  # noqa: F811
    temporal_address: str,
    tmp_path: Path,
) -> None:
    env = parts_environment(
        tmp_path / "data", temporal_address=temporal_address, database_url=database_url
    )
    receiver = WebhookReceiver()
    parts: LocalParts
    async with (
        receiver.running(),
        running_parts(env) as parts,
        httpx.AsyncClient(base_url=parts.gateway_url, timeout=15, trust_env=False) as client,
    ):
        scenario = await set_up(client, receiver, parts.admin_key)
        await scenario.file()
        first = f"request-{scenario.request_id}:first_response:warning:50:0"
        await scenario.wait_for(first, within=FIRST_RESPONSE.total_seconds() + 60)
        await wait_delivered(scenario, first)

        # SIGKILL: no graceful shutdown, in-flight tasks and the sticky cache die with it.
        worker = parts.processes["worker"]
        parts.kill("worker")
        assert worker.returncode == -9
        killed_at = time.time()
        # Down long enough for the 75 % warning (15 s) to fall due while nobody runs timers.
        assert scenario.created_at is not None
        down_until = (scenario.created_at + timedelta(seconds=16)).timestamp()
        await asyncio.sleep(max(down_until - time.time(), 2.0))
        assert not [r for r in scenario.receipts() if r.arrived_at > killed_at]
        await parts.restart_worker()
        # Timers due during the outage fire late; Temporal hands the workflows to the new worker
        # once the dead worker's sticky queue times out: allow that, then demand punctuality.
        back = datetime.fromtimestamp(time.time() + 10, scenario.created_at.tzinfo)

        await scenario.wait_for_all()
        check_receipts(scenario, on_time_after=back)
        await check_request_shows_the_breach(scenario)
