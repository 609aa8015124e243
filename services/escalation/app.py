"""The escalation service application (`uvicorn --factory services.escalation.app:create_app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings, get_settings
from services.escalation.action_items.api import router as action_items_router
from services.escalation.api import router as escalations_router
from services.escalation.gaps.api import router as gaps_router
from services.escalation.models import OutboxEvent
from services.escalation.people.api import router as people_router
from services.escalation.people.resolution import GatewayCalendars, make_http_client
from services.escalation.stats.api import router as stats_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """The escalation service: escalations, action items, RCAs, closure approval, gaps, people."""
    resolved = settings or get_settings()
    app = create_service_app(
        service="escalation",
        title="riskdesk escalation service",
        description=(
            "Escalations (Sev-2, executive, COE, partner) with their action items, RCA / COE "
            "documents and closure approval, the systemic-gap register, and the person directory "
            "(owners' managers and calendars). Called only through the gateway (or by the "
            "worker), with a signed identity token."
        ),
        routers=[escalations_router, action_items_router, gaps_router, people_router, stats_router],
        outbox_model=OutboxEvent,
        settings=resolved,
    )
    shared_lifespan = app.router.lifespan_context

    # Owners' calendars are read from the gateway: one HTTP client for the app's lifetime.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with make_http_client(resolved) as http:
            app.state.gateway_calendars = GatewayCalendars(http=http, settings=resolved)
            async with shared_lifespan(app):
                yield

    app.router.lifespan_context = lifespan
    return app
