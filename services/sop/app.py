"""The SOP service's FastAPI app (the shared kernel only; domain routes come later)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings
from services.sop.models import OutboxEvent


def create_app(settings: Settings | None = None) -> FastAPI:
    """The SOP service: health, identity check and outbox wired in, no domain routes yet."""
    return create_service_app(
        service="sop",
        title="riskdesk SOP service",
        description="SOPs and versions, approvals, rollouts, parity; detection rules; MOs.",
        routers=[],
        outbox_model=OutboxEvent,
        settings=settings,
    )
