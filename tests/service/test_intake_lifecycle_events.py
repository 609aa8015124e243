"""Intake's catch-up route `GET /internal/requests/{id}/lifecycle-events` on each backend.

The request workflow reads it before raising a breach; it must give the events after a version
exactly as their outbox signals carry them (the priority right after each change included), to
the worker only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from services.common.identity import Role
from services.common.settings import Settings
from tests.service.k1_stack import events, fake_services, patch
from tests.service.test_intake_api import assert_problem
from tests.service.test_intake_sla import SlaIntake, running_intake


async def lifecycle_events(
    intake: SlaIntake, request_id: int, headers: dict[str, str], **params: Any
) -> httpx.Response:
    return await intake.http.get(
        f"/internal/requests/{request_id}/lifecycle-events", params=params, headers=headers
    )


async def test_events_after_a_version_come_as_signals_with_their_priority(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    async with running_intake(settings, identity_headers, fake_services(), worker=False) as intake:
        partner = intake.as_(team=unique_team, role=Role.PARTNER)
        analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")
        system = intake.as_(team="risk-mining", role=Role.SYSTEM, subject="worker")
        request = await intake.file(partner, priority="P2")
        rid = request["id"]
        triaged = await intake.http.post(
            f"/api/v1/requests/{rid}/transitions", json={"action": "triage"}, headers=analyst
        )
        assert triaged.status_code == 200, triaged.text
        raised = await patch(
            intake,
            rid,
            analyst,
            {"priority": "P0", "priority_reason": "Exec escalation"},
            version=2,
        )
        assert raised.status_code == 200, raised.text
        started = await intake.http.post(
            f"/api/v1/requests/{rid}/transitions", json={"action": "start"}, headers=analyst
        )
        assert started.status_code == 200, started.text
        audit = await events(intake, rid, partner)
        assert [e["request_version"] for e in audit] == [1, 2, 3, 4]

        response = await lifecycle_events(intake, rid, system)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["has_more"] is False
        assert [
            (e["event_id"], e["version"], e["kind"], e["action"], e["to_status"], e["priority"])
            for e in body["items"]
        ] == [
            (audit[0]["id"], 1, "created", None, "new", "P2"),
            (audit[1]["id"], 2, "transitioned", "triage", "triaged", "P2"),
            (audit[2]["id"], 3, "updated", None, "triaged", "P0"),
            (audit[3]["id"], 4, "transitioned", "start", "in_progress", "P0"),
        ]
        first = body["items"][1]
        assert first["request_id"] == rid
        assert (first["from_status"], first["actor"]) == ("new", "key-analyst")
        assert first["occurred_at"] == audit[1]["occurred_at"]

        # After a version, page by page: the priority is still the one after each change.
        page = (await lifecycle_events(intake, rid, system, after_version=1, limit=2)).json()
        assert [(e["version"], e["priority"]) for e in page["items"]] == [(2, "P2"), (3, "P0")]
        assert page["has_more"] is True
        rest = (await lifecycle_events(intake, rid, system, after_version=3, limit=2)).json()
        assert [(e["version"], e["priority"]) for e in rest["items"]] == [(4, "P0")]
        assert rest["has_more"] is False
        done = (await lifecycle_events(intake, rid, system, after_version=4)).json()
        assert done == {"items": [], "has_more": False}


async def test_the_catch_up_route_is_for_the_worker_only_and_validates(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    async with running_intake(settings, identity_headers, fake_services(), worker=False) as intake:
        partner = intake.as_(team=unique_team, role=Role.PARTNER)
        system = intake.as_(team="risk-mining", role=Role.SYSTEM, subject="worker")
        rid = (await intake.file(partner))["id"]
        for role in (Role.PARTNER, Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN):
            headers = intake.as_(team=unique_team, role=role)
            assert_problem(await lifecycle_events(intake, rid, headers), 403, "forbidden")
            # The role is checked before the query: no hint about valid input.
            assert_problem(await lifecycle_events(intake, rid, headers, limit=0), 403)
        assert_problem(await lifecycle_events(intake, rid, {}), 401, "unauthorized")
        assert_problem(await lifecycle_events(intake, 2147483600, system), 404, "not-found")
        for params in (
            {"after_version": -1},
            {"after_version": "two"},
            {"after_version": 2**40},
            {"limit": 0},
            {"limit": 201},
        ):
            assert_problem(await lifecycle_events(intake, rid, system, **params), 422)
        assert_problem(await lifecycle_events(intake, 0, system), 422)
        assert_problem(
            await intake.http.get("/internal/requests/x/lifecycle-events", headers=system), 422
        )
