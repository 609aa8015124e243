"""HTTP routes of the person directory (`/api/v1/people...`)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response

from services.common.errors import PROBLEM_RESPONSES, PreconditionFailed, Problem
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.common.service_app import CurrentCaller, SessionDep
from services.escalation.people import service
from services.escalation.people.schemas import HANDLE_PATTERN, PersonPage, PersonPut, PersonRead

router = APIRouter(prefix=service.PEOPLE_PATH, tags=["people"])

HandlePath = Annotated[
    str, Path(pattern=HANDLE_PATTERN, description="The person's handle (an item's `owner`)")
]
IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The `ETag` of the version read; a stale one is refused with 412.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="`next_cursor` of the previous page")
]
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    409: {"model": Problem, "description": "Created concurrently by another call; retry"},
    412: {"model": Problem, "description": "`If-Match` names a version that is not current"},
}
_ETAG = re.compile(r'^(?:W/)?"(\d{1,12})"$')


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` header names (None for absent or `*`); 412 if it names none."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise PreconditionFailed(f'If-Match {if_match!r} is not an ETag this API returned ("<n>").')
    return int(match.group(1))


@router.put(
    "/{handle}",
    response_model=PersonRead,
    responses={**WRITE_RESPONSES, 201: {"model": PersonRead, "description": "Created"}},
    summary="Create or replace a person",
)
async def put_person(
    handle: HandlePath,
    body: PersonPut,
    session: SessionDep,
    caller: CurrentCaller,
    response: Response,
    if_match: IfMatchHeader = None,
) -> PersonRead:
    """Create (201) or replace (200) a person: display name, e-mail, manager and calendar.
    Program manager or admin only. The overdue ladder's second level for this person's action
    items is `manager_handle` unless an item names its own `owner_manager`; quiet hours and default
    due dates follow the gateway calendar `calendar_id` (the program office default without one).
    A person cannot be their own manager (422). Send `If-Match` to refuse (412) a stale write."""
    person, created = await service.put(
        session,
        caller=caller,
        handle=handle,
        data=body,
        expected_version=expected_version(if_match),
    )
    if created:
        response.status_code = 201
        response.headers["Location"] = service.person_path(person.handle)
    response.headers["ETag"] = f'"{person.version}"'
    return service.to_read(person)


@router.get(
    "/{handle}", response_model=PersonRead, responses=PROBLEM_RESPONSES, summary="Read a person"
)
async def read_person(
    handle: HandlePath, session: SessionDep, caller: CurrentCaller, response: Response
) -> PersonRead:
    """One person (staff only); 404 when the handle is not in the directory. The `ETag` header
    is its version, for `If-Match` on PUT."""
    person = await service.get_or_raise(session, caller=caller, handle=handle)
    response.headers["ETag"] = f'"{person.version}"'
    return service.to_read(person)


@router.get("", response_model=PersonPage, responses=PROBLEM_RESPONSES, summary="List people")
async def list_people(
    session: SessionDep,
    caller: CurrentCaller,
    manager: Annotated[
        str | None, Query(pattern=HANDLE_PATTERN, description="Only this manager's reports")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> PersonPage:
    """The directory by handle, one page at a time (pass `next_cursor` back as `cursor`); staff
    only."""
    return await service.get_all(
        session, caller=caller, manager=manager, cursor=cursor, limit=limit
    )
