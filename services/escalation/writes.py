"""What every write of the escalation service shares: the response shape, `Idempotency-Key`
handling in the effect's own transaction, and keyset cursors over integer ids."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.idempotency import Outcome as Outcome  # re-exported for the api modules
from services.common.idempotency import run_idempotent
from services.common.identity import Identity
from services.common.pagination import decode_int_cursor
from services.escalation.models import IdempotencyKey

MAX_ID = 2**31 - 1


def outcome_response(outcome: Outcome, *, location: str | None = None) -> JSONResponse:
    """The HTTP response of a write (`Idempotent-Replayed: true` on a replay)."""
    return outcome.to_response(location=location)


async def idempotent(
    session: AsyncSession,
    *,
    caller: Identity,
    key: str | None,
    request_fingerprint: str,
    effect: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> Outcome:
    """Run `effect` and commit, honouring the caller's `Idempotency-Key` (see run_idempotent)."""
    return await run_idempotent(
        session,
        IdempotencyKey,
        subject=caller.subject,
        key=key,
        request_fingerprint=request_fingerprint,
        effect=effect,
    )


def cursor_id(cursor: str) -> int:
    """The id inside a cursor of an id-ordered list; anything else is a 422 on `cursor`."""
    return decode_int_cursor(cursor, "id", maximum=MAX_ID)
