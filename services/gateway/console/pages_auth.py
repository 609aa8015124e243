"""Signing in to the console with an API key, and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.common.errors import DomainError
from services.gateway.console.session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    ConsoleSigner,
)
from services.gateway.console.upstream import ConsoleProblem
from services.gateway.console.web import (
    SECURITY_HEADERS,
    read_form,
    redirect,
    render,
    safe_next,
    set_cookie,
    signer_of,
)
from services.gateway.runtime import get_runtime

router = APIRouter(include_in_schema=False)

NextQuery = Annotated[str | None, Query(max_length=2000)]


@router.get("/sign-in")
async def sign_in_page(request: Request, next: NextQuery = None) -> Response:
    """The sign-in form: paste an API key."""
    return render(request, "sign_in.html", viewer=None, next=safe_next(next), error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the key with the gateway's authenticator and start a session (a signed cookie)."""
    try:
        form = await read_form(request)
    except ConsoleProblem as problem:
        return render(
            request,
            "sign_in.html",
            viewer=None,
            next="/",
            error=problem.detail,
            status_code=problem.status,
        )
    next_path = safe_next(form.get("next"))
    authenticator = get_runtime(request).authenticator
    try:
        key = await authenticator.authenticate(f"Bearer {form.get('api_key', '').strip()}")
        authenticator.check_rate(key)
    except DomainError as exc:
        return render(
            request,
            "sign_in.html",
            viewer=None,
            next=next_path,
            error=str(exc),
            status_code=exc.status,
        )
    signer = signer_of(request)
    response = redirect(request, next_path, flash=("ok", f"Signed in as {key.name} ({key.role})."))
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        signer.session_token(key_id=key.id, key_hash=key.key_hash),
        max_age=SESSION_SECONDS,
    )
    # A new CSRF value per session: one planted before sign-in is worthless after it.
    set_cookie(request, response, CSRF_COOKIE, ConsoleSigner.new_csrf_nonce(), max_age=30 * 86_400)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (the cookie is dropped; the key itself stays valid)."""
    try:
        await read_form(request)
    except ConsoleProblem as problem:
        return Response(problem.detail, status_code=problem.status, headers=SECURITY_HEADERS)
    response = redirect(request, "/sign-in", flash=("ok", "Signed out."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
