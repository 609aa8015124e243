"""Business calendars through the real gateway app and database: seeds, CRUD, validation, roles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from services.common.business_time import Calendar
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.calendars.models import BusinessCalendar
from services.gateway.keys.service import create_key
from services.gateway.runtime import GatewayRuntime
from services.gateway.sla.models import SlaPolicy

PROBLEM = "application/problem+json"
SEEDED_CALENDARS = {"india", "costa-rica", "san-jose", "24x7"}
SEEDED_POLICIES = {"p0-critical", "p1-high", "p2-normal", "default"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["09:00", "24:00"]]},
    "holidays": {"country": "DE", "subdivision": None},
    "closed_dates": ["2026-12-24"],
}


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    runtime: GatewayRuntime

    async def key(self, role: Role, team: str = "risk-mining") -> dict[str, str]:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name=f"{role} key")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    async def forget_test_rows(self) -> None:
        # PostgreSQL tables are shared by the whole session: leave only the seeds behind.
        async with self.runtime.sessionmaker() as session:
            await session.execute(delete(SlaPolicy).where(SlaPolicy.id.not_in(SEEDED_POLICIES)))
            await session.execute(
                delete(BusinessCalendar).where(BusinessCalendar.id.not_in(SEEDED_CALENDARS))
            )
            await session.commit()


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["detail"]
    return body


def error_fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


def unique_slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            gateway = Gateway(app=app, client=client, runtime=app.state.runtime)
            await gateway.forget_test_rows()
            try:
                yield gateway
            finally:
                await gateway.forget_test_rows()


@pytest.fixture
async def admin(gateway: Gateway) -> dict[str, str]:
    return await gateway.key(Role.ADMIN)


@pytest.fixture
async def partner(gateway: Gateway) -> dict[str, str]:
    return await gateway.key(Role.PARTNER, team="buyer-risk")


async def test_seeded_calendars_are_there_and_valid(
    gateway: Gateway, partner: dict[str, str]
) -> None:
    response = await gateway.client.get("/api/v1/calendars", headers=partner)
    assert response.status_code == 200, response.text
    items = {item["id"]: item for item in response.json()["items"]}
    assert set(items) >= SEEDED_CALENDARS
    assert items["india"]["calendar"] == {
        "timezone": "Asia/Kolkata",
        "hours": {day: [["09:00", "18:00"]] for day in WEEKDAYS},
        "holidays": {"country": "IN", "subdivision": None},
        "closed_dates": [],
    }
    assert items["costa-rica"]["calendar"]["timezone"] == "America/Costa_Rica"
    assert items["costa-rica"]["calendar"]["hours"]["mon"] == [["08:00", "17:00"]]
    assert items["costa-rica"]["calendar"]["holidays"] == {"country": "CR", "subdivision": None}
    assert items["san-jose"]["calendar"]["timezone"] == "America/Los_Angeles"
    assert items["san-jose"]["calendar"]["holidays"] == {"country": "US", "subdivision": "CA"}
    assert items["24x7"]["calendar"] == {"timezone": "UTC", "always_open": True}
    for calendar_id in SEEDED_CALENDARS:
        # Stored exactly as a posted calendar would be: normalized by the validator.
        spec = items[calendar_id]["calendar"]
        assert Calendar.from_spec(spec).to_spec() == spec


async def test_create_read_replace_a_calendar(gateway: Gateway, admin: dict[str, str]) -> None:
    calendar_id = unique_slug("berlin")
    created = await gateway.client.post(
        "/api/v1/calendars",
        json={"id": calendar_id, "name": "Berlin", "calendar": OFFICE},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/calendars/{calendar_id}"
    assert created.headers["etag"] == '"1"'
    body = created.json()
    assert body["version"] == 1
    assert body["calendar"]["hours"] == OFFICE["hours"]
    assert body["calendar"]["closed_dates"] == ["2026-12-24"]

    read = await gateway.client.get(f"/api/v1/calendars/{calendar_id}", headers=admin)
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["etag"] == '"1"'

    always = {"timezone": "Europe/Berlin", "always_open": True}
    replaced = await gateway.client.put(
        f"/api/v1/calendars/{calendar_id}",
        json={"name": "Berlin 24x7", "calendar": always},
        headers={**admin, "If-Match": '"1"'},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["calendar"] == always
    assert replaced.json()["version"] == 2
    assert replaced.json()["created_at"] == body["created_at"]
    assert replaced.headers["etag"] == '"2"'

    # A write made against the version read before is refused, and changes nothing.
    stale = await gateway.client.put(
        f"/api/v1/calendars/{calendar_id}",
        json={"name": "Lost update", "calendar": OFFICE},
        headers={**admin, "If-Match": '"1"'},
    )
    assert assert_problem(stale, 412, "precondition-failed")["current_version"] == 2
    garbage = await gateway.client.put(
        f"/api/v1/calendars/{calendar_id}",
        json={"name": "Lost update", "calendar": OFFICE},
        headers={**admin, "If-Match": "yesterday"},
    )
    assert_problem(garbage, 412, "precondition-failed")
    after = await gateway.client.get(f"/api/v1/calendars/{calendar_id}", headers=admin)
    assert after.json()["name"] == "Berlin 24x7"

    duplicate = await gateway.client.post(
        "/api/v1/calendars",
        json={"id": calendar_id, "name": "again", "calendar": OFFICE},
        headers=admin,
    )
    assert_problem(duplicate, 409, "conflict")


async def test_program_manager_writes_others_only_read(gateway: Gateway) -> None:
    manager = await gateway.key(Role.PROGRAM_MANAGER)
    calendar_id = unique_slug("pm")
    created = await gateway.client.post(
        "/api/v1/calendars",
        json={"id": calendar_id, "name": "PM", "calendar": OFFICE},
        headers=manager,
    )
    assert created.status_code == 201, created.text
    for role in (Role.PARTNER, Role.ANALYST, Role.APPROVER):
        headers = await gateway.key(role)
        refused = await gateway.client.post(
            "/api/v1/calendars",
            json={"id": unique_slug("x"), "name": "x", "calendar": OFFICE},
            headers=headers,
        )
        assert_problem(refused, 403, "forbidden")
        refused = await gateway.client.put(
            f"/api/v1/calendars/{calendar_id}",
            json={"name": "x", "calendar": OFFICE},
            headers=headers,
        )
        assert_problem(refused, 403, "forbidden")
        allowed = await gateway.client.get(f"/api/v1/calendars/{calendar_id}", headers=headers)
        assert allowed.status_code == 200


async def test_calls_without_a_key_are_401(gateway: Gateway) -> None:
    for method, path in (
        ("GET", "/api/v1/calendars"),
        ("GET", "/api/v1/calendars/india"),
        ("POST", "/api/v1/calendars"),
        ("PUT", "/api/v1/calendars/india"),
    ):
        response = await gateway.client.request(method, path, json={})
        assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons", "always_open": True}, "calendar.timezone"),
        ({"hours": {"mon": [["09:00", "17:00"]]}}, "calendar.timezone"),
        ({"timezone": "UTC"}, "calendar.hours"),
        ({"timezone": "UTC", "hours": {"funday": [["09:00", "17:00"]]}}, "calendar.hours.funday"),
        ({"timezone": "UTC", "hours": {"mon": [["17:00", "09:00"]]}}, "calendar.hours.mon[0]"),
        ({"timezone": "UTC", "hours": {"mon": [["09:00", "25:00"]]}}, "calendar.hours.mon[0]"),
        (
            {"timezone": "UTC", "hours": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}},
            "calendar.hours.mon",
        ),
        (
            {
                "timezone": "UTC",
                "hours": {"mon": [["09:00", "17:00"]]},
                "holidays": {"country": "XX"},
            },
            "calendar.holidays",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]}, "closed_dates": ["soon"]},
            "calendar.closed_dates[0]",
        ),
        ({"timezone": "UTC", "always_open": "yes"}, "calendar.always_open"),
        ({"timezone": "UTC", "always_open": True, "weekends": False}, "calendar.weekends"),
    ],
)
async def test_bad_calendars_are_422_naming_the_field(
    gateway: Gateway, admin: dict[str, str], calendar: dict[str, Any], field: str
) -> None:
    calendar_id = unique_slug("bad")
    response = await gateway.client.post(
        "/api/v1/calendars",
        json={"id": calendar_id, "name": "bad", "calendar": calendar},
        headers=admin,
    )
    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == [field]
    # The same check guards a replacement.
    replaced = await gateway.client.put(
        "/api/v1/calendars/india", json={"name": "bad", "calendar": calendar}, headers=admin
    )
    assert error_fields(assert_problem(replaced, 422, "validation-error")) == [field]
    missing = await gateway.client.get(f"/api/v1/calendars/{calendar_id}", headers=admin)
    assert_problem(missing, 404, "not-found")


@pytest.mark.parametrize(
    "body",
    [
        {"id": "X", "name": "bad slug", "calendar": OFFICE},
        {"id": "a", "name": "too short", "calendar": OFFICE},
        {"id": "has_underscore", "name": "bad slug", "calendar": OFFICE},
        {"id": "ok-id", "name": "", "calendar": OFFICE},
        {"id": "ok-id", "name": "no calendar"},
        {"id": "ok-id", "name": "list", "calendar": []},
        {"id": "ok-id", "name": "extra", "calendar": OFFICE, "owner": "me"},
    ],
)
async def test_bad_bodies_are_422(
    gateway: Gateway, admin: dict[str, str], body: dict[str, Any]
) -> None:
    response = await gateway.client.post("/api/v1/calendars", json=body, headers=admin)
    assert_problem(response, 422, "validation-error")


async def test_unknown_calendar_is_404_and_non_json_is_400(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    missing = await gateway.client.get("/api/v1/calendars/nowhere", headers=admin)
    assert_problem(missing, 404, "not-found")
    replaced = await gateway.client.put(
        "/api/v1/calendars/nowhere", json={"name": "x", "calendar": OFFICE}, headers=admin
    )
    assert_problem(replaced, 404, "not-found")
    broken = await gateway.client.post(
        "/api/v1/calendars",
        content=b"{not json",
        headers={**admin, "Content-Type": "application/json"},
    )
    assert_problem(broken, 400, "bad-request")


async def test_list_pages_by_id(gateway: Gateway, admin: dict[str, str]) -> None:
    made = sorted(unique_slug("page") for _ in range(3))
    for calendar_id in made:
        response = await gateway.client.post(
            "/api/v1/calendars",
            json={"id": calendar_id, "name": calendar_id, "calendar": OFFICE},
            headers=admin,
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await gateway.client.get("/api/v1/calendars", params=params, headers=admin)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert set(made) | SEEDED_CALENDARS <= set(seen)
    assert len(seen) == len(set(seen))
    bad = await gateway.client.get("/api/v1/calendars?cursor=nope", headers=admin)
    assert_problem(bad, 422, "validation-error")
