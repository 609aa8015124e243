"""Request and response bodies of the key endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.common.db import utcnow
from services.common.pagination import Page
from services.gateway.keys.models import ApiKey

# Every Role except `system`, which only the worker holds (tests check the two stay in step).
KeyRole = Literal["partner", "analyst", "program_manager", "approver", "admin"]

KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
TeamName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]


class KeyCreate(BaseModel):
    """A new key: who it is for and what it may do."""

    model_config = ConfigDict(extra="forbid")

    name: KeyName = Field(description="What the key is for, e.g. `buyer-risk nightly sync`.")
    team: TeamName = Field(description="The team the key acts for; partners see only this team.")
    role: KeyRole
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working; never if absent."
    )

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= utcnow():
            raise ValueError("must be in the future")
        return value


class KeyRead(BaseModel):
    """A key's metadata (never its secret)."""

    id: str = Field(description="The public id inside the key (`rk_<id>_...`).")
    name: str
    team: str
    role: KeyRole
    created_at: datetime
    created_by: str | None = Field(description="Id of the admin key that created it.")
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")

    @classmethod
    def from_key(cls, key: ApiKey) -> KeyRead:
        """The public view of a key row."""
        return cls(
            id=key.id,
            name=key.name,
            team=key.team,
            role=key.role.value,
            created_at=key.created_at,
            created_by=key.created_by,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class KeyCreated(KeyRead):
    """A new key's metadata and its plaintext, which is shown this once and never again."""

    key: str = Field(description="The API key to send as `Authorization: Bearer <key>`.")


class MeRead(BaseModel):
    """The key making this call."""

    id: str
    name: str
    team: str
    role: KeyRole
    expires_at: datetime | None


KeyPage = Page[KeyRead]
