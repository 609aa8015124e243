"""The web console on each backend: the real gateway and the real intake (in-process), real keys.

Sign-in and sessions, CSRF refusals, partner isolation enforced by intake, escaping of hostile
text, actions and readable errors. The browser tests (tests/browser) drive the same pages in
Chromium on a whole stack.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.console.session import CSRF_COOKIE, SESSION_COOKIE
from services.gateway.keys.service import create_key, revoke_key
from services.gateway.runtime import GatewayRuntime
from tests.service.k1_stack import fake_services
from tests.service.test_intake_sla import running_intake

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HOSTILE = "<script>alert('owned')</script> & <b>bold</b>"


@dataclass
class Console:
    """The gateway app serving the console, and a way to make keys."""

    app: Any
    runtime: GatewayRuntime

    async def key(self, *, team: str, role: Role = Role.PARTNER) -> str:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name=f"{role} key")
            await session.commit()
        return plaintext

    def browser(self) -> httpx.AsyncClient:
        """A cookie-keeping client, like a browser (redirects are checked by hand)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://console.test"
        )


@pytest.fixture
async def console(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[Console]:
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    # Intake with its outbox, the dev server and a worker: SLA clocks are real.
    async with running_intake(settings, identity_headers, fake_services()) as intake:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            runtime: GatewayRuntime = app.state.runtime
            original = runtime.http
            # The console reaches this in-process intake whatever URL it builds.
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.app)) as http:
                runtime.http = http
                try:
                    yield Console(app, runtime)
                finally:
                    runtime.http = original


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


async def sign_in(browser: httpx.AsyncClient, key: str) -> httpx.Response:
    token = csrf_of(await browser.get("/sign-in"))
    response = await browser.post(
        "/sign-in", data={"csrf_token": token, "api_key": key, "next": "/"}
    )
    assert response.status_code == 303, response.text
    return response


async def file_request(browser: httpx.AsyncClient, title: str, **fields: str) -> int:
    form = await browser.get("/requests/new")
    assert form.status_code == 200, form.text
    response = await browser.post(
        "/requests/new",
        data={
            "csrf_token": csrf_of(form),
            "idempotency_key": re.search(r'name="idempotency_key" value="(\w+)"', form.text).group(
                1
            ),  # type: ignore[union-attr]
            "request_type": "mo_investigation",
            "title": title,
            "description": fields.pop("description", "filed from the console"),
            "priority": "P2",
            **fields,
        },
    )
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/requests/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


async def test_sign_in_sets_a_signed_http_only_session_and_sign_out_ends_it(
    console: Console, unique_team: str
) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        first = await browser.get("/")
        assert first.status_code == 303
        assert first.headers["location"] == "/sign-in"
        # A page asked for before signing in is where sign-in leads back to.
        deep = await browser.get("/requests/new")
        assert deep.headers["location"] == "/sign-in?next=/requests/new"

        response = await sign_in(browser, key)
        assert response.headers["location"] == "/"
        cookies = response.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
        assert "HttpOnly" in session
        assert "SameSite=strict" in session or "SameSite=Strict" in session
        assert "Secure" not in session  # plain http here; https sets it
        # The key's secret is nowhere in any cookie.
        secret = key.rsplit("_", 1)[1]
        assert all(secret not in cookie for cookie in cookies)

        home = await browser.get("/")
        assert home.status_code == 200
        assert "Signed in as" in home.text
        assert unique_team in home.text
        assert home.headers["content-security-policy"].startswith("default-src 'self'")

        out = await browser.post("/sign-out", data={"csrf_token": csrf_of(home)})
        assert out.status_code == 303
        assert (await browser.get("/")).status_code == 303


async def test_a_wrong_key_is_refused_with_a_readable_message(console: Console) -> None:
    async with console.browser() as browser:
        token = csrf_of(await browser.get("/sign-in"))
        for key, message in [
            ("", "An API key is required"),
            ("not-a-key", "malformed"),
            ("rk_abcdefgh_" + "x" * 43, "not valid"),
        ]:
            response = await browser.post("/sign-in", data={"csrf_token": token, "api_key": key})
            assert response.status_code == 401
            assert message in response.text
            assert SESSION_COOKIE not in response.cookies


async def test_forged_or_revoked_sessions_lead_back_to_sign_in(
    console: Console, unique_team: str
) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        body, mac = browser.cookies[SESSION_COOKIE].split(".")
    async with console.browser() as forger:
        genuine = await forger.get("/", headers={"Cookie": f"{SESSION_COOKIE}={body}.{mac}"})
        assert genuine.status_code == 200
        # Another key id with the same signature, or a different signature: both refused.
        for forged in (f"{body}x.{mac}", f"{body}.{mac[:-4]}AAAA", "garbage", body):
            response = await forger.get("/", headers={"Cookie": f"{SESSION_COOKIE}={forged}"})
            assert response.status_code == 303, forged

    async with console.browser() as browser:
        await sign_in(browser, key)
        assert (await browser.get("/")).status_code == 200
        async with console.runtime.sessionmaker() as session:
            await revoke_key(session, key_id=key.split("_")[1])
            await session.commit()
        assert (await browser.get("/")).status_code == 303


async def test_posts_without_the_csrf_token_or_from_another_site_are_refused(
    console: Console, unique_team: str
) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        form = await browser.get("/requests/new")
        good = csrf_of(form)
        fields = {"request_type": "other", "title": "csrf probe", "priority": "P3"}
        attempts: list[tuple[dict[str, str], dict[str, str]]] = [
            (fields, {}),  # no token
            ({**fields, "csrf_token": "forged"}, {}),
            ({**fields, "csrf_token": good}, {"Origin": "https://evil.example"}),
        ]
        for data, headers in attempts:
            response = await browser.post("/requests/new", data=data, headers=headers)
            assert response.status_code == 403, response.text
            assert "text/html" in response.headers["content-type"]
        # A token is bound to its browser's cookie: another browser's token does not work.
        async with console.browser() as other:
            await sign_in(other, key)
            other_token = csrf_of(await other.get("/requests/new"))
            assert other.cookies[CSRF_COOKIE] != browser.cookies[CSRF_COOKIE]
            refused = await browser.post(
                "/requests/new", data={**fields, "csrf_token": other_token}
            )
            assert refused.status_code == 403
        listing = await browser.get("/")
        assert "csrf probe" not in listing.text


async def test_a_partner_sees_only_its_team_and_staff_see_every_team(
    console: Console, unique_team: str
) -> None:
    other_team = f"{unique_team}-other"
    mine, theirs, analyst = (
        await console.key(team=unique_team),
        await console.key(team=other_team),
        await console.key(team="risk-mining", role=Role.ANALYST),
    )
    async with console.browser() as partner, console.browser() as stranger:
        await sign_in(partner, mine)
        await sign_in(stranger, theirs)
        request_id = await file_request(partner, f"ours {unique_team}")

        own = await partner.get("/")
        assert f"ours {unique_team}" in own.text
        assert f'href="/requests/{request_id}"' in own.text

        foreign_list = await stranger.get("/")
        assert f"ours {unique_team}" not in foreign_list.text
        foreign = await stranger.get(f"/requests/{request_id}")
        assert foreign.status_code == 404
        assert "text/html" in foreign.headers["content-type"]
        assert "Traceback" not in foreign.text
        assert f"ours {unique_team}" not in foreign.text
        # A team filter in the URL does not widen a partner's view.
        assert f"ours {unique_team}" not in (await stranger.get(f"/?team={unique_team}")).text

    async with console.browser() as staff:
        await sign_in(staff, analyst)
        page = await staff.get("/", params={"team": unique_team})
        assert f"ours {unique_team}" in page.text


async def test_hostile_text_is_shown_escaped(console: Console, unique_team: str) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        request_id = await file_request(browser, HOSTILE, description=HOSTILE)
        for page in (await browser.get(f"/requests/{request_id}"), await browser.get("/")):
            assert page.status_code == 200
            assert "<script>alert" not in page.text
            assert "<b>bold</b>" not in page.text
            assert (
                "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; &amp; &lt;b&gt;" in page.text
            )
        # A comment too (partners write public ones).
        detail = await browser.get(f"/requests/{request_id}")
        posted = await browser.post(
            f"/requests/{request_id}/comments",
            data={"csrf_token": csrf_of(detail), "body": HOSTILE},
        )
        page = await browser.get(posted.headers["location"])
        assert "Comment added." in page.text
        assert page.text.count("&lt;script&gt;alert(&#39;owned&#39;)") == 3
        assert "<script>alert" not in page.text


async def test_breaching_soon_lists_requests_whose_sla_deadline_is_near(
    console: Console, unique_team: str
) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        request_id = await file_request(browser, f"hot {unique_team}")
        # The request's workflow records its first-response deadline (one hour) on the request.
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            page = await browser.get("/", params={"view": "breaching"})
            assert page.status_code == 200
            if f'href="/requests/{request_id}"' in page.text:
                break
            assert asyncio.get_running_loop().time() < deadline, page.text
            await asyncio.sleep(0.3)
        # Not stale: it changed just now.
        stale = await browser.get("/", params={"view": "stale"})
        assert f'href="/requests/{request_id}"' not in stale.text


async def test_staff_triage_and_partners_get_only_their_actions(
    console: Console, unique_team: str
) -> None:
    partner_key = await console.key(team=unique_team)
    analyst_key = await console.key(team="risk-mining", role=Role.ANALYST)
    async with console.browser() as partner, console.browser() as analyst:
        await sign_in(partner, partner_key)
        await sign_in(analyst, analyst_key)
        request_id = await file_request(partner, "to triage")

        partner_page = await partner.get(f"/requests/{request_id}")
        assert 'data-action="triage"' not in partner_page.text
        # Posting it anyway: intake refuses, the console says why.
        refused = await partner.post(
            f"/requests/{request_id}/transitions",
            data={"csrf_token": csrf_of(partner_page), "action": "triage"},
        )
        assert refused.status_code == 303
        after = await partner.get(refused.headers["location"])
        assert "Not allowed" in after.text or "may not" in after.text.lower()
        assert 'data-testid="request-status">new<' in after.text

        page = await analyst.get(f"/requests/{request_id}")
        assert 'data-action="triage"' in page.text
        assert 'data-testid="sla-clock"' in page.text
        done = await analyst.post(
            f"/requests/{request_id}/transitions",
            data={"csrf_token": csrf_of(page), "action": "triage"},
        )
        shown = await analyst.get(done.headers["location"])
        assert "now triaged" in shown.text
        assert 'data-testid="request-status">triaged<' in shown.text
        # The same action twice: intake's 409 with the actions allowed now, as a message.
        again = await analyst.post(
            f"/requests/{request_id}/transitions",
            data={"csrf_token": csrf_of(shown), "action": "triage"},
        )
        message = (await analyst.get(again.headers["location"])).text
        assert "Allowed now:" in message

        comment = await analyst.post(
            f"/requests/{request_id}/comments",
            data={"csrf_token": csrf_of(shown), "body": "Looking into it", "visibility": "public"},
        )
        detail = await analyst.get(comment.headers["location"])
        assert "Comment added." in detail.text
        assert "Looking into it" in detail.text
        assert "transitioned: triage" in detail.text  # the history


async def test_invalid_forms_show_the_fields_intake_refused(
    console: Console, unique_team: str
) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        form = await browser.get("/requests/new")
        response = await browser.post(
            "/requests/new",
            data={"csrf_token": csrf_of(form), "request_type": "nonsense", "title": "  "},
        )
        assert response.status_code == 422
        assert 'data-testid="form-error"' in response.text
        assert "request_type" in response.text
        assert "title" in response.text


async def test_unknown_pages_and_bad_input_are_readable_errors_not_500(
    console: Console, unique_team: str
) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        missing = await browser.get("/requests/2147483000")
        assert missing.status_code == 404
        assert 'data-testid="problem"' in missing.text
        for path in ("/requests/0", "/requests/abc", "/?view=%00&status=bogus&cursor=zz"):
            response = await browser.get(path)
            assert response.status_code < 500, (path, response.text)
        # An off-site `next` is never followed.
        token = csrf_of(await browser.get("/sign-in"))
        response = await browser.post(
            "/sign-in", data={"csrf_token": token, "api_key": key, "next": "//evil.example/x"}
        )
        assert response.headers["location"] == "/"


async def test_the_weekly_report_page_is_for_staff(console: Console, unique_team: str) -> None:
    key = await console.key(team=unique_team)
    async with console.browser() as browser:
        await sign_in(browser, key)
        for path in ("/reports/weekly", "/reports/weekly.md"):
            page = await browser.get(path)
            assert page.status_code == 403
            assert "for staff" in page.text
