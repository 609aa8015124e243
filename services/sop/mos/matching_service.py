"""Use cases of MO matching (issue 10): the worker reads an MO's text, stores its embedding, and
matches a request's text (or embedding) with the MOs. System role only: these are the worker's.

MOs' vectors are scanned in process (pgvector is not assumed): at most `MAX_SCAN` of the newest
MOs, ~20 µs a dot product in pure Python, so a match stays well under 100 ms for any realistic
repository. An MO is recorded or changed -> `enqueue_mo_embedding` (same transaction, outbox).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import embeddings
from services.common.db import utcnow
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.identity import Identity, Role
from services.common.logging import current_request_id
from services.common.outbox import enqueue_signal
from services.sop.models import OutboxEvent
from services.sop.mos.matching import (
    Candidate,
    EmbeddedCandidate,
    Method,
    indicators_of,
    lexical_rank,
    mo_text,
    semantic_rank,
)
from services.sop.mos.matching_schemas import (
    IndicatorMatchRead,
    IndicatorRead,
    MoCatalogRead,
    MoEmbeddingStored,
    MoEmbeddingWrite,
    MoMatchCreate,
    MoMatchingTextRead,
    MoMatchRead,
    MoMatchResult,
)
from services.sop.mos.models import Mo, MoEmbedding
from services.sop.rules.domain import field_error
from workflows.mo_embedding_contracts import (
    MO_CHANGED_SIGNAL,
    MO_EMBEDDING_WORKFLOW,
    MoEmbeddingInput,
    mo_embedding_workflow_id,
)

MAX_SCAN = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _require_system(caller: Identity) -> None:
    if caller.role is not Role.SYSTEM:
        raise Forbidden("Only the worker (the system role) calls the MO-matching endpoints.")


def enqueue_mo_embedding(session: AsyncSession, *, mo_id: int, task_queue: str) -> None:
    """Ask for the MO's embedding to be (re)computed, in the caller's transaction."""
    signal = MoEmbeddingInput(mo_id=mo_id, trace_request_id=current_request_id())
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=mo_embedding_workflow_id(mo_id),
        workflow_type=MO_EMBEDDING_WORKFLOW,
        task_queue=task_queue,
        start_arg=signal,
        signal_name=MO_CHANGED_SIGNAL,
        signal_arg=signal,
    )


def candidate_of(mo: Mo) -> Candidate:
    """The matching view of an MO row."""
    return Candidate(
        mo_id=mo.id,
        name=mo.name,
        summary=mo.summary,
        indicators=indicators_of(
            signals=mo.signals, behaviours=mo.behaviours, entity_types=mo.entity_types
        ),
    )


def _micros(value: datetime | None) -> int:
    if value is None:
        return 0
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


async def catalog(session: AsyncSession, *, caller: Identity) -> MoCatalogRead:
    """The catalog version (latest MO change or stored embedding), and MO counts."""
    _require_system(caller)
    mos, updated = (await session.execute(select(func.count(), func.max(Mo.updated_at)))).one()
    embedded, embedded_at = (
        await session.execute(select(func.count(), func.max(MoEmbedding.embedded_at)))
    ).one()
    return MoCatalogRead(
        version=max(_micros(updated), _micros(embedded_at)), mos=mos, embedded=embedded
    )


async def matching_text(
    session: AsyncSession, *, caller: Identity, mo_id: int
) -> MoMatchingTextRead:
    """The text the worker embeds for an MO, and whether a current embedding is stored."""
    _require_system(caller)
    mo = await session.get(Mo, mo_id)
    if mo is None:
        raise NotFound(f"MO {mo_id} was not found.")
    candidate = candidate_of(mo)
    text = mo_text(candidate)
    digest = embeddings.text_hash(text)
    stored = await session.get(MoEmbedding, mo_id)
    return MoMatchingTextRead(
        mo_id=mo.id,
        text=text,
        text_hash=digest,
        indicators=[IndicatorRead(kind=i.kind, text=i.text) for i in candidate.indicators],
        embedded=stored is not None and stored.text_hash == digest,
    )


async def store_embedding(
    session: AsyncSession, *, caller: Identity, mo_id: int, data: MoEmbeddingWrite
) -> MoEmbeddingStored:
    """Store an MO's embedding; 409 if the MO's text changed since it was read (a newer
    embedding is on its way), 422 if the indicator vectors do not match the indicators."""
    _require_system(caller)
    mo = await session.get(Mo, mo_id)
    if mo is None:
        raise NotFound(f"MO {mo_id} was not found.")
    candidate = candidate_of(mo)
    if embeddings.text_hash(mo_text(candidate)) != data.text_hash:
        raise Conflict(f"MO {mo_id} changed since its text was read; embed it again.")
    if len(data.indicator_vectors) != len(candidate.indicators):
        raise field_error(
            "indicator_vectors",
            f"MO {mo_id} has {len(candidate.indicators)} indicators, "
            f"got {len(data.indicator_vectors)} vectors.",
            code="length",
        )
    row = await session.get(MoEmbedding, mo_id)
    if row is None:
        row = MoEmbedding(mo_id=mo_id)
        session.add(row)
    row.model = data.model
    row.text_hash = data.text_hash
    row.vector = embeddings.to_bytes(embeddings.from_base64(data.vector))
    row.indicators = [i.text for i in candidate.indicators]
    row.indicator_vectors = b"".join(
        embeddings.to_bytes(embeddings.from_base64(v)) for v in data.indicator_vectors
    )
    row.embedded_at = utcnow()
    await session.commit()
    version = (await catalog(session, caller=caller)).version
    return MoEmbeddingStored(mo_id=mo_id, catalog_version=version)


def _split(blob: bytes, count: int) -> list[embeddings.Vector]:
    size = embeddings.VECTOR_BYTES
    return [embeddings.from_bytes(blob[i * size : (i + 1) * size]) for i in range(count)]


async def match(session: AsyncSession, *, caller: Identity, data: MoMatchCreate) -> MoMatchResult:
    """The MOs closest to a request: semantic when an embedding is given (MOs whose current
    embedding is not stored yet are left out and counted), lexical otherwise."""
    _require_system(caller)
    version = (await catalog(session, caller=caller)).version
    mos = {
        m.id: m
        for m in (
            await session.execute(select(Mo).order_by(Mo.id.desc()).limit(MAX_SCAN))
        ).scalars()
    }
    candidates = {mo_id: candidate_of(mo) for mo_id, mo in mos.items()}
    unembedded = 0
    if data.embedding is not None:
        method = Method.SEMANTIC
        rows = {
            row.mo_id: row
            for row in (
                await session.execute(
                    select(MoEmbedding).where(MoEmbedding.mo_id.in_(list(candidates)))
                )
            ).scalars()
        }
        embedded = []
        for mo_id, candidate in candidates.items():
            row = rows.get(mo_id)
            current = (
                row is not None
                and row.model == data.model
                and row.text_hash == embeddings.text_hash(mo_text(candidate))
                and len(row.vector) == embeddings.VECTOR_BYTES
                and len(row.indicator_vectors)
                == len(candidate.indicators) * embeddings.VECTOR_BYTES
            )
            if row is None or not current:
                unembedded += 1
                continue
            embedded.append(
                EmbeddedCandidate(
                    candidate=candidate,
                    vector=embeddings.from_bytes(row.vector),
                    indicator_vectors=_split(row.indicator_vectors, len(candidate.indicators)),
                )
            )
        ranked = semantic_rank(
            query=embeddings.from_base64(data.embedding),
            text=data.text,
            candidates=embedded,
            limit=data.limit,
            min_score=data.min_score,
        )
    else:
        method = Method.LEXICAL
        ranked = lexical_rank(
            text=data.text,
            candidates=list(candidates.values()),
            limit=data.limit,
            min_score=data.min_score,
        )
    return MoMatchResult(
        method=method,
        model=data.model if method is Method.SEMANTIC else None,
        catalog_version=version,
        unembedded_mos=unembedded,
        items=[
            MoMatchRead(
                mo_id=m.mo_id,
                name=mos[m.mo_id].name,
                team=mos[m.mo_id].team,
                status=mos[m.mo_id].status,
                score=m.score,
                matching_indicators=[
                    IndicatorMatchRead(kind=i.kind, text=i.text, score=i.score)
                    for i in m.matching_indicators
                ],
            )
            for m in ranked
        ],
    )
