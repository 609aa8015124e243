"""Use cases of search: filtered and sorted lists with keyset cursors, CSV export, similar requests.

Sorting keeps pagination an index range scan: every sort order is (column, id) with an index on
exactly that (plus `team` first for a partner's lists), and the cursor carries the last row's sort
key and id. `due` sorts on the earliest running SLA deadline, requests without one last: the page
is read in two index scans (with a deadline, then without), so NULLs never need a sort.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from services.common.db import utcnow
from services.common.errors import ValidationFailed
from services.common.identity import Identity
from services.common.pagination import decode_cursor, encode_cursor
from services.intake.models import Request
from services.intake.schemas import MAX_ID, RequestPage
from services.intake.search import fulltext
from services.intake.search.duplicates import (
    DEFAULT_SIMILAR_LIMIT,
    candidate_of,
    find_similar,
)
from services.intake.search.schemas import SimilarRead, SimilarRequest
from services.intake.service import RequestFilters, filtered_query, get_request, to_read

EXPORT_BATCH = 500
MAX_AGE = timedelta(days=36_500)
_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
CSV_COLUMNS = (
    "id",
    "team",
    "request_type",
    "title",
    "priority",
    "status",
    "resolution",
    "duplicate_of",
    "assignee",
    "requested_by",
    "marketplace",
    "tags",
    "external_refs",
    "created_at",
    "updated_at",
    "closed_at",
    "due_at",
    "sla_due_at",
    "breached_at",
)


class Sort(StrEnum):
    """Sort orders of `GET /requests` (a leading `-` is descending; ties broken by id)."""

    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    UPDATED_AT = "updated_at"
    UPDATED_AT_DESC = "-updated_at"
    PRIORITY = "priority"
    DUE = "due"


@dataclass(frozen=True, slots=True)
class _SortSpec:
    column: InstrumentedAttribute[Any]
    descending: bool
    kind: str  # how the key is carried in a cursor: "datetime" or "str"
    nulls_last: bool = False


_SORTS: dict[Sort, _SortSpec] = {
    Sort.CREATED_AT: _SortSpec(Request.created_at, False, "datetime"),
    Sort.CREATED_AT_DESC: _SortSpec(Request.created_at, True, "datetime"),
    Sort.UPDATED_AT: _SortSpec(Request.updated_at, False, "datetime"),
    Sort.UPDATED_AT_DESC: _SortSpec(Request.updated_at, True, "datetime"),
    Sort.PRIORITY: _SortSpec(Request.priority, False, "str"),
    Sort.DUE: _SortSpec(Request.sla_due_at, False, "datetime", nulls_last=True),
}


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Every filter of `GET /requests` and of the CSV export."""

    base: RequestFilters = field(default_factory=RequestFilters)
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    older_than: timedelta | None = None
    q: str | None = None


def parse_age(value: str) -> timedelta:
    """`older_than`: a number of days (`7`) or an ISO-8601 duration of weeks/days/time (`P2W`,
    `P3DT12H`); years and months are refused (their length is ambiguous). 422 otherwise."""
    text = value.strip().upper()
    try:
        if text.isdigit():
            age = timedelta(days=int(text))
        else:
            match = _DURATION.match(text)
            if match is None or text in ("P", "PT") or text.endswith("T"):
                raise ValueError(text)
            age = timedelta(**{k: int(v) for k, v in match.groupdict().items() if v})
    except (ValueError, OverflowError):
        raise _field(
            "older_than", "must be days (7) or an ISO-8601 duration (P2W, P3DT12H)"
        ) from None
    if age > MAX_AGE:
        raise _field("older_than", "must be at most 100 years")
    return age


def apply_search(
    session: AsyncSession, query: Select[Request], filters: SearchFilters
) -> Select[Request]:
    """Narrow `query` by the filters `services.intake.service.filtered_query` does not know."""
    if filters.updated_after is not None:
        query = query.where(Request.updated_at >= filters.updated_after)
    if filters.updated_before is not None:
        query = query.where(Request.updated_at < filters.updated_before)
    if filters.older_than is not None:
        query = query.where(Request.created_at < utcnow() - filters.older_than)
    if filters.q is not None and filters.q.strip():
        query = query.where(fulltext.matches(session, filters.q))
    return query


async def list_requests(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: SearchFilters,
    sort: Sort | None,
    cursor: str | None,
    limit: int,
) -> RequestPage:
    """One page of requests matching `filters` in `sort` order (newest first by default)."""
    rows, next_key = await _page(
        session, caller=caller, filters=filters, sort=sort, key=_decode(cursor, sort), limit=limit
    )
    return RequestPage(
        items=[to_read(row) for row in rows],
        next_cursor=encode_cursor(next_key) if next_key is not None else None,
    )


async def export_csv(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    caller: Identity,
    filters: SearchFilters,
    sort: Sort | None,
) -> AsyncIterator[bytes]:
    """Every request matching `filters` as CSV (header first), in batches: never all in memory.

    Its own session: the response streams after the endpoint has returned. Cells that a
    spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) are prefixed with `'`.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    key: dict[str, Any] | None = None
    async with sessionmaker() as session:
        while True:
            rows, key = await _page(
                session, caller=caller, filters=filters, sort=sort, key=key, limit=EXPORT_BATCH
            )
            buffer.seek(0)
            buffer.truncate()
            for row in rows:
                writer.writerow([_csv_cell(value) for value in _csv_values(row)])
            if rows:
                yield buffer.getvalue().encode()
            if key is None:
                return
            # Release the snapshot between batches: an export must not pin old row versions.
            await session.rollback()


async def similar_to(
    session: AsyncSession, *, caller: Identity, request_id: int, limit: int = DEFAULT_SIMILAR_LIMIT
) -> SimilarRead:
    """Open requests of the same team similar to one request, and its marked duplicates."""
    request = await get_request(session, caller=caller, request_id=request_id)
    matches = await find_similar(
        session, team=request.team, subject=candidate_of(request), limit=limit
    )
    duplicates = list(
        (
            await session.execute(
                select(Request.id)
                .where(Request.duplicate_of == request.id, Request.team == request.team)
                .order_by(Request.id)
            )
        ).scalars()
    )
    return SimilarRead(
        request_id=request.id,
        similar=[
            SimilarRequest(id=m.id, title=m.title, score=m.score, reasons=m.reasons)
            for m in matches
        ],
        duplicates=duplicates,
        duplicate_of=request.duplicate_of,
    )


# --- paging --------------------------------------------------------------------------------------


async def _page(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: SearchFilters,
    sort: Sort | None,
    key: dict[str, Any] | None,
    limit: int,
) -> tuple[list[Request], dict[str, Any] | None]:
    """Up to `limit` rows after `key`, and the key of the next page (None at the end)."""
    rows: list[Request] = []
    for query in page_queries(
        session, caller=caller, filters=filters, sort=sort, key=key, limit=limit
    ):
        rows += list((await session.execute(query)).scalars())
        if len(rows) > limit:
            break
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    if sort is None:
        return rows[:limit], {"id": last.id}
    value = getattr(last, _SORTS[sort].column.key)
    return rows[:limit], {
        "s": sort.value,
        "k": value.isoformat() if isinstance(value, datetime) else value,
        "id": last.id,
    }


def page_queries(
    session: AsyncSession,
    *,
    caller: Identity,
    filters: SearchFilters,
    sort: Sort | None,
    key: dict[str, Any] | None,
    limit: int,
) -> list[Select[Request]]:
    """The queries of one page, run in order until `limit + 1` rows are read; each one is a
    range scan of one index. Two for `due` (rows with a deadline, then those without one)."""
    base = filtered_query(caller=caller, filters=filters.base)
    if base is None:
        return []
    base = apply_search(session, base, filters)
    if sort is None:
        if key is not None:
            base = base.where(Request.id < key["id"])
        return [base.order_by(Request.id.desc()).limit(limit + 1)]
    spec = _SORTS[sort]
    queries = []
    in_null_phase = key is not None and spec.nulls_last and key["k"] is None
    if not in_null_phase:
        query = base
        if spec.nulls_last:
            query = query.where(spec.column.is_not(None))
        if key is not None:
            query = query.where(_after(spec, _key_value(spec, key["k"]), key["id"]))
        order = (
            (spec.column.desc(), Request.id.desc())
            if spec.descending
            else (spec.column, Request.id)
        )
        queries.append(query.order_by(*order).limit(limit + 1))
    if spec.nulls_last:
        query = base.where(spec.column.is_(None))
        if in_null_phase and key is not None:
            query = query.where(Request.id > key["id"])
        queries.append(query.order_by(Request.id).limit(limit + 1))
    return queries


def _after(spec: _SortSpec, value: Any, last_id: int) -> ColumnElement[bool]:
    """Rows strictly after (value, last_id) in the spec's order; the leading inequality on the
    column alone is what the index range scan starts from."""
    column = spec.column
    if spec.descending:
        return and_(column <= value, or_(column < value, Request.id < last_id))
    return and_(column >= value, or_(column > value, Request.id > last_id))


def _decode(cursor: str | None, sort: Sort | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    key = decode_cursor(cursor, required=("id",))
    last_id = key["id"]
    if type(last_id) is not int or not 0 <= last_id <= MAX_ID:
        raise _bad_cursor()
    if sort is None:
        if "s" in key:
            raise _bad_cursor("The cursor belongs to a list with another sort order.")
        return key
    if key.get("s") != sort.value or "k" not in key:
        raise _bad_cursor("The cursor belongs to a list with another sort order.")
    spec = _SORTS[sort]
    if key["k"] is None and not spec.nulls_last:
        raise _bad_cursor()
    if key["k"] is not None:
        _key_value(spec, key["k"])
    return key


def _key_value(spec: _SortSpec, raw: Any) -> Any:
    if not isinstance(raw, str) or len(raw) > 64:
        raise _bad_cursor()
    if spec.kind == "datetime":
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise _bad_cursor() from None
        if value.tzinfo is None:
            raise _bad_cursor()
        return value
    return raw


def _bad_cursor(message: str = "invalid cursor") -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this list returned.",
        errors=[{"field": "query.cursor", "message": message, "code": "cursor_invalid"}],
    )


def _field(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{name} {message}.",
        errors=[{"field": f"query.{name}", "message": message, "code": "invalid"}],
    )


# --- CSV -----------------------------------------------------------------------------------------


def _csv_values(row: Request) -> Sequence[Any]:
    values: dict[str, Any] = {name: getattr(row, name, None) for name in CSV_COLUMNS}
    values["tags"] = ";".join(row.tags)
    values["external_refs"] = ";".join(row.external_refs or [])
    return [values[name] for name in CSV_COLUMNS]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text
