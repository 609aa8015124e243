"""Webhook signing secrets at rest: made, encrypted, decrypted for signing, legacy rows encrypted.

A secret is stored only as a Fernet token under RISKDESK_SECRETS_KEY (`secret_encrypted`) and is
decrypted in one place: when the worker fetches a delivery to sign it. Rows made before revision
gateway_0006 hold the secret in clear in `secret`; a migration cannot encrypt them because the key
is not part of the schema history, so the gateway encrypts them when it starts (with the key it
runs with), and until then a clear row still signs.
"""

from __future__ import annotations

import secrets

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.errors import Conflict
from services.common.secret_box import SecretBox, SecretUnreadable
from services.common.settings import Settings
from services.gateway.notifications.models import Subscription

SECRET_PREFIX = "whsec_"  # noqa: S105  (a marker, not a secret)
SECRET_BYTES = 32

log = structlog.get_logger(__name__)


def new_secret() -> str:
    """A fresh signing secret (`whsec_` and 32 random bytes, url-safe)."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def seal(subscription: Subscription, secret: str, *, settings: Settings) -> None:
    """Store `secret` on the row encrypted, and nothing of it in clear."""
    subscription.secret_encrypted = SecretBox.from_settings(settings).encrypt(secret)
    subscription.secret = ""


def signing_secret(subscription: Subscription, *, settings: Settings) -> str:
    """The secret to sign this subscription's deliveries with; Conflict if it cannot be read."""
    if subscription.secret_encrypted is None:
        return subscription.secret  # a legacy row not encrypted yet
    try:
        return SecretBox.from_settings(settings).decrypt(subscription.secret_encrypted)
    except SecretUnreadable:
        raise Conflict(
            f"Subscription {subscription.id}'s signing secret cannot be decrypted with "
            "RISKDESK_SECRETS_KEY: the key was changed without keeping the old one."
        ) from None


async def encrypt_legacy_secrets(session: AsyncSession, *, settings: Settings) -> int:
    """Encrypt the secrets still stored in clear; returns how many rows changed (caller commits)."""
    rows = (
        await session.execute(
            select(Subscription).where(
                Subscription.secret_encrypted.is_(None), Subscription.secret != ""
            )
        )
    ).scalars()
    count = 0
    for row in rows:
        # Two replicas starting together may both do this row: either token decrypts the same.
        seal(row, row.secret, settings=settings)
        count += 1
    await session.flush()
    return count


async def encrypt_legacy_secrets_on_start(
    sessionmaker: async_sessionmaker[AsyncSession], *, settings: Settings
) -> None:
    """Encrypt clear secrets at gateway start-up; a database not migrated yet is left for later."""
    try:
        async with sessionmaker() as session:
            count = await encrypt_legacy_secrets(session, settings=settings)
            await session.commit()
    except SQLAlchemyError as error:
        # Not fatal: clear rows still sign, and the next start tries again.
        log.warning("legacy_secrets_not_encrypted", error=type(error).__name__)
        return
    if count:
        log.info("legacy_secrets_encrypted", subscriptions=count)
