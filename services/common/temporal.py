"""One lazily connected Temporal client per process, shared by the outbox dispatcher and readiness.

A service must start and accept writes while Temporal is down (events wait in the outbox), so the
connection is made on first use and retried by whoever needs it, never at import or startup.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from services.common.tracing import temporal_client_interceptors


async def connect_temporal(
    address: str, namespace: str, *, runtime: Runtime | None = None
) -> Client:
    """Connect to Temporal with the data converter every riskdesk process uses.

    `runtime` carries telemetry (the worker's Prometheus exporter); None is the SDK's default.
    With tracing on, the client (and any worker made with it) carries the tracing interceptor.
    """
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=temporal_client_interceptors(),
    )


class TemporalConnector:
    """Connects on first use and keeps the client; a failed attempt is retried on the next call."""

    def __init__(self, *, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """The connected client; raises if Temporal cannot be reached now."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = await asyncio.wait_for(
                    connect_temporal(self.address, self.namespace), timeout=10
                )
        return self._client

    @property
    def connected(self) -> bool:
        """Whether a client has been made (not whether the server answers right now)."""
        return self._client is not None
