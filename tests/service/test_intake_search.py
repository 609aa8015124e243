"""Search on the intake service in-process, on each backend: similar requests and duplicates,
filters (updated range, older_than, full text), sort orders with keyset cursors, the CSV export,
and (PostgreSQL) every main list query planned on an index."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ClauseElement, Executable, text, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from services.common.identity import Identity, Role
from services.common.settings import Settings
from services.intake.models import Request
from services.intake.search import service as search
from services.intake.service import RequestFilters
from tests.service.test_intake_api import PROBLEM, Intake, running_intake

pytestmark = pytest.mark.timeout(180)


def staff(intake: Intake) -> dict[str, str]:
    return intake.as_(team="risk-mining", role=Role.ANALYST, subject="analyst-ana")


async def set_columns(intake: Intake, request_id: int, **values: Any) -> None:
    """Move a request's timestamps (the test cannot wait days)."""
    async with intake.runtime.sessionmaker() as session:
        await session.execute(update(Request).where(Request.id == request_id).values(**values))
        await session.commit()


async def list_all(intake: Intake, headers: dict[str, str], **params: Any) -> list[int]:
    """Every id of a list, following cursors with a small page size."""
    ids: list[int] = []
    cursor = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await intake.http.get("/api/v1/requests", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_filing_returns_similar_requests_and_duplicates_link_both(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    async with running_intake(settings, identity_headers, worker=False) as intake:
        partner = intake.as_(team=unique_team)
        original = await intake.file(
            partner,
            title="Coupon abuse ring on new buyer accounts",
            description="Hundreds of fresh accounts redeem the same welcome coupon.",
        )
        assert original["similar"] == []
        unrelated = await intake.file(
            partner, title="Chargeback spike in DE electronics", external_refs=["JIRA-77"]
        )
        second = await intake.file(
            partner,
            title="New buyer accounts abusing a coupon - ring",
            description="Fresh accounts keep redeeming the same welcome coupon again and again.",
        )
        similar = {match["id"]: match for match in second["similar"]}
        assert original["id"] in similar
        assert unrelated["id"] not in similar
        assert similar[original["id"]]["score"] >= 70
        assert any("title similarity" in r for r in similar[original["id"]]["reasons"])

        # A shared external reference scores high even with unrelated words.
        third = await intake.file(
            partner, title="Totally different wording", external_refs=[" jira-77 "]
        )
        by_ref = {match["id"]: match for match in third["similar"]}
        assert by_ref[unrelated["id"]]["score"] >= 95
        assert "shares external reference jira-77" in by_ref[unrelated["id"]]["reasons"]

        # Another team's requests are never candidates, however alike.
        other = await intake.file(
            intake.as_(team=f"{unique_team}-x"),
            title="Coupon abuse ring on new buyer accounts",
            description="Hundreds of fresh accounts redeem the same welcome coupon.",
        )
        assert original["id"] not in {m["id"] for m in other["similar"]}

        response = await intake.http.get(
            f"/api/v1/requests/{original['id']}/similar", headers=partner
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert second["id"] in {m["id"] for m in body["similar"]}
        assert body["duplicates"] == []
        assert body["duplicate_of"] is None

        marked = await intake.act(
            second["id"], staff(intake), "mark_duplicate", duplicate_of=original["id"]
        )
        assert marked.status_code == 200, marked.text
        assert marked.json()["status"] == "closed"
        assert marked.json()["resolution"] == "duplicate"

        body = (
            await intake.http.get(f"/api/v1/requests/{original['id']}/similar", headers=partner)
        ).json()
        assert body["duplicates"] == [second["id"]]
        # A closed duplicate is no longer offered as similar.
        assert second["id"] not in {m["id"] for m in body["similar"]}
        back = (
            await intake.http.get(f"/api/v1/requests/{second['id']}/similar", headers=partner)
        ).json()
        assert back["duplicate_of"] == original["id"]
        # The requester's notification: the transition event (-> request.status_changed).
        events = (
            await intake.http.get(f"/api/v1/requests/{second['id']}/events", headers=partner)
        ).json()["items"]
        assert events[-1]["action"] == "mark_duplicate"
        assert events[-1]["data"]["duplicate_of"] == original["id"]

        # Unhappy paths: problem+json, never a 500.
        for url, status in (
            (f"/api/v1/requests/{other['id']}/similar", 404),
            ("/api/v1/requests/999999999/similar", 404),
            ("/api/v1/requests/0/similar", 422),
            (f"/api/v1/requests/{original['id']}/similar?limit=0", 422),
            (f"/api/v1/requests/{original['id']}/similar?limit=21", 422),
        ):
            response = await intake.http.get(url, headers=partner)
            assert response.status_code == status, (url, response.text)
            assert response.headers["content-type"].startswith(PROBLEM)


async def test_filters_full_text_and_sorts_with_cursors(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    async with running_intake(settings, identity_headers, worker=False) as intake:
        partner = intake.as_(team=unique_team)
        now = datetime.now(UTC)
        specs = [
            ("Gift card resale ring", "Stolen cards buy gift cards", "P1", 10, 1, 3),
            ("Promo abuse by resellers", "Coupons stacked at checkout", "P0", 8, 6, None),
            ("Account takeover wave", "Password spraying on gift accounts", "P2", 5, 2, 1),
            ("Refund fraud in electronics", "Empty boxes returned", "P3", 1, 0, None),
            ("Triangulation fraud", "Resellers ship from other marketplaces", "P1", 0, 0, 2),
        ]
        ids = []
        for title, description, priority, age_days, touched_days, due_days in specs:
            filed = await intake.file(
                partner, title=title, description=description, priority=priority
            )
            ids.append(filed["id"])
            await set_columns(
                intake,
                filed["id"],
                created_at=now - timedelta(days=age_days, minutes=len(ids)),
                updated_at=now - timedelta(days=touched_days, minutes=len(ids)),
                sla_due_at=now + timedelta(days=due_days) if due_days is not None else None,
            )
        a, b, c, d, e = ids

        assert await list_all(intake, partner) == [e, d, c, b, a]
        assert await list_all(intake, partner, sort="created_at") == [a, b, c, d, e]
        assert await list_all(intake, partner, sort="-created_at") == [e, d, c, b, a]
        assert await list_all(intake, partner, sort="updated_at") == [b, c, a, e, d]
        assert await list_all(intake, partner, sort="-updated_at") == [d, e, a, c, b]
        assert await list_all(intake, partner, sort="priority") == [b, a, e, c, d]
        # Due: earliest SLA deadline first, requests without one last (by id).
        assert await list_all(intake, partner, sort="due") == [c, e, a, b, d]

        assert await list_all(intake, partner, older_than="7") == [b, a]
        assert await list_all(intake, partner, older_than="P1W") == [b, a]
        assert await list_all(intake, partner, older_than="PT36H", sort="created_at") == [a, b, c]
        after = (now - timedelta(days=3)).isoformat()
        assert await list_all(intake, partner, updated_after=after) == [e, d, c, a]
        assert await list_all(intake, partner, updated_before=after) == [b]
        assert await list_all(intake, partner, q="gift") == [c, a]
        assert await list_all(intake, partner, q="gift -takeover") == [a]
        assert await list_all(intake, partner, q='"gift cards" or electronics') == [d, a]
        assert await list_all(intake, partner, q="resellers", sort="priority") == [b, e]
        assert await list_all(intake, partner, q="nothing-matches-this") == []
        assert await list_all(intake, partner, q="the") == []
        assert await list_all(intake, partner, q="\"' OR 1=1 --") == []
        # Staff see another team's list only by asking for it; a partner never does.
        assert await list_all(intake, staff(intake), team=unique_team, q="gift") == [c, a]
        assert await list_all(intake, intake.as_(team=f"{unique_team}-x"), q="gift") == []

        # A cursor of one sort order is refused by another; junk and bad values are 422.
        first = (
            await intake.http.get(
                "/api/v1/requests", params={"sort": "due", "limit": 1}, headers=partner
            )
        ).json()
        for params in (
            {"sort": "priority", "cursor": first["next_cursor"]},
            {"cursor": first["next_cursor"]},
            {"sort": "due", "cursor": "not-a-cursor"},
            {"sort": "sideways"},
            {"older_than": "P1Y"},
            {"older_than": "soon"},
            {"older_than": "P"},
            {"older_than": "999999999999"},
            {"updated_after": "2026-01-01T00:00:00"},
            {"q": "x" * 501},
        ):
            response = await intake.http.get("/api/v1/requests", params=params, headers=partner)
            assert response.status_code == 422, (params, response.text)
            assert response.headers["content-type"].startswith(PROBLEM)


async def test_csv_export_streams_the_filtered_list(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    async with running_intake(settings, identity_headers, worker=False) as intake:
        partner = intake.as_(team=unique_team)
        first = await intake.file(
            partner,
            title='=HYPERLINK("http://evil") coupon, "quoted"',
            description="line one\nline two",
            tags=["coupons", "promo"],
            external_refs=["JIRA-1", "https://wiki/x"],
        )
        second = await intake.file(partner, title="Second coupon case", priority="P0")
        await intake.file(partner, title="Unrelated electronics fraud")
        await intake.file(intake.as_(team=f"{unique_team}-x"), title="Other team coupon")

        response = await intake.http.get(
            "/api/v1/requests/export.csv", params={"q": "coupon"}, headers=partner
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["id"]) for r in rows] == [second["id"], first["id"]]
        assert list(rows[0]) == list(search.CSV_COLUMNS)
        exported = rows[1]
        assert exported["title"] == '\'=HYPERLINK("http://evil") coupon, "quoted"'
        assert exported["tags"] == "coupons;promo"
        assert exported["external_refs"] == "JIRA-1;https://wiki/x"
        assert exported["team"] == unique_team
        assert exported["status"] == "new"
        assert datetime.fromisoformat(exported["created_at"]).tzinfo is not None
        assert rows[0]["priority"] == "P0"
        assert rows[0]["closed_at"] == ""

        sorted_rows = await intake.http.get(
            "/api/v1/requests/export.csv", params={"sort": "priority"}, headers=partner
        )
        ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(sorted_rows.text))]
        assert ids[0] == second["id"]
        assert len(ids) == 3

        # More rows than one batch: still every row, once.
        search_batch = search.EXPORT_BATCH
        search.EXPORT_BATCH = 2
        try:
            every = await intake.http.get("/api/v1/requests/export.csv", headers=partner)
        finally:
            search.EXPORT_BATCH = search_batch
        assert len(list(csv.DictReader(io.StringIO(every.text)))) == 3

        empty = await intake.http.get(
            "/api/v1/requests/export.csv", params={"team": "someone-else"}, headers=partner
        )
        assert empty.status_code == 200
        assert empty.text.strip() == ",".join(search.CSV_COLUMNS)
        bad = await intake.http.get(
            "/api/v1/requests/export.csv", params={"older_than": "never"}, headers=partner
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith(PROBLEM)
        # The request route still refuses a non-numeric id the usual way.
        assert (
            await intake.http.get("/api/v1/requests/export.json", headers=partner)
        ).status_code == 422


class Explain(Executable, ClauseElement):
    """`EXPLAIN <select>` with the select's own bind parameters."""

    inherit_cache = False

    def __init__(self, query: Any) -> None:
        self.query = query


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.query, **kw)


async def test_every_main_list_query_is_served_by_an_index(
    backend: str,
    settings: Settings,
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    if backend != "postgresql":
        pytest.skip("plans are checked on PostgreSQL")
    async with running_intake(settings, identity_headers, worker=False) as intake:
        await intake.file(intake.as_(team=unique_team), title="Seed row")
        partner = Identity(subject="p", team=unique_team, role=Role.PARTNER)
        analyst = Identity(subject="a", team="risk-mining", role=Role.ANALYST)
        now = datetime.now(UTC)
        from services.intake.domain import Priority, RequestStatus

        cases: list[tuple[Identity, search.SearchFilters, search.Sort | None]] = [
            (partner, search.SearchFilters(), None),
            (
                analyst,
                search.SearchFilters(base=RequestFilters(statuses=[RequestStatus.NEW])),
                None,
            ),
            (analyst, search.SearchFilters(base=RequestFilters(priorities=[Priority.P0])), None),
            (analyst, search.SearchFilters(base=RequestFilters(assignee="ana")), None),
            (analyst, search.SearchFilters(base=RequestFilters(tag="coupons")), None),
            (analyst, search.SearchFilters(base=RequestFilters(breached=True)), None),
            (analyst, search.SearchFilters(base=RequestFilters(due_before=now)), None),
            (analyst, search.SearchFilters(base=RequestFilters(created_after=now)), None),
            (analyst, search.SearchFilters(updated_after=now), None),
            (analyst, search.SearchFilters(older_than=timedelta(days=30)), None),
            (analyst, search.SearchFilters(q="coupon abuse"), None),
            (partner, search.SearchFilters(q="coupon abuse"), None),
            *[(partner, search.SearchFilters(), sort) for sort in search.Sort],
            *[(analyst, search.SearchFilters(), sort) for sort in search.Sort],
        ]
        async with intake.runtime.sessionmaker() as session:
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            for caller, filters, sort in cases:
                for query in search.page_queries(
                    session, caller=caller, filters=filters, sort=sort, key=None, limit=50
                ):
                    plan = "\n".join(
                        row[0] for row in (await session.execute(Explain(query))).all()
                    )
                    case = (caller.role, filters, sort)
                    assert "Seq Scan on request " not in plan + " ", (case, plan)
                    assert "Index" in plan, (case, plan)
