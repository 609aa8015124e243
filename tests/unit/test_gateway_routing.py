"""The gateway's pure parts: the routing table, key parsing, bearer headers, role list."""

from __future__ import annotations

import typing

import pytest

from services.common.errors import Unauthorized
from services.common.identity import Role
from services.gateway.auth import bearer_token, parse_rate_limit
from services.gateway.keys.schemas import KeyRole
from services.gateway.keys.service import hash_key, parse_key
from services.gateway.proxy import _url_text
from services.gateway.routing import ROUTES, UPSTREAM_SERVICES, resolve


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/requests", "intake"),
        ("/api/v1/requests/", "intake"),
        ("/api/v1/requests/42/comments", "intake"),
        ("/api/v1/initiatives/roadmap", "intake"),
        ("/api/v1/escalations", "escalation"),
        ("/api/v1/escalations/7/action-items", "escalation"),
        ("/api/v1/action-items/3", "escalation"),
        ("/api/v1/gaps", "escalation"),
        ("/api/v1/sops/1/versions/2/submit", "sop"),
        ("/api/v1/rollouts/9/acknowledgements", "sop"),
        ("/api/v1/parity", "sop"),
        ("/api/v1/orgs", "sop"),
        ("/api/v1/rules/5/deprecation", "sop"),
        ("/api/v1/mos/12", "sop"),
    ],
)
def test_paths_route_to_their_service(path: str, service: str) -> None:
    assert resolve(path) == service


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/requestsX",
        "/api/v1/requests-old/1",
        "/api/v1/Requests",
        "/api/v1/",
        "/api/v1",
        "/api/v1//requests",
        "/api/v2/requests",
        "/requests",
        "/api/v1/keys",
        "/api/v1/me",
        "",
    ],
)
def test_other_paths_route_nowhere(path: str) -> None:
    assert resolve(path) is None


def test_every_route_targets_an_upstream_service() -> None:
    assert set(ROUTES.values()) == set(UPSTREAM_SERVICES)


def test_key_roles_are_every_role_but_system() -> None:
    assert set(typing.get_args(KeyRole)) == {str(role) for role in Role} - {"system"}


GOOD = "rk_abcd1234_" + "Ab-_" * 11


def test_well_formed_key_parses_to_its_id() -> None:
    assert parse_key(GOOD) == "abcd1234"
    assert len(hash_key(GOOD)) == 64


@pytest.mark.parametrize(
    "plaintext",
    [
        None,
        "",
        "rk_",
        "rk_abcd1234",
        "rk_abcd1234_",
        "rk_abcd1234_" + "a" * 31,
        "rk_abcd1234_" + "a" * 129,
        "rk_abcd1234-" + "a" * 40,
        "rk_ABCD1234_" + "a" * 40,
        "rk_abc_1234_" + "a" * 40,
        "xx_abcd1234_" + "a" * 40,
        "rk_abcd1234_" + "a" * 39 + "=",
        "rk_abcd1234_" + "a" * 39 + "é",
        " " + GOOD,
    ],
)
def test_malformed_keys_are_unauthorized(plaintext: str | None) -> None:
    with pytest.raises(Unauthorized):
        parse_key(plaintext)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_rate_limit_strings() -> None:
    assert parse_rate_limit("600/minute").amount == 600
    with pytest.raises(ValueError, match="RISKDESK_RATE_LIMIT"):
        parse_rate_limit("lots")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"/api/v1/requests/1", "/api/v1/requests/1"),
        (b"a=%zz&b=%2F+c&d=", "a=%zz&b=%2F+c&d="),
        (b"name=\xc3\xbc", "name=%C3%BC"),
        (b"x=\xff y", "x=%FF%20y"),
    ],
)
def test_forwarded_urls_keep_their_bytes(raw: bytes, text: str) -> None:
    assert _url_text(raw) == text


def test_throttled_storage_overrides_the_hook_of_the_pinned_limits() -> None:
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter

    from services.gateway.auth import ThrottledMemoryStorage

    # The override works through name mangling; a `limits` upgrade that renames it fails here.
    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))
    storage = ThrottledMemoryStorage()
    limiter = MovingWindowRateLimiter(storage)
    item = parse_rate_limit("3/minute")
    assert [limiter.hit(item, "k") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(item, "other")
    # At most one sweep is scheduled per second however many hits arrive.
    assert storage._next_sweep > 0
