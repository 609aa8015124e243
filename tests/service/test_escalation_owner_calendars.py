"""Owners' calendars end to end: the real gateway app (its calendars and `/internal/calendars`),
the escalation service with its person directory, the worker and EscalationWorkflow.

Only the gateway's `POST /internal/events` is answered by a recorder (so every ladder notice can
be counted); every other gateway path is the real gateway app, mounted behind it on one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete
from starlette.applications import Starlette
from starlette.routing import Mount
from temporalio.client import Client

from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.escalation.app import create_app as create_escalation_app
from services.gateway.app import create_app as create_gateway_app
from services.gateway.calendars.models import BusinessCalendar
from services.gateway.keys.service import create_key
from services.gateway.runtime import GatewayRuntime
from tests.service.test_escalation_api import (
    EscalationStack,
    EventsReceiver,
    assert_problem,
    eventually,
    migrate,
    serve,
    staff,
)
from workflows.contracts import EscalationWorkflowState
from workflows.escalation import EscalationWorkflow
from workflows.worker import build_worker

ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class Stack:
    esc: EscalationStack
    gateway: GatewayRuntime
    gateway_http: httpx.AsyncClient

    async def admin_key(self) -> dict[str, str]:
        async with self.gateway.sessionmaker() as session:
            _key, plaintext = await create_key(
                session, team="risk-mining", role=Role.ADMIN, name="calendar admin"
            )
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}


@asynccontextmanager
async def running_stack(settings: Settings) -> AsyncIterator[Stack]:
    """Gateway (real app + events recorder) on one port, escalation app, worker."""
    receiver = EventsReceiver(secret=settings.identity_secret)
    settings = settings.model_copy(update={"gateway_port": receiver.port})
    await migrate(settings)
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    gateway_app = create_gateway_app(settings)
    front = Starlette(routes=[*receiver.app().routes, Mount("/", app=gateway_app)])
    escalation_app = create_escalation_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(gateway_app.router.lifespan_context(gateway_app))
        await stack.enter_async_context(serve(front, receiver.port))
        await stack.enter_async_context(escalation_app.router.lifespan_context(escalation_app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=escalation_app), base_url="http://escalation"
            )
        )
        gateway_http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}", trust_env=False)
        )
        temporal: Client = await connect_temporal(settings.temporal_address, "default")
        await stack.enter_async_context(build_worker(temporal, settings))
        yield Stack(
            esc=EscalationStack(
                http=http, settings=settings, temporal_client=temporal, receiver=receiver
            ),
            gateway=gateway_app.state.runtime,
            gateway_http=gateway_http,
        )


async def test_internal_calendars_are_for_riskdesk_processes_only(
    make_settings: Callable[..., Settings], identity_headers: Callable[..., dict[str, str]]
) -> None:
    settings = make_settings()
    async with running_stack(settings) as stack:
        system = identity_headers(team="risk-mining", role=Role.SYSTEM, subject="worker")
        response = await stack.gateway_http.get("/internal/calendars/24x7", headers=system)
        assert response.status_code == 200, response.text
        assert response.json()["calendar"] == {"timezone": "UTC", "always_open": True}
        assert response.headers["ETag"] == f'"{response.json()["version"]}"'
        india = await stack.gateway_http.get("/internal/calendars/india", headers=system)
        assert india.json()["calendar"]["timezone"] == "Asia/Kolkata"
        assert_problem(
            await stack.gateway_http.get("/internal/calendars/no-such", headers=system), 404
        )
        assert_problem(
            await stack.gateway_http.get("/internal/calendars/" + "x" * 65, headers=system), 422
        )
        # Staff identities and API keys are not the worker: 403 / 401.
        analyst = identity_headers(team="risk-mining", role=Role.ANALYST)
        assert_problem(
            await stack.gateway_http.get("/internal/calendars/24x7", headers=analyst), 403
        )
        assert_problem(
            await stack.gateway_http.get(
                "/internal/calendars/24x7", headers=await stack.admin_key()
            ),
            401,
        )
        assert_problem(await stack.gateway_http.get("/internal/calendars/24x7"), 401)


async def test_the_ladder_follows_the_owners_directory_manager_and_gateway_calendar(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    settings = make_settings(
        escalation_reminder_lead_seconds=0.0,
        escalation_ladder_delay_seconds=1.0,
        escalation_ladder_repeats=0,
    )
    suffix = uuid.uuid4().hex[:8]
    closed_id = f"on-leave-{suffix}"
    today = datetime.now(UTC).date()
    # An owner on leave: a calendar open around the clock except today and the next three days.
    on_leave = {
        "timezone": "UTC",
        "hours": {day: [["00:00", "24:00"]] for day in ALL_DAYS},
        "holidays": None,
        "closed_dates": [(today + timedelta(days=n)).isoformat() for n in range(-1, 4)],
    }
    async with running_stack(settings) as stack:
        esc = stack.esc
        try:
            created = await stack.gateway_http.post(
                "/api/v1/calendars",
                json={"id": closed_id, "name": "On leave", "calendar": on_leave},
                headers=await stack.admin_key(),
            )
            assert created.status_code == 201, created.text

            pm = staff(identity_headers, Role.PROGRAM_MANAGER, subject=f"pm-{suffix}")
            analyst = staff(identity_headers)
            awake, away, plain = f"awake-{suffix}", f"away-{suffix}", f"plain-{suffix}"
            directory = {
                awake: {"manager_handle": f"boss-{suffix}", "calendar_id": "24x7"},
                away: {"manager_handle": f"boss-{suffix}", "calendar_id": closed_id},
                plain: {},
            }
            for who, fields in directory.items():
                response = await esc.http.put(
                    f"/api/v1/people/{who}",
                    json={"display_name": who, "email": f"{who}@example.com", **fields},
                    headers=pm,
                )
                assert response.status_code == 201, response.text
            escalation = await esc.raise_escalation(
                analyst, team=unique_team, program_manager=f"pm-{suffix}"
            )
            eid = escalation["id"]

            # Default due dates: on the owner's gateway calendar (24x7: ten calendar days), or the
            # program office's without one.
            before = datetime.now(UTC)
            later = await esc.add_item(eid, analyst, owner=awake, title="later")
            assert later["calendar_source"] == "owner"
            assert later["calendar_id"] == "24x7"
            assert later["calendar"] == {"timezone": "UTC", "always_open": True}
            due = datetime.fromisoformat(later["due_at"])
            assert timedelta(days=10) <= due - before < timedelta(days=10, minutes=5)
            india = await esc.add_item(eid, analyst, owner=plain, title="india")
            assert india["calendar_source"] == "default"
            assert india["calendar"]["timezone"] == "Asia/Kolkata"

            # Overdue in a moment: the awake owner's item climbs to the directory's manager (or to
            # the item's own override); the owner on leave hears nothing.
            soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
            climbing = await esc.add_item(eid, analyst, owner=awake, title="a", due_at=soon)
            overridden = await esc.add_item(
                eid, analyst, owner=awake, title="b", due_at=soon, owner_manager=f"dep-{suffix}"
            )
            quiet = await esc.add_item(eid, analyst, owner=away, title="c", due_at=soon)

            def notices(item: dict[str, Any]) -> list[tuple[str, str]]:
                return [
                    (c["data"]["level"], c["data"]["recipient"])
                    for c in esc.receiver.of(eid)
                    if c["data"]["action_item_id"] == item["id"]
                ]

            async def both_climbed() -> bool:
                return len(notices(climbing)) == 3 and len(notices(overridden)) == 3

            await eventually(both_climbed, bool, within=60)
            assert notices(climbing) == [
                ("owner", awake),
                ("owner_manager", f"boss-{suffix}"),
                ("program_manager", f"pm-{suffix}"),
            ]
            assert notices(overridden)[1] == ("owner_manager", f"dep-{suffix}")
            handle = esc.temporal.get_workflow_handle(f"escalation-{eid}")
            state: EscalationWorkflowState = await handle.query(EscalationWorkflow.state)
            cached = {c.calendar_id: c for c in state.calendars}
            assert set(cached) == {"24x7", closed_id}
            assert cached["24x7"].spec == {"timezone": "UTC", "always_open": True}
            assert cached[closed_id].spec is not None
            assert cached[closed_id].spec["closed_dates"] == on_leave["closed_dates"]
            assert notices(quiet) == []

            # The item's own calendar overrides the owner's: now it climbs too.
            moved = await esc.http.patch(
                f"/api/v1/action-items/{quiet['id']}",
                json={"calendar": {"timezone": "UTC", "always_open": True}},
                headers=analyst,
            )
            assert moved.status_code == 200, moved.text
            assert moved.json()["calendar_source"] == "item"

            async def quiet_climbed() -> list[tuple[str, str]]:
                return notices(quiet)

            await eventually(quiet_climbed, lambda got: len(got) == 3, within=60)
            assert [level for level, _ in notices(quiet)] == [
                "owner",
                "owner_manager",
                "program_manager",
            ]
        finally:
            async with stack.gateway.sessionmaker() as session:
                await session.execute(
                    delete(BusinessCalendar).where(BusinessCalendar.id == closed_id)
                )
                await session.commit()
