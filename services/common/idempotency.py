"""`Idempotency-Key` for POST: a retried request gets the first response, never a second effect.

The stored response is written in the same transaction as the effect, so a crash leaves either
both or neither. Reusing a key for a different request (another body or path) is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, utcnow
from services.common.errors import Conflict, ValidationFailed

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


class IdempotencyKeyMixin:
    """Columns of a service's `idempotency_key` table: one stored response per (caller, key)."""

    __tablename__ = "idempotency_key"

    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response first given for an idempotency key."""

    status_code: int
    body: Any


def fingerprint(method: str, path: str, body: Any) -> str:
    """A stable hash of what a request asks for (method, path and canonical JSON body)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def validate_key(key: str) -> str:
    """Refuse empty, overlong or non-printable keys with a field error."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
            errors=[
                {"field": f"header.{IDEMPOTENCY_HEADER}", "message": "invalid", "code": "invalid"}
            ],
        )
    return key


async def find_stored(
    session: AsyncSession,
    model: type[IdempotencyKeyMixin],
    *,
    subject: str,
    key: str,
    request_fingerprint: str,
) -> StoredResponse | None:
    """The response stored for this caller's key, or None; a key reused for another request is 422."""
    row = (
        await session.execute(select(model).where(model.subject == subject, model.key == key))
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        error = ValidationFailed(
            f"This {IDEMPOTENCY_HEADER} was already used for a different request.",
            errors=[
                {"field": f"header.{IDEMPOTENCY_HEADER}", "message": "reused", "code": "reused"}
            ],
        )
        error.slug = "idempotency-key-reused"
        raise error
    return StoredResponse(status_code=row.status_code, body=row.response_body)


def store_response(
    session: AsyncSession,
    model: type[IdempotencyKeyMixin],
    *,
    subject: str,
    key: str,
    request_fingerprint: str,
    status_code: int,
    body: Any,
) -> None:
    """Remember the response in the caller's transaction (commit it with the effect)."""
    row = model()  # mixins carry no typed __init__; the mapped subclass accepts attributes
    row.subject = subject
    row.key = key
    row.fingerprint = request_fingerprint
    row.status_code = status_code
    row.response_body = body
    row.created_at = utcnow()
    session.add(row)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The response of a write: its status and JSON body, and whether it replays a stored one."""

    status_code: int
    body: Any
    replayed: bool = False

    def to_response(self, *, location: str | None = None) -> JSONResponse:
        """The HTTP response: `Location` for a creation, `Idempotent-Replayed: true` on a replay."""
        headers = {"Location": location} if location else {}
        if self.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


async def run_idempotent(
    session: AsyncSession,
    model: type[IdempotencyKeyMixin],
    *,
    subject: str,
    key: str | None,
    request_fingerprint: str,
    effect: Callable[[], Awaitable[tuple[int, Any]]],
) -> Outcome:
    """Run `effect` (which must not commit) and commit it, its response stored under `key`.

    A key already used replays the stored response. Two identical requests racing both pass the
    lookup; the loser's insert of the key row violates its primary key, so its whole effect rolls
    back and it replays the winner's response. Any other integrity error is a 409, not a 500.
    """
    lookup: dict[str, str] | None = None
    if key is not None:
        validate_key(key)
        lookup = {"subject": subject, "key": key, "request_fingerprint": request_fingerprint}
        stored = await find_stored(session, model, **lookup)
        if stored is not None:
            return Outcome(stored.status_code, stored.body, replayed=True)
    try:
        status_code, body = await effect()
        if lookup is not None:
            store_response(session, model, status_code=status_code, body=body, **lookup)
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if lookup is not None:
            stored = await find_stored(session, model, **lookup)
            if stored is not None:
                return Outcome(stored.status_code, stored.body, replayed=True)
        raise Conflict("A concurrent change conflicted with this request; retry it.") from exc
    return Outcome(status_code, body)
