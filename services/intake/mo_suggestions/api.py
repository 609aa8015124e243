"""HTTP routes of MO suggestions: `/api/v1/requests/{id}/mo-suggestions...`, the labelled pairs,
and the worker's internal writes (`/internal/requests/{id}/...`, `/internal/mo-catalog`).

Included in the app BEFORE the requests router: `/api/v1/requests/mo-suggestion-labels` would
otherwise be taken by `/api/v1/requests/{request_id}` (and refused as a non-integer id).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep, require_system
from services.intake.api import RequestIdPath
from services.intake.mo_suggestions import service
from services.intake.mo_suggestions.schemas import (
    MAX_INT,
    DecisionCreate,
    Method,
    MoCatalogRead,
    MoCatalogWrite,
    MoSuggestionLabelPage,
    MoSuggestionLabelRead,
    MoSuggestionsRead,
    MoSuggestionsWrite,
    PrecisionRead,
    RequestEmbeddingWrite,
    RequestMatchingRead,
    StoredRead,
    Verdict,
)
from services.intake.service import REQUESTS_PATH

router = APIRouter(prefix=REQUESTS_PATH, tags=["mo-suggestions"])
# The worker's routes: the role is checked before the body is read (403 before 422).
internal_router = APIRouter(
    prefix="/internal", tags=["internal"], dependencies=[Depends(require_system)]
)

MoIdPath = Annotated[int, Path(ge=1, le=MAX_INT, description="The suggested MO's id")]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The request's text changed since it was read"}
}


@router.get(
    "/mo-suggestion-labels",
    response_model=MoSuggestionLabelPage,
    responses=PROBLEM_RESPONSES,
    summary="Labelled (request, MO) pairs",
)
async def list_mo_suggestion_labels(
    session: SessionDep,
    caller: CurrentCaller,
    decision: Verdict | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> MoSuggestionLabelPage:
    """Every confirmed or rejected suggestion with its rank, score and method when judged,
    newest request first (a page holds whole requests). Staff only."""
    return await service.list_labels(
        session, caller=caller, decision=decision, cursor=cursor, limit=limit
    )


@router.get(
    "/mo-suggestion-labels/precision",
    response_model=PrecisionRead,
    responses=PROBLEM_RESPONSES,
    summary="Precision of MO suggestions on the labelled pairs",
)
async def read_mo_suggestion_precision(
    session: SessionDep,
    caller: CurrentCaller,
    k: Annotated[int, Query(ge=1, le=20)] = 3,
    method: Method | None = None,
) -> PrecisionRead:
    """precision@k (confirmed / judged among suggestions ranked 1..k) and hit rate@k (requests
    whose confirmed MO was ranked 1..k), optionally for one method. Staff only."""
    return await service.precision(session, caller=caller, k=k, method=method)


@router.get(
    "/{request_id}/mo-suggestions",
    response_model=MoSuggestionsRead,
    responses=PROBLEM_RESPONSES,
    summary="The MOs closest to a request",
)
async def read_mo_suggestions(
    request_id: RequestIdPath, session: SessionDep, caller: CurrentCaller, runtime: RuntimeDep
) -> MoSuggestionsRead:
    """The closest MOs, best first, with a score (0-100) and the indicators the request matches;
    `method` says `semantic` (sentence embeddings of a local model) or `lexical` (rapidfuzz, when
    the `ai` extra is not installed or matching is off). Computed by the worker after filing and
    after each title/description change; `status` is `stale` (previous items, a recompute asked
    for) after the text or the MOs changed, `pending` before the first. Same visibility as the
    request (404 otherwise); a partner sees only MOs of its own team."""
    return await service.read_suggestions(
        session, caller=caller, request_id=request_id, task_queue=runtime.settings.task_queue
    )


@router.post(
    "/{request_id}/mo-suggestions/{mo_id}/decision",
    response_model=MoSuggestionLabelRead,
    responses={**PROBLEM_RESPONSES, 201: {"model": MoSuggestionLabelRead}},
    summary="Confirm or reject a suggested MO",
)
async def decide_mo_suggestion(
    request_id: RequestIdPath,
    mo_id: MoIdPath,
    body: DecisionCreate,
    session: SessionDep,
    caller: CurrentCaller,
) -> JSONResponse:
    """`confirm` or `reject` one suggested MO; kept as a labelled pair (with its rank, score and
    method) for precision@k. Analysts, program managers and admins only (403); 404 unless the MO
    is among the request's suggestions. 201 for a first verdict, 200 when it replaces one."""
    created, label = await service.decide(
        session, caller=caller, request_id=request_id, mo_id=mo_id, data=body
    )
    return JSONResponse(label.model_dump(mode="json"), status_code=201 if created else 200)


@internal_router.get(
    "/requests/{request_id}/mo-matching",
    response_model=RequestMatchingRead,
    responses=PROBLEM_RESPONSES,
    summary="Worker: a request's text to match",
)
async def read_matching_text(
    request_id: RequestIdPath, session: SessionDep, caller: CurrentCaller
) -> RequestMatchingRead:
    """System only: the request's title and description as one text, its hash, and its stored
    embedding if it was computed from this text."""
    return await service.matching_text(session, caller=caller, request_id=request_id)


@internal_router.put(
    "/requests/{request_id}/embedding",
    response_model=StoredRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Worker: store a request's embedding",
)
async def put_request_embedding(
    request_id: RequestIdPath,
    body: RequestEmbeddingWrite,
    session: SessionDep,
    caller: CurrentCaller,
) -> StoredRead:
    """System only: the embedding of the text with `text_hash` (409 if the text changed)."""
    return await service.store_embedding(session, caller=caller, request_id=request_id, data=body)


@internal_router.put(
    "/requests/{request_id}/mo-suggestions",
    response_model=StoredRead,
    responses={**PROBLEM_RESPONSES, **CONFLICT},
    summary="Worker: store a request's MO suggestions",
)
async def put_mo_suggestions(
    request_id: RequestIdPath,
    body: MoSuggestionsWrite,
    session: SessionDep,
    caller: CurrentCaller,
) -> StoredRead:
    """System only: the suggestions ranked from the text with `text_hash` (409 if the text
    changed); ones ranked against an older catalog than those stored are ignored."""
    return await service.store_suggestions(session, caller=caller, request_id=request_id, data=body)


@internal_router.put(
    "/mo-catalog",
    response_model=MoCatalogRead,
    responses=PROBLEM_RESPONSES,
    summary="Worker: the MO catalog version",
)
async def put_mo_catalog(
    body: MoCatalogWrite, session: SessionDep, caller: CurrentCaller
) -> MoCatalogRead:
    """System only: the sop MO catalog version after an MO changed; suggestions ranked against
    an older one are stale. A smaller version than the one stored is ignored."""
    return await service.record_catalog(session, caller=caller, data=body)
