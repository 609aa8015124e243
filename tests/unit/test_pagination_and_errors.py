"""Cursors round-trip and refuse foreign input; domain errors render as RFC 9457 problems."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidTransition, NotFound, ValidationFailed
from services.common.idempotency import fingerprint, validate_key
from services.common.pagination import decode_cursor, encode_cursor


def test_cursor_round_trip() -> None:
    key = {"id": 42, "created_at": "2026-11-28T10:00:00+00:00"}
    assert decode_cursor(encode_cursor(key), required=("id",)) == key


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90LWpzb24", encode_cursor({"other": 1}), "WzFd"])
def test_foreign_cursor_is_a_field_error(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(cursor, required=("id",))
    assert caught.value.extra["errors"][0]["field"] == "query.cursor"


def test_problem_document_shape() -> None:
    problem = NotFound("Request 7 does not exist.").to_problem("/api/v1/requests/7")
    assert problem == {
        "type": "https://riskdesk.dev/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "Request 7 does not exist.",
        "instance": "/api/v1/requests/7",
    }


def test_invalid_transition_names_allowed_actions() -> None:
    problem = InvalidTransition("no", current="new", allowed=["triage", "reject"]).to_problem()
    assert problem["status"] == 409
    assert problem["allowed_actions"] == ["reject", "triage"]
    assert problem["current_status"] == "new"


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    a = fingerprint("POST", "/r", {"a": 1, "b": [1, 2]})
    assert a == fingerprint("POST", "/r", {"b": [1, 2], "a": 1})
    assert a != fingerprint("POST", "/r", {"a": 2, "b": [1, 2]})
    assert a != fingerprint("POST", "/other", {"a": 1, "b": [1, 2]})


@pytest.mark.parametrize("key", ["", "x" * 201, "tab\tkey"])
def test_bad_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationFailed):
        validate_key(key)
