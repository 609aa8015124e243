"""Who is calling: API key authentication, the per-key rate limit, roles, and the identity token.

`KeyAuthenticator` runs on every forwarded request, so it avoids the database on the common path:
a key's row is kept for `api_key_cache_seconds` (the secret, revocation and expiry are still
checked against it on every call). A revocation made on this replica takes effect at once; one
made on another replica within that many seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import utcnow
from services.common.errors import (
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
)
from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity, verify_identity
from services.common.settings import Settings
from services.gateway.keys.models import ApiKey
from services.gateway.keys.service import get_key, needs_last_used_stamp, parse_key, verify_key
from services.gateway.runtime import get_runtime

log = structlog.get_logger(__name__)

SECURITY_SCHEME_NAME = "ApiKey"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "rk_<id>_<secret>",
    "description": "An API key made by an admin (`POST /api/v1/keys`), sent as a bearer token.",
}
_MAX_CACHED_KEYS = 10_000

bearer_scheme = HTTPBearer(
    scheme_name=SECURITY_SCHEME_NAME,
    bearerFormat=SECURITY_SCHEME["bearerFormat"],
    description=SECURITY_SCHEME["description"],
    auto_error=False,
)


def parse_rate_limit(text: str) -> RateLimitItem:
    """The rate limit of a `limits` string such as `600/minute`; a bad one fails at startup."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(
            f"RISKDESK_RATE_LIMIT {text!r} is not a rate limit (e.g. 600/minute)"
        ) from exc


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass(slots=True)
class _Cached:
    key: ApiKey
    loaded_at: float


class ThrottledMemoryStorage(MemoryStorage):
    """`limits`' MemoryStorage, sweeping expired entries once a second instead of every 10 ms.

    The stock storage starts a new timer thread for its sweep on nearly every hit under load
    (about 0.1 ms a call, measured); the moving window needs the sweep only to bound memory.
    It overrides a private hook of the pinned `limits` version; a unit test guards the name.
    """

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        self._next_sweep = 0.0
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            MemoryStorage._MemoryStorage__schedule_expiry(self)  # type: ignore[attr-defined]


class KeyAuthenticator:
    """Authenticates keys with a short cache, rate-limits them, and mints their identity tokens."""

    def __init__(
        self, *, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cache_seconds = settings.api_key_cache_seconds
        self._cached: dict[str, _Cached] = {}
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}
        # Per replica and in memory: with N replicas a key gets up to N times the limit, the
        # price of not paying a network round trip per request for a shared counter.
        self._limit = parse_rate_limit(settings.rate_limit)
        self._limiter = MovingWindowRateLimiter(ThrottledMemoryStorage())
        self._secret = settings.identity_secret
        self._token_ttl = settings.identity_ttl_seconds
        self._tokens: dict[str, tuple[str, float]] = {}

    async def authenticate(self, authorization: str | None) -> ApiKey:
        """The key of an `Authorization` header value, else Unauthorized (503 if the DB is down)."""
        plaintext = bearer_token(authorization)
        key_id = parse_key(plaintext)
        assert plaintext is not None
        now = utcnow()
        # The secret, revocation and expiry are checked on every call, cached row or not.
        key = verify_key(await self._row(key_id), plaintext, now=now)
        if needs_last_used_stamp(key, now):
            await self._stamp_last_used(key)
        return key

    async def _row(self, key_id: str) -> ApiKey | None:
        cached = self._cached.get(key_id)
        if cached is not None and time.monotonic() - cached.loaded_at < self._cache_seconds:
            return cached.key
        # One read per key however many calls miss the cache at once (they all wait for it).
        loading = self._loading.get(key_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key_id))
            self._loading[key_id] = loading
            loading.add_done_callback(lambda done: self._loaded(key_id, done))
        # Shielded: a caller that goes away must not cancel the read the others wait for.
        return await asyncio.shield(loading)

    def _loaded(self, key_id: str, done: asyncio.Future[ApiKey | None]) -> None:
        self._loading.pop(key_id, None)
        if not done.cancelled():
            done.exception()  # retrieved here so an unawaited failure is not reported as lost

    async def _load(self, key_id: str) -> ApiKey | None:
        try:
            async with self._sessionmaker() as session:
                key = await get_key(session, key_id=key_id)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("key_store_unavailable", error=repr(exc))
            raise ServiceUnavailable("The key store is unavailable; retry shortly.") from exc
        # Unknown ids are not cached, so a key made on another replica works at once.
        if key is not None and self._cache_seconds > 0:
            if len(self._cached) >= _MAX_CACHED_KEYS:
                self._cached.clear()
            self._cached[key_id] = _Cached(key=key, loaded_at=time.monotonic())
        return key

    async def _stamp_last_used(self, key: ApiKey) -> None:
        now = utcnow()
        # Set before the write so concurrent calls on the same key do not all write too.
        key.last_used_at = now
        try:
            async with self._sessionmaker() as session:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            # A usage hint is not worth failing the call for.
            log.warning("last_used_stamp_failed", key_id=key.id, error=repr(exc))

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after it was revoked here)."""
        self._cached.pop(key_id, None)
        self._tokens.pop(key_id, None)

    def check_rate(self, key: ApiKey) -> None:
        """Count one call of `key`; raises TooManyRequests (with Retry-After) past the limit."""
        if self._limiter.hit(self._limit, key.id):
            return
        reset_at, _remaining = self._limiter.get_window_stats(self._limit, key.id)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(
            f"This key exceeded its rate limit of {self._limit}; retry in {retry_after} s.",
            retry_after=retry_after,
        )

    def identity_token(self, key: ApiKey) -> str:
        """A signed identity token for `key`, reused for half its lifetime (not signed per call)."""
        now = time.time()
        cached = self._tokens.get(key.id)
        if cached is not None and cached[1] > now:
            return cached[0]
        identity = Identity(subject=key.id, team=key.team, role=key.role)
        token = sign_identity(identity, secret=self._secret, ttl_seconds=self._token_ttl, now=now)
        self._tokens[key.id] = (token, now + self._token_ttl / 2)
        return token


async def current_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> ApiKey:
    """The authenticated key of this request (rate limited like any forwarded call)."""
    authenticator = get_runtime(request).authenticator
    header = f"Bearer {credentials.credentials}" if credentials is not None else None
    key = await authenticator.authenticate(header)
    authenticator.check_rate(key)
    structlog.contextvars.bind_contextvars(key_id=key.id, team=key.team)
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def require_role(*roles: Role) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    """A dependency that lets through only keys with one of `roles` (others get 403)."""
    allowed = " or ".join(str(role) for role in roles)

    async def dependency(key: CurrentKey) -> ApiKey:
        if key.role not in roles:
            raise Forbidden(f"This needs the {allowed} role; this key has the {key.role} role.")
        return key

    return dependency


AdminKey = Annotated[ApiKey, Depends(require_role(Role.ADMIN))]


async def system_caller(request: Request) -> Identity:
    """The worker's verified identity, for the gateway's `/internal` routes.

    Workflows' activities call the gateway like any service does, with a signed identity token
    (never an API key); only the `system` role may use these routes.
    """
    settings = get_runtime(request).settings
    identity = verify_identity(
        request.headers.get(IDENTITY_HEADER), secret=settings.identity_secret
    )
    if identity.role is not Role.SYSTEM:
        raise Forbidden("Internal routes are for the riskdesk worker only.")
    structlog.contextvars.bind_contextvars(caller=identity.subject)
    return identity


SystemCaller = Annotated[Identity, Depends(system_caller)]
