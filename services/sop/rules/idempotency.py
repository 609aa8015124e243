"""`Idempotency-Key` for the POSTs of rules and MOs: the effect and its stored response commit in
one transaction, and a retry with the same key and body replays the first response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.idempotency import Outcome as Outcome  # re-exported for the api modules
from services.common.idempotency import fingerprint
from services.common.idempotency import run_idempotent as common_run_idempotent
from services.common.identity import Identity
from services.sop.models import IdempotencyKey


async def run_idempotent(
    session: AsyncSession,
    *,
    caller: Identity,
    key: str | None,
    method: str,
    path: str,
    payload: Any,
    effect: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> Outcome:
    """Run `effect` (which must not commit) and commit it, honouring `Idempotency-Key`."""
    return await common_run_idempotent(
        session,
        IdempotencyKey,
        subject=caller.subject,
        key=key,
        request_fingerprint=fingerprint(method, path, payload),
        effect=effect,
    )
