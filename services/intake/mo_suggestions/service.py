"""Use cases of MO suggestions: read them (asking for a recompute when stale), judge them, list
the labelled pairs and their precision, and the worker's internal writes.

The worker (workflows/mo_embedding.py) computes embeddings and asks the sop service for the
closest MOs; this service only stores and serves the result, so a read never runs the model nor
calls another service. A read that finds the suggestions stale (the request's text changed, or
the MO catalog moved past the version they were ranked against) asks once for a recompute
through the outbox and shows the previous ones meanwhile.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import embeddings
from services.common.db import utcnow
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.identity import Identity, Role
from services.common.pagination import decode_int_cursor, encode_cursor
from services.intake.mo_suggestions.models import MoCatalogState, MoMatchLabel, RequestMoMatch
from services.intake.mo_suggestions.schemas import (
    MAX_INT,
    Decision,
    DecisionCreate,
    IndicatorMatch,
    Method,
    MoCatalogRead,
    MoCatalogWrite,
    MoSuggestionLabelPage,
    MoSuggestionLabelRead,
    MoSuggestionRead,
    MoSuggestionsRead,
    MoSuggestionsWrite,
    PrecisionRead,
    RequestEmbeddingWrite,
    RequestMatchingRead,
    StoredRead,
    Verdict,
)
from services.intake.mo_suggestions.triggers import enqueue_mo_matching
from services.intake.models import Request
from services.intake.service import get_request

CATALOG_ROW = 1


def request_text(request: Request) -> str:
    """The text a request is matched by: title and description."""
    return f"{request.title.strip()}\n{request.description.strip()}".strip()


def _require_system(caller: Identity) -> None:
    if caller.role is not Role.SYSTEM:
        raise Forbidden("Only the worker (the system role) writes MO suggestions.")


def _require_staff(caller: Identity, what: str) -> None:
    if caller.role not in (Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN):
        raise Forbidden(f"Only analysts, program managers and admins {what}.")


async def catalog_version(session: AsyncSession) -> int:
    """The newest MO catalog version the worker reported (0 before any)."""
    row = await session.get(MoCatalogState, CATALOG_ROW)
    return row.version if row is not None else 0


async def _match_row(session: AsyncSession, request_id: int) -> RequestMoMatch:
    row = await session.get(RequestMoMatch, request_id)
    if row is None:
        row = RequestMoMatch(request_id=request_id, suggestions=[])
        session.add(row)
    return row


async def _commit_or_retry(session: AsyncSession) -> None:
    # Two first writes of the same request's row race on its primary key: the loser is a 409
    # the worker's retry (or the reader's next read) resolves.
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("A concurrent write of the same suggestions won; retry.") from exc


# --- public ----------------------------------------------------------------------------------


async def read_suggestions(
    session: AsyncSession, *, caller: Identity, request_id: int, task_queue: str
) -> MoSuggestionsRead:
    """The request's suggestions (same visibility as the request; a partner sees only MOs of its
    own team); asks for a recompute once when they are stale or missing."""
    request = await get_request(session, caller=caller, request_id=request_id)
    digest = embeddings.text_hash(request_text(request))
    version = await catalog_version(session)
    row = await session.get(RequestMoMatch, request.id)
    computed = row is not None and row.suggestions_text_hash is not None
    fresh = (
        row is not None
        and row.suggestions_text_hash == digest
        and (row.catalog_version or 0) >= version
    )
    if not fresh:
        asked = (
            row is not None
            and row.refresh_text_hash == digest
            and (row.refresh_catalog_version or 0) >= version
        )
        if not asked:
            row = await _match_row(session, request.id)
            row.refresh_text_hash = digest
            row.refresh_catalog_version = version
            row.refresh_requested_at = utcnow()
            enqueue_mo_matching(
                session, request_id=request.id, task_queue=task_queue, reason="stale_on_read"
            )
            try:
                await session.commit()
            except IntegrityError:
                # Another read asked at the same instant: its recompute serves this one too.
                await session.rollback()
                row = await session.get(RequestMoMatch, request.id)
    verdicts = {
        label.mo_id: Verdict(label.decision)
        for label in (
            await session.execute(select(MoMatchLabel).where(MoMatchLabel.request_id == request.id))
        ).scalars()
    }
    items = []
    if row is not None and computed:
        for rank, stored in enumerate(row.suggestions, start=1):
            if not caller.can_see_team(stored["team"]):
                continue
            items.append(
                MoSuggestionRead(
                    rank=rank,
                    mo_id=stored["mo_id"],
                    name=stored["name"],
                    team=stored["team"],
                    status=stored["status"],
                    score=stored["score"],
                    matching_indicators=[
                        IndicatorMatch.model_validate(m) for m in stored["matching_indicators"]
                    ],
                    decision=verdicts.get(stored["mo_id"]),
                )
            )
    return MoSuggestionsRead(
        request_id=request.id,
        status="ready" if fresh else ("stale" if computed else "pending"),
        method=Method(row.method) if row is not None and computed and row.method else None,
        model=row.model if row is not None and computed else None,
        computed_at=row.computed_at if row is not None and computed else None,
        items=items,
    )


async def decide(
    session: AsyncSession,
    *,
    caller: Identity,
    request_id: int,
    mo_id: int,
    data: DecisionCreate,
) -> tuple[bool, MoSuggestionLabelRead]:
    """Confirm or reject a suggested MO (staff); returns (created, label). 404 unless the MO is
    among the request's stored suggestions; a new verdict on the same pair replaces the old."""
    _require_staff(caller, "judge MO suggestions")
    request = await get_request(session, caller=caller, request_id=request_id)
    row = await session.get(RequestMoMatch, request.id)
    suggestions = row.suggestions if row is not None and row.suggestions_text_hash else []
    found = next(
        ((rank, s) for rank, s in enumerate(suggestions, start=1) if s["mo_id"] == mo_id), None
    )
    if found is None or row is None or row.method is None:
        raise NotFound(f"MO {mo_id} is not among the suggestions of request {request_id}.")
    rank, suggestion = found
    label = await session.get(MoMatchLabel, (request.id, mo_id))
    created = label is None
    if label is None:
        label = MoMatchLabel(request_id=request.id, mo_id=mo_id)
        session.add(label)
    label.decision = (
        Verdict.CONFIRMED if data.decision is Decision.CONFIRM else Verdict.REJECTED
    ).value
    label.method = row.method
    label.rank = rank
    label.score = float(suggestion["score"])
    label.team = request.team
    label.comment = data.comment
    label.decided_by = caller.subject
    label.decided_at = utcnow()
    await _commit_or_retry(session)
    return created, _label_read(label)


def _label_read(label: MoMatchLabel) -> MoSuggestionLabelRead:
    return MoSuggestionLabelRead(
        request_id=label.request_id,
        mo_id=label.mo_id,
        decision=Verdict(label.decision),
        method=Method(label.method),
        rank=label.rank,
        score=label.score,
        team=label.team,
        comment=label.comment,
        decided_by=label.decided_by,
        decided_at=label.decided_at,
    )


async def list_labels(
    session: AsyncSession,
    *,
    caller: Identity,
    decision: Verdict | None,
    cursor: str | None,
    limit: int,
) -> MoSuggestionLabelPage:
    """Labelled pairs, newest request first (staff)."""
    _require_staff(caller, "read MO suggestion labels")
    query = select(MoMatchLabel)
    if decision is not None:
        query = query.where(MoMatchLabel.decision == decision.value)
    if cursor is not None:
        query = query.where(
            MoMatchLabel.request_id < decode_int_cursor(cursor, "r", maximum=MAX_INT)
        )
    # Keyset on request_id: a page holds whole requests, so the cursor never splits one.
    request_ids = list(
        (
            await session.execute(
                query.with_only_columns(MoMatchLabel.request_id)
                .distinct()
                .order_by(MoMatchLabel.request_id.desc())
                .limit(limit + 1)
            )
        ).scalars()
    )
    page_ids = request_ids[:limit]
    labels = (
        await session.execute(
            query.where(MoMatchLabel.request_id.in_(page_ids)).order_by(
                MoMatchLabel.request_id.desc(), MoMatchLabel.rank
            )
        )
    ).scalars()
    return MoSuggestionLabelPage(
        items=[_label_read(label) for label in labels],
        next_cursor=encode_cursor({"r": page_ids[-1]}) if len(request_ids) > limit else None,
    )


async def precision(
    session: AsyncSession, *, caller: Identity, k: int, method: Method | None
) -> PrecisionRead:
    """precision@k and hit rate@k over the labelled pairs (staff)."""
    _require_staff(caller, "read MO suggestion precision")
    query = select(MoMatchLabel.request_id, MoMatchLabel.decision, MoMatchLabel.rank)
    if method is not None:
        query = query.where(MoMatchLabel.method == method.value)
    judged = confirmed = 0
    best_confirmed: dict[int, int] = {}
    for request_id, decision, rank in await session.execute(query):
        if rank <= k:
            judged += 1
            confirmed += decision == Verdict.CONFIRMED.value
        if decision == Verdict.CONFIRMED.value:
            best_confirmed[request_id] = min(rank, best_confirmed.get(request_id, rank))
    hits = sum(1 for rank in best_confirmed.values() if rank <= k)
    return PrecisionRead(
        k=k,
        method=method,
        judged_at_k=judged,
        confirmed_at_k=confirmed,
        precision_at_k=round(confirmed / judged, 4) if judged else None,
        requests_confirmed=len(best_confirmed),
        requests_hit_at_k=hits,
        hit_rate_at_k=round(hits / len(best_confirmed), 4) if best_confirmed else None,
    )


# --- internal (the worker) -------------------------------------------------------------------


async def _request(session: AsyncSession, request_id: int) -> Request:
    request = await session.get(Request, request_id)
    if request is None:
        raise NotFound(f"Request {request_id} was not found.")
    return request


def _check_text(request: Request, text_hash: str) -> None:
    if embeddings.text_hash(request_text(request)) != text_hash:
        raise Conflict(
            f"Request {request.id}'s text changed since it was read; a newer match is on its way."
        )


async def matching_text(
    session: AsyncSession, *, caller: Identity, request_id: int
) -> RequestMatchingRead:
    """The request's text and hash, and its embedding if one of this text is stored."""
    _require_system(caller)
    request = await _request(session, request_id)
    text = request_text(request)
    digest = embeddings.text_hash(text)
    row = await session.get(RequestMoMatch, request_id)
    current = row is not None and row.embedding is not None and row.embedding_text_hash == digest
    return RequestMatchingRead(
        request_id=request.id,
        text=text,
        text_hash=digest,
        embedding=embeddings.to_base64(embeddings.from_bytes(row.embedding))
        if current and row is not None and row.embedding is not None
        else None,
        embedding_model=row.embedding_model if current and row is not None else None,
    )


async def store_embedding(
    session: AsyncSession, *, caller: Identity, request_id: int, data: RequestEmbeddingWrite
) -> StoredRead:
    """Store the request's embedding; 409 if its text changed since it was read."""
    _require_system(caller)
    request = await _request(session, request_id)
    _check_text(request, data.text_hash)
    row = await _match_row(session, request_id)
    row.embedding = embeddings.to_bytes(embeddings.from_base64(data.vector))
    row.embedding_model = data.model
    row.embedding_text_hash = data.text_hash
    row.embedded_at = utcnow()
    await _commit_or_retry(session)
    return StoredRead(request_id=request_id, stored=True)


async def store_suggestions(
    session: AsyncSession, *, caller: Identity, request_id: int, data: MoSuggestionsWrite
) -> StoredRead:
    """Store the suggestions computed from the current text; 409 if the text changed since.
    Suggestions ranked against an older catalog than the stored ones are ignored."""
    _require_system(caller)
    request = await _request(session, request_id)
    _check_text(request, data.text_hash)
    row = await _match_row(session, request_id)
    if (
        row.suggestions_text_hash == data.text_hash
        and (row.catalog_version or 0) > data.catalog_version
    ):
        return StoredRead(request_id=request_id, stored=False)
    items: list[dict[str, Any]] = [item.model_dump(mode="json") for item in data.items]
    row.suggestions = items
    row.method = data.method.value
    row.model = data.model
    row.suggestions_text_hash = data.text_hash
    row.catalog_version = data.catalog_version
    row.computed_at = utcnow()
    await _commit_or_retry(session)
    return StoredRead(request_id=request_id, stored=True)


async def record_catalog(
    session: AsyncSession, *, caller: Identity, data: MoCatalogWrite
) -> MoCatalogRead:
    """Remember the newest MO catalog version (never moves back)."""
    _require_system(caller)
    row = await session.get(MoCatalogState, CATALOG_ROW, with_for_update=True)
    if row is None:
        row = MoCatalogState(id=CATALOG_ROW, version=data.version, updated_at=utcnow())
        session.add(row)
    elif data.version > row.version:
        row.version, row.updated_at = data.version, utcnow()
    version = row.version
    await _commit_or_retry(session)
    return MoCatalogRead(version=version)
