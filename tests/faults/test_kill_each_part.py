"""Issue 8, reliability 1: SIGKILL each part of the stack in turn while a load runs, restart it,
and check that nothing was lost or done twice (see tests/faults/checks.py for what is counted).
"""

from __future__ import annotations

import asyncio
import time

import pytest

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

pytestmark = pytest.mark.timeout(480)

# Killed in this order (a group at once); each stays down DOWN_SECONDS, and the load runs
# UP_SECONDS with everything up between kills. Nothing in the load calls escalation or sop: they
# are killed together to keep the suite short, and must come back ready.
VICTIMS: tuple[tuple[str, ...], ...] = (
    ("worker",),
    ("intake",),
    ("gateway",),
    ("escalation", "sop"),
    ("temporal",),
)
DOWN_SECONDS = 2.0
UP_SECONDS = 2.0


async def test_every_part_killed_mid_load_loses_nothing_and_doubles_nothing(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = faults.stack
    team = await faults.team("kill9")
    load = LoadGenerator(faults.client, team.partner_key, team.analyst_key)
    counts = Counts()
    load.start()
    try:
        await asyncio.sleep(UP_SECONDS)
        for group in VICTIMS:
            for victim in group:
                stack.kill(victim)
            await asyncio.sleep(DOWN_SECONDS)
            took = await asyncio.gather(*(stack.restart(victim) for victim in group))
            for victim, seconds in zip(group, took, strict=True):
                counts[f"{victim}: SIGKILLed, back in"] = f"{DOWN_SECONDS + seconds:.1f} s"
            if group == ("temporal",):
                # The worker and the services reconnect by themselves; wait for the worker's
                # polls to reach the new server before the next phase.
                await stack.wait_ready("worker", since=time.time())
            await asyncio.sleep(UP_SECONDS)
    finally:
        await load.stop()

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
        print("\n" + counts.render("kill -9 of each part under load: what was checked"))
