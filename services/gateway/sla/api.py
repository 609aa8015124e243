"""SLA endpoints: policies (admins and program managers write, any key reads), the preview, the
policy match for humans, and the worker's internal policy resolution."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from services.common.errors import PROBLEM_RESPONSES
from services.gateway.auth import CurrentKey, SystemCaller
from services.gateway.calendars.api import (
    RESPONSES,
    WRITE_RESPONSES,
    ConfigWriter,
    Cursor,
    IfMatchHeader,
    Limit,
    etag,
    expected_version,
)
from services.gateway.runtime import SessionDep
from services.gateway.sla import service
from services.gateway.sla.schemas import (
    PolicyCreate,
    PolicyPage,
    PolicyRead,
    PolicyUpdate,
    PreviewRead,
    PreviewRequest,
    Priority,
    ResolvedPolicy,
    ResolveRequest,
)

router = APIRouter(prefix="/api/v1/sla", tags=["sla"], responses=RESPONSES)
# The worker's routes: not part of the public API document.
internal_router = APIRouter(prefix="/internal/sla", include_in_schema=False)

PolicyIdPath = Annotated[str, Path(description="The policy's slug.", max_length=64)]
DEFAULT_PAGE = 100


@router.post("/preview", summary="Preview a deadline or elapsed business time")
async def preview(body: PreviewRequest, _key: CurrentKey, session: SessionDep) -> PreviewRead:
    """With `target`: the first instant at which business time on the calendar, less pauses,
    reaches the target. With `at` instead: the whole business seconds from `start` to `at`.
    Give the calendar inline or by `calendar_id`. Bad calendars, unknown zones, days in the
    target, and inverted or overlapping pauses are 422 naming the field (any key)."""
    return await service.preview(session, body=body)


@router.get("/policies/match", summary="Which SLA policy a request gets")
async def match_policy(
    _key: CurrentKey,
    session: SessionDep,
    request_type: Annotated[str, Query(min_length=1, max_length=64)],
    priority: Priority,
) -> ResolvedPolicy:
    """The first policy by `order` matching this request type and priority, with its calendar
    inline: the same answer the SLA clocks get (any key)."""
    policy, calendar = await service.resolve(session, request_type=request_type, priority=priority)
    return service.resolved(policy, calendar)


@router.post(
    "/policies", status_code=201, responses=WRITE_RESPONSES, summary="Create an SLA policy"
)
async def create_policy(
    body: PolicyCreate, _writer: ConfigWriter, session: SessionDep, response: Response
) -> PolicyRead:
    """Add a policy (admin or program manager). `order` must be unique; `calendar_id` must name
    a calendar (else 422). Targets are business hours, minutes or seconds; a retried create of
    the same id is a 409."""
    policy = await service.create(
        session, policy_id=body.id, data=PolicyUpdate(**body.model_dump(exclude={"id"}))
    )
    await session.commit()
    response.headers["Location"] = f"/api/v1/sla/policies/{policy.id}"
    response.headers["ETag"] = etag(policy.version)
    return service.read(policy)


@router.get("/policies", summary="List SLA policies in match order")
async def list_policies(
    _key: CurrentKey, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> PolicyPage:
    """Policies by ascending `order`, the order they are matched in (any key)."""
    policies, next_cursor = await service.get_all(session, cursor=cursor, limit=limit)
    return PolicyPage(items=[service.read(p) for p in policies], next_cursor=next_cursor)


@router.get("/policies/{policy_id}", summary="Read an SLA policy")
async def read_policy(
    policy_id: PolicyIdPath, _key: CurrentKey, session: SessionDep, response: Response
) -> PolicyRead:
    """One policy (any key); the `ETag` header is its version, for `If-Match` on PUT."""
    policy = await service.get_or_raise(session, policy_id=policy_id)
    response.headers["ETag"] = etag(policy.version)
    return service.read(policy)


@router.put("/policies/{policy_id}", responses=WRITE_RESPONSES, summary="Replace an SLA policy")
async def replace_policy(
    policy_id: PolicyIdPath,
    body: PolicyUpdate,
    _writer: ConfigWriter,
    session: SessionDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> PolicyRead:
    """Replace a policy (admin or program manager). 409 if it would take another policy's
    order or leave no catch-all; 412 if `If-Match` is stale."""
    policy = await service.update(
        session, policy_id=policy_id, data=body, expected_version=expected_version(if_match)
    )
    await session.commit()
    response.headers["ETag"] = etag(policy.version)
    return service.read(policy)


@router.delete(
    "/policies/{policy_id}",
    status_code=204,
    responses=WRITE_RESPONSES,
    summary="Delete an SLA policy",
)
async def delete_policy(
    policy_id: PolicyIdPath,
    _writer: ConfigWriter,
    session: SessionDep,
    if_match: IfMatchHeader = None,
) -> Response:
    """Remove a policy (admin or program manager); the last catch-all cannot go (409)."""
    await service.delete(session, policy_id=policy_id, expected_version=expected_version(if_match))
    await session.commit()
    return Response(status_code=204)


INTERNAL_RESPONSES: dict[int | str, dict[str, Any]] = PROBLEM_RESPONSES


@internal_router.post("/resolve", responses=INTERNAL_RESPONSES)
async def resolve_policy(
    body: ResolveRequest, _caller: SystemCaller, session: SessionDep
) -> ResolvedPolicy:
    """The policy (and calendar) an SLA clock runs on, for the worker (system role only)."""
    policy, calendar = await service.resolve(
        session, request_type=body.request_type, priority=body.priority
    )
    return service.resolved(policy, calendar)
