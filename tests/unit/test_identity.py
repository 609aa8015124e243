"""The identity token: round trip, forgery, expiry, malformed input."""

from __future__ import annotations

import pytest

from services.common.errors import Unauthorized
from services.common.identity import Identity, Role, sign_identity, verify_identity

SECRET = "s" * 40
ALICE = Identity(subject="key-1", team="buyer-risk", role=Role.PARTNER)


def test_round_trip() -> None:
    token = sign_identity(ALICE, secret=SECRET, ttl_seconds=60)
    assert verify_identity(token, secret=SECRET) == ALICE


def test_wrong_secret_is_refused() -> None:
    token = sign_identity(ALICE, secret=SECRET, ttl_seconds=60)
    with pytest.raises(Unauthorized, match="signature"):
        verify_identity(token, secret="other" * 10)


def test_tampered_claims_are_refused() -> None:
    token = sign_identity(ALICE, secret=SECRET, ttl_seconds=60)
    admin = sign_identity(
        Identity("key-1", "buyer-risk", Role.ADMIN), secret=SECRET, ttl_seconds=60
    )
    forged = ".".join([token.split(".")[0], admin.split(".")[1], token.split(".")[2]])
    with pytest.raises(Unauthorized, match="signature"):
        verify_identity(forged, secret=SECRET)


def test_expired_token_is_refused() -> None:
    token = sign_identity(ALICE, secret=SECRET, ttl_seconds=10, now=1000.0)
    assert verify_identity(token, secret=SECRET, now=1005.0) == ALICE
    with pytest.raises(Unauthorized, match="expired"):
        verify_identity(token, secret=SECRET, now=1011.0)


@pytest.mark.parametrize("token", [None, "", "garbage", "v1.a", "v2.a.b", "v1.!!!.sig"])
def test_malformed_tokens_are_refused(token: str | None) -> None:
    with pytest.raises(Unauthorized):
        verify_identity(token, secret=SECRET)


def test_partner_sees_only_own_team() -> None:
    assert ALICE.can_see_team("buyer-risk")
    assert not ALICE.can_see_team("ml")
    analyst = Identity("key-2", "risk-mining", Role.ANALYST)
    assert analyst.can_see_team("ml")
    assert analyst.is_staff
    assert not ALICE.is_staff
