"""Two dispatcher processes on one PostgreSQL outbox deliver every event once, in order.

tests/service/test_outbox.py runs two dispatchers in one process; here each is its own OS process
with its own connections, as two service replicas are.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.common.db import make_engine, make_sessionmaker
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from tests.infra.manifests import ROOT
from tests.service.test_outbox import Base, OutboxProbeWorkflow, _enqueue, _result

WORKFLOWS = 12
EVENTS = 5


async def test_two_dispatcher_processes_deliver_each_event_once_in_order(
    backend: str, make_settings: Callable[..., Settings], temporal_address: str
) -> None:
    if backend != "postgresql":
        pytest.skip("several replicas share an outbox on PostgreSQL only (SKIP LOCKED)")
    settings = make_settings()
    url = settings.database_url_of("intake")
    schema = f"outbox_procs_{uuid.uuid4().hex[:8]}"
    engine = make_engine(url, schema=schema)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        await connection.run_sync(Base.metadata.create_all)
    try:
        sessionmaker = make_sessionmaker(engine)
        workflow_ids = [f"probe-{uuid.uuid4().hex[:8]}" for _ in range(WORKFLOWS)]
        for workflow_id in workflow_ids:
            await _enqueue(sessionmaker, settings, workflow_id, EVENTS)
        client = await connect_temporal(temporal_address, "default")
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[OutboxProbeWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.infra.outbox_process",
                    url,
                    schema,
                    temporal_address,
                    "90",
                    cwd=ROOT,
                    stdout=asyncio.subprocess.PIPE,
                )
                for _ in range(2)
            ]
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*(_result(client, w, 90) for w in workflow_ids)), timeout=120
                )
                outputs: list[Any] = [await p.communicate() for p in processes]
            finally:
                for process in processes:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
        expected = [f"e{n}" for n in range(EVENTS)]
        for received in results:
            assert received == expected  # each event once, in commit order
        delivered = [int(stdout.decode().strip()) for stdout, _ in outputs]
        assert sum(delivered) == WORKFLOWS * EVENTS, delivered
        assert all(process.returncode == 0 for process in processes)
    finally:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        await engine.dispose()
