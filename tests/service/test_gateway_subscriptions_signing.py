"""Webhook signatures (pure): sign/verify round trip, tampering, the replay window, rotation."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.common.webhook_signature import DEFAULT_TOLERANCE_SECONDS, sign, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"request-1:resolution:breached:0","type":"sla.breached"}'
T = 1_800_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    header = sign(SECRET, BODY, T)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert verify(SECRET, header, BODY, now=T)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_other", BODY, T),  # wrong secret
        (SECRET, BODY + b" ", T),  # body changed
        (SECRET, BODY, T + DEFAULT_TOLERANCE_SECONDS + 1),  # replayed too late
        (SECRET, BODY, T - DEFAULT_TOLERANCE_SECONDS - 1),  # from the future
    ],
)
def test_verify_refuses_tampering_and_stale_signatures(secret: str, body: bytes, now: int) -> None:
    assert not verify(secret, sign(SECRET, BODY, T), body, now=now)


def test_replay_window_edges_and_custom_tolerance() -> None:
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, header, BODY, now=T + DEFAULT_TOLERANCE_SECONDS)
    assert not verify(SECRET, header, BODY, tolerance_seconds=10, now=T + 11)
    assert verify(SECRET, header, BODY, tolerance_seconds=10, now=T + 10)


def test_changed_timestamp_breaks_the_signature() -> None:
    mac = sign(SECRET, BODY, T).split("v1=")[1]
    assert not verify(SECRET, f"t={T + 1},v1={mac}", BODY, now=T)


def test_any_of_several_v1_entries_may_match_during_secret_rotation() -> None:
    old = sign("whsec_old", BODY, T).split("v1=")[1]
    new = sign(SECRET, BODY, T).split("v1=")[1]
    assert verify(SECRET, f"t={T},v1={old},v1={new}", BODY, now=T)
    assert not verify(SECRET, f"t={T},v1={old}", BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", f"t={T}", "v1=00", f"t={T},v1", f"t={T},v0=00"],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    assert not verify(SECRET, header, BODY, now=T)
