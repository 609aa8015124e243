"""Aging alerts: pick the calendar, ask intake for the report, show it with owners.

The calendar whose business days count is the one named by `calendar_id`, else the calendar of
the SLA policy a P3 `other` request gets (with the seeds: the catch-all `default` policy, India
business hours): one calendar per report keeps ages comparable across requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import BadGateway, DomainError, GatewayTimeout, ValidationFailed
from services.common.identity import IDENTITY_HEADER
from services.common.logging import REQUEST_ID_HEADER, current_request_id
from services.gateway.aging.schemas import AgingAlertsRead
from services.gateway.calendars import service as calendars
from services.gateway.keys.models import ApiKey
from services.gateway.runtime import GatewayRuntime
from services.gateway.sla import service as sla

log = structlog.get_logger(__name__)

AGING_PATH = "/internal/requests/aging"
# The calendar of this policy match is the default aging calendar (the catch-all's, with seeds).
DEFAULT_CALENDAR_MATCH = {"request_type": "other", "priority": "P3"}


@dataclass(frozen=True, slots=True)
class AgingFilters:
    """The filters of `GET /api/v1/alerts/aging`."""

    team: str | None = None
    owner: str | None = None
    bucket: str | None = None
    calendar_id: str | None = None
    stale_days: int | None = None
    limit: int = 100


class UpstreamProblem(DomainError):
    """A problem intake answered with, passed on as it is (its status, type and fields)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("detail", "The intake service refused the call.")))
        self.status = status
        self.body = body

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Intake's own problem document."""
        return self.body


async def aging_calendar(session: AsyncSession, *, calendar_id: str | None) -> tuple[str, Any]:
    """The id and calendar object aging counts business days on (422 for an unknown id)."""
    if calendar_id is not None:
        row = await calendars.get(session, calendar_id=calendar_id)
        if row is None:
            message = f"There is no calendar {calendar_id!r}."
            raise ValidationFailed(
                message,
                errors=[{"field": "query.calendar_id", "message": message, "code": "not_found"}],
            )
        return row.id, row.spec
    _policy, calendar = await sla.resolve(session, **DEFAULT_CALENDAR_MATCH)
    return calendar.id, calendar.spec


async def aging_alerts(
    session: AsyncSession, *, runtime: GatewayRuntime, key: ApiKey, filters: AgingFilters
) -> AgingAlertsRead:
    """The aging report intake computes, for what this key may see (a partner: its team)."""
    calendar_id, spec = await aging_calendar(session, calendar_id=filters.calendar_id)
    await session.rollback()  # no transaction held open while intake works
    body: dict[str, Any] = {
        "calendar": spec,
        "team": filters.team,
        "assignee": filters.owner,
        "bucket": filters.bucket,
        "stale_business_days": filters.stale_days,
        "limit": filters.limit,
    }
    # Intake scopes the report by this identity too: a partner's key ages its own team only.
    headers = {IDENTITY_HEADER: runtime.authenticator.identity_token(key)}
    request_id = current_request_id()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    url = runtime.upstreams["intake"] + AGING_PATH
    try:
        response = await runtime.http.post(
            url, json={k: v for k, v in body.items() if v is not None}, headers=headers
        )
    except httpx.TimeoutException:
        timeout = runtime.settings.service_timeout_seconds
        raise GatewayTimeout(
            f"intake did not answer within {timeout:g} s.", service="intake"
        ) from None
    except httpx.TransportError as exc:
        log.warning("upstream_unavailable", service="intake", error=repr(exc))
        raise BadGateway("intake is unavailable.", service="intake") from None
    if response.status_code != 200:
        raise _upstream_error(response)
    report: dict[str, Any] = response.json()
    return AgingAlertsRead.model_validate(
        {
            **report,
            "calendar_id": calendar_id,
            "groups": [_owned(group) for group in report["groups"]],
            "stale_by_owner": [_owned(owner) for owner in report["stale_by_owner"]],
            "stale": [_owned(item) for item in report["stale"]],
        }
    )


def _owned(row: dict[str, Any]) -> dict[str, Any]:
    """Intake's `assignee` is the alert's `owner`."""
    copy = dict(row)
    copy["owner"] = copy.pop("assignee")
    return copy


def _upstream_error(response: httpx.Response) -> DomainError:
    if 400 <= response.status_code < 500 and response.status_code not in (401, 403):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "type" in body:
            return UpstreamProblem(response.status_code, body)
    log.warning("aging_upstream_failed", status=response.status_code, body=response.text[:500])
    return BadGateway(
        f"intake answered {response.status_code} to the aging report.", service="intake"
    )
