"""The web console: server-rendered pages at `/` on the gateway (jinja2, one small script, no build).

People sign in with an API key; every page reads the services as that key, so the services apply
the same visibility rules as to an API call. `install_console(app)` adds it to the gateway.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from services.gateway.console.pages_auth import router as auth_router
from services.gateway.console.pages_program import router as program_router
from services.gateway.console.pages_report import router as report_router
from services.gateway.console.pages_requests import router as requests_router
from services.gateway.console.upstream import ConsoleProblem
from services.gateway.console.web import (
    STATIC_DIR,
    STATIC_PATH,
    SignInRequired,
    redirect,
    render,
    sign_in_location,
)


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if request.method != "GET":
        # A post from an expired session: back to sign in, then to the home page.
        return redirect(request, "/sign-in", flash=("error", "Your session ended; sign in again."))
    return redirect(request, sign_in_location(exc.next_path))


async def _on_console_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleProblem)
    return render(request, "error.html", viewer=None, problem=exc, status_code=exc.status)


def install_console(app: FastAPI) -> None:
    """Add the console's pages, its static files and its error pages to the gateway app."""
    app.include_router(auth_router)
    app.include_router(requests_router)
    app.include_router(program_router)
    app.include_router(report_router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(ConsoleProblem, _on_console_problem)
