"""The intake service application (`uvicorn --factory services.intake.app:create_app`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings
from services.intake.api import internal_router, router
from services.intake.models import OutboxEvent


def create_app(settings: Settings | None = None) -> FastAPI:
    """The intake service: partner requests, their state machine and audit events."""
    return create_service_app(
        service="intake",
        title="riskdesk intake",
        description=(
            "Partner requests (MO investigations, deep dives, data and rule-change requests, "
            "systemic-gap reports): filing, lists, transitions and the audit trail. Called only "
            "through the gateway, with its signed identity token."
        ),
        routers=[router, internal_router],
        outbox_model=OutboxEvent,
        settings=settings,
    )
