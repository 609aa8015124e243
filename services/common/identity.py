"""The signed identity token the gateway (or the worker) attaches to every call to a service.

Services trust no caller directly: they accept a request only with a valid, unexpired token in
`X-Riskdesk-Identity`, an HMAC-SHA256 over the caller's subject, team and role. The gateway mints
one per forwarded request from the API key it verified; the worker mints its own as `system`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from services.common.errors import Unauthorized

IDENTITY_HEADER = "X-Riskdesk-Identity"
_VERSION = "v1"


class Role(StrEnum):
    """Caller roles (DESIGN.md); `system` is the worker acting on behalf of workflows."""

    PARTNER = "partner"
    ANALYST = "analyst"
    PROGRAM_MANAGER = "program_manager"
    APPROVER = "approver"
    ADMIN = "admin"
    SYSTEM = "system"


STAFF_ROLES = frozenset({Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a key's subject, its team and its role."""

    subject: str
    team: str
    role: Role

    @property
    def is_staff(self) -> bool:
        """Staff see every team's data; partners only their own team's."""
        return self.role in STAFF_ROLES

    def can_see_team(self, team: str) -> bool:
        """Whether this caller may see data that belongs to `team`."""
        return self.role is not Role.PARTNER or team == self.team


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, message: str) -> str:
    return _b64(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest())


def sign_identity(
    identity: Identity, *, secret: str, ttl_seconds: int, now: float | None = None
) -> str:
    """A token carrying `identity` that expires after `ttl_seconds`."""
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        **asdict(identity),
        "role": str(identity.role),
        "exp": int(issued + ttl_seconds),
    }
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    message = f"{_VERSION}.{body}"
    return f"{message}.{_signature(secret, message)}"


def verify_identity(token: str | None, *, secret: str, now: float | None = None) -> Identity:
    """The identity inside a valid token; raises Unauthorized for a missing, forged or expired one."""
    if not token:
        raise Unauthorized(
            "This service accepts only calls through the gateway (identity token missing)."
        )
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise Unauthorized("The identity token is malformed.")
    message = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(secret, message), parts[2]):
        raise Unauthorized("The identity token's signature is invalid.")
    try:
        claims = json.loads(_unb64(parts[1]))
        expires = int(claims["exp"])
        identity = Identity(
            subject=str(claims["subject"]), team=str(claims["team"]), role=Role(claims["role"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthorized("The identity token's claims are invalid.") from exc
    if expires < (time.time() if now is None else now):
        raise Unauthorized("The identity token has expired.")
    return identity
