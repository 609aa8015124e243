"""HTTP routes of search: similar requests and the CSV export of a filtered list.

Included in the app BEFORE the requests router: `/api/v1/requests/export.csv` would otherwise be
taken by `/api/v1/requests/{request_id}` (and refused as a non-integer id).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from services.common.errors import PROBLEM_RESPONSES
from services.common.service_app import CurrentCaller, RuntimeDep, SessionDep
from services.intake.api import RequestIdPath
from services.intake.search import service
from services.intake.search.duplicates import DEFAULT_SIMILAR_LIMIT, MAX_SIMILAR_LIMIT
from services.intake.search.params import list_filters
from services.intake.search.schemas import SimilarRead
from services.intake.service import REQUESTS_PATH

router = APIRouter(prefix=REQUESTS_PATH, tags=["requests"])


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={
        **PROBLEM_RESPONSES,
        200: {"content": {"text/csv": {}}, "description": "One row per request, header first"},
    },
    summary="Export a filtered list as CSV",
)
async def export_requests_csv(
    caller: CurrentCaller,
    runtime: RuntimeDep,
    filters: Annotated[service.SearchFilters, list_filters],
    sort: service.Sort | None = None,
) -> StreamingResponse:
    """Every request matching the same filters as `GET /requests` (no paging), streamed as CSV in
    the same order. Tags and external references are `;`-separated; a cell a spreadsheet would
    evaluate as a formula is prefixed with `'`. A partner exports only its own team's requests."""
    return StreamingResponse(
        service.export_csv(runtime.sessionmaker, caller=caller, filters=filters, sort=sort),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="requests.csv"'},
    )


@router.get(
    "/{request_id}/similar",
    response_model=SimilarRead,
    responses=PROBLEM_RESPONSES,
    summary="Requests similar to one request, and its duplicates",
)
async def read_similar_requests(
    request_id: RequestIdPath,
    session: SessionDep,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_SIMILAR_LIMIT)] = DEFAULT_SIMILAR_LIMIT,
) -> SimilarRead:
    """Open requests of the same team that look like this one (rapidfuzz over title and
    description; a shared external reference scores at least 95), best first with the reasons;
    plus the requests already closed as its duplicates, and the one it duplicates, if any.
    Same visibility as the request (404 otherwise)."""
    return await service.similar_to(session, caller=caller, request_id=request_id, limit=limit)
