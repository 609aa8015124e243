"""Shared helpers of the K1 intake tests (triage, assignment, comments): the in-process intake of
test_intake_sla (real outbox, Temporal dev server, worker running the real intake-side activities)
with an SLA policy for every priority, and small HTTP helpers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.service.test_intake_sla import SlaIntake
from tests.workflows.test_sla_clocks import FakeServices, policy


def fake_services() -> FakeServices:
    """The gateway side of the worker: one policy per priority, first response in an hour."""
    return FakeServices(
        policies={
            p: policy(first_response="PT1H", resolution="PT2H", thresholds=[], policy_id=p.lower())
            for p in ("P0", "P1", "P2", "P3")
        }
    )


async def patch(
    intake: SlaIntake,
    request_id: int,
    headers: dict[str, str],
    body: Any,
    *,
    version: int | str | None,
) -> httpx.Response:
    """PATCH a request; `version` becomes `If-Match: "<version>"` (a str is sent as is)."""
    extra = dict(headers)
    if isinstance(version, int):
        extra["If-Match"] = f'"{version}"'
    elif isinstance(version, str):
        extra["If-Match"] = version
    return await intake.http.patch(f"/api/v1/requests/{request_id}", json=body, headers=extra)


async def events(
    intake: SlaIntake, request_id: int, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Every event of a request, oldest first."""
    response = await intake.http.get(
        f"/api/v1/requests/{request_id}/events", params={"limit": 200}, headers=headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
