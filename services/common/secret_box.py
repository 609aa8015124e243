"""Encrypt small secrets at rest (webhook signing secrets) with Fernet keys from the settings.

`RISKDESK_SECRETS_KEY` holds one or more Fernet keys, comma-separated: the first encrypts, any of
them decrypts, so a key is rotated by putting the new one first and dropping the old one once every
row has been re-encrypted. The gateway (the only process that needs it) refuses to start in
production without it; elsewhere a public development key stands in, like the development identity
secret.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.common.settings import Settings

# Public on purpose: it protects nothing, and only serves where `environment` is not production.
DEV_SECRETS_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"riskdesk-development-only-secrets-key").digest()
).decode()


class SecretUnreadable(Exception):
    """A stored ciphertext that none of the configured keys decrypts (wrong or rotated-out key)."""


class SecretBox:
    """Encrypts and decrypts short strings with the configured Fernet keys."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of `settings.secrets_key` (the development key when unset outside production)."""
        configured = [key.strip() for key in (settings.secrets_key or "").split(",") if key.strip()]
        if not configured:
            if settings.environment == "production":
                raise ValueError(
                    "RISKDESK_SECRETS_KEY must be set in production (a Fernet key: python -c "
                    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
                )
            configured = [DEV_SECRETS_KEY]
        return cls(configured)

    def encrypt(self, plaintext: str) -> str:
        """The ciphertext (a url-safe Fernet token) of `plaintext`, with the first key."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made by `encrypt` with any configured key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as error:
            raise SecretUnreadable(
                "the stored secret cannot be decrypted with RISKDESK_SECRETS_KEY"
            ) from error
