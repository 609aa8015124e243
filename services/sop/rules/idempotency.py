"""`Idempotency-Key` for the POSTs of rules and MOs: the effect and its stored response commit in
one transaction, and a retry with the same key and body replays the first response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import Conflict
from services.common.idempotency import find_stored, fingerprint, store_response, validate_key
from services.common.identity import Identity
from services.sop.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class Outcome:
    """The response of a write: its status and JSON body, and whether it replays a stored one."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


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
    """Run `effect` (which must not commit) and commit it, with its response stored under `key`.

    A key already used replays the stored response. Two identical requests racing both pass the
    lookup; the loser's insert of the key row violates its primary key, so its whole effect rolls
    back and it replays the winner's response. Any other integrity error is a 409.
    """
    lookup: dict[str, str] | None = None
    if key is not None:
        validate_key(key)
        lookup = {
            "subject": caller.subject,
            "key": key,
            "request_fingerprint": fingerprint(method, path, payload),
        }
        stored = await find_stored(session, IdempotencyKey, **lookup)
        if stored is not None:
            return Outcome(stored.status_code, stored.body, replayed=True)
    try:
        status_code, body = await effect()
        if lookup is not None:
            store_response(session, IdempotencyKey, status_code=status_code, body=body, **lookup)
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if lookup is not None:
            stored = await find_stored(session, IdempotencyKey, **lookup)
            if stored is not None:
                return Outcome(stored.status_code, stored.body, replayed=True)
        raise Conflict("A concurrent change conflicted with this request; retry it.") from exc
    return Outcome(status_code, body)
