"""What a running gateway holds for its lifetime, and the dependencies that hand it out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.outbox import OutboxDispatcher
from services.common.settings import ServiceName, Settings
from services.common.temporal import TemporalConnector

if TYPE_CHECKING:
    from services.gateway.auth import KeyAuthenticator
    from services.gateway.openapi import OpenApiAggregator


@dataclass(slots=True)
class GatewayRuntime:
    """The gateway's engine, its one HTTP client, the key authenticator and the OpenAPI cache."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    upstreams: dict[ServiceName, str]
    authenticator: KeyAuthenticator
    openapi: OpenApiAggregator
    # Set by the app's lifespan; optional so a runtime built without Temporal still type-checks.
    temporal: TemporalConnector | None = None
    dispatcher: OutboxDispatcher | None = None


def get_runtime(request: Request) -> GatewayRuntime:
    """The runtime of the gateway serving this request."""
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One database session per request; use cases commit, anything uncommitted rolls back."""
    async with get_runtime(request).sessionmaker() as session:
        yield session


RuntimeDep = Annotated[GatewayRuntime, Depends(get_runtime)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
