"""`/metrics` on every service and the gateway: latency by route template, outbox gauges, no key.

Real apps in-process (lifespan run), real databases, and for the gateway a real intake service
under uvicorn behind it, so the forwarded call is counted the way production counts it.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import re
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from riskdesk.temporal_server import free_port
from services.common.db import make_engine, make_sessionmaker, utcnow
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.outbox import enqueue_signal
from services.common.settings import Settings
from services.gateway.app import create_app as create_gateway
from services.gateway.keys.service import create_key
from services.gateway.runtime import GatewayRuntime
from tests.workflows.test_notification_delivery import serve

SERVICES = ["intake", "escalation", "sop"]
ODD_ID = "987654321"
HISTOGRAM = "riskdesk_http_request_duration_seconds"


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of `name` in an exposition text, as (labels, value)."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def count_of(text: str, **labels: str) -> float:
    """The request count of the histogram series with these labels (0 if absent)."""
    return sum(
        value
        for found, value in samples(text, f"{HISTOGRAM}_count")
        if all(found.get(k) == v for k, v in labels.items())
    )


def route_with_id(app: FastAPI) -> str:
    """A GET route template of the app with one path parameter (what metrics must show)."""
    return next(
        path
        for path, operations in app.openapi()["paths"].items()
        if "get" in operations and path.startswith("/api/v1/") and path.count("{") == 1
    )


def assert_no_raw_ids(text: str) -> None:
    for labels, _value in samples(text, f"{HISTOGRAM}_count"):
        assert ODD_ID not in labels["route"], labels


def unreachable_temporal() -> str:
    # Nothing listens there: outbox rows stay pending, which is what the gauges must show.
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize("service", SERVICES)
async def test_service_metrics_show_route_templates_and_the_outbox_backlog(
    service: str,
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
) -> None:
    settings = make_settings(temporal_address=unreachable_temporal())
    url = settings.database_url_of(service)  # type: ignore[arg-type]
    await asyncio.to_thread(upgrade, service=service, database_url=url)
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app(settings)
    route = route_with_id(app)
    path = re.sub(r"\{[^}]+\}", ODD_ID, route)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client,
    ):
        caller = identity_headers(role=Role.ADMIN)
        answered = await client.get(path, headers=caller)
        assert answered.status_code < 500, answered.text
        refused = await client.get(path)  # no identity: refused before routing
        assert refused.status_code == 401

        # No identity token needed, Prometheus text format.
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        text = scraped.text
        assert (
            count_of(
                text,
                service=service,
                method="GET",
                route=route,
                status=str(answered.status_code),
            )
            == 1
        )
        assert count_of(text, service=service, route="unmatched", status="401") == 1
        assert_no_raw_ids(text)
        assert count_of(text, route="/metrics") == 0  # scrapes are not timed
        assert samples(text, "process_cpu_seconds_total") or samples(text, "python_info")

        # A pending outbox row shows in the gauges (Temporal is unreachable: it stays pending).
        runtime = app.state.runtime
        async with runtime.sessionmaker() as session:
            enqueue_signal(
                session,
                runtime.outbox_model,
                workflow_id=f"metrics-{ODD_ID}",
                workflow_type="Nothing",
                task_queue=settings.task_queue,
                start_arg={},
                signal_name="nothing",
                signal_arg={},
            )
            await session.commit()
            await session.execute(
                update(runtime.outbox_model)
                .where(runtime.outbox_model.workflow_id == f"metrics-{ODD_ID}")
                .values(created_at=utcnow() - timedelta(minutes=5))
            )
            await session.commit()
        text = (await client.get("/metrics")).text
        ((labels, pending),) = samples(text, "riskdesk_outbox_pending")
        assert labels == {"service": service}
        assert pending >= 1
        ((_labels, age),) = samples(text, "riskdesk_outbox_oldest_age_seconds")
        assert age >= 299
        ready = (await client.get("/readyz")).json()
        assert ready["outbox_pending"] == pending

        async with runtime.sessionmaker() as session:
            # Leave nothing pending behind for a later test sharing the PostgreSQL schema.
            await session.execute(
                update(runtime.outbox_model)
                .where(runtime.outbox_model.workflow_id == f"metrics-{ODD_ID}")
                .values(dispatched_at=utcnow())
            )
            await session.commit()


async def test_service_metrics_show_nan_not_500_when_the_database_is_gone(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(temporal_address=unreachable_temporal())
    url = settings.database_url_of("sop")
    await asyncio.to_thread(upgrade, service="sop", database_url=url)
    app: FastAPI = importlib.import_module("services.sop.app").create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client,
    ):
        runtime = app.state.runtime
        await runtime.dispatcher.stop()
        await runtime.engine.dispose()
        # A closed pool reopens on demand, so make the database unreachable for real.
        broken = make_settings(
            temporal_address=unreachable_temporal(),
            database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        )
        engine = make_engine(broken.database_url_of("sop"), schema="sop")
        runtime.sessionmaker = make_sessionmaker(engine)
        try:
            scraped = await client.get("/metrics")
        finally:
            await engine.dispose()
        assert scraped.status_code == 200
        ((_labels, pending),) = samples(scraped.text, "riskdesk_outbox_pending")
        assert math.isnan(pending)


async def test_gateway_metrics_count_forwarded_calls_by_service_and_segment(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(intake_port=free_port(), temporal_address=unreachable_temporal())
    for service in ("gateway", "intake"):
        await asyncio.to_thread(
            upgrade,
            service=service,
            database_url=settings.database_url_of(service),  # type: ignore[arg-type]
        )
    intake = importlib.import_module("services.intake.app").create_app(settings)
    gateway = create_gateway(settings)
    async with (
        serve(intake, settings.intake_port),
        gateway.router.lifespan_context(gateway),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway), base_url="http://gw"
        ) as client,
    ):
        runtime: GatewayRuntime = gateway.state.runtime
        async with runtime.sessionmaker() as session:
            _row, plaintext = await create_key(
                session, team="risk-mining", role=Role.ANALYST, name="metrics"
            )
            await session.commit()
        key = {"Authorization": f"Bearer {plaintext}"}

        forwarded = await client.get(f"/api/v1/requests/{ODD_ID}", headers=key)
        assert forwarded.status_code == 404, forwarded.text
        assert forwarded.headers["content-type"] == "application/problem+json"
        nobody = await client.get(f"/api/v1/nothing-here/{ODD_ID}", headers=key)
        assert nobody.status_code == 404
        own = await client.get("/api/v1/keys", headers=key)  # the gateway's own route

        scraped = await client.get("/metrics")  # no API key
        assert scraped.status_code == 200
        text = scraped.text
        assert (
            count_of(
                text,
                service="gateway",
                method="GET",
                route="forward:intake:/api/v1/requests",
                status="404",
            )
            == 1
        )
        assert count_of(text, service="gateway", route="unmatched", status="404") == 1
        assert count_of(text, service="gateway", status=str(own.status_code)) >= 1
        assert_no_raw_ids(text)
        # The intake service timed the forwarded call under its own template.
        async with httpx.AsyncClient(trust_env=False) as direct:
            intake_text = (
                await direct.get(f"http://127.0.0.1:{settings.intake_port}/metrics")
            ).text
        assert count_of(intake_text, service="intake", route="/api/v1/requests/{request_id}") == 1

        ((labels, pending),) = samples(text, "riskdesk_outbox_pending")
        assert labels == {"service": "gateway"}
        ready = (await client.get("/readyz")).json()
        assert ready["outbox_pending"] == pending
        assert "outbox_oldest_age_seconds" in ready
