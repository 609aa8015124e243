"""What every write of the escalation service shares: the response shape, `Idempotency-Key`
handling in the effect's own transaction, and keyset cursors over integer ids."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import ValidationFailed
from services.common.idempotency import find_stored, store_response, validate_key
from services.common.identity import Identity
from services.common.pagination import decode_cursor
from services.escalation.models import IdempotencyKey

MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """The response of a write: its status and JSON body, and whether it replays a stored one."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False

    def response(self, *, location: str | None = None) -> JSONResponse:
        """The HTTP response of this outcome (`Idempotent-Replayed: true` on a replay)."""
        headers = {"Location": location} if location else {}
        if self.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


async def idempotent(
    session: AsyncSession,
    *,
    caller: Identity,
    key: str | None,
    request_fingerprint: str,
    effect: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> Outcome:
    """Run `effect` and commit; with a key, store its response in the same transaction.

    A key already used replays the stored response. Of two identical requests racing, the loser's
    insert of the key row violates its primary key: it rolls back its whole effect and replays the
    winner's response.
    """
    if key is None:
        status_code, body = await effect()
        await session.commit()
        return Outcome(status_code, body)
    validate_key(key)
    lookup = {"subject": caller.subject, "key": key, "request_fingerprint": request_fingerprint}
    stored = await find_stored(session, IdempotencyKey, **lookup)
    if stored is not None:
        return Outcome(stored.status_code, stored.body, replayed=True)
    try:
        status_code, body = await effect()
        store_response(session, IdempotencyKey, status_code=status_code, body=body, **lookup)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        stored = await find_stored(session, IdempotencyKey, **lookup)
        if stored is None:
            raise
        return Outcome(stored.status_code, stored.body, replayed=True)
    return Outcome(status_code, body)


def cursor_id(cursor: str) -> int:
    """The id inside a cursor of an id-ordered list; anything else is a 422 on `cursor`."""
    value = decode_cursor(cursor, required=("id",))["id"]
    # Bounded like the int4 columns it is compared with (PostgreSQL refuses larger parameters).
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ValidationFailed(
            "The cursor is not one this list returned.",
            errors=[
                {"field": "query.cursor", "message": "invalid cursor", "code": "cursor_invalid"}
            ],
        )
    return value
