"""The person directory of the escalation service (`/api/v1/people`) on each backend: writes by
program managers and admins, reads by staff, validation and optimistic concurrency as problem+json,
and how an action item's owner resolves through it when the gateway does not know the calendar.

The stack is the one of test_escalation_api (app with its lifespan, worker, and a small HTTP
receiver standing in for the gateway's `/internal/events`; it answers 404 to anything else, so a
directory calendar there is "unknown to the gateway").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.common.identity import Role
from tests.service.test_escalation_api import EscalationStack, assert_problem, staff
from tests.service.test_escalation_api import esc as esc  # the fixture

PEOPLE = "/api/v1/people"


def handle(prefix: str) -> str:
    """A handle no other test uses (PostgreSQL tables are shared across a session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def person(**fields: Any) -> dict[str, Any]:
    return {"display_name": "Asha Rao", "email": "asha@example.com", **fields}


async def put(
    esc: EscalationStack, who: str, headers: dict[str, str], body: dict[str, Any], **extra: str
) -> httpx.Response:
    return await esc.http.put(f"{PEOPLE}/{who}", json=body, headers={**headers, **extra})


async def test_people_are_written_by_program_managers_and_read_by_staff(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    pm = staff(identity_headers, Role.PROGRAM_MANAGER, subject="pm-1")
    admin = staff(identity_headers, Role.ADMIN)
    analyst = staff(identity_headers)
    partner = identity_headers(team=unique_team, role=Role.PARTNER)
    approver = identity_headers(team=unique_team, role=Role.APPROVER)
    manager = handle("boss")
    asha = handle("asha")

    created = await put(esc, asha, pm, person(manager_handle=manager, calendar_id="india"))
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{PEOPLE}/{asha}"
    assert created.headers["ETag"] == '"1"'
    body = created.json()
    assert body["handle"] == asha
    assert body["manager_handle"] == manager
    assert body["calendar_id"] == "india"
    assert body["version"] == 1

    # Replace (200): the whole entry, version + 1; an admin may write too.
    replaced = await put(
        esc, asha, admin, person(email="asha.rao@example.com"), **{"If-Match": '"1"'}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2
    assert replaced.json()["manager_handle"] is None
    assert replaced.json()["calendar_id"] is None
    # A write over a version not read is refused.
    assert_problem(await put(esc, asha, pm, person(), **{"If-Match": '"1"'}), 412)
    assert_problem(await put(esc, asha, pm, person(), **{"If-Match": "v2"}), 412)
    assert_problem(await put(esc, handle("nobody"), pm, person(), **{"If-Match": '"1"'}), 412)

    read = await esc.http.get(f"{PEOPLE}/{asha}", headers=analyst)
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == '"2"'
    assert read.json()["email"] == "asha.rao@example.com"

    # Only program managers and admins write; partners and approvers do not even read.
    assert_problem(await put(esc, asha, analyst, person()), 403, "forbidden")
    for outsider in (partner, approver):
        assert_problem(await esc.http.get(f"{PEOPLE}/{asha}", headers=outsider), 403)
        assert_problem(await esc.http.get(PEOPLE, headers=outsider), 403)
    assert_problem(await esc.http.get(f"{PEOPLE}/{handle('ghost')}", headers=analyst), 404)

    # A manager's reports, one page at a time, by handle.
    reports = sorted(handle(f"r{n}") for n in range(3))
    for who in reports:
        response = await put(esc, who, pm, person(manager_handle=manager))
        assert response.status_code == 201, response.text
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"manager": manager, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await esc.http.get(PEOPLE, params=params, headers=analyst)
        assert page.status_code == 200, page.text
        seen += [p["handle"] for p in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == reports
    assert_problem(await esc.http.get(PEOPLE, params={"cursor": "nope"}, headers=analyst), 422)


async def test_directory_input_is_validated(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]]
) -> None:
    pm = staff(identity_headers, Role.PROGRAM_MANAGER)
    who = handle("val")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (who, person(email="not-an-address"), "body.email"),
        (who, person(display_name=" "), "body.display_name"),
        (who, person(calendar_id="India Office"), "body.calendar_id"),
        (who, person(manager_handle="has space"), "body.manager_handle"),
        (who, person(manager_handle=who), "body.manager_handle"),
        (who, person(colour="blue"), "body.colour"),
        (who, {"display_name": "No mail"}, "body.email"),
        (who, person(display_name="nul\x00"), "body.display_name"),
    ]
    for target, body, field in cases:
        problem = assert_problem(await put(esc, target, pm, body), 422)
        assert field in [e["field"] for e in problem["errors"]], (body, problem)
    # A handle with a space or a leading dot is not a handle.
    assert_problem(await put(esc, "has%20space", pm, person()), 422)
    assert_problem(await put(esc, ".hidden", pm, person()), 422)
    assert_problem(await esc.http.get(PEOPLE, params={"limit": 0}, headers=pm), 422)
    assert_problem(await esc.http.get(PEOPLE, params={"manager": "a b"}, headers=pm), 422)


async def test_owner_resolution_through_the_directory(
    esc: EscalationStack, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    """The gateway stand-in knows no calendar: the owner's directory calendar cannot be read, so
    the default applies (`calendar_source: default`); an item's own calendar always wins."""
    pm = staff(identity_headers, Role.PROGRAM_MANAGER)
    analyst = staff(identity_headers)
    owner = handle("owner")
    assert (await put(esc, owner, pm, person(calendar_id="unknown-cal"))).status_code == 201
    escalation = await esc.raise_escalation(analyst, team=unique_team)
    eid = escalation["id"]

    before = datetime.now(UTC)
    defaulted = await esc.add_item(eid, analyst, owner=owner)
    assert defaulted["calendar_source"] == "default"
    assert defaulted["calendar_id"] is None
    assert defaulted["calendar"]["timezone"] == "Asia/Kolkata"
    assert timedelta(days=11) < datetime.fromisoformat(defaulted["due_at"]) - before

    always = {"timezone": "UTC", "always_open": True}
    own = await esc.add_item(eid, analyst, owner=owner, calendar=always)
    assert own["calendar_source"] == "item"
    due = datetime.fromisoformat(own["due_at"])
    # Ten business days of a 24x7 calendar are ten calendar days.
    assert timedelta(days=10) <= due - before < timedelta(days=10, minutes=5)

    # PATCH: null drops the item's own calendar (back to the owner's, here the default); the due
    # date stays. A calendar that does not parse is a 422 naming the field.
    back = await esc.http.patch(
        f"/api/v1/action-items/{own['id']}", json={"calendar": None}, headers=analyst
    )
    assert back.status_code == 200, back.text
    assert back.json()["calendar_source"] == "default"
    assert back.json()["due_at"] == own["due_at"]
    bad = await esc.http.patch(
        f"/api/v1/action-items/{own['id']}",
        json={"calendar": {"timezone": "Mars/Olympus"}},
        headers=analyst,
    )
    assert "body.calendar.timezone" in [e["field"] for e in assert_problem(bad, 422)["errors"]]
