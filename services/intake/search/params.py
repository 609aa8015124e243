"""The query parameters of `GET /requests` and its CSV export, parsed once as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from pydantic import AwareDatetime

from services.intake.domain import Priority, RequestStatus, RequestType
from services.intake.schemas import PRINTABLE_PATTERN, TAG_PATTERN
from services.intake.search.service import SearchFilters, parse_age
from services.intake.service import RequestFilters


def _search_filters(
    status: Annotated[list[RequestStatus] | None, Query(description="Repeatable")] = None,
    request_type: RequestType | None = None,
    team: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=PRINTABLE_PATTERN,
            description="Staff only; partners see their own team",
        ),
    ] = None,
    priority: Annotated[list[Priority] | None, Query(description="Repeatable")] = None,
    assignee: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE_PATTERN)] = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    updated_after: AwareDatetime | None = None,
    updated_before: AwareDatetime | None = None,
    older_than: Annotated[
        str | None,
        Query(
            max_length=40,
            description="Filed longer ago than this: days (`7`) or ISO-8601 (`P2W`, `P3DT12H`)",
        ),
    ] = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    breached: Annotated[
        bool | None, Query(description="true: breached an SLA target; false: never did")
    ] = None,
    due_before: Annotated[
        AwareDatetime | None,
        Query(description="Earliest running SLA deadline before this instant (overdue included)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=500,
            description='Full text over title and description: words, "phrases", `or`, -exclude',
        ),
    ] = None,
) -> SearchFilters:
    return SearchFilters(
        base=RequestFilters(
            statuses=status or (),
            request_type=request_type,
            team=team,
            priorities=priority or (),
            assignee=assignee,
            created_after=created_after,
            created_before=created_before,
            tag=tag,
            breached=breached,
            due_before=due_before,
        ),
        updated_after=updated_after,
        updated_before=updated_before,
        older_than=parse_age(older_than) if older_than is not None else None,
        q=q.replace("\x00", "") if q is not None else None,
    )


list_filters = Depends(_search_filters)
