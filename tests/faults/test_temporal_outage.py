"""Issue 8, reliability 2: Temporal down for a while. Filing and transitions keep working (from the
database), the outbox backlog shows in intake's `/readyz` detail and `/metrics`, and it drains
when Temporal returns; then the same end-to-end checks as the kill test.

The issue says "a minute"; the suite uses RISKDESK_FAULTS_TEMPORAL_OUTAGE_SECONDS (default 20 s)
to stay fast: nothing in the outbox or the workflows depends on the outage's length (rows back
off to `outbox_max_backoff_seconds` and are retried), so `RISKDESK_FAULTS_TEMPORAL_OUTAGE_SECONDS=60`
runs the issue's minute unchanged.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.temporal import connect_temporal
from tests.faults.checks import (
    Counts,
    all_requests,
    check_notifications,
    check_outboxes_drained,
    check_requests,
    check_workflows,
)
from tests.faults.conftest import FIRST_RESPONSE_SECONDS, Faults
from tests.faults.load import LoadGenerator
from tests.faults.stack import SERVICES

OUTAGE_SECONDS = float(os.environ.get("RISKDESK_FAULTS_TEMPORAL_OUTAGE_SECONDS", "20"))
pytestmark = pytest.mark.timeout(420 + 2 * OUTAGE_SECONDS)


def outbox_gauges(metrics_text: str, service: str) -> tuple[float, float]:
    """(riskdesk_outbox_pending, riskdesk_outbox_oldest_age_seconds) of a service's /metrics."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("service") == service:
                values[sample.name] = sample.value
    return values["riskdesk_outbox_pending"], values["riskdesk_outbox_oldest_age_seconds"]


async def backlog(http: httpx.AsyncClient, intake_url: str) -> dict[str, Any]:
    """Intake's outbox backlog as /readyz and /metrics show it."""
    ready = await http.get(f"{intake_url}/readyz")
    assert ready.status_code == 200, ready.text  # Temporal down does not make intake unready
    metrics = await http.get(f"{intake_url}/metrics")
    assert metrics.status_code == 200
    pending, age = outbox_gauges(metrics.text, "intake")
    detail: dict[str, Any] = ready.json()
    return {"readyz": detail, "metric_pending": pending, "metric_oldest_age": age}


async def test_temporal_down_filing_goes_on_backlog_is_visible_and_drains(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = faults.stack
    intake_url = stack.url_of("intake")
    team = await faults.team("outage")
    load = LoadGenerator(faults.client, team.partner_key, team.analyst_key)
    counts = Counts()
    peak: dict[str, Any] = {}
    load.start()
    try:
        await asyncio.sleep(2)
        stack.kill("temporal")
        down_at = time.time()
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            while time.time() - down_at < OUTAGE_SECONDS:
                seen = await backlog(http, intake_url)
                if seen["readyz"]["outbox_pending"] >= peak.get("pending", 0):
                    peak = {
                        "pending": seen["readyz"]["outbox_pending"],
                        "oldest_age": seen["readyz"]["outbox_oldest_age_seconds"],
                        "metric_pending": seen["metric_pending"],
                        "metric_oldest_age": seen["metric_oldest_age"],
                    }
                await asyncio.sleep(1)
            accepted_during_outage = load.accepted_since(down_at)
            await stack.restart("temporal")
            back_at = time.time()
            # Drained: every row written while Temporal was down has gone (the load goes on, so
            # newer rows may be pending for a moment), as both /readyz and /metrics tell.
            while True:
                seen = await backlog(http, intake_url)
                since_back = time.time() - back_at
                oldest = seen["readyz"]["outbox_oldest_age_seconds"]
                if (oldest is None or oldest < since_back) and (
                    seen["metric_oldest_age"] < since_back
                ):
                    break
                assert since_back < 60, f"backlog not drained: {seen}"
                await asyncio.sleep(0.25)
            drained_in = time.time() - back_at
        await stack.wait_ready("worker", since=back_at)
        await asyncio.sleep(2)
    finally:
        await load.stop()

    counts["Temporal down for"] = f"{OUTAGE_SECONDS:.0f} s"
    counts["calls answered 2xx while it was down"] = accepted_during_outage
    counts["peak outbox backlog (/readyz)"] = peak.get("pending")
    counts["its oldest row's age (/readyz)"] = f"{peak.get('oldest_age') or 0:.1f} s"
    counts["same, /metrics gauges"] = (
        f"{peak.get('metric_pending'):.0f} rows, {peak.get('metric_oldest_age') or 0:.1f} s"
    )
    counts["backlog drained after Temporal returned in"] = f"{drained_in:.1f} s"
    assert accepted_during_outage > 0
    assert peak["pending"] > 0
    # The gauges read the same table at about the same moment as /readyz.
    assert peak["metric_pending"] > 0
    assert not math.isnan(peak["metric_oldest_age"])
    assert peak["oldest_age"] > OUTAGE_SECONDS / 2

    requests = await all_requests(faults.client, team.partner_key)
    check_requests(requests, load, counts)
    temporal = await connect_temporal(stack.temporal_address, "default")
    await check_workflows(faults.client, temporal, team.partner_key, requests, counts)
    await check_outboxes_drained({s: stack.url_of(s) for s in SERVICES}, counts)
    await check_notifications(
        faults.client,
        faults.receiver,
        load,
        team.partner_key,
        int(team.subscription["id"]),
        counts,
        target_seconds=FIRST_RESPONSE_SECONDS,
    )
    with capsys.disabled():
        print("\n" + counts.render("Temporal down under load: what was checked"))
