"""Issue 8, reliability 4: two analysts change the same request at the same instant, through the
gateway of the running stack, each with their own key. One wins; the other gets 409 (a transition
the new state no longer allows, or a lost compare-and-set) or 412 (a PATCH whose `If-Match` is
no longer current); the audit log has exactly the winner's event and the workflow agrees.

In-process races on both backends: tests/service/test_intake_api.py
(`test_concurrent_transitions_have_one_winner`, `test_a_transition_based_on_a_stale_read_loses`).
The outbox dispatcher in two processes on one PostgreSQL delivering each event once, in order:
tests/infra/test_outbox_processes.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from bench.sla_lateness import api, bearer
from services.common.temporal import connect_temporal
from tests.faults.checks import Counts, check_workflows
from tests.faults.conftest import Faults

pytestmark = pytest.mark.timeout(180)

ROUNDS = 6
PROBLEM = "application/problem+json"

# (first analyst's action, second analyst's action): both allowed from `new`, only one can win.
RACES: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = (
    ({"action": "triage"}, {"action": "triage"}),
    ({"action": "triage"}, {"action": "reject", "reason": "out of scope"}),
)


async def _analyst(faults: Faults, name: str) -> str:
    created = await api(
        faults.client,
        "POST",
        "/api/v1/keys",
        faults.admin_key,
        expect=201,
        json={"name": name, "team": "risk-mining", "role": "analyst"},
    )
    return str(created["key"])


def _loser(responses: list[httpx.Response], status: int) -> dict[str, Any]:
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, status], [(r.status_code, r.text) for r in responses]
    loser = next(r for r in responses if r.status_code == status)
    assert loser.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = loser.json()
    assert body["status"] == status
    return body


async def test_two_analysts_at_once_one_wins_the_log_stays_consistent(
    faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    client = faults.client
    team = await faults.team("race")
    analysts = [await _analyst(faults, "analyst one"), await _analyst(faults, "analyst two")]
    counts = Counts()
    outcomes: Counter[str] = Counter()
    ids: list[int] = []

    for number in range(ROUNDS):
        body = {"request_type": "data_request", "title": f"Race {number}", "priority": "P3"}
        created = await api(
            client, "POST", "/api/v1/requests", team.partner_key, expect=201, json=body
        )
        request_id = int(created["id"])
        ids.append(request_id)
        path = f"/api/v1/requests/{request_id}"

        # Both read version 1, then both PATCH with If-Match "1": one 200, one 412.
        etag = (await client.get(path, headers=bearer(analysts[0]))).headers["etag"]
        patches = await asyncio.gather(
            *(
                client.patch(
                    path,
                    json={"title": f"Race {number} edited by analyst {n}"},
                    headers={**bearer(key), "If-Match": etag},
                )
                for n, key in enumerate(analysts)
            )
        )
        _loser(list(patches), 412)
        outcomes["PATCH with the same If-Match: 200 + 412"] += 1

        # Both transition at once: one 200, one 409.
        first, second = RACES[number % len(RACES)]
        transitions = await asyncio.gather(
            client.post(f"{path}/transitions", json=first, headers=bearer(analysts[0])),
            client.post(f"{path}/transitions", json=second, headers=bearer(analysts[1])),
        )
        problem = _loser(list(transitions), 409)
        assert "allowed_actions" in problem or "conflict" in problem["type"], problem
        outcomes[f"{first['action']} vs {second['action']}: 200 + 409"] += 1

        winner = next(r for r in transitions if r.status_code == 200).json()
        current = await api(client, "GET", path, team.partner_key)
        assert (current["status"], current["version"]) == (winner["status"], 3)
        events = (await api(client, "GET", f"{path}/events", team.partner_key))["items"]
        # created, the winning edit, the winning transition: nothing of the losers.
        assert [e["request_version"] for e in events] == [1, 2, 3]
        assert events[-1]["to_status"] == winner["status"]
        assert current["title"] in {f"Race {number} edited by analyst {n}" for n in (0, 1)}

    requests = [await api(client, "GET", f"/api/v1/requests/{i}", team.partner_key) for i in ids]
    temporal = await connect_temporal(faults.stack.temporal_address, "default")
    await check_workflows(client, temporal, team.partner_key, requests, counts)
    for outcome, times in outcomes.items():
        counts[outcome] = times
    with capsys.disabled():
        print("\n" + counts.render("two analysts at once: what was checked"))
