"""How an action item's owner resolves through the directory: their manager and their calendar.

Rules (also in the README):
- **Manager.** The ladder's second level is the item's own `owner_manager` when it names one (a
  per-item override), else the owner's `manager_handle` in the directory, else the level is
  skipped. Resolved whenever the escalation's facts are snapshotted for its workflow.
- **Calendar.** An item created or patched with its own `calendar` keeps it (`calendar_source:
  "item"`). Otherwise the owner's directory `calendar_id` names a gateway calendar: the default
  due date is counted on it (`"owner"`), and EscalationWorkflow fetches it from the gateway for
  quiet hours. Without one (no entry, no `calendar_id`, a calendar the gateway does not know, or
  the gateway unreachable) the program office default applies (`"default"`, India business hours).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import httpx
import structlog
from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.business_time import Calendar, CalendarError
from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.settings import Settings
from services.escalation.people.models import Person
from workflows.escalation_rules import DEFAULT_CALENDAR_SPEC

log = structlog.get_logger(__name__)

# The escalation service reads gateway calendars as a riskdesk process, like the worker does.
SERVICE_IDENTITY = Identity(subject="escalation-service", team="risk-mining", role=Role.SYSTEM)


class CalendarSource(StrEnum):
    """Where an action item's calendar comes from."""

    ITEM = "item"
    OWNER = "owner"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class ItemCalendar:
    """The calendar an item's default due date is counted on, and where it came from."""

    calendar: Calendar
    source: CalendarSource
    calendar_id: str | None = None


class GatewayCalendars:
    """Reads one calendar from the gateway's `GET /internal/calendars/{id}` (system identity)."""

    def __init__(self, *, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    async def spec(self, calendar_id: str) -> dict[str, Any] | None:
        """The calendar spec, or None when the gateway does not know it or cannot be reached."""
        token = sign_identity(
            SERVICE_IDENTITY,
            secret=self.settings.identity_secret,
            ttl_seconds=self.settings.identity_ttl_seconds,
        )
        url = f"{self.settings.url_of('gateway').rstrip('/')}/internal/calendars/{calendar_id}"
        try:
            response = await self.http.get(url, headers={IDENTITY_HEADER: token})
        except httpx.HTTPError as exc:
            log.warning("owner_calendar_unreachable", calendar_id=calendar_id, error=repr(exc))
            return None
        if response.status_code != 200:
            log.warning(
                "owner_calendar_unavailable",
                calendar_id=calendar_id,
                status=response.status_code,
            )
            return None
        spec = response.json().get("calendar")
        return spec if isinstance(spec, dict) else None


def get_gateway_calendars(request: Request) -> GatewayCalendars:
    """The app's gateway calendar reader (built by the escalation app's lifespan)."""
    calendars: GatewayCalendars = request.app.state.gateway_calendars
    return calendars


GatewayCalendarsDep = Annotated[GatewayCalendars, Depends(get_gateway_calendars)]


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The service's one client for gateway calls (opened and closed by the app's lifespan)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.service_timeout_seconds), trust_env=False
    )


DEFAULT_CALENDAR = Calendar.from_spec(DEFAULT_CALENDAR_SPEC)


async def people_by_handle(session: AsyncSession, handles: Iterable[str]) -> dict[str, Person]:
    """The directory entries of `handles` (missing ones are simply absent)."""
    wanted = sorted(set(handles))
    if not wanted:
        return {}
    rows = await session.execute(select(Person).where(Person.handle.in_(wanted)))
    return {person.handle: person for person in rows.scalars()}


async def owner_calendar(
    session: AsyncSession, *, owner: str, calendars: GatewayCalendars
) -> ItemCalendar:
    """The owner's calendar for a default due date: their directory calendar, else the default.

    Call it before the write transaction starts: it may wait on the gateway.
    """
    person = await session.get(Person, owner)
    if person is None or person.calendar_id is None:
        return ItemCalendar(DEFAULT_CALENDAR, CalendarSource.DEFAULT)
    spec = await calendars.spec(person.calendar_id)
    if spec is None:
        return ItemCalendar(DEFAULT_CALENDAR, CalendarSource.DEFAULT)
    try:
        calendar = Calendar.from_spec(spec)
    except CalendarError:
        log.warning("owner_calendar_unusable", calendar_id=person.calendar_id)
        return ItemCalendar(DEFAULT_CALENDAR, CalendarSource.DEFAULT)
    return ItemCalendar(calendar, CalendarSource.OWNER, person.calendar_id)


def ladder_manager(item_manager: str | None, person: Person | None) -> str | None:
    """The item's own `owner_manager`, else the owner's manager in the directory."""
    if item_manager:
        return item_manager
    return person.manager_handle if person is not None else None
