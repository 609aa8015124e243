"""The partner client's pure parts: problem+json -> exceptions, import rows, idempotency keys."""

from __future__ import annotations

import httpx
import pytest

from riskdesk.client import (
    AuthenticationError,
    ConflictError,
    InvalidTransitionError,
    RateLimitedError,
    RiskdeskError,
    ServerError,
    ValidationError,
    error_from_response,
)
from riskdesk.client_cli import (
    ImportFileError,
    _progress,
    import_idempotency_key,
    read_import_rows,
)

PROBLEM = {"content-type": "application/problem+json"}


def problem(status: int, **fields: object) -> httpx.Response:
    body = {"type": "https://riskdesk.dev/problems/x", "title": "T", "status": status, **fields}
    return httpx.Response(status, json=body, headers=PROBLEM)


def test_each_status_maps_to_its_exception_with_the_problem_fields() -> None:
    error = error_from_response(
        problem(
            422,
            detail="The request has invalid fields.",
            errors=[{"field": "body.title", "message": "too short", "code": "x"}],
        )
    )
    assert isinstance(error, ValidationError)
    assert error.status == 422
    assert error.detail == "The request has invalid fields."
    assert error.errors[0]["field"] == "body.title"
    assert error.message.splitlines() == [
        "422 T: The request has invalid fields.",
        "  - title: too short",
    ]
    assert isinstance(error_from_response(problem(401, detail="bad key")), AuthenticationError)
    assert isinstance(error_from_response(problem(409, detail="raced")), ConflictError)
    assert not isinstance(error_from_response(problem(409, detail="raced")), InvalidTransitionError)
    limited = error_from_response(problem(429, detail="slow down", retry_after=3))
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 3.0
    assert "retry after 3 s" in limited.message


def test_an_invalid_transition_lists_the_allowed_actions() -> None:
    response = httpx.Response(
        409,
        json={
            "type": "https://riskdesk.dev/problems/invalid-transition",
            "title": "Transition not allowed",
            "status": 409,
            "detail": "A request in status new cannot close; allowed: none.",
            "allowed_actions": [],
        },
    )
    error = error_from_response(response)
    assert isinstance(error, InvalidTransitionError)
    assert error.allowed_actions == []
    assert "allowed actions now: none" in error.message


def test_a_non_problem_error_still_has_a_clear_message() -> None:
    error = error_from_response(
        httpx.Response(502, text="<html>bad gateway</html>", headers={"x-request-id": "abc"})
    )
    assert isinstance(error, ServerError)
    assert error.message.startswith("502 Bad Gateway: <html>bad gateway</html>")
    assert "request id: abc" in error.message
    teapot = error_from_response(httpx.Response(418))
    assert type(teapot) is RiskdeskError


def test_import_rows_become_request_bodies() -> None:
    content = (
        "\ufefftitle,request_type,tags,external_refs,impact_accounts_affected,impact_currency\n"
        "Ring, mo_investigation ,a; b;,JIRA-1,12,USD\n"
        ",,,,,\n"
        "Other,other,,,,\n"
    ).encode()
    rows = read_import_rows(content)
    assert [row.number for row in rows] == [2, 4]
    assert rows[0].fields == {
        "request_type": "mo_investigation",
        "title": "Ring",
        "tags": ["a", "b"],
        "external_refs": ["JIRA-1"],
        "impact": {"accounts_affected": "12", "currency": "USD"},
    }
    assert rows[1].fields == {"request_type": "other", "title": "Other"}


@pytest.mark.parametrize(("content", "message"), [(b"", "no header"), (b"title,oops\n", "oops")])
def test_an_unusable_import_file_is_refused_whole(content: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        read_import_rows(content)


def test_idempotency_keys_are_per_file_content_and_row() -> None:
    assert import_idempotency_key("ab" * 32, 7) == f"import-{'ab' * 20}-7"
    assert import_idempotency_key("cd" * 32, 7) != import_idempotency_key("ab" * 32, 7)


def test_progress_bar() -> None:
    assert _progress(0, 4, 0) == "\r[" + "." * 30 + "] 0/4 rows, 0 failed"
    assert _progress(2, 4, 1) == "\r[" + "#" * 15 + "." * 15 + "] 2/4 rows, 1 failed"
    assert _progress(0, 0, 0).startswith("\r[" + "#" * 30)
