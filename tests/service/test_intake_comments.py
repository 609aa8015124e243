"""Comments and the requester experience (issue 4, K1) on each backend, with the real outbox,
Temporal dev server and a worker: internal comments never reach partners, edit history, the first
staff public comment stops the first-response SLA clock (asked of the workflow), questions and
answers move waiting_on_requester, and a partner confirms or reopens (with a reason)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.common.identity import Role
from services.common.settings import Settings
from tests.service.k1_stack import events, fake_services
from tests.service.test_intake_api import assert_problem, eventually
from tests.service.test_intake_sla import SlaIntake, running_intake
from tests.workflows.test_sla_clocks import FakeServices


@pytest.fixture
def fake() -> FakeServices:
    return fake_services()


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], fake: FakeServices
) -> AsyncIterator[SlaIntake]:
    async with running_intake(settings, identity_headers, fake) as running:
        yield running


async def comment(
    intake: SlaIntake, rid: int, headers: dict[str, str], body: str, **extra: Any
) -> httpx.Response:
    return await intake.http.post(
        f"/api/v1/requests/{rid}/comments", json={"body": body, **extra}, headers=headers
    )


async def listed(intake: SlaIntake, rid: int, headers: dict[str, str]) -> list[str]:
    response = await intake.http.get(f"/api/v1/requests/{rid}/comments", headers=headers)
    assert response.status_code == 200, response.text
    return [c["body"] for c in response.json()["items"]]


async def act(
    intake: SlaIntake, rid: int, headers: dict[str, str], action: str, **extra: Any
) -> httpx.Response:
    return await intake.http.post(
        f"/api/v1/requests/{rid}/transitions", json={"action": action, **extra}, headers=headers
    )


async def clocks(intake: SlaIntake, rid: int, headers: dict[str, str]) -> dict[str, str]:
    response = await intake.http.get(f"/api/v1/requests/{rid}/sla", headers=headers)
    assert response.status_code == 200, response.text
    return {c["name"]: c["state"] for c in response.json()["clocks"]}


async def test_internal_comments_never_reach_partners(intake: SlaIntake, unique_team: str) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-p")
    stranger = intake.as_(team=f"{unique_team}-x", role=Role.PARTNER)
    approver = intake.as_(team="risk-mining", role=Role.APPROVER)
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-a")
    rid = (await intake.file(partner))["id"]

    internal = await comment(intake, rid, analyst, "Looks like **ring 7**", visibility="internal")
    assert internal.status_code == 201, internal.text
    assert internal.headers["location"].endswith(f"/comments/{internal.json()['id']}")
    public = await comment(intake, rid, analyst, "We are on it.")
    assert public.status_code == 201
    answer = await comment(intake, rid, partner, "Thanks")
    assert (answer.status_code, answer.json()["visibility"]) == (201, "public")

    assert await listed(intake, rid, analyst) == [
        "Looks like **ring 7**",
        "We are on it.",
        "Thanks",
    ]
    for outsider in (partner, approver):
        page = await intake.http.get(
            f"/api/v1/requests/{rid}/comments", params={"limit": 1}, headers=outsider
        )
        # Not even a hint: pages, ids and cursors cover public comments only.
        assert [c["body"] for c in page.json()["items"]] == ["We are on it."]
        rest = await intake.http.get(
            f"/api/v1/requests/{rid}/comments",
            params={"cursor": page.json()["next_cursor"]},
            headers=outsider,
        )
        assert [c["body"] for c in rest.json()["items"]] == ["Thanks"]
        assert rest.json()["next_cursor"] is None
        cid = internal.json()["id"]
        assert_problem(
            await intake.http.get(
                f"/api/v1/requests/{rid}/comments/{cid}/revisions", headers=outsider
            ),
            404,
        )
        assert_problem(
            await intake.http.patch(
                f"/api/v1/requests/{rid}/comments/{cid}", json={"body": "x"}, headers=outsider
            ),
            404,
        )
    assert_problem(await comment(intake, rid, partner, "psst", visibility="internal"), 403)
    assert_problem(await comment(intake, rid, approver, "hello"), 403)
    assert_problem(await comment(intake, rid, stranger, "hello"), 404)
    assert_problem(await intake.http.get(f"/api/v1/requests/{rid}/comments", headers=stranger), 404)
    # The request itself shows no trace of the internal note: no event, no version.
    seen = await events(intake, rid, partner)
    assert [e["kind"] for e in seen] == ["created", "first_response"]
    assert seen[1]["data"] == {"comment_id": public.json()["id"]}
    assert (await intake.read(rid, partner))["version"] == 2

    for bad in (
        {"body": ""},
        {"body": "a\x00b"},
        {"body": "x" * 20_001},
        {"body": "x", "visibility": "secret"},
        {"body": "x", "surprise": 1},
        {},
    ):
        assert_problem(
            await intake.http.post(f"/api/v1/requests/{rid}/comments", json=bad, headers=partner),
            422,
        )
    assert_problem(await comment(intake, 2147483600, analyst, "x"), 404)
    assert_problem(
        await intake.http.get(
            f"/api/v1/requests/{rid}/comments", params={"cursor": "x"}, headers=partner
        ),
        422,
    )


async def test_comments_are_edited_by_their_author_with_history_kept(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-p")
    colleague = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-q")
    rid = (await intake.file(partner))["id"]
    key = {"Idempotency-Key": "comment-1"}
    first = await comment(intake, rid, {**partner, **key}, "Seen in DE")
    replay = await comment(intake, rid, {**partner, **key}, "Seen in DE")
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    cid = first.json()["id"]
    path = f"/api/v1/requests/{rid}/comments/{cid}"

    assert_problem(await intake.http.patch(path, json={"body": "x"}, headers=colleague), 403)
    stale = {**partner, "If-Match": '"5"'}
    assert_problem(await intake.http.patch(path, json={"body": "x"}, headers=stale), 412)
    edited = await intake.http.patch(path, json={"body": "Seen in DE and FR"}, headers=partner)
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["body"]) == (2, "Seen in DE and FR")
    assert edited.json()["edited_at"] is not None
    assert edited.headers["etag"] == '"2"'
    same = await intake.http.patch(path, json={"body": "Seen in DE and FR"}, headers=partner)
    assert same.json()["version"] == 2
    revisions = await intake.http.get(f"{path}/revisions", headers=partner)
    assert [(r["revision"], r["body"]) for r in revisions.json()["items"]] == [
        (1, "Seen in DE"),
        (2, "Seen in DE and FR"),
    ]
    assert await listed(intake, rid, partner) == ["Seen in DE and FR"]
    other = (await intake.file(partner))["id"]
    assert_problem(
        await intake.http.patch(
            f"/api/v1/requests/{other}/comments/{cid}", json={"body": "x"}, headers=partner
        ),
        404,
    )


async def test_the_first_staff_public_comment_stops_the_first_response_clock(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER)
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-a")
    rid = (await intake.file(partner))["id"]
    await eventually(
        lambda: clocks(intake, rid, partner),
        lambda c: c == {"first_response": "running", "resolution": "running"},
    )
    # Neither the requester's comment nor an internal note is a response.
    assert (await comment(intake, rid, partner, "Any news?")).status_code == 201
    assert (await comment(intake, rid, analyst, "n/a", visibility="internal")).status_code == 201
    assert (await intake.read(rid, partner))["first_response_at"] is None

    reply = await comment(intake, rid, analyst, "Looking into it")
    assert reply.status_code == 201
    request = await intake.read(rid, partner)
    assert request["first_response_at"] is not None
    assert request["status"] == "new"  # a response is not a triage
    await eventually(
        lambda: clocks(intake, rid, partner),
        lambda c: c == {"first_response": "stopped", "resolution": "running"},
    )
    assert (await comment(intake, rid, analyst, "Still looking")).status_code == 201
    kinds = [e["kind"] for e in await events(intake, rid, analyst)]
    assert kinds == ["created", "first_response"]


async def test_questions_and_answers_move_waiting_on_requester(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-p")
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-a")
    rid = (await intake.file(partner))["id"]
    # A question needs the request in progress; refused as a whole (no comment stored).
    assert_problem(
        await comment(intake, rid, analyst, "Which region?", asks_requester=True),
        409,
        "invalid-transition",
    )
    assert await listed(intake, rid, analyst) == []
    assert_problem(await comment(intake, rid, partner, "?", asks_requester=True), 403)
    assert_problem(
        await comment(intake, rid, analyst, "?", asks_requester=True, visibility="internal"), 422
    )
    for action in ("triage", "start"):
        assert (await act(intake, rid, analyst, action)).status_code == 200

    asked = await comment(intake, rid, analyst, "Which region?", asks_requester=True)
    assert asked.status_code == 201, asked.text
    assert (await intake.read(rid, partner))["status"] == "waiting_on_requester"
    await eventually(lambda: clocks(intake, rid, partner), lambda c: c["resolution"] == "paused")
    answered = await comment(intake, rid, partner, "EU only")
    assert answered.status_code == 201
    assert (await intake.read(rid, partner))["status"] == "in_progress"
    await eventually(lambda: clocks(intake, rid, partner), lambda c: c["resolution"] == "running")
    # A further comment of the requester does not move anything.
    assert (await comment(intake, rid, partner, "Also UK")).status_code == 201
    moves = [
        (e["action"], e["to_status"], e["actor"])
        for e in await events(intake, rid, partner)
        if e["kind"] == "transitioned"
    ]
    assert moves[-2:] == [
        ("request_info", "waiting_on_requester", "key-a"),
        ("provide_info", "in_progress", "key-p"),
    ]

    # The requester confirms a resolution (closes at once), or reopens it with a reason.
    assert (await act(intake, rid, analyst, "resolve")).status_code == 200
    problem = assert_problem(await act(intake, rid, partner, "reopen"), 422)
    assert problem["errors"][0]["field"] == "body.reason"
    reopened = await act(intake, rid, partner, "reopen", reason="Still happening in FR")
    assert reopened.json()["status"] == "in_progress"
    assert (await events(intake, rid, partner))[-1]["data"] == {"reason": "Still happening in FR"}
    assert (await act(intake, rid, analyst, "resolve")).status_code == 200
    confirmed = await act(intake, rid, partner, "close")
    assert (confirmed.json()["status"], confirmed.json()["resolution"]) == ("closed", "done")
    assert_problem(await act(intake, rid, partner, "reopen", reason="late"), 409)
