"""SLA policies, preview and the worker's policy resolution through the real gateway and database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from services.common.identity import Role
from tests.service.test_gateway_calendars import (
    SEEDED_POLICIES,
    WEEKDAYS,
    Gateway,
    assert_problem,
    error_fields,
    unique_slug,
)

# The calendars module's fixtures (one gateway per test, restored to its seeds before and after).
from tests.service.test_gateway_calendars import admin as admin
from tests.service.test_gateway_calendars import gateway as gateway
from tests.service.test_gateway_calendars import partner as partner

INDIA = {
    "timezone": "Asia/Kolkata",
    "hours": {day: [["09:00", "18:00"]] for day in WEEKDAYS},
    "holidays": {"country": "IN", "subdivision": None},
    "closed_dates": [],
}
TWENTY_FOUR_SEVEN = {"timezone": "UTC", "always_open": True}
SEEDED = {
    "p0-critical": (10, ["P0"], "PT1H", "PT8H", "24x7"),
    "p1-high": (20, ["P1"], "PT4H", "PT24H", "24x7"),
    "p2-normal": (30, ["P2"], "PT8H", "PT40H", "india"),
    "default": (1000, None, "PT16H", "PT80H", "india"),
}
RESOLVED_KEYS = {
    "policy_id",
    "policy_name",
    "first_response_target",
    "resolution_target",
    "warning_thresholds",
    "pause_statuses",
    "auto_close_after",
    "calendar_id",
    "calendar",
}


def policy(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": unique_slug("pol"),
        "name": "deep dives",
        "order": 500,
        "request_types": ["deep_dive"],
        "priorities": None,
        "first_response_target": "PT90M",
        "resolution_target": "PT30S",
        "calendar_id": "24x7",
    }
    body.update(overrides)
    return body


async def test_seeded_policies_in_match_order(gateway: Gateway, partner: dict[str, str]) -> None:
    response = await gateway.client.get("/api/v1/sla/policies", headers=partner)
    assert response.status_code == 200, response.text
    items = [item for item in response.json()["items"] if item["id"] in SEEDED_POLICIES]
    assert [item["id"] for item in items] == ["p0-critical", "p1-high", "p2-normal", "default"]
    for item in items:
        order, priorities, first, resolution, calendar_id = SEEDED[item["id"]]
        assert item["order"] == order
        assert item["request_types"] is None
        assert item["priorities"] == priorities
        assert item["first_response_target"] == first
        assert item["resolution_target"] == resolution
        assert item["calendar_id"] == calendar_id
        assert item["warning_thresholds"] == [50, 75, 90]
        assert item["pause_statuses"] == ["waiting_on_requester"]
        assert item["auto_close_after"] == "PT72H"


@pytest.mark.parametrize(
    ("priority", "policy_id", "first", "resolution", "calendar"),
    [
        ("P0", "p0-critical", "PT1H", "PT8H", TWENTY_FOUR_SEVEN),
        ("P1", "p1-high", "PT4H", "PT24H", TWENTY_FOUR_SEVEN),
        ("P2", "p2-normal", "PT8H", "PT40H", INDIA),
        ("P3", "default", "PT16H", "PT80H", INDIA),
    ],
)
async def test_internal_resolve_gives_the_contract(
    gateway: Gateway,
    identity_headers: Callable[..., dict[str, str]],
    priority: str,
    policy_id: str,
    first: str,
    resolution: str,
    calendar: dict[str, Any],
) -> None:
    system = identity_headers(team="risk-mining", role=Role.SYSTEM, subject="worker")
    response = await gateway.client.post(
        "/internal/sla/resolve",
        json={"request_type": "mo_investigation", "priority": priority},
        headers=system,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESOLVED_KEYS
    assert body["policy_id"] == policy_id
    assert body["first_response_target"] == first
    assert body["resolution_target"] == resolution
    assert body["warning_thresholds"] == [50, 75, 90]
    assert body["pause_statuses"] == ["waiting_on_requester"]
    assert body["auto_close_after"] == "PT72H"
    assert body["calendar"] == calendar
    # An unknown request type is still covered by the catch-all (P3) or the priority policies.
    other = await gateway.client.post(
        "/internal/sla/resolve",
        json={"request_type": "something_new", "priority": priority},
        headers=system,
    )
    assert other.json()["policy_id"] == policy_id


async def test_internal_resolve_is_for_the_worker_only(
    gateway: Gateway,
    admin: dict[str, str],
    identity_headers: Callable[..., dict[str, str]],
) -> None:
    body = {"request_type": "deep_dive", "priority": "P1"}
    missing = await gateway.client.post("/internal/sla/resolve", json=body)
    assert_problem(missing, 401, "unauthorized")
    # An API key, even an admin's, is not a worker identity.
    with_key = await gateway.client.post("/internal/sla/resolve", json=body, headers=admin)
    assert_problem(with_key, 401, "unauthorized")
    analyst = identity_headers(role=Role.ANALYST)
    forbidden = await gateway.client.post("/internal/sla/resolve", json=body, headers=analyst)
    assert_problem(forbidden, 403, "forbidden")
    system = identity_headers(role=Role.SYSTEM)
    for bad in (
        {"request_type": "deep_dive", "priority": "P7"},
        {"request_type": "", "priority": "P1"},
        {"priority": "P1"},
        {"request_type": "deep_dive", "priority": "P1", "extra": 1},
    ):
        refused = await gateway.client.post("/internal/sla/resolve", json=bad, headers=system)
        assert_problem(refused, 422, "validation-error")
    # The internal route is not in the public API document.
    document = await gateway.client.get("/openapi.json")
    assert "/internal/sla/resolve" not in document.json()["paths"]
    assert "/api/v1/sla/policies" in document.json()["paths"]


async def test_first_match_by_order_and_catch_all(
    gateway: Gateway, admin: dict[str, str], partner: dict[str, str]
) -> None:
    async def match(request_type: str, priority: str) -> str:
        response = await gateway.client.get(
            "/api/v1/sla/policies/match",
            params={"request_type": request_type, "priority": priority},
            headers=partner,
        )
        assert response.status_code == 200, response.text
        assert set(response.json()) == RESOLVED_KEYS
        return str(response.json()["policy_id"])

    assert await match("deep_dive", "P1") == "p1-high"
    # Ordered after the priority policies: P1 still wins, P3 deep dives get it.
    late = policy(order=500)
    assert (
        await gateway.client.post("/api/v1/sla/policies", json=late, headers=admin)
    ).status_code == 201
    assert await match("deep_dive", "P1") == "p1-high"
    assert await match("deep_dive", "P3") == late["id"]
    assert await match("data_request", "P3") == "default"
    # Ordered first and narrower: wins only where both dimensions match.
    early = policy(order=5, priorities=["P1"], calendar_id="india")
    assert (
        await gateway.client.post("/api/v1/sla/policies", json=early, headers=admin)
    ).status_code == 201
    assert await match("deep_dive", "P1") == early["id"]
    assert await match("deep_dive", "P0") == "p0-critical"
    assert await match("rule_change", "P1") == "p1-high"
    response = await gateway.client.get(
        "/api/v1/sla/policies/match",
        params={"request_type": "deep_dive", "priority": "P1"},
        headers=partner,
    )
    assert response.json()["calendar"] == INDIA
    assert response.json()["first_response_target"] == "PT1H30M"
    assert response.json()["resolution_target"] == "PT30S"
    bad = await gateway.client.get(
        "/api/v1/sla/policies/match",
        params={"request_type": "x", "priority": "P9"},
        headers=partner,
    )
    assert_problem(bad, 422, "validation-error")
    listed = await gateway.client.get("/api/v1/sla/policies", headers=partner)
    orders = [item["order"] for item in listed.json()["items"]]
    assert orders == sorted(orders)


async def test_policy_crud_with_etags(gateway: Gateway) -> None:
    manager = await gateway.key(Role.PROGRAM_MANAGER)
    body = policy(
        order=600,
        priorities=["P2", "P3"],
        warning_thresholds=[80],
        pause_statuses=["waiting_on_requester", "triaged"],
        auto_close_after="P3D",
    )
    created = await gateway.client.post("/api/v1/sla/policies", json=body, headers=manager)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/sla/policies/{body['id']}"
    assert created.headers["etag"] == '"1"'
    read = created.json()
    assert read["first_response_target"] == "PT1H30M"
    assert read["auto_close_after"] == "PT72H"
    assert read["warning_thresholds"] == [80]
    assert read["pause_statuses"] == ["waiting_on_requester", "triaged"]
    assert read["priorities"] == ["P2", "P3"]

    path = f"/api/v1/sla/policies/{body['id']}"
    fetched = await gateway.client.get(path, headers=manager)
    assert fetched.json() == read
    update = {k: v for k, v in body.items() if k != "id"} | {
        "name": "renamed",
        "auto_close_after": None,
    }
    # Omitted fields take their defaults on PUT (it replaces the policy).
    del update["warning_thresholds"]
    replaced = await gateway.client.put(path, json=update, headers={**manager, "If-Match": '"1"'})
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["etag"] == '"2"'
    assert replaced.json()["name"] == "renamed"
    assert replaced.json()["auto_close_after"] is None
    assert replaced.json()["warning_thresholds"] == [50, 75, 90]
    stale = await gateway.client.put(path, json=update, headers={**manager, "If-Match": '"1"'})
    assert_problem(stale, 412, "precondition-failed")
    stale_delete = await gateway.client.delete(path, headers={**manager, "If-Match": '"1"'})
    assert_problem(stale_delete, 412, "precondition-failed")
    deleted = await gateway.client.delete(path, headers={**manager, "If-Match": '"2"'})
    assert deleted.status_code == 204
    assert_problem(await gateway.client.get(path, headers=manager), 404, "not-found")
    assert_problem(await gateway.client.delete(path, headers=manager), 404, "not-found")
    assert_problem(await gateway.client.put(path, json=update, headers=manager), 404, "not-found")


async def test_policy_conflicts(gateway: Gateway, admin: dict[str, str]) -> None:
    body = policy(order=700)
    assert (
        await gateway.client.post("/api/v1/sla/policies", json=body, headers=admin)
    ).status_code == 201
    again = await gateway.client.post("/api/v1/sla/policies", json=body, headers=admin)
    assert_problem(again, 409, "conflict")
    taken = await gateway.client.post("/api/v1/sla/policies", json=policy(order=700), headers=admin)
    assert "p" in assert_problem(taken, 409, "conflict")["detail"]
    seeded_order = await gateway.client.post(
        "/api/v1/sla/policies", json=policy(order=10), headers=admin
    )
    assert "p0-critical" in assert_problem(seeded_order, 409, "conflict")["detail"]
    moved = {k: v for k, v in body.items() if k != "id"} | {"order": 20}
    put = await gateway.client.put(f"/api/v1/sla/policies/{body['id']}", json=moved, headers=admin)
    assert_problem(put, 409, "conflict")


async def test_the_last_catch_all_cannot_go(gateway: Gateway, admin: dict[str, str]) -> None:
    seeded = (await gateway.client.get("/api/v1/sla/policies/default", headers=admin)).json()
    keep = {
        k: v for k, v in seeded.items() if k not in {"id", "version", "created_at", "updated_at"}
    }
    narrowed = await gateway.client.put(
        "/api/v1/sla/policies/default", json=keep | {"priorities": ["P3"]}, headers=admin
    )
    assert "catch-all" in assert_problem(narrowed, 409, "conflict")["detail"]
    deleted = await gateway.client.delete("/api/v1/sla/policies/default", headers=admin)
    assert_problem(deleted, 409, "conflict")
    after = (await gateway.client.get("/api/v1/sla/policies/default", headers=admin)).json()
    assert after == seeded

    # With a second catch-all, either one may become narrower (but not both).
    spare = policy(order=900_000, request_types=None, priorities=None)
    assert (
        await gateway.client.post("/api/v1/sla/policies", json=spare, headers=admin)
    ).status_code == 201
    try:
        narrowed = await gateway.client.put(
            "/api/v1/sla/policies/default", json=keep | {"priorities": ["P3"]}, headers=admin
        )
        assert narrowed.status_code == 200, narrowed.text
        last = await gateway.client.delete(f"/api/v1/sla/policies/{spare['id']}", headers=admin)
        assert_problem(last, 409, "conflict")
    finally:
        restored = await gateway.client.put(
            "/api/v1/sla/policies/default", json=keep, headers=admin
        )
        assert restored.status_code == 200, restored.text
    assert (
        await gateway.client.delete(f"/api/v1/sla/policies/{spare['id']}", headers=admin)
    ).status_code == 204


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"first_response_target": "P1D"}, "body.first_response_target", "hours"),
        ({"resolution_target": "PT0S"}, "body.resolution_target", "longer than zero"),
        ({"resolution_target": "soon"}, "body.resolution_target", "ISO-8601"),
        ({"auto_close_after": "P1M"}, "body.auto_close_after", "ISO-8601"),
        ({"warning_thresholds": [90, 50]}, "body.warning_thresholds", "increasing"),
        ({"warning_thresholds": [0, 100]}, "body.warning_thresholds", "1 to 99"),
        ({"pause_statuses": ["closed"]}, "body.pause_statuses", "cannot pause"),
        ({"pause_statuses": ["new"]}, "body.pause_statuses", "cannot pause"),
        ({"request_types": ["mo_investigaton"]}, "body.request_types", "not one of"),
        ({"request_types": []}, "body.request_types", "null to match any"),
        ({"priorities": ["P4"]}, "body.priorities.0", "P0"),
        ({"priorities": ["P1", "P1"]}, "body.priorities", "repeat"),
        ({"order": -1}, "body.order", "greater than"),
        ({"id": "match"}, "body.id", "reserved"),
        ({"id": "Bad Id"}, "body.id", "pattern"),
        ({"calendar_id": "atlantis"}, "body.calendar_id", "unknown calendar"),
    ],
)
async def test_invalid_policies_are_422_naming_the_field(
    gateway: Gateway, admin: dict[str, str], overrides: dict[str, Any], field: str, message: str
) -> None:
    response = await gateway.client.post(
        "/api/v1/sla/policies", json=policy(**overrides), headers=admin
    )
    body = assert_problem(response, 422, "validation-error")
    assert error_fields(body) == [field], body
    assert message in body["errors"][0]["message"], body


async def test_policy_roles(gateway: Gateway, admin: dict[str, str]) -> None:
    for role in (Role.PARTNER, Role.ANALYST, Role.APPROVER):
        headers = await gateway.key(role)
        assert (
            await gateway.client.get("/api/v1/sla/policies", headers=headers)
        ).status_code == 200
        assert (
            await gateway.client.get("/api/v1/sla/policies/default", headers=headers)
        ).status_code == 200
        refused = await gateway.client.post("/api/v1/sla/policies", json=policy(), headers=headers)
        assert_problem(refused, 403, "forbidden")
        body = {k: v for k, v in policy().items() if k != "id"}
        refused = await gateway.client.put(
            "/api/v1/sla/policies/default", json=body, headers=headers
        )
        assert_problem(refused, 403, "forbidden")
        refused = await gateway.client.delete("/api/v1/sla/policies/default", headers=headers)
        assert_problem(refused, 403, "forbidden")
    for method, path in (
        ("GET", "/api/v1/sla/policies"),
        ("GET", "/api/v1/sla/policies/match?request_type=other&priority=P1"),
        ("POST", "/api/v1/sla/policies"),
        ("POST", "/api/v1/sla/preview"),
    ):
        assert_problem(await gateway.client.request(method, path, json={}), 401, "unauthorized")


# --- preview -------------------------------------------------------------------------------


async def preview(gateway: Gateway, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await gateway.client.post("/api/v1/sla/preview", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_preview_skips_an_indian_public_holiday(
    gateway: Gateway, partner: dict[str, str]
) -> None:
    # Friday 23 Jan 2026, 17:00 IST; Monday 26 Jan is Republic Day.
    start = "2026-01-23T11:30:00Z"
    result = await preview(gateway, partner, calendar_id="india", start=start, target="PT2H")
    assert result == {"deadline": "2026-01-27T04:30:00Z", "business_seconds": 7200}
    inline = await preview(gateway, partner, calendar=INDIA, start=start, target="PT2H")
    assert inline == result
    # Without holidays the deadline is the Monday.
    plain = await preview(
        gateway, partner, calendar=INDIA | {"holidays": None}, start=start, target="PT2H"
    )
    assert plain["deadline"] == "2026-01-26T04:30:00Z"
    elapsed = await preview(
        gateway, partner, calendar_id="india", start=start, at="2026-01-27T04:30:00Z"
    )
    assert elapsed == {"deadline": None, "business_seconds": 7200}


async def test_preview_keeps_wall_clock_hours_across_dst(
    gateway: Gateway, partner: dict[str, str]
) -> None:
    # Friday 6 March 2026 17:00 PST; clocks go forward on Sunday 8 March.
    result = await preview(
        gateway, partner, calendar_id="san-jose", start="2026-03-07T01:00:00Z", target="PT2H"
    )
    # Monday 10:00 PDT (UTC-7), not 10:00 PST (18:00Z).
    assert result["deadline"] == "2026-03-09T17:00:00Z"


async def test_preview_pause_moves_the_deadline(gateway: Gateway, partner: dict[str, str]) -> None:
    start = "2026-05-01T00:00:00Z"
    plain = await preview(gateway, partner, calendar_id="24x7", start=start, target="PT8H")
    assert plain["deadline"] == "2026-05-01T08:00:00Z"
    paused = await preview(
        gateway,
        partner,
        calendar_id="24x7",
        start=start,
        target="PT8H",
        pauses=[
            ["2026-05-01T05:00:00Z", "2026-05-01T06:00:00Z"],
            ["2026-05-01T02:00:00+02:00", "2026-05-01T02:00:00Z"],
        ],
    )
    assert paused["deadline"] == "2026-05-01T11:00:00Z"
    elapsed = await preview(
        gateway,
        partner,
        calendar_id="24x7",
        start=start,
        at="2026-05-01T11:00:00Z",
        pauses=[["2026-05-01T00:00:00Z", "2026-05-01T03:00:00Z"]],
    )
    assert elapsed["business_seconds"] == 8 * 3600


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"calendar_id": "india", "target": "P1D"}, "body.target", "hours"),
        ({"calendar_id": "india", "target": "PT1.5S"}, "body.target", "whole number"),
        (
            {"calendar": {"timezone": "Nowhere/City", "always_open": True}, "target": "PT1H"},
            "calendar.timezone",
            "unknown time zone",
        ),
        (
            {"calendar": {"timezone": "UTC", "hours": {"mon": [["9", "17"]]}}, "target": "PT1H"},
            "calendar.hours.mon[0]",
            "HH:MM",
        ),
        ({"calendar_id": "atlantis", "target": "PT1H"}, "calendar_id", "unknown calendar"),
        (
            {
                "calendar_id": "24x7",
                "target": "PT1H",
                "pauses": [["2026-05-01T03:00:00Z", "2026-05-01T02:00:00Z"]],
            },
            "pauses[0]",
            "must end after it starts",
        ),
        (
            {
                "calendar_id": "24x7",
                "target": "PT1H",
                "pauses": [
                    ["2026-05-01T05:00:00Z", "2026-05-01T07:00:00Z"],
                    ["2026-05-01T04:00:00Z", "2026-05-01T06:00:00Z"],
                ],
            },
            "pauses[0]",
            "overlaps pauses[1]",
        ),
        (
            {"calendar_id": "24x7", "pauses": [["2026-05-01T05:00:00", "2026-05-01T07:00:00Z"]]},
            "body.pauses.0.0",
            "timezone",
        ),
        ({"calendar_id": "24x7", "at": "2036-06-01T00:00:00Z"}, "at", "ten years"),
        (
            {"calendar_id": "24x7", "start": "2026-05-01T00:00:00", "target": "PT1H"},
            "body.start",
            "timezone",
        ),
        (
            {"calendar_id": "24x7", "target": "PT1H", "at": "2026-05-02T00:00:00Z"},
            "body",
            "exactly one of target and at",
        ),
        ({"calendar_id": "24x7"}, "body", "exactly one of target and at"),
        ({"target": "PT1H"}, "body", "exactly one of calendar and calendar_id"),
        (
            {"calendar_id": "24x7", "calendar": TWENTY_FOUR_SEVEN, "target": "PT1H"},
            "body",
            "exactly one of calendar and calendar_id",
        ),
        (
            {"calendar_id": "24x7", "start": "9999-12-31T20:00:00Z", "target": "PT8H"},
            "calendar",
            "no business time",
        ),
        (
            {"calendar_id": "india", "start": "9999-12-28T00:00:00Z", "target": "PT80H"},
            "start",
            "9999",
        ),
        (
            {"calendar_id": "india", "start": "0001-01-01T00:00:00Z", "at": "0001-02-01T00:00:00Z"},
            "start",
            "year 1",
        ),
    ],
)
async def test_preview_errors_are_422_naming_the_field(
    gateway: Gateway, partner: dict[str, str], body: dict[str, Any], field: str, message: str
) -> None:
    request = {"start": "2026-05-01T00:00:00Z", **body}
    response = await gateway.client.post("/api/v1/sla/preview", json=request, headers=partner)
    problem = assert_problem(response, 422, "validation-error")
    assert error_fields(problem) == [field], problem
    assert message in problem["errors"][0]["message"], problem


async def test_concurrent_writes_with_the_same_etag_one_wins(
    gateway: Gateway, admin: dict[str, str]
) -> None:
    body = policy(order=800)
    assert (
        await gateway.client.post("/api/v1/sla/policies", json=body, headers=admin)
    ).status_code == 201
    data = {k: v for k, v in body.items() if k != "id"}
    path = f"/api/v1/sla/policies/{body['id']}"
    headers = {**admin, "If-Match": '"1"'}
    responses = await asyncio.gather(
        *(
            gateway.client.put(path, json=data | {"name": f"writer {n}"}, headers=headers)
            for n in range(2)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 412], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()["name"]
    stored = (await gateway.client.get(path, headers=admin)).json()
    assert (stored["name"], stored["version"]) == (winner, 2)

    calendar_path = "/api/v1/calendars/" + unique_slug("race")
    created = await gateway.client.post(
        "/api/v1/calendars",
        json={"id": calendar_path.rsplit("/", 1)[1], "name": "race", "calendar": INDIA},
        headers=admin,
    )
    assert created.status_code == 201
    responses = await asyncio.gather(
        *(
            gateway.client.put(
                calendar_path, json={"name": f"writer {n}", "calendar": INDIA}, headers=headers
            )
            for n in range(2)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 412], [r.text for r in responses]
