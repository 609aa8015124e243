"""The transactional outbox against a real Temporal server and a real database.

A tiny probe workflow records every signal it receives, so the tests can count deliveries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from riskdesk.temporal_server import free_port, running_dev_server
from services.common.db import make_engine, make_metadata, make_sessionmaker, utcnow
from services.common.outbox import OutboxDispatcher, OutboxMixin, enqueue_signal, outbox_backlog
from services.common.settings import Settings
from services.common.temporal import TemporalConnector, connect_temporal


class Base(DeclarativeBase):
    metadata = make_metadata()


class ProbeOutbox(OutboxMixin, Base):
    pass


@dataclass
class ProbeStart:
    name: str


@dataclass
class ProbeSignal:
    event_id: str
    last: bool = False


@dataclass
class ProbeState:
    received: list[str] = field(default_factory=list)


@workflow.defn(name="OutboxProbeWorkflow")
class OutboxProbeWorkflow:
    def __init__(self) -> None:
        self.state = ProbeState()
        self.finished = False

    @workflow.run
    async def run(self, start: ProbeStart) -> list[str]:
        await workflow.wait_condition(lambda: self.finished)
        return self.state.received

    @workflow.signal
    def probe(self, signal: ProbeSignal) -> None:
        self.state.received.append(signal.event_id)
        self.finished = self.finished or signal.last

    @workflow.query
    def received(self) -> list[str]:
        return self.state.received


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    url = settings.database_url_of("intake")
    schema = f"outbox_{uuid.uuid4().hex[:8]}"
    engine = make_engine(url, schema=schema)
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    await engine.dispose()


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@pytest.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[OutboxProbeWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ) as running:
        yield running


async def _result(client: Client, workflow_id: str, limit_seconds: float = 30) -> list[str]:
    """The probe's result, waiting for the dispatcher to have started it at all."""

    async def wait() -> list[str]:
        while True:
            try:
                result: list[str] = await client.get_workflow_handle(workflow_id).result()
                return result
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.1)

    return await asyncio.wait_for(wait(), timeout=limit_seconds)


async def _enqueue(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, workflow_id: str, count: int
) -> list[str]:
    ids = []
    async with sessionmaker() as session, session.begin():
        for n in range(count):
            ids.append(
                enqueue_signal(
                    session,
                    ProbeOutbox,
                    workflow_id=workflow_id,
                    workflow_type="OutboxProbeWorkflow",
                    task_queue=settings.task_queue,
                    start_arg=ProbeStart(name=workflow_id),
                    signal_name="probe",
                    signal_arg=ProbeSignal(event_id=f"e{n}", last=n == count - 1),
                )
            )
    return ids


def _dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession], address: str, batch_size: int = 100
) -> OutboxDispatcher:
    return OutboxDispatcher(
        sessionmaker=sessionmaker,
        model=ProbeOutbox,
        temporal=TemporalConnector(address=address, namespace="default"),
        poll_seconds=0.1,
        batch_size=batch_size,
        max_backoff_seconds=0.5,
    )


async def test_events_arrive_in_commit_order_and_rows_are_marked(
    engine: AsyncEngine, settings: Settings, client: Client, worker: Worker
) -> None:
    sessionmaker = make_sessionmaker(engine)
    workflow_id = f"probe-{uuid.uuid4().hex[:8]}"
    await _enqueue(sessionmaker, settings, workflow_id, 5)
    dispatcher = _dispatcher(sessionmaker, settings.temporal_address, batch_size=2)
    dispatcher.start()
    try:
        received = await _result(client, workflow_id)
    finally:
        await dispatcher.stop()
    assert received == ["e0", "e1", "e2", "e3", "e4"]
    async with sessionmaker() as session:
        assert (await outbox_backlog(session, ProbeOutbox)).pending == 0
        rows = (await session.execute(select(ProbeOutbox))).scalars().all()
    assert all(row.dispatched_at is not None for row in rows)


async def test_rolled_back_change_leaves_no_event(engine: AsyncEngine, settings: Settings) -> None:
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session:
        enqueue_signal(
            session,
            ProbeOutbox,
            workflow_id="never",
            workflow_type="OutboxProbeWorkflow",
            task_queue=settings.task_queue,
            start_arg=ProbeStart(name="never"),
            signal_name="probe",
            signal_arg=ProbeSignal(event_id="x"),
        )
        await session.rollback()
    async with sessionmaker() as session:
        assert (await outbox_backlog(session, ProbeOutbox)).pending == 0


async def test_events_wait_while_temporal_is_down_and_drain_when_it_returns(
    engine: AsyncEngine, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sessionmaker = make_sessionmaker(engine)
    port = free_port()
    address = f"127.0.0.1:{port}"
    workflow_id = f"probe-{uuid.uuid4().hex[:8]}"
    await _enqueue(sessionmaker, settings, workflow_id, 3)

    dispatcher = _dispatcher(sessionmaker, address)
    dispatcher.start()
    await asyncio.sleep(1.0)
    await dispatcher.stop()
    async with sessionmaker() as session:
        backlog = await outbox_backlog(session, ProbeOutbox)
        rows = (await session.execute(select(ProbeOutbox))).scalars().all()
    assert backlog.pending == 3
    assert backlog.oldest_age_seconds is not None
    assert backlog.oldest_age_seconds > 0
    assert all(row.attempts >= 1 and row.last_error for row in rows)

    # Temporal comes up on that address; a fresh dispatcher (a restarted service) resumes.
    with running_dev_server(port=port):
        client = await connect_temporal(address, "default")
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[OutboxProbeWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            dispatcher = _dispatcher(sessionmaker, address)
            dispatcher.start()
            try:
                received = await _result(client, workflow_id)
            finally:
                await dispatcher.stop()
    assert received == ["e0", "e1", "e2"]


async def test_two_dispatchers_deliver_each_event_once(
    backend: str, engine: AsyncEngine, settings: Settings, client: Client, worker: Worker
) -> None:
    if backend != "postgresql":
        pytest.skip(
            "row claiming with SKIP LOCKED is a PostgreSQL guarantee; SQLite runs one dispatcher"
        )
    sessionmaker = make_sessionmaker(engine)
    workflow_ids = [f"probe-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    for workflow_id in workflow_ids:
        await _enqueue(sessionmaker, settings, workflow_id, 4)
    first = _dispatcher(make_sessionmaker(engine), settings.temporal_address, batch_size=3)
    second = _dispatcher(make_sessionmaker(engine), settings.temporal_address, batch_size=3)
    first.start()
    second.start()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(_result(client, w) for w in workflow_ids)), timeout=60
        )
    finally:
        await first.stop()
        await second.stop()
    for received in results:
        assert received == ["e0", "e1", "e2", "e3"]


async def test_a_backing_off_event_holds_back_later_events_of_its_workflow(
    engine: AsyncEngine, settings: Settings, client: Client
) -> None:
    sessionmaker = make_sessionmaker(engine)
    workflow_id = f"probe-{uuid.uuid4().hex[:8]}"
    await _enqueue(sessionmaker, settings, workflow_id, 2)
    async with sessionmaker() as session, session.begin():
        first = (
            (
                await session.execute(
                    select(ProbeOutbox).where(ProbeOutbox.workflow_id == workflow_id)
                )
            )
            .scalars()
            .first()
        )
        assert first is not None
        first.next_attempt_at = utcnow() + timedelta(hours=1)
    dispatcher = _dispatcher(sessionmaker, settings.temporal_address)
    assert await dispatcher.drain_once() == 0
    with pytest.raises(RPCError):
        await client.get_workflow_handle(workflow_id).describe()
