"""Webhook signatures: `X-Riskdesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The MAC covers `"<t>.<body>"` (the timestamp, a dot, then the exact body bytes) keyed with the
subscription's secret, so a receiver can tell the body came from riskdesk and was not altered.

Replay window: the timestamp is signed too, so a receiver rejects a captured request replayed
later than `tolerance_seconds` (default 300 s, five minutes) after it was signed, or signed that
far in the future (clock skew). Inside the window a replay is possible: receivers that must see
each event once also de-duplicate on the `Idempotency-Key` header (the event id), which stays the
same across every retry of one delivery. Each retry is signed afresh, so a delivery that arrives
after hours of retries still carries a current timestamp.

Pure functions, no I/O and no domain: the worker (workflows/notification_delivery.py) signs,
receivers (and tests) verify.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Riskdesk-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _mac(secret: str, body: bytes, t: int) -> str:
    message = str(t).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int) -> str:
    """The `X-Riskdesk-Signature` header value of `body` signed at unix time `t`."""
    return f"t={t},{SCHEME}={_mac(secret, body, t)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Whether `header` is a valid signature of `body` made within `tolerance_seconds` of `now`.

    Several `v1=` entries are accepted (any one matching suffices), so a sender can sign with an
    old and a new secret while a secret is rotated. Comparison is constant-time.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _mac(secret, body, timestamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
