"""What the fault tests verify after the faults, counted so the test can print what it checked.

- every accepted request exists exactly once (no retry filed twice, nothing lost);
- each request ended in the status its accepted actions lead to;
- every event of the request's audit log reached its workflow as a signal, in commit order, and
  the workflow applied them up to the final status (its `RiskdeskStatus` search attribute; it
  completed if and only if the request is closed); a signal sent again (an outbox row delivered
  twice after a kill) is counted, and the workflow ignores it by event id;
- no outbox row is left pending in any service;
- every due SLA notification reached the webhook receiver, once per event id (its
  Idempotency-Key, which receivers de-duplicate on; a repeated call is counted), and the gateway
  recorded each delivery once, as delivered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from bench.sla_lateness import WebhookReceiver, api
from tests.faults.load import LoadGenerator
from workflows.contracts import REQUEST_EVENT_SIGNAL
from workflows.search_attributes import REQUEST_STATUS

# Generous: after an outage the worker catches up on every timer and signal at once, and a
# machine shared with other work may run its workflow tasks slowly.
CONSISTENT_WITHIN = 240.0
HEALTHY_RUN_STATUSES = frozenset({"RUNNING", "COMPLETED", "CONTINUED_AS_NEW"})


@dataclass
class Counts:
    """What was checked, by name, in the order it was checked."""

    values: dict[str, Any] = field(default_factory=dict)

    def __setitem__(self, name: str, value: Any) -> None:
        self.values[name] = value

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def render(self, title: str) -> str:
        """A small table for the test output."""
        width = max(len(name) for name in self.values)
        lines = [f"== {title}"]
        lines += [f"   {name:<{width}}  {value}" for name, value in self.values.items()]
        return "\n".join(lines)


async def all_requests(client: httpx.AsyncClient, key: str) -> list[dict[str, Any]]:
    """Every request the key's team can see, following the cursor."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while True:
        page = await api(client, "GET", "/api/v1/requests", key, params=params)
        items += page["items"]
        if not page.get("next_cursor"):
            return items
        params["cursor"] = page["next_cursor"]


def check_requests(requests: list[dict[str, Any]], load: LoadGenerator, counts: Counts) -> None:
    """Exactly the accepted requests exist, once each, in the status their actions lead to."""
    ids = [int(r["id"]) for r in requests]
    titles = Counter(r["title"] for r in requests)
    counts["requests accepted (2xx)"] = len(load.filed)
    counts["requests in the database"] = len(ids)
    counts["retries of ambiguous failures"] = load.retries
    counts["answers by status"] = dict(sorted(load.answers.items()))
    assert not load.refusals, [vars(r) for r in load.refusals]
    assert sorted(ids) == sorted(load.filed), (
        f"missing {sorted(set(load.filed) - set(ids))}, extra {sorted(set(ids) - set(load.filed))}"
    )
    assert max(titles.values()) == 1, [t for t, n in titles.items() if n > 1]
    assert "500" not in load.answers, load.answers
    by_id = {int(r["id"]): r for r in requests}
    wrong = {
        i: (by_id[i]["status"], f.final_status)
        for i, f in load.filed.items()
        if by_id[i]["status"] != f.final_status
    }
    assert not wrong, f"requests not in the status their accepted actions lead to: {wrong}"
    counts["final statuses"] = dict(Counter(r["status"] for r in requests))


async def _events(client: httpx.AsyncClient, key: str, request_id: int) -> list[dict[str, Any]]:
    page = await api(
        client, "GET", f"/api/v1/requests/{request_id}/events", key, params={"limit": 200}
    )
    assert not page.get("next_cursor")
    events: list[dict[str, Any]] = page["items"]
    return events


@dataclass
class WorkflowView:
    """What Temporal holds for a request's workflow, read without asking the worker anything."""

    running: bool
    status: str | None  # the RiskdeskStatus search attribute the workflow keeps current
    signalled_event_ids: list[str]  # event ids of every `request_event` signal, in order
    runs: list[tuple[str, str]]  # (run id, status) of every run, oldest first


async def _workflow(temporal: Client, request_id: int) -> WorkflowView:
    # Read from history and visibility rather than by query: a query needs the worker to replay
    # the workflow, which on a busy machine competes with the very catch-up being checked.
    workflow_id = f"request-{request_id}"
    handle = temporal.get_workflow_handle(workflow_id)
    description = await handle.describe()
    # A long-lived workflow continues as new: its signals are spread over its runs.
    listed = [run async for run in temporal.list_workflows(f"WorkflowId = '{workflow_id}'")]
    if description.run_id not in {run.run_id for run in listed}:
        listed.append(description)  # visibility lags behind the newest run
    listed.sort(key=lambda run: run.start_time)
    event_ids: list[str] = []
    for run in listed:
        history = temporal.get_workflow_handle(workflow_id, run_id=run.run_id)
        async for event in history.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                attributes = event.workflow_execution_signaled_event_attributes
                if attributes.signal_name == REQUEST_EVENT_SIGNAL:
                    payload = json.loads(attributes.input.payloads[0].data)
                    event_ids.append(str(payload["event_id"]))
    return WorkflowView(
        running=description.status == WorkflowExecutionStatus.RUNNING,
        status=description.typed_search_attributes.get(REQUEST_STATUS),
        signalled_event_ids=event_ids,
        runs=[(run.run_id, run.status.name if run.status else "?") for run in listed],
    )


async def check_workflows(
    client: httpx.AsyncClient,
    temporal: Client,
    key: str,
    requests: list[dict[str, Any]],
    counts: Counts,
) -> None:
    """Each request's workflow was signalled every audit event (a repeat only ever as a repeat),
    applied them up to the final status, and is still running unless the request is closed."""
    audit = {int(r["id"]): await _events(client, key, int(r["id"])) for r in requests}
    version = {int(r["id"]): int(r["version"]) for r in requests}
    status = {int(r["id"]): str(r["status"]) for r in requests}
    for request_id, events in audit.items():
        # The audit log itself is whole: one event per version, in order.
        assert [e["request_version"] for e in events] == list(range(1, version[request_id] + 1))
    pending = set(audit)
    signals: dict[int, int] = {}
    runs: dict[int, int] = {}
    mismatches: dict[int, Any] = {}
    limit = asyncio.Semaphore(8)
    deadline = time.monotonic() + CONSISTENT_WITHIN

    async def probe(request_id: int) -> None:
        async with limit:
            try:
                view = await _workflow(temporal, request_id)
            except RPCError as error:
                mismatches[request_id] = repr(error)
                return
        # A run that failed or was terminated is a lost workflow, however the next one went.
        broken = [run for run in view.runs if run[1] not in HEALTHY_RUN_STATUSES]
        if broken:
            mismatches[request_id] = {"broken runs": view.runs}
            return
        wanted_ids = [e["id"] for e in audit[request_id]]
        # Distinct signals in commit order are exactly the audit log (order holds per workflow).
        distinct = list(dict.fromkeys(view.signalled_event_ids))
        closed = status[request_id] == "closed"
        seen = (distinct, view.status, view.running)
        wanted = (wanted_ids, status[request_id], not closed)
        if seen == wanted:
            pending.discard(request_id)
            signals[request_id] = len(view.signalled_event_ids)
            runs[request_id] = len(view.runs)
            mismatches.pop(request_id, None)
        else:
            mismatches[request_id] = {"workflow": seen, "audit": wanted}

    # The outbox and the workflows catch up asynchronously after the last fault.
    while pending and time.monotonic() < deadline:
        await asyncio.gather(*(probe(i) for i in list(pending)))
        if pending:
            await asyncio.sleep(1)
    assert not pending, f"workflows that do not reflect their request: {mismatches}"
    total = sum(len(events) for events in audit.values())
    counts["audit events"] = total
    counts["audit events signalled to workflows, in order"] = total
    counts["workflows showing the final status"] = len(audit)
    counts["workflows completed (closed requests)"] = sum(s == "closed" for s in status.values())
    counts["workflow runs (a run continues as new when its history grows)"] = sum(runs.values())
    counts["signals sent again (ignored as repeats)"] = sum(signals.values()) - total


async def check_outboxes_drained(
    urls: dict[str, str], counts: Counts, *, within: float = 60
) -> None:
    """Every service's /readyz shows no outbox row pending."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        for service, url in urls.items():
            while True:
                detail = (await client.get(f"{url}/readyz")).json()
                if detail.get("outbox_pending") == 0:
                    break
                assert time.monotonic() < deadline, f"{service} outbox not drained: {detail}"
                await asyncio.sleep(0.5)
    counts["outbox rows pending at the end"] = 0


async def _triaged_before_deadline(
    client: httpx.AsyncClient, key: str, ids: set[int], target_seconds: float
) -> set[int]:
    """The requests among `ids` whose triage was committed before their first-response deadline."""
    found: set[int] = set()
    for request_id in ids:
        events = await _events(client, key, request_id)
        created = datetime.fromisoformat(events[0]["occurred_at"])
        triage = next((e for e in events if e["action"] == "triage"), None)
        if triage is not None and datetime.fromisoformat(triage["occurred_at"]) < created + (
            timedelta(seconds=target_seconds)
        ):
            found.add(request_id)
    return found


def breach_id(request_id: int) -> str:
    """The event id of a request's first-response breach (raised once per clock)."""
    return f"request-{request_id}:first_response:breached:0"


async def check_notifications(
    client: httpx.AsyncClient,
    receiver: WebhookReceiver,
    load: LoadGenerator,
    partner_key: str,
    subscription_id: int,
    counts: Counts,
    *,
    target_seconds: float,
) -> None:
    """Every idle request's breach arrived once (by event id); no other request got two; the
    gateway recorded every delivery as delivered."""
    ids = set(load.filed)
    idle = {i for i, f in load.filed.items() if f.plan == "idle"}
    expected = {breach_id(i) for i in idle}
    possible = {breach_id(i) for i in ids}

    def mine() -> list[str]:
        return [
            r.event_id
            for r in receiver.receipts
            if r.type == "sla.breached" and r.data.get("request_id") in ids
        ]

    deadline = time.monotonic() + target_seconds + 150
    while not expected <= set(mine()) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)  # room for a (wrong) second delivery to arrive
    received = Counter(mine())
    counts["breaches due (idle requests)"] = len(expected)
    counts["breach notifications received (distinct)"] = len(received)
    worked = {int(event_id.split(":")[0].removeprefix("request-")) for event_id in received}
    worked -= idle
    in_time = await _triaged_before_deadline(client, partner_key, worked, target_seconds)
    counts["of them for worked requests"] = len(worked)
    # A triage made in time whose signal reached the workflow after the deadline (the outbox
    # waited for Temporal or the worker): the workflow reads the request's events from intake
    # before it raises a breach, so the late signal must not make it breach.
    counts["  of which triaged before the deadline (signal late)"] = len(in_time)
    assert not in_time, f"breached although triaged before the deadline: {sorted(in_time)}"
    assert expected <= set(received), f"missing {sorted(expected - set(received))}"
    assert set(received) <= possible, sorted(set(received) - possible)
    # A kill between the receiver's answer and the worker recording it sends the call again;
    # receivers de-duplicate on the Idempotency-Key (the event id, the same on every retry), so
    # a repeat is counted and shown, and must carry the same key.
    repeated = {event_id: n for event_id, n in received.items() if n > 1}
    counts["breach calls repeated (same Idempotency-Key)"] = sum(repeated.values()) - len(repeated)
    for receipt in receiver.receipts:
        if receipt.event_id in received:
            assert receipt.headers.get("idempotency-key") == receipt.event_id, receipt.headers

    deliveries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    path = f"/api/v1/subscriptions/{subscription_id}/deliveries"
    while True:
        page = await api(client, "GET", path, partner_key, params=params)
        deliveries += page["items"]
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    recorded = Counter(d["event_id"] for d in deliveries)
    assert set(recorded) == set(received), set(recorded) ^ set(received)
    assert max(recorded.values(), default=1) == 1
    statuses = Counter(d["status"] for d in deliveries)
    assert statuses == Counter({"delivered": len(received)}), statuses
    counts["deliveries recorded as delivered"] = statuses["delivered"]
