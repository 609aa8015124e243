"""The SOP service's FastAPI app (`uvicorn --factory services.sop.app:create_app`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings
from services.sop.models import OutboxEvent
from services.sop.mos.api import router as mos_router
from services.sop.mos.matching_api import internal_router as mos_internal_router
from services.sop.rules.api import internal_router as rules_internal_router
from services.sop.rules.api import router as rules_router
from services.sop.sops.api import ROUTERS as SOP_ROUTERS
from services.sop.stats.api import router as stats_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """The SOP service: SOPs, versions, approvals, rollouts, parity; detection rules; MOs."""
    return create_service_app(
        service="sop",
        title="riskdesk SOP service",
        description=(
            "SOPs and versions, approval workflows, rollouts to orgs with acknowledgements, "
            "parity across orgs and periodic reviews; detection rules; MOs. Called only through "
            "the gateway (or by the worker), with a signed identity token."
        ),
        routers=[
            *SOP_ROUTERS,
            rules_router,
            rules_internal_router,
            mos_router,
            mos_internal_router,
            stats_router,
        ],
        outbox_model=OutboxEvent,
        settings=settings,
    )
