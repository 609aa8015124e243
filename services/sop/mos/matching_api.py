"""The worker's MO-matching endpoints (`/internal/mos...`): the catalog version, an MO's text to
embed, storing its embedding, and matching a request's text with the MOs. System role only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from services.common.errors import PROBLEM_RESPONSES
from services.common.service_app import CurrentCaller, SessionDep, require_system
from services.sop.mos import matching_service as service
from services.sop.mos.matching_schemas import (
    MoCatalogRead,
    MoEmbeddingStored,
    MoEmbeddingWrite,
    MoMatchCreate,
    MoMatchingTextRead,
    MoMatchResult,
)
from services.sop.rules.schemas import MAX_INT

# The role is checked before the body is read (403 before 422).
internal_router = APIRouter(
    prefix="/internal/mos", tags=["internal"], dependencies=[Depends(require_system)]
)
MoIdPath = Annotated[int, Path(ge=1, le=MAX_INT, description="The MO's id")]


@internal_router.get(
    "/catalog",
    response_model=MoCatalogRead,
    responses=PROBLEM_RESPONSES,
    summary="Worker: the MO catalog version",
)
async def read_catalog(session: SessionDep, caller: CurrentCaller) -> MoCatalogRead:
    """System only: a version that grows with every MO change or stored embedding (suggestions
    computed under an older one are stale), and how many MOs exist and are embedded."""
    return await service.catalog(session, caller=caller)


@internal_router.get(
    "/{mo_id}/matching-text",
    response_model=MoMatchingTextRead,
    responses=PROBLEM_RESPONSES,
    summary="Worker: the text to embed for an MO",
)
async def read_matching_text(
    mo_id: MoIdPath, session: SessionDep, caller: CurrentCaller
) -> MoMatchingTextRead:
    """System only: the MO's name, summary and indicators as one text, its hash, each indicator,
    and whether a current embedding of it is already stored."""
    return await service.matching_text(session, caller=caller, mo_id=mo_id)


@internal_router.put(
    "/{mo_id}/embedding",
    response_model=MoEmbeddingStored,
    responses=PROBLEM_RESPONSES,
    summary="Worker: store an MO's embedding",
)
async def put_embedding(
    mo_id: MoIdPath, body: MoEmbeddingWrite, session: SessionDep, caller: CurrentCaller
) -> MoEmbeddingStored:
    """System only: store the vectors computed from the text with `text_hash` (409 if the MO's
    text changed meanwhile: a newer embedding is on its way). A repeat overwrites the same row."""
    return await service.store_embedding(session, caller=caller, mo_id=mo_id, data=body)


@internal_router.post(
    "/match",
    response_model=MoMatchResult,
    responses=PROBLEM_RESPONSES,
    summary="Worker: the MOs closest to a request",
)
async def match_mos(
    body: MoMatchCreate, session: SessionDep, caller: CurrentCaller
) -> MoMatchResult:
    """System only: the closest MOs (every team's) to a request's text, best first, with a score
    from 0 to 100 and the indicators it matches. With `embedding` (and its `model`) the ranking is
    semantic (cosine of sentence embeddings); without, lexical (rapidfuzz). Reads nothing else."""
    return await service.match(session, caller=caller, data=body)
