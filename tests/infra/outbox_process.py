"""One outbox dispatcher in its own process (run by test_outbox_processes.py).

    python -m tests.infra.outbox_process <database url> <schema> <temporal address> <seconds>

Delivers the probe outbox of `schema` until no row is pending or `seconds` pass, then prints how
many rows this process delivered.
"""

from __future__ import annotations

import asyncio
import sys
import time

from services.common.db import make_engine, make_sessionmaker
from services.common.outbox import OutboxDispatcher, outbox_backlog
from services.common.temporal import TemporalConnector
from tests.service.test_outbox import ProbeOutbox


async def main(url: str, schema: str, address: str, seconds: float) -> int:
    engine = make_engine(url, schema=schema)
    sessionmaker = make_sessionmaker(engine)
    dispatcher = OutboxDispatcher(
        sessionmaker=sessionmaker,
        model=ProbeOutbox,
        temporal=TemporalConnector(address=address, namespace="default"),
        poll_seconds=0.05,
        batch_size=3,
        max_backoff_seconds=0.5,
    )
    delivered = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            delivered += await dispatcher.drain_once()
            async with sessionmaker() as session:
                if (await outbox_backlog(session, ProbeOutbox)).pending == 0:
                    break
            await asyncio.sleep(0.01)
    finally:
        await engine.dispose()
    return delivered


if __name__ == "__main__":
    url, schema, address, seconds = sys.argv[1:5]
    print(asyncio.run(main(url, schema, address, float(seconds))))
