"""The `api_key` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Enum, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, utcnow
from services.common.identity import Role
from services.gateway.models import Base

KEY_ID_LENGTH = 8


class ApiKey(Base):
    """One API key: who it belongs to, what it may do, and only a hash of its secret."""

    __tablename__ = "api_key"

    # The public 8-character id inside the key (`rk_<id>_<secret>`): the lookup column.
    id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    # sha256 hex of the whole key; a fast hash is enough because the secret has 256 random bits
    # (nothing to brute-force, unlike a password), and it keeps authentication cheap per request.
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    team: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            length=32,
            values_callable=lambda roles: [r.value for r in roles],
        )
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Lists are newest first, optionally for one team: each is one index range scan.
    __table_args__ = (
        Index("ix_api_key_created", "created_at", "id"),
        Index("ix_api_key_team_created", "team", "created_at", "id"),
    )
