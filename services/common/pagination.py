"""Opaque cursor pagination: a page is `{items, next_cursor}`, a cursor is the last row's sort key.

Keyset pagination keeps every page an index range scan, however deep the caller reads; the cursor
is base64url JSON so the sort key can grow fields without breaking old clients' cursors loudly.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from services.common.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one (null at the end)."""

    items: list[ItemT]
    next_cursor: str | None = Field(default=None, description="Opaque; absent on the last page.")


def encode_cursor(key: dict[str, Any]) -> str:
    """An opaque cursor for a sort key."""
    return (
        base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(cursor: str, *, required: tuple[str, ...]) -> dict[str, Any]:
    """The sort key inside a cursor; a cursor that is not ours is a 422 on the `cursor` field."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(key, dict) or any(name not in key for name in required):
        raise _bad_cursor()
    return key


def decode_int_cursor(cursor: str, name: str, *, maximum: int = 2**31 - 1) -> int:
    """The integer `name` inside a cursor, bounded like the int4 column it is compared with
    (PostgreSQL refuses larger parameters); anything else is a 422 on `cursor`."""
    value = decode_cursor(cursor, required=(name,))[name]
    if type(value) is not int or not 0 <= value <= maximum:
        raise _bad_cursor()
    return value


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not one this list returned.",
        errors=[{"field": "query.cursor", "message": "invalid cursor", "code": "cursor_invalid"}],
    )
