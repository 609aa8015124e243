"""Issue 4 (K1) on each backend, in-process with the real outbox, Temporal dev server and worker:
request types and `details`, the score on filing, PATCH with ETag/If-Match (428/412), partner
isolation, priority override, the score-ordered queue view, queues and auto-assignment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, text

from services.common.db import make_engine
from services.common.identity import Role
from services.common.migrations import downgrade, upgrade
from services.common.settings import Settings
from tests.service.k1_stack import events, fake_services, patch
from tests.service.test_intake_api import assert_problem, eventually
from tests.service.test_intake_sla import SlaIntake, running_intake
from tests.workflows.test_sla_clocks import FakeServices

TYPES = "/api/v1/request-types"
QUEUES = "/api/v1/request-queues"


@pytest.fixture
def fake() -> FakeServices:
    return fake_services()


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], fake: FakeServices
) -> AsyncIterator[SlaIntake]:
    async with running_intake(settings, identity_headers, fake) as running:
        yield running


async def test_request_types_are_seeded_and_admins_configure_their_fields(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    admin = intake.as_(team="risk-mining", role=Role.ADMIN, subject="key-admin")
    listed = await intake.http.get(TYPES, headers=partner)
    assert listed.status_code == 200, listed.text
    assert [t["request_type"] for t in listed.json()["items"]] == sorted(
        [
            "mo_investigation",
            "deep_dive",
            "data_request",
            "rule_change",
            "systemic_gap_report",
            "other",
        ]
    )
    one = await intake.http.get(f"{TYPES}/data_request", headers=partner)
    assert one.status_code == 200
    original = one.json()
    assert one.headers["etag"] == f'"{original["version"]}"'
    assert {f["name"]: f["kind"] for f in original["fields"]} == {
        "dataset": "string",
        "row_estimate": "integer",
        "contains_pii": "boolean",
    }
    assert not any(f["required"] for f in original["fields"])
    assert_problem(await intake.http.get(f"{TYPES}/nope", headers=partner), 422)

    fields = [
        {"name": "dataset", "kind": "string", "required": True},
        {"name": "row_estimate", "kind": "integer"},
        {"name": "needed_on", "kind": "date"},
    ]
    path = f"{TYPES}/data_request"
    for who in (partner, analyst):
        assert_problem(await intake.http.put(path, json={"fields": fields}, headers=who), 403)
    for bad in (
        {"fields": [*fields, {"name": "dataset", "kind": "string"}]},  # duplicate name
        {"fields": [{"name": "x", "kind": "float"}]},
        {"fields": [{"name": "Bad Name", "kind": "string"}]},
        {"fields": [{"name": "x", "kind": "string", "surprise": 1}]},
        {},
    ):
        assert_problem(await intake.http.put(path, json=bad, headers=admin), 422)
    stale = {**admin, "If-Match": f'"{original["version"] + 5}"'}
    assert_problem(await intake.http.put(path, json={"fields": fields}, headers=stale), 412)

    current = {**admin, "If-Match": f'"{original["version"]}"'}
    put = await intake.http.put(path, json={"fields": fields}, headers=current)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == original["version"] + 1
    assert put.json()["updated_by"] == "key-admin"
    assert put.headers["etag"] == f'"{original["version"] + 1}"'
    try:
        body = {"request_type": "data_request", "title": "Orders of ring X"}
        for details, field in (
            (None, "details.dataset"),
            ({"dataset": 5}, "details.dataset"),
            ({"dataset": "orders", "row_estimate": "many"}, "details.row_estimate"),
            ({"dataset": "orders", "needed_on": "tomorrow"}, "details.needed_on"),
            ({"dataset": "orders", "typo": 1}, "details.typo"),
        ):
            sent = body if details is None else {**body, "details": details}
            problem = assert_problem(
                await intake.http.post("/api/v1/requests", json=sent, headers=partner),
                422,
                "validation-error",
            )
            assert f"body.{field}" in [e["field"] for e in problem["errors"]], problem
            assert field in problem["detail"]
        details = {"dataset": "orders", "row_estimate": 10, "needed_on": "2027-01-31"}
        filed = await intake.file(partner, request_type="data_request", details=details)
        assert filed["details"] == details
        # Another type is untouched by this configuration.
        assert (await intake.file(partner, request_type="other"))["details"] == {}
    finally:
        restore = await intake.http.put(path, json={"fields": original["fields"]}, headers=admin)
        assert restore.status_code == 200, restore.text


async def test_filing_scores_the_request_and_proposes_its_priority(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    hot = await intake.file(
        partner,
        urgency="high",
        impact={"accounts_affected": 20_000, "money_at_risk_per_week": "10", "currency": "USD"},
    )
    assert (hot["priority_score"], hot["proposed_priority"], hot["priority"]) == (85, "P0", "P0")
    assert hot["urgency"] == "high"
    plain = await intake.file(partner)
    assert (plain["priority_score"], plain["proposed_priority"], plain["priority"]) == (
        40,
        "P2",
        "P2",
    )
    # A priority the filer gives is kept; the proposal is still recorded next to it.
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    asked = await intake.file(partner, priority="P3", due_at=soon)
    assert (asked["priority_score"], asked["proposed_priority"], asked["priority"]) == (
        70,
        "P1",
        "P3",
    )
    created = (await events(intake, hot["id"], partner))[0]
    assert created["data"] == {
        "request_type": "deep_dive",
        "priority": "P0",
        "impact_level": "critical",
        "urgency_level": "high",
        "priority_score": 85,
        "proposed_priority": "P0",
    }
    assert_problem(
        await intake.http.post(
            "/api/v1/requests",
            json={"request_type": "other", "title": "x", "urgency": "asap"},
            headers=partner,
        ),
        422,
    )


async def test_patch_needs_if_match_and_refuses_stale_writes(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    request = await intake.file(partner, title="First title")
    rid = request["id"]
    read = await intake.http.get(f"/api/v1/requests/{rid}", headers=partner)
    assert read.headers["etag"] == '"1"'

    body = {"title": "Second title"}
    for missing in (None, "*", "  "):
        problem = assert_problem(
            await patch(intake, rid, partner, body, version=missing), 428, "precondition-required"
        )
        assert "If-Match" in problem["detail"]
    for malformed in ("1", '"x"', '"1", "2"'):
        assert_problem(
            await patch(intake, rid, partner, body, version=malformed), 412, "precondition-failed"
        )
    assert_problem(await patch(intake, 2147483600, partner, body, version=1), 404)

    changed = await patch(intake, rid, partner, body, version=1)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["title"], changed.json()["version"]) == ("Second title", 2)
    assert changed.headers["etag"] == '"2"'
    stale = assert_problem(
        await patch(intake, rid, partner, {"title": "Lost update"}, version=1), 412
    )
    assert stale["current_version"] == 2
    # Weak ETags are accepted too.
    weak = await patch(intake, rid, partner, {"description": "More"}, version='W/"2"')
    assert weak.status_code == 200, weak.text

    # Of two writers holding the same version, exactly one wins.
    racing = await asyncio.gather(
        *(patch(intake, rid, partner, {"title": f"Racer {n}"}, version=3) for n in range(3))
    )
    assert sorted(r.status_code for r in racing) == [200, 412, 412]
    for r in racing:
        if r.status_code == 412:
            assert_problem(r, 412)
    after = await intake.read(rid, partner)
    assert after["version"] == 4

    for bad in ({}, {"title": None}, {"tags": None}, {"surprise": 1}, {"title": ""}, [1]):
        assert_problem(await patch(intake, rid, partner, bad, version=4), 422)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert_problem(await patch(intake, rid, partner, {"due_at": past}, version=4), 422)
    # A PATCH that changes nothing is no new version.
    same = await patch(intake, rid, partner, {"title": after["title"]}, version=4)
    assert (same.status_code, same.json()["version"]) == (200, 4)
    assert len(await events(intake, rid, partner)) == 4


async def test_partners_edit_only_their_own_requests_and_description_fields(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-p")
    stranger = intake.as_(team=f"{unique_team}-x", role=Role.PARTNER)
    approver = intake.as_(team="risk-mining", role=Role.APPROVER)
    request = await intake.file(partner, tags=["ato"])
    rid = request["id"]
    assert_problem(await patch(intake, rid, stranger, {"title": "Mine now"}, version=1), 404)
    for field, value in (("priority", "P0"), ("assignee", "key-p"), ("queue", "emea")):
        problem = assert_problem(
            await patch(intake, rid, partner, {field: value}, version=1), 403, "forbidden"
        )
        assert problem["fields"] == [field]
    assert_problem(await patch(intake, rid, approver, {"title": "x"}, version=1), 403)

    edited = await patch(
        intake,
        rid,
        partner,
        {
            "impact": {"accounts_affected": 5000, "money_at_risk_per_week": "1", "currency": "EUR"},
            "urgency": "critical",
            "tags": ["refunds", "ATO"],
            "marketplace": "FR",
            "external_refs": ["T-9"],
        },
        version=1,
    )
    assert edited.status_code == 200, edited.text
    got = edited.json()
    assert (got["priority_score"], got["proposed_priority"], got["priority"]) == (85, "P0", "P2")
    assert got["tags"] == ["ato", "refunds"]
    assert (got["marketplace"], got["external_refs"], got["version"]) == ("FR", ["T-9"], 2)
    last = (await events(intake, rid, partner))[-1]
    assert (last["kind"], last["actor"], last["request_version"]) == ("updated", "key-p", 2)
    assert set(last["data"]["changes"]) == {
        "impact",
        "urgency",
        "tags",
        "marketplace",
        "external_refs",
        "priority_score",
        "proposed_priority",
    }
    assert last["data"]["changes"]["priority_score"] == {"from": 40, "to": 85}
    # Clearing nullable fields.
    cleared = await patch(intake, rid, partner, {"impact": None, "urgency": None}, version=2)
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["impact"], cleared.json()["priority_score"]) == (None, 40)


async def test_an_analyst_overrides_the_priority_with_a_reason_and_the_clock_retargets(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")
    rid = (await intake.file(partner))["id"]
    await eventually(lambda: intake.read(rid, partner), lambda r: r["sla_due_at"] is not None)
    problem = assert_problem(await patch(intake, rid, analyst, {"priority": "P0"}, version=1), 422)
    assert problem["errors"][0]["field"] == "body.priority_reason"
    assert_problem(
        await patch(intake, rid, analyst, {"title": "x", "priority_reason": "why"}, version=1), 422
    )
    moved = await patch(
        intake, rid, analyst, {"priority": "P0", "priority_reason": "Exec escalation"}, version=1
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["priority"], moved.json()["proposed_priority"]) == ("P0", "P2")
    last = (await events(intake, rid, partner))[-1]
    assert last["kind"] == "updated"
    assert last["data"] == {
        "changes": {"priority": {"from": "P2", "to": "P0"}},
        "reason": "Exec escalation",
        "proposed_priority": "P2",
        "priority_score": 40,
    }
    # The same signal as any change: the workflow re-resolves the policy for P0.
    await eventually(
        lambda: asyncio.sleep(0, [r.priority for r in intake.fake.resolved]),
        lambda seen: "P0" in seen,
    )

    for action in ("triage", "reject"):
        extra: dict[str, Any] = {"reason": "not fraud"} if action == "reject" else {}
        assert (
            await intake.http.post(
                f"/api/v1/requests/{rid}/transitions",
                json={"action": action, **extra},
                headers=analyst,
            )
        ).status_code == 200
    closed = await intake.read(rid, analyst)
    assert_problem(
        await patch(intake, rid, analyst, {"title": "late"}, version=closed["version"]), 409
    )


async def test_the_queue_view_orders_by_score_then_sla_due_time(
    settings: Settings,
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    # No worker: the SLA columns are set here, through the workflow's own internal route.
    async with running_intake(settings, identity_headers, fake_services(), worker=False) as intake:
        analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
        system = intake.as_(team="risk-mining", role=Role.SYSTEM, subject="worker")
        partner = intake.as_(team=unique_team, role=Role.PARTNER)
        severe = {"accounts_affected": 50_000, "money_at_risk_per_week": "1", "currency": "USD"}
        tiny = {"accounts_affected": 1, "money_at_risk_per_week": "1", "currency": "USD"}

        async def filed(**fields: Any) -> int:
            request = await intake.file(analyst, team=unique_team, **fields)
            return int(request["id"])

        top = await filed(impact=severe, urgency="high")  # 85
        later = await filed()  # 40, due in 2h
        sooner = await filed()  # 40, due in 1h
        undated_a = await filed()  # 40, no deadline
        undated_b = await filed()  # 40, no deadline
        low = await filed(impact=tiny, urgency="low")  # 10
        rejected = await filed(impact=severe, urgency="critical")
        base = datetime.now(UTC) + timedelta(days=1)
        for rid, due in ((later, base + timedelta(hours=2)), (sooner, base + timedelta(hours=1))):
            put = await intake.http.put(
                f"/internal/requests/{rid}/sla",
                json={"sla_due_at": due.isoformat()},
                headers=system,
            )
            assert put.status_code == 204
        rejecting = await intake.http.post(
            f"/api/v1/requests/{rejected}/transitions",
            json={"action": "reject", "reason": "noise"},
            headers=analyst,
        )
        assert rejecting.status_code == 200, rejecting.text

        async def queue(**params: Any) -> list[int]:
            ids: list[int] = []
            cursor = None
            while True:
                query = {"team": unique_team, "limit": 2, **params}
                if cursor:
                    query["cursor"] = cursor
                page = await intake.http.get(
                    "/api/v1/requests/queue", params=query, headers=analyst
                )
                assert page.status_code == 200, page.text
                ids += [item["id"] for item in page.json()["items"]]
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    return ids

        assert await queue() == [top, sooner, later, undated_a, undated_b, low]
        assert await queue(priority=["P2"]) == [sooner, later, undated_a, undated_b]
        q = f"q-{uuid.uuid4().hex[:8]}"
        for rid in (low, sooner):
            current = await intake.read(rid, analyst)
            moved = await patch(intake, rid, analyst, {"queue": q}, version=current["version"])
            assert moved.status_code == 200, moved.text
            assert (await events(intake, rid, analyst))[-1]["kind"] == "assigned"
        assert await queue(queue=q) == [sooner, low]
        assert await queue(unqueued="true") == [top, later, undated_a, undated_b]

        assert_problem(await intake.http.get("/api/v1/requests/queue", headers=partner), 403)
        for bad in ({"cursor": "nope"}, {"queue": "Bad Queue"}, {"limit": 0}):
            assert_problem(
                await intake.http.get("/api/v1/requests/queue", params=bad, headers=analyst), 422
            )


async def test_auto_assignment_picks_the_least_loaded_member_of_the_queue(
    intake: SlaIntake, unique_team: str
) -> None:
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-lead")
    admin = intake.as_(team="risk-mining", role=Role.ADMIN)
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    suffix = uuid.uuid4().hex[:6]
    q, ann, bob = f"q-{suffix}", f"ann-{suffix}", f"bob-{suffix}"

    assert_problem(await intake.http.put(f"{QUEUES}/{q}/members/{ann}", headers=analyst), 403)
    for member in (ann, bob):
        added = await intake.http.put(f"{QUEUES}/{q}/members/{member}", headers=admin)
        assert added.status_code == 201, added.text
        assert (added.json()["load"], added.json()["added_by"]) == (0, "key-risk-mining-admin")
    again = await intake.http.put(f"{QUEUES}/{q}/members/{ann}", headers=admin)
    assert again.status_code == 200
    assert_problem(await intake.http.get(f"{QUEUES}/{q}", headers=partner), 403)
    assert_problem(await intake.http.get(f"{QUEUES}/q-none-{suffix}", headers=analyst), 404)

    async def filed(priority: str, assignee: str | None = None) -> dict[str, Any]:
        request = await intake.file(analyst, team=unique_team, priority=priority)
        if assignee is not None:
            moved = await patch(intake, request["id"], analyst, {"assignee": assignee}, version=1)
            assert moved.status_code == 200, moved.text
            request = moved.json()
        return request

    async def auto(rid: int, **body: Any) -> dict[str, Any]:
        response = await intake.http.post(
            f"/api/v1/requests/{rid}/auto-assign", json=body or None, headers=analyst
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    await filed("P0", ann)  # ann: 8
    await filed("P2", bob)  # bob: 2
    await filed("P2", bob)  # bob: 4
    loads = (await intake.http.get(f"{QUEUES}/{q}", headers=analyst)).json()["members"]
    assert [(m["member"], m["load"], m["open_requests"]) for m in loads] == [
        (bob, 4, 2),
        (ann, 8, 1),
    ]

    first = await filed("P1")
    assigned = await auto(first["id"], queue=q)
    assert (assigned["assignee"], assigned["queue"], assigned["version"]) == (bob, q, 2)  # 4 < 8
    second = await filed("P3")
    assert (await auto(second["id"], queue=q))["assignee"] == ann  # bob 8, ann 8: ann sorts first
    third = await filed("P3")
    assert (await auto(third["id"], queue=q))["assignee"] == bob  # bob 8 < ann 9

    history = [e for e in await events(intake, first["id"], analyst) if e["kind"] == "assigned"]
    assert history[0]["data"]["auto"] is True
    assert history[0]["data"]["loads"] == {ann: 8, bob: 4}
    assert history[0]["data"]["changes"] == {
        "assignee": {"from": None, "to": bob},
        "queue": {"from": None, "to": q},
    }
    # Reassigning by hand is history too.
    moved = await patch(intake, first["id"], analyst, {"assignee": ann}, version=2)
    assert moved.status_code == 200
    history = [e for e in await events(intake, first["id"], analyst) if e["kind"] == "assigned"]
    assert [h["data"]["changes"]["assignee"] for h in history] == [
        {"from": None, "to": bob},
        {"from": bob, "to": ann},
    ]

    unqueued = await filed("P2")
    problem = assert_problem(
        await intake.http.post(f"/api/v1/requests/{unqueued['id']}/auto-assign", headers=analyst),
        422,
    )
    assert problem["errors"][0]["field"] == "body.queue"
    assert_problem(
        await intake.http.post(
            f"/api/v1/requests/{unqueued['id']}/auto-assign",
            json={"queue": f"q-empty-{suffix}"},
            headers=analyst,
        ),
        409,
    )
    assert_problem(
        await intake.http.post(
            f"/api/v1/requests/{unqueued['id']}/auto-assign",
            json={"queue": q},
            headers={**analyst, "If-Match": '"7"'},
        ),
        412,
    )
    own = await intake.file(partner)
    assert_problem(
        await intake.http.post(
            f"/api/v1/requests/{own['id']}/auto-assign", json={"queue": q}, headers=partner
        ),
        403,
    )

    assert_problem(await intake.http.delete(f"{QUEUES}/{q}/members/{bob}", headers=analyst), 403)
    removed = await intake.http.delete(f"{QUEUES}/{q}/members/{bob}", headers=admin)
    assert removed.status_code == 204
    assert_problem(await intake.http.delete(f"{QUEUES}/{q}/members/{bob}", headers=admin), 404)
    listed = (await intake.http.get(QUEUES, headers=analyst)).json()["items"]
    assert [m["member"] for m in next(x for x in listed if x["queue"] == q)["members"]] == [ann]


async def test_the_triage_migration_is_reversible(settings: Settings) -> None:
    url = settings.database_url_of("intake")
    await asyncio.to_thread(upgrade, service="intake", database_url=url)

    async def shape() -> tuple[set[str], set[str], int]:
        engine = make_engine(url, schema="intake", pool_size=1)
        try:
            async with engine.connect() as connection:

                def read(sync: Any) -> tuple[set[str], set[str]]:
                    inspector = inspect(sync)
                    columns = {c["name"] for c in inspector.get_columns("request")}
                    return set(inspector.get_table_names()), columns

                tables, columns = await connection.run_sync(read)
                seeded = 0
                if "request_type_config" in tables:
                    seeded = (
                        await connection.execute(text("SELECT count(*) FROM request_type_config"))
                    ).scalar_one()
                return tables, columns, seeded
        finally:
            await engine.dispose()

    mine = {"request_type_config", "queue_member", "request_comment", "request_comment_revision"}
    columns = {"details", "urgency", "priority_score", "proposed_priority", "queue"}
    tables, present, seeded = await shape()
    assert mine <= tables
    assert columns <= present
    assert seeded == 6
    await asyncio.to_thread(downgrade, service="intake", database_url=url, revision="intake_0002")
    tables, present, _ = await shape()
    assert not mine & tables
    assert not columns & present
    await asyncio.to_thread(upgrade, service="intake", database_url=url)
    tables, present, seeded = await shape()
    assert mine <= tables
    assert columns <= present
    assert seeded == 6
