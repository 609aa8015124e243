"""Use cases of API keys: create, authenticate, revoke, list.

A key is `rk_<id>_<secret>`: the 8-character id is public (listed, used in URLs and logs) and finds
the row; the secret is 32 random bytes shown once at creation and stored only as a sha256 digest.
Functions take the caller's session and flush; the caller commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.common.identity import Role
from services.common.pagination import decode_cursor, encode_cursor
from services.gateway.keys.models import KEY_ID_LENGTH, ApiKey

KEY_PREFIX = "rk_"
# Lowercase letters and digits only: the id never contains the `_` separator and reads well in URLs.
ID_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")
_MIN_SECRET_CHARS, _MAX_SECRET_CHARS = 32, 128
_SECRET_START = len(KEY_PREFIX) + KEY_ID_LENGTH + 1
# `last_used_at` is a hint for humans; stamping it at most once a minute avoids a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(plaintext: str) -> str:
    """The stored digest of a key (sha256 hex of the whole key)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse_key(plaintext: str | None) -> str:
    """The id inside a well-formed key; raises Unauthorized for a missing or malformed one."""
    if not plaintext:
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
    key_id = plaintext[len(KEY_PREFIX) : len(KEY_PREFIX) + KEY_ID_LENGTH]
    secret = plaintext[_SECRET_START:]
    if (
        not plaintext.startswith(KEY_PREFIX)
        or len(key_id) != KEY_ID_LENGTH
        or plaintext[_SECRET_START - 1 : _SECRET_START] != "_"
        or not all(c in ID_ALPHABET for c in key_id)
        or not _MIN_SECRET_CHARS <= len(secret) <= _MAX_SECRET_CHARS
        or not all(c in _URLSAFE for c in secret)
    ):
        raise Unauthorized("The API key is malformed: expected `rk_<id>_<secret>`.")
    return key_id


def verify_key(key: ApiKey | None, plaintext: str, *, now: datetime) -> ApiKey:
    """`key` if `plaintext` is its secret and it is live, else Unauthorized."""
    # The digest is compared in constant time so response timing reveals nothing about it.
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(plaintext)):
        raise Unauthorized("The API key is not valid.")
    # Only the holder of the full key gets to learn why it stopped working.
    if key.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized(f"The API key expired at {key.expires_at.isoformat()}.")
    return key


def needs_last_used_stamp(key: ApiKey, now: datetime) -> bool:
    """Whether `last_used_at` is stale enough to be written again."""
    return key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION


async def create_key(
    session: AsyncSession,
    *,
    team: str,
    role: Role,
    name: str,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> tuple[ApiKey, str]:
    """Add a key; returns the row and the plaintext key (shown once, never stored)."""
    if role is Role.SYSTEM:
        raise ValidationFailed(
            "The system role belongs to the worker and cannot be given to a key.",
            errors=[{"field": "body.role", "message": "system is not allowed", "code": "role"}],
        )
    now = utcnow()
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise ValidationFailed(
            "expires_at must be a future instant with a time zone.",
            errors=[
                {"field": "body.expires_at", "message": "must be in the future", "code": "expiry"}
            ],
        )
    key_id = await _unused_id(session)
    plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(
        id=key_id,
        key_hash=hash_key(plaintext),
        name=name,
        team=team,
        role=role,
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, plaintext


async def _unused_id(session: AsyncSession) -> str:
    # 36^8 ids make a clash very unlikely; checking first turns "unlikely" into "never".
    while True:
        key_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
        if await session.get(ApiKey, key_id) is None:
            return key_id


async def authenticate(session: AsyncSession, plaintext: str | None) -> ApiKey:
    """The key matching `plaintext`; Unauthorized if missing, malformed, unknown, revoked, expired.

    Stamps `last_used_at` (at most once a minute) in the session; the caller commits.
    """
    key_id = parse_key(plaintext)
    assert plaintext is not None
    now = utcnow()
    key = verify_key(await session.get(ApiKey, key_id), plaintext, now=now)
    if needs_last_used_stamp(key, now):
        key.last_used_at = now
        await session.flush()
    return key


async def get_key(session: AsyncSession, *, key_id: str) -> ApiKey | None:
    """The key with this id, if any."""
    return await session.get(ApiKey, key_id)


async def get_key_or_raise(session: AsyncSession, *, key_id: str) -> ApiKey:
    """The key with this id; raises NotFound."""
    key = await get_key(session, key_id=key_id)
    if key is None:
        raise NotFound(f"There is no API key {key_id!r}.")
    return key


async def revoke_key(session: AsyncSession, *, key_id: str) -> ApiKey:
    """Revoke a key for good; revoking it again changes nothing (idempotent).

    Refuses (Conflict) to revoke the last active admin key: nobody could make keys any more
    except by hand on the database.
    """
    key = await get_key_or_raise(session, key_id=key_id)
    if key.revoked_at is not None:
        return key
    now = utcnow()
    if key.role is not Role.ADMIN or not is_active(key, now=now):
        key.revoked_at = now
        await session.flush()
        return key
    await _lock_active_admins(session, now=now)
    # One statement checks "another live admin exists" and revokes: atomic on SQLite (one
    # writer), and on PostgreSQL it runs after the lock above, on a fresh snapshot.
    other = aliased(ApiKey)
    another_admin = (
        select(other.id).where(other.id != key.id, *_active_admin(other, now=now)).exists()
    )
    revoked = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None), another_admin)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(key)
    if cast("CursorResult[Any]", revoked).rowcount == 0 and key.revoked_at is None:
        raise Conflict(
            f"API key {key.id!r} is the last active admin key; create another admin key "
            "before revoking it."
        )
    return key


def is_active(key: ApiKey, *, now: datetime) -> bool:
    """Whether the key authenticates at `now` (not revoked, not expired)."""
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def _active_admin(table: type[ApiKey], *, now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        table.role == Role.ADMIN,
        table.revoked_at.is_(None),
        or_(table.expires_at.is_(None), table.expires_at > now),
    )


async def _lock_active_admins(session: AsyncSession, *, now: datetime) -> None:
    # FOR UPDATE (PostgreSQL; SQLite ignores it) on every active admin key, in id order: two
    # admins revoking each other's key at once serialise here, so the second's check sees the
    # first's revocation instead of both succeeding and leaving no admin.
    await session.execute(
        select(ApiKey.id)
        .where(*_active_admin(ApiKey, now=now))
        .order_by(ApiKey.id)
        .with_for_update()
    )


async def list_keys(
    session: AsyncSession, *, cursor: str | None, limit: int, team: str | None = None
) -> tuple[list[ApiKey], str | None]:
    """One page of keys, newest first (optionally one team's), and the cursor of the next page."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit + 1)
    if team is not None:
        query = query.where(ApiKey.team == team)
    if cursor is not None:
        after_created, after_id = _decode(cursor)
        query = query.where(
            or_(
                ApiKey.created_at < after_created,
                and_(ApiKey.created_at == after_created, ApiKey.id < after_id),
            )
        )
    rows = list((await session.execute(query)).scalars())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor({"c": last.created_at.isoformat(), "i": last.id})


def _decode(cursor: str) -> tuple[datetime, str]:
    key: dict[str, Any] = decode_cursor(cursor, required=("c", "i"))
    try:
        created = datetime.fromisoformat(str(key["c"]))
    except ValueError:
        created = None
    if created is None or created.tzinfo is None or not isinstance(key["i"], str):
        raise ValidationFailed(
            "The cursor is not one this list returned.",
            errors=[
                {"field": "query.cursor", "message": "invalid cursor", "code": "cursor_invalid"}
            ],
        )
    return created, key["i"]
