"""MO suggestions over HTTP, in-process on each backend: the sop service's matching endpoints
(catalog, text to embed, storing embeddings, semantic and lexical matches) and intake's
suggestions (stored by the worker, stale after a text or catalog change, partner visibility),
decisions kept as labelled pairs, their precision, and refusals as problem+json.

The worker's part is played here by calls signed as `system`; tests/workflows/test_mo_embedding.py
runs the real worker and model end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.common import embeddings
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.intake.app import create_app as create_intake_app
from services.intake.models import OutboxEvent
from services.sop.app import create_app as create_sop_app
from tests.service.test_intake_api import assert_problem, migrate
from workflows.mo_embedding_contracts import request_mo_matching_workflow_id

Headers = Callable[..., dict[str, str]]


def unit(index: int) -> list[float]:
    """A unit vector along one axis (a stand-in for an embedding)."""
    vector = [0.0] * embeddings.DIMENSIONS
    vector[index] = 1.0
    return vector


@dataclass
class Apps:
    intake: httpx.AsyncClient
    sop: httpx.AsyncClient
    intake_app: Any
    as_: Headers
    team: str
    # The MO catalog version already known (PostgreSQL tables live for the whole session).
    base: int = 0

    @property
    def system(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.SYSTEM, subject="worker")

    @property
    def analyst(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")

    @property
    def partner(self) -> dict[str, str]:
        return self.as_(team=self.team, role=Role.PARTNER, subject="key-partner")

    async def file(self, title: str, description: str = "") -> dict[str, Any]:
        response = await self.intake.post(
            "/api/v1/requests",
            json={"request_type": "mo_investigation", "title": title, "description": description},
            headers=self.partner,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def mo(self, **fields: Any) -> dict[str, Any]:
        response = await self.sop.post(
            "/api/v1/mos", json={"team": self.team, **fields}, headers=self.analyst
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def matching_outbox_rows(self, request_id: int) -> int:
        async with self.intake_app.state.runtime.sessionmaker() as session:
            count = await session.scalar(
                select(func.count()).where(
                    OutboxEvent.workflow_id == request_mo_matching_workflow_id(request_id)
                )
            )
            return int(count or 0)

    async def suggestions(self, request_id: int, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.intake.get(
            f"/api/v1/requests/{request_id}/mo-suggestions", headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def apps(
    settings: Settings, identity_headers: Headers, unique_team: str
) -> AsyncIterator[Apps]:
    await migrate(settings)
    await asyncio.to_thread(upgrade, service="sop", database_url=settings.database_url_of("sop"))
    intake_app, sop_app = create_intake_app(settings), create_sop_app(settings)
    async with AsyncExitStack() as stack:
        clients = []
        for app, name in ((intake_app, "intake"), (sop_app, "sop")):
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url=f"http://{name}"
                    )
                )
            )
        running = Apps(
            intake=clients[0],
            sop=clients[1],
            intake_app=intake_app,
            as_=identity_headers,
            team=unique_team,
        )
        # A version of 0 never moves the catalog back: the answer is the current one.
        known = await running.intake.put(
            "/internal/mo-catalog", json={"version": 0}, headers=running.system
        )
        running.base = known.json()["version"]
        yield running


# --- sop: the worker's matching endpoints ------------------------------------------------------


async def test_sop_stores_an_mo_embedding_and_matches_semantically_or_lexically(
    apps: Apps,
) -> None:
    sop, system = apps.sop, apps.system
    before = (await sop.get("/internal/mos/catalog", headers=system)).json()
    mo = await apps.mo(
        name=f"Voucher draining {apps.team}",
        summary="Vouchers emptied after purchase.",
        indicators={"signals": ["Redemption burst"], "entity_types": ["voucher"]},
    )
    catalog = (await sop.get("/internal/mos/catalog", headers=system)).json()
    assert catalog["version"] > before["version"]
    assert catalog["mos"] == before["mos"] + 1

    text = (await sop.get(f"/internal/mos/{mo['id']}/matching-text", headers=system)).json()
    assert text["text"].startswith(f"Voucher draining {apps.team}\nVouchers emptied")
    assert text["indicators"] == [
        {"kind": "signal", "text": "redemption burst"},
        {"kind": "entity_type", "text": "voucher"},
    ]
    assert text["embedded"] is False
    good = {
        "text_hash": text["text_hash"],
        "model": embeddings.MODEL_NAME,
        "vector": embeddings.to_base64(unit(0)),
        "indicator_vectors": [embeddings.to_base64(unit(1)), embeddings.to_base64(unit(2))],
    }
    path = f"/internal/mos/{mo['id']}/embedding"
    assert_problem(
        await sop.put(path, json={**good, "text_hash": "0" * 64}, headers=system), 409, "conflict"
    )
    assert_problem(
        await sop.put(
            path, json={**good, "indicator_vectors": good["indicator_vectors"][:1]}, headers=system
        ),
        422,
    )
    for bad in ({"vector": "AAAA"}, {"vector": "%%%"}, {"text_hash": "xyz"}, {"extra": 1}):
        assert_problem(await sop.put(path, json={**good, **bad}, headers=system), 422)
    stored = await sop.put(path, json=good, headers=system)
    assert stored.status_code == 200, stored.text
    assert stored.json()["catalog_version"] > catalog["version"]
    assert (await sop.get(f"/internal/mos/{mo['id']}/matching-text", headers=system)).json()[
        "embedded"
    ]

    # Semantic: the query vector equals the MO's; the indicator close to it is named.
    query = [0.8 * a + 0.6 * b for a, b in zip(unit(0), unit(2), strict=True)]
    semantic = await sop.post(
        "/internal/mos/match",
        json={
            "text": "anything",
            "embedding": embeddings.to_base64(query),
            "model": embeddings.MODEL_NAME,
            "limit": 3,
        },
        headers=system,
    )
    assert semantic.status_code == 200, semantic.text
    body = semantic.json()
    assert body["method"] == "semantic"
    assert body["model"] == embeddings.MODEL_NAME
    first = body["items"][0]
    assert first["mo_id"] == mo["id"]
    assert first["team"] == apps.team
    assert first["status"] == "suspected"
    assert first["score"] == pytest.approx(100 * (0.8 * 0.8 + 0.2 * 0.6), abs=0.2)
    assert [(i["kind"], i["text"]) for i in first["matching_indicators"]] == [
        ("entity_type", "voucher")
    ]
    # Another model's vectors are not comparable: the MO is left out and counted.
    other_model = await sop.post(
        "/internal/mos/match",
        json={"text": "x", "embedding": embeddings.to_base64(query), "model": "other-model"},
        headers=system,
    )
    assert mo["id"] not in [i["mo_id"] for i in other_model.json()["items"]]
    assert other_model.json()["unembedded_mos"] >= 1

    lexical = await sop.post(
        "/internal/mos/match",
        json={"text": f"voucher draining {apps.team} after a redemption burst", "limit": 1},
        headers=system,
    )
    assert lexical.json()["method"] == "lexical"
    assert lexical.json()["model"] is None
    (item,) = lexical.json()["items"]
    assert item["mo_id"] == mo["id"]
    assert {i["text"] for i in item["matching_indicators"]} == {"redemption burst", "voucher"}

    # Changing the MO's text makes its embedding stale (and moves the catalog).
    patched = await sop.patch(
        f"/api/v1/mos/{mo['id']}", json={"summary": "Something else."}, headers=apps.analyst
    )
    assert patched.status_code == 200, patched.text
    assert not (await sop.get(f"/internal/mos/{mo['id']}/matching-text", headers=system)).json()[
        "embedded"
    ]
    assert_problem(await sop.put(path, json=good, headers=system), 409)


async def test_sop_matching_endpoints_refuse_other_callers_and_bad_input(apps: Apps) -> None:
    sop, system = apps.sop, apps.system
    mo = await apps.mo(name="Refusals")
    for headers in (apps.analyst, apps.partner, apps.as_(role=Role.ADMIN)):
        assert_problem(await sop.get("/internal/mos/catalog", headers=headers), 403)
        assert_problem(
            await sop.get(f"/internal/mos/{mo['id']}/matching-text", headers=headers), 403
        )
        assert_problem(
            await sop.post("/internal/mos/match", json={"text": "x"}, headers=headers), 403
        )
    assert_problem(await sop.get("/internal/mos/catalog"), 401)
    assert_problem(await sop.get("/internal/mos/2147483000/matching-text", headers=system), 404)
    assert_problem(await sop.get("/internal/mos/0/matching-text", headers=system), 422)
    missing = {
        "text_hash": "0" * 64,
        "model": "m",
        "vector": embeddings.to_base64(unit(0)),
        "indicator_vectors": [],
    }
    assert_problem(
        await sop.put("/internal/mos/2147483000/embedding", json=missing, headers=system), 404
    )
    for bad in (
        {"text": ""},
        {"text": "x", "limit": 0},
        {"text": "x", "limit": 51},
        {"text": "x", "min_score": 101},
        {"text": "x\x00"},
        {"text": "x", "embedding": "short"},
        {"text": "x", "unknown": True},
    ):
        assert_problem(await sop.post("/internal/mos/match", json=bad, headers=system), 422)


# --- intake: suggestions, staleness, visibility ------------------------------------------------


def stored(mo_id: int, team: str, score: float) -> dict[str, Any]:
    return {
        "mo_id": mo_id,
        "name": f"MO {mo_id}",
        "team": team,
        "status": "confirmed",
        "score": score,
        "matching_indicators": [{"kind": "signal", "text": "voucher redemption", "score": 61.5}],
    }


async def put_suggestions(apps: Apps, request_id: int, **fields: Any) -> httpx.Response:
    current = (
        await apps.intake.get(f"/internal/requests/{request_id}/mo-matching", headers=apps.system)
    ).json()
    body = {
        "text_hash": current["text_hash"],
        "method": "semantic",
        "model": embeddings.MODEL_NAME,
        "catalog_version": apps.base + 10,
        "items": [stored(7, "risk-mining", 71.2), stored(8, apps.team, 55.0)],
        **fields,
    }
    return await apps.intake.put(
        f"/internal/requests/{request_id}/mo-suggestions", json=body, headers=apps.system
    )


async def test_suggestions_are_pending_then_ready_then_stale_after_a_change(apps: Apps) -> None:
    request = await apps.file("Vouchers emptied", "Right after checkout.")
    rid = request["id"]
    assert await apps.matching_outbox_rows(rid) == 1, "filing asks for matching"

    pending = await apps.suggestions(rid, apps.analyst)
    assert pending["status"] == "pending"
    assert pending["items"] == []
    assert pending["method"] is None
    # The read asked for a recompute once (there was no row yet); a second read does not.
    assert await apps.matching_outbox_rows(rid) == 2
    await apps.suggestions(rid, apps.analyst)
    assert await apps.matching_outbox_rows(rid) == 2

    current = (
        await apps.intake.get(f"/internal/requests/{rid}/mo-matching", headers=apps.system)
    ).json()
    assert current["text"] == "Vouchers emptied\nRight after checkout."
    assert current["embedding"] is None
    vector = embeddings.to_base64(unit(3))
    put = await apps.intake.put(
        f"/internal/requests/{rid}/embedding",
        json={"text_hash": current["text_hash"], "model": embeddings.MODEL_NAME, "vector": vector},
        headers=apps.system,
    )
    assert put.json() == {"request_id": rid, "stored": True}
    again = (
        await apps.intake.get(f"/internal/requests/{rid}/mo-matching", headers=apps.system)
    ).json()
    assert again["embedding"] == vector
    assert again["embedding_model"] == embeddings.MODEL_NAME

    assert (await put_suggestions(apps, rid)).json()["stored"] is True
    ready = await apps.suggestions(rid, apps.analyst)
    assert ready["status"] == "ready"
    assert ready["method"] == "semantic"
    assert ready["model"] == embeddings.MODEL_NAME
    assert ready["computed_at"] is not None
    assert [(i["rank"], i["mo_id"], i["score"], i["decision"]) for i in ready["items"]] == [
        (1, 7, 71.2, None),
        (2, 8, 55.0, None),
    ]
    assert ready["items"][0]["matching_indicators"] == [
        {"kind": "signal", "text": "voucher redemption", "score": 61.5}
    ]
    # A partner of the request's team sees only its team's MOs (rank kept); another team, 404.
    mine = await apps.suggestions(rid, apps.partner)
    assert [(i["rank"], i["mo_id"]) for i in mine["items"]] == [(2, 8)]
    other = apps.as_(team="someone-else", role=Role.PARTNER)
    assert_problem(
        await apps.intake.get(f"/api/v1/requests/{rid}/mo-suggestions", headers=other), 404
    )

    # Suggestions ranked against an older catalog never replace newer ones.
    older = await put_suggestions(apps, rid, catalog_version=apps.base + 5, items=[])
    assert older.json()["stored"] is False

    # The MO catalog moved: stale (previous items shown), a recompute asked for once.
    rows = await apps.matching_outbox_rows(rid)
    moved = await apps.intake.put(
        "/internal/mo-catalog", json={"version": apps.base + 20}, headers=apps.system
    )
    assert moved.json() == {"version": apps.base + 20}
    back = await apps.intake.put(
        "/internal/mo-catalog", json={"version": apps.base + 3}, headers=apps.system
    )
    assert back.json() == {"version": apps.base + 20}, "the catalog version never moves back"
    stale = await apps.suggestions(rid, apps.analyst)
    assert stale["status"] == "stale"
    assert len(stale["items"]) == 2
    assert await apps.matching_outbox_rows(rid) == rows + 1
    assert (
        await put_suggestions(
            apps, rid, catalog_version=apps.base + 20, method="lexical", model=None
        )
    ).json()["stored"]
    relexed = await apps.suggestions(rid, apps.analyst)
    assert (relexed["status"], relexed["method"], relexed["model"]) == ("ready", "lexical", None)

    # The text changed: a new version asks for matching, the stored ones are stale, and the
    # worker's write computed from the old text is refused (409).
    old = (
        await apps.intake.get(f"/internal/requests/{rid}/mo-matching", headers=apps.system)
    ).json()
    rows = await apps.matching_outbox_rows(rid)
    patched = await apps.intake.patch(
        f"/api/v1/requests/{rid}",
        json={"description": "Store credit spent by strangers."},
        headers={**apps.partner, "If-Match": f'"{request["version"]}"'},
    )
    assert patched.status_code == 200, patched.text
    assert await apps.matching_outbox_rows(rid) == rows + 1
    assert (await apps.suggestions(rid, apps.analyst))["status"] == "stale"
    assert (
        await apps.intake.get(f"/internal/requests/{rid}/mo-matching", headers=apps.system)
    ).json()["embedding"] is None, "the embedding of the old text is not served"
    assert_problem(
        await apps.intake.put(
            f"/internal/requests/{rid}/mo-suggestions",
            json={
                "text_hash": old["text_hash"],
                "method": "lexical",
                "catalog_version": apps.base + 30,
                "items": [],
            },
            headers=apps.system,
        ),
        409,
    )
    # A change that leaves the text alone asks for nothing.
    rows = await apps.matching_outbox_rows(rid)
    tagged = await apps.intake.patch(
        f"/api/v1/requests/{rid}",
        json={"tags": ["vouchers"]},
        headers={**apps.partner, "If-Match": f'"{patched.json()["version"]}"'},
    )
    assert tagged.status_code == 200, tagged.text
    assert await apps.matching_outbox_rows(rid) == rows


async def test_internal_writes_refuse_other_callers_and_bad_bodies(apps: Apps) -> None:
    rid = (await apps.file("Internal refusals"))["id"]
    for headers in (apps.analyst, apps.partner):
        assert_problem(
            await apps.intake.get(f"/internal/requests/{rid}/mo-matching", headers=headers), 403
        )
        assert_problem(await put_suggestions_as(apps, rid, headers), 403)
        assert_problem(
            await apps.intake.put("/internal/mo-catalog", json={"version": 1}, headers=headers),
            403,
        )
    assert_problem(
        await apps.intake.get("/internal/requests/2147483000/mo-matching", headers=apps.system), 404
    )
    assert_problem(await put_suggestions_as(apps, 2147483000, apps.system), 404)
    for bad in (
        {"method": "magic"},
        {"catalog_version": -1},
        {"items": [{**stored(1, "t", 50), "score": 101}]},
        {"items": [{**stored(1, "t", 50), "mo_id": 0}]},
        {
            "items": [
                {
                    **stored(1, "t", 50),
                    "matching_indicators": [{"kind": "x", "text": "y", "score": 1}],
                }
            ]
        },
        {"surprise": True},
    ):
        assert_problem(await put_suggestions(apps, rid, **bad), 422)
    for bad_vector in ("AAAA", "not base64!", embeddings.to_base64([float("nan")] * 384)):
        assert_problem(
            await apps.intake.put(
                f"/internal/requests/{rid}/embedding",
                json={"text_hash": "0" * 64, "model": "m", "vector": bad_vector},
                headers=apps.system,
            ),
            422,
        )
    assert_problem(
        await apps.intake.put("/internal/mo-catalog", json={"version": "x"}, headers=apps.system),
        422,
    )


async def put_suggestions_as(
    apps: Apps, request_id: int, headers: dict[str, str]
) -> httpx.Response:
    body = {"text_hash": "0" * 64, "method": "lexical", "catalog_version": 1, "items": []}
    return await apps.intake.put(
        f"/internal/requests/{request_id}/mo-suggestions", json=body, headers=headers
    )


# --- decisions, labels, precision --------------------------------------------------------------


async def test_analysts_confirm_or_reject_suggestions_and_the_labels_measure_precision(
    apps: Apps,
) -> None:
    first = (await apps.file("Labelled one"))["id"]
    second = (await apps.file("Labelled two"))["id"]
    for rid in (first, second):
        assert (await put_suggestions(apps, rid)).status_code == 200
    decide = "/api/v1/requests/{}/mo-suggestions/{}/decision"

    confirmed = await apps.intake.post(
        decide.format(first, 7), json={"decision": "confirm"}, headers=apps.analyst
    )
    assert confirmed.status_code == 201, confirmed.text
    label = confirmed.json()
    assert (label["decision"], label["rank"], label["score"], label["method"]) == (
        "confirmed",
        1,
        71.2,
        "semantic",
    )
    assert label["decided_by"] == "key-analyst"
    assert label["team"] == apps.team
    rejected = await apps.intake.post(
        decide.format(first, 8),
        json={"decision": "reject", "comment": "different pattern"},
        headers=apps.analyst,
    )
    assert rejected.status_code == 201
    # Second request: the right MO was ranked 2nd; the analyst first rejected, then confirmed it.
    await apps.intake.post(
        decide.format(second, 8), json={"decision": "reject"}, headers=apps.analyst
    )
    replaced = await apps.intake.post(
        decide.format(second, 8), json={"decision": "confirm"}, headers=apps.analyst
    )
    assert replaced.status_code == 200
    assert replaced.json()["decision"] == "confirmed"

    shown = await apps.suggestions(first, apps.analyst)
    assert [(i["mo_id"], i["decision"]) for i in shown["items"]] == [
        (7, "confirmed"),
        (8, "rejected"),
    ]

    # Refusals: partner or approver (403), an MO not suggested or a hidden request (404), bad body.
    for headers in (apps.partner, apps.as_(role=Role.APPROVER)):
        assert_problem(
            await apps.intake.post(
                decide.format(first, 7), json={"decision": "confirm"}, headers=headers
            ),
            403,
        )
    assert_problem(
        await apps.intake.post(
            decide.format(first, 99), json={"decision": "confirm"}, headers=apps.analyst
        ),
        404,
    )
    assert_problem(
        await apps.intake.post(
            decide.format(2147483000, 7), json={"decision": "confirm"}, headers=apps.analyst
        ),
        404,
    )
    for bad in ({"decision": "maybe"}, {}, {"decision": "confirm", "extra": 1}):
        assert_problem(
            await apps.intake.post(decide.format(first, 7), json=bad, headers=apps.analyst), 422
        )
    unmatched = (await apps.file("Never matched"))["id"]
    assert_problem(
        await apps.intake.post(
            decide.format(unmatched, 7), json={"decision": "confirm"}, headers=apps.analyst
        ),
        404,
    )

    labels = await apps.intake.get(
        "/api/v1/requests/mo-suggestion-labels", params={"limit": 1}, headers=apps.analyst
    )
    assert labels.status_code == 200, labels.text
    page = labels.json()
    # A page holds whole requests: the newest labelled one (second) first.
    assert [(i["request_id"], i["mo_id"]) for i in page["items"]] == [(second, 8)]
    following = await apps.intake.get(
        "/api/v1/requests/mo-suggestion-labels",
        params={"limit": 1, "cursor": page["next_cursor"]},
        headers=apps.analyst,
    )
    assert [(i["request_id"], i["mo_id"]) for i in following.json()["items"]] == [
        (first, 7),
        (first, 8),
    ]
    only_rejected = await apps.intake.get(
        "/api/v1/requests/mo-suggestion-labels",
        params={"decision": "rejected", "limit": 200},
        headers=apps.analyst,
    )
    assert (first, 8) in [(i["request_id"], i["mo_id"]) for i in only_rejected.json()["items"]]
    assert all(i["decision"] == "rejected" for i in only_rejected.json()["items"])

    precision = await apps.intake.get(
        "/api/v1/requests/mo-suggestion-labels/precision",
        params={"k": 1, "method": "semantic"},
        headers=apps.analyst,
    )
    assert precision.status_code == 200, precision.text
    measured = precision.json()
    assert measured["k"] == 1
    assert measured["judged_at_k"] >= 1
    assert measured["requests_confirmed"] >= 2
    assert 0 < measured["hit_rate_at_k"] < 1

    assert_problem(
        await apps.intake.get("/api/v1/requests/mo-suggestion-labels", headers=apps.partner), 403
    )
    assert_problem(
        await apps.intake.get(
            "/api/v1/requests/mo-suggestion-labels/precision", headers=apps.partner
        ),
        403,
    )
    for params in ({"k": 0}, {"k": 21}, {"method": "guess"}):
        assert_problem(
            await apps.intake.get(
                "/api/v1/requests/mo-suggestion-labels/precision",
                params=params,
                headers=apps.analyst,
            ),
            422,
        )
    assert_problem(
        await apps.intake.get(
            "/api/v1/requests/mo-suggestion-labels", params={"cursor": "junk"}, headers=apps.analyst
        ),
        422,
    )
