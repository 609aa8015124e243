"""The console's plumbing: templates, the signed-in viewer, forms with CSRF checks, flash messages.

Pages (the other modules of this package) stay thin: they ask the services through the viewer's
`ServiceClient` and hand the answers to a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common.errors import DomainError
from services.common.identity import STAFF_ROLES, Role
from services.gateway.console.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    FLASH_COOKIE,
    SESSION_COOKIE,
    ConsoleSigner,
    key_fingerprint,
)
from services.gateway.console.upstream import ConsoleProblem, ServiceClient
from services.gateway.keys.models import ApiKey
from services.gateway.keys.service import get_key
from services.gateway.runtime import get_runtime

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static/console"
MAX_FORM_BYTES = 64 * 1024
# Scripts and styles only from the gateway itself; inline styles are allowed for the report's SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: Any) -> str:
    """An ISO instant as `2026-11-28 14:05 UTC` (text passes through)."""
    if not value:
        return "—"
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: Any) -> str:
    """Seconds as `2d 3h 5m` (business time reads the same way)."""
    if seconds is None:
        return "—"
    total = int(abs(float(seconds)))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return ("-" if float(seconds) < 0 else "") + " ".join(parts)


def _label(value: Any) -> str:
    """`waiting_on_requester` as `waiting on requester`."""
    return str(value).replace("_", " ") if value is not None else "—"


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    # Every value is escaped: titles, comments and descriptions are shown as text, never markup.
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=_when, duration=_duration, label=_label)
environment.globals.update(static=STATIC_PATH)


class SignInRequired(Exception):
    """No valid console session: the page sends the browser to sign in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(slots=True)
class Viewer:
    """The signed-in key and the services as it sees them."""

    key: ApiKey
    api: ServiceClient

    @property
    def role(self) -> Role:
        """The key's role."""
        return Role(self.key.role)

    @property
    def is_staff(self) -> bool:
        """Staff see every team; partners only their own."""
        return self.role in STAFF_ROLES

    @property
    def subject(self) -> str:
        """The subject services know this key by (its id)."""
        return self.key.id


def signer_of(request: Request) -> ConsoleSigner:
    """The console signer of this gateway (made once, from the identity secret)."""
    state = request.app.state
    signer: ConsoleSigner | None = getattr(state, "console_signer", None)
    secret = get_runtime(request).settings.identity_secret
    if signer is None:
        signer = ConsoleSigner(secret)
        state.console_signer = signer
    return signer


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def current_viewer(request: Request) -> Viewer:
    """The signed-in key of this browser; SignInRequired when there is none (or it stopped)."""
    runtime = get_runtime(request)
    session = signer_of(request).read_session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired(_here(request))
    try:
        async with runtime.sessionmaker() as db:
            key = await get_key(db, key_id=session.key_id)
    except (SQLAlchemyError, OSError):
        raise ConsoleProblem(503, "The key store is unavailable; retry shortly.") from None
    now = datetime.now(UTC)
    if (
        key is None
        or key_fingerprint(key.key_hash) != session.fingerprint
        or key.revoked_at is not None
        or (key.expires_at is not None and key.expires_at <= now)
    ):
        raise SignInRequired(_here(request))
    try:
        runtime.authenticator.check_rate(key)
    except DomainError as exc:
        raise ConsoleProblem(429, str(exc)) from None
    return Viewer(key=key, api=ServiceClient(runtime, key))


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


def _csrf_nonce(request: Request) -> tuple[str, bool]:
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and 16 <= len(nonce) <= 64:
        return nonce, False
    return ConsoleSigner.new_csrf_nonce(), True


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, Secure when the page came over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None,
    status_code: int = 200,
    **data: Any,
) -> HTMLResponse:
    """A page: the template with the viewer, the CSRF token and any flash message."""
    signer = signer_of(request)
    nonce, fresh = _csrf_nonce(request)
    flash = signer.read_flash(request.cookies.get(FLASH_COOKIE))
    html = environment.get_template(template).render(
        viewer=viewer,
        csrf_field=CSRF_FIELD,
        csrf_token=signer.csrf_token(nonce),
        flash=flash,
        path=request.url.path,
        **data,
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    if fresh:
        set_cookie(request, response, CSRF_COOKIE, nonce, max_age=30 * 86_400)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request: Request, location: str, *, flash: tuple[str, str] | None = None) -> Response:
    """303 to another console page, with an optional one-shot message."""
    response = RedirectResponse(safe_next(location), status_code=303, headers=SECURITY_HEADERS)
    if flash is not None:
        set_cookie(
            request, response, FLASH_COOKIE, signer_of(request).flash_token(*flash), max_age=60
        )
    return response


def safe_next(location: str | None) -> str:
    """A local path to go to (never another site: `//evil` and `https://` are refused)."""
    if not location or not location.startswith("/") or location.startswith("//"):
        return "/"
    parts = urlsplit(location)
    if parts.scheme or parts.netloc or "\\" in location:
        return "/"
    return location


def sign_in_location(next_path: str) -> str:
    """The sign-in page, coming back to `next_path` afterwards."""
    return "/sign-in" + ("" if next_path == "/" else f"?next={quote(next_path, safe='/')}")


async def read_form(request: Request) -> dict[str, str]:
    """A posted urlencoded form, after the CSRF and origin checks (ConsoleProblem 403 if not)."""
    origin = request.headers.get("origin")
    # Host against host only: behind a TLS-terminating proxy the scheme seen here may differ.
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        raise ConsoleProblem(403, "The form was posted from another site.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleProblem(413, f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise ConsoleProblem(400, "The form could not be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value.replace("\x00", ""))
    if not signer_of(request).csrf_valid(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        raise ConsoleProblem(
            403, "The form expired or did not come from this console; reload the page and retry."
        )
    return form


def problem_flash(problem: ConsoleProblem) -> tuple[str, str]:
    """A service's refusal as a one-line message."""
    detail = problem.detail
    if problem.errors:
        detail += " (" + "; ".join(problem.errors[:5]) + ")"
    return ("error", f"{problem.title}: {detail}")
