"""The console's signed session cookie and its CSRF tokens.

The session cookie never holds the API key: it holds the key's public id, a fingerprint of the
key's stored digest, a random nonce and an expiry, signed with HMAC-SHA256 under a key derived from
the identity secret. The gateway stays stateless (any replica verifies any cookie); the key row is
read again on every page, so revoking or expiring the key ends its console sessions too.

CSRF: a signed double-submit token. Every browser gets a random `riskdesk_csrf` cookie
(HttpOnly, SameSite=Strict); each form carries `HMAC(secret, nonce)` in a hidden field, and a
POST is refused unless the field matches the cookie. Another site can neither read the cookie nor
compute the token, and SameSite=Strict keeps both cookies off cross-site requests in the first place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

SESSION_COOKIE = "riskdesk_session"
CSRF_COOKIE = "riskdesk_csrf"
FLASH_COOKIE = "riskdesk_flash"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 8 * 3600
_MAX_TOKEN_CHARS = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_fingerprint(key_hash: str) -> str:
    """A short digest of a key's stored hash: a cookie stays bound to that exact key row."""
    return hashlib.sha256(key_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """Who is signed in: the key id, its fingerprint, and when the session ends."""

    key_id: str
    fingerprint: str
    expires_at: float


class ConsoleSigner:
    """Signs and verifies the console's cookies with a key derived from the identity secret."""

    def __init__(self, identity_secret: str) -> None:
        # A derived key: a console cookie can never pass for an identity token, nor the reverse.
        self._key = hmac.new(
            identity_secret.encode(), b"riskdesk-console-v1", hashlib.sha256
        ).digest()

    def _mac(self, purpose: str, message: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{message}".encode(), hashlib.sha256).digest())

    def _seal(self, purpose: str, claims: dict[str, Any]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def _open(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        if not token or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            claims = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        return claims if isinstance(claims, dict) else None

    def session_token(
        self, *, key_id: str, key_hash: str, now: float | None = None, ttl: float = SESSION_SECONDS
    ) -> str:
        """A session cookie value for the key `key_id`."""
        issued = time.time() if now is None else now
        return self._seal(
            "session",
            {"k": key_id, "f": key_fingerprint(key_hash), "exp": int(issued + ttl)},
        )

    def read_session(self, token: str | None, *, now: float | None = None) -> ConsoleSession | None:
        """The session in a cookie value, or None if it is missing, forged or expired."""
        claims = self._open("session", token)
        if claims is None:
            return None
        key_id, fingerprint, expires = claims.get("k"), claims.get("f"), claims.get("exp")
        if not (isinstance(key_id, str) and isinstance(fingerprint, str)):
            return None
        if not isinstance(expires, int) or expires <= (time.time() if now is None else now):
            return None
        return ConsoleSession(key_id=key_id, fingerprint=fingerprint, expires_at=float(expires))

    @staticmethod
    def new_csrf_nonce() -> str:
        """A fresh random value for the CSRF cookie."""
        return secrets.token_urlsafe(24)

    def csrf_token(self, nonce: str) -> str:
        """The form token that goes with the CSRF cookie `nonce`."""
        return self._mac("csrf", nonce)

    def csrf_valid(self, nonce: str | None, token: str | None) -> bool:
        """Whether a posted form token matches the browser's CSRF cookie."""
        if not nonce or not token or len(token) > _MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(token, self.csrf_token(nonce))

    def flash_token(self, level: str, message: str) -> str:
        """A one-shot message for the next page (signed, so a site cannot plant text in it)."""
        return self._seal("flash", {"l": level, "m": message[:500]})

    def read_flash(self, token: str | None) -> tuple[str, str] | None:
        """The level and message of a flash cookie, or None."""
        claims = self._open("flash", token)
        if claims is None:
            return None
        level, message = claims.get("l"), claims.get("m")
        if level not in ("ok", "error") or not isinstance(message, str):
            return None
        return level, message
