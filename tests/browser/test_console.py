"""The web console in a real browser: Debian's Chromium driven by Playwright, on a whole stack
launched as `riskdesk up` does (Temporal, the four services, the worker).

A partner signs in and files a request; an admin triages it and sees its SLA clocks; an approver
approves an SOP version from the inbox; every page renders at 1280 px and at a phone's width.
Screenshots go to `test-artifacts/browser/` (gitignored), one per step, kept after the run.
The tests skip, saying why, only where no Chromium is installed (`make test` installs it with apt
when it can).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_stack import RunningStack, launch, stack_environment, stop

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = os.environ.get("RISKDESK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install -e .[dev])"
)
if shutil.which(CHROMIUM) is None:
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium with apt when it can;"
        " set RISKDESK_CHROMIUM to another Chromium binary",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One `riskdesk up` (SQLite) for the module; the browser tests run once, not per backend."""
    tmp = tmp_path_factory.mktemp("browser-stack")
    running = launch(stack_environment(tmp, None), tmp / "riskdesk-up.log")
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, headless (root needs --no-sandbox)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Api:
    """The public API as an admin, to make keys and an SOP the browser then works with."""

    def __init__(self, stack: RunningStack) -> None:
        self.http = httpx.Client(
            base_url=stack.gateway,
            headers={"Authorization": f"Bearer {stack.admin_key}"},
            timeout=15.0,
        )

    def key(self, *, team: str, role: str) -> dict[str, Any]:
        response = self.http.post(
            "/api/v1/keys", json={"name": f"{role} (browser test)", "team": team, "role": role}
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="module")
def api(stack: RunningStack) -> Iterator[Api]:
    client = Api(stack)
    yield client
    client.http.close()


def demo_key(stack: RunningStack, name: str) -> str:
    """A key `riskdesk up` wrote for its demo data, beside the admin key."""
    return (Path(stack.info["admin_key_file"]).parent / name).read_text().strip()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def signed_in(browser: Any, stack: RunningStack, key: str, viewport: dict[str, int] = WIDE) -> Any:
    """A new browser context signed in with `key`, on the queues page."""
    context = browser.new_context(viewport=viewport, base_url=stack.gateway)
    page = context.new_page()
    page.goto("/")
    sync_api.expect(page).to_have_url(re.compile(r"/sign-in$"))
    page.fill("input[name=api_key]", key)
    page.click("button:has-text('Sign in')")
    sync_api.expect(page.get_by_test_id("flash")).to_contain_text("Signed in as")
    return page


def test_a_partner_files_a_request_and_an_admin_triages_it_and_sees_its_sla(
    stack: RunningStack, browser: Any, api: Api
) -> None:
    team = f"browser-{uuid.uuid4().hex[:6]}"
    partner = signed_in(browser, stack, api.key(team=team, role="partner")["key"])
    shot(partner, "01-partner-queues")

    partner.click("nav >> text=File a request")
    title = f"Card testing burst on {team}"
    partner.select_option("select[name=request_type]", "mo_investigation")
    partner.fill("input[name=title]", title)
    partner.fill("textarea[name=description]", "Hundreds of $1 authorisations from new accounts.")
    partner.select_option("select[name=priority]", "P1")
    partner.fill("input[name=accounts_affected]", "310")
    partner.fill("input[name=money_at_risk]", "12000")
    shot(partner, "02-partner-file-form")
    partner.click("button:has-text('File request')")
    sync_api.expect(partner.get_by_test_id("flash")).to_contain_text("filed")
    sync_api.expect(partner.get_by_test_id("request-title")).to_have_text(title)
    sync_api.expect(partner.get_by_test_id("request-status")).to_have_text("new")
    # A partner is offered no triage.
    assert partner.locator("button[data-action=triage]").count() == 0
    request_path = re.sub(r"^https?://[^/]+", "", partner.url)
    shot(partner, "03-partner-request-filed")

    admin = signed_in(browser, stack, stack.admin_key)
    admin.goto(f"/?team={team}")
    admin.click(f"text={title}")
    admin.click("button[data-action=triage]")
    sync_api.expect(admin.get_by_test_id("flash")).to_contain_text("now triaged")
    sync_api.expect(admin.get_by_test_id("request-status")).to_have_text("triaged")
    clocks = admin.get_by_test_id("sla-clock")
    sync_api.expect(clocks.first).to_be_visible()
    sync_api.expect(
        admin.locator("[data-testid=sla-clock]:has-text('resolution')")
    ).to_contain_text("running")
    # The live countdown of the running clock (console.js).
    sync_api.expect(admin.locator("time[data-countdown]").first).to_contain_text(re.compile(r"in "))
    sync_api.expect(admin.get_by_test_id("history")).to_contain_text("triage")
    shot(admin, "04-admin-triaged-with-sla")

    # The partner sees the new status (and the clocks) too.
    partner.goto(request_path)
    sync_api.expect(partner.get_by_test_id("request-status")).to_have_text("triaged")
    sync_api.expect(partner.get_by_test_id("sla-clock").first).to_be_visible()
    for page in (partner, admin):
        page.context.close()


def test_an_approver_approves_an_sop_from_the_inbox(
    stack: RunningStack, browser: Any, api: Api
) -> None:
    approver = api.key(team="site-leads", role="approver")
    suffix = str(uuid.uuid4().int % 1_000_000)
    sop = api.post(
        "/api/v1/sops",
        {
            "key": f"SOP-BRW-{suffix}",
            "title": f"Chargeback triage {suffix}",
            "owning_team": "risk-mining",
            "approval_policy": {"stages": [{"name": "site leads", "approvers": [approver["id"]]}]},
            "content": "# Steps\n1. Check the <b>card</b> history.\n",
        },
    )
    api.post(f"/api/v1/sops/{sop['id']}/versions/1/submit", {})

    page = signed_in(browser, stack, approver["key"])
    page.click("nav >> text=SOP approvals")
    review = page.get_by_test_id("review-mine").filter(has_text=f"SOP-BRW-{suffix}")
    sync_api.expect(review).to_be_visible()
    shot(page, "05-approver-inbox")
    review.locator("button:has-text('Approve')").click()
    sync_api.expect(page.get_by_test_id("flash")).to_contain_text(
        f"Approved SOP {sop['id']} version 1"
    )
    sync_api.expect(
        page.get_by_test_id("review-mine").filter(has_text=f"SOP-BRW-{suffix}")
    ).to_have_count(0)
    shot(page, "06-approver-approved")
    page.context.close()

    # The demo approver of `riskdesk up` has the demo SOP waiting in its inbox.
    demo = signed_in(browser, stack, demo_key(stack, "demo-approver.key"))
    demo.goto("/sops")
    sync_api.expect(demo.get_by_test_id("review-mine")).to_contain_text("SOP-GIFT-1")
    demo.context.close()


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1280px", "phone"])
def test_every_page_renders_at_desktop_and_phone_width(
    stack: RunningStack, browser: Any, viewport: dict[str, int]
) -> None:
    page = signed_in(browser, stack, stack.admin_key, viewport)
    width = viewport["width"]
    # Each page with something `riskdesk up`'s demo data puts on it (riskdesk/demo_console.py).
    pages = {
        "queues": ("/", "Gift-card resale ring"),
        "request": ("/requests/1", "first response"),
        "file": ("/requests/new", "File request"),
        "escalations": ("/escalations", "Gift-card ring bypassed velocity limits"),
        "escalation": ("/escalations/1", "Add device-link rule"),
        "sops": ("/sops", "SOP-GIFT-1"),
        "parity": ("/parity", "SOP-CHBK-2"),
        "rules": ("/rules/candidates", "R-042"),
        "report": ("/reports/weekly", "Requests filed"),
    }
    for name, (path, shown) in pages.items():
        response = page.goto(path)
        assert response is not None, path
        assert response.status == 200, (path, response.status)
        sync_api.expect(page.locator("main")).to_contain_text(shown)
        # Nothing is wider than the screen (tables scroll inside their own box).
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
        shot(page, f"page-{name}-{width}")
    # The weekly report embeds its charts (inline SVG trend lines and the aging bars).
    page.goto("/reports/weekly")
    assert page.locator("[data-testid=report] svg").count() > 1
    if width < 700:
        # On a phone the menu folds behind its button.
        assert not page.locator("nav.nav").is_visible()
        page.click("label.nav-button")
        sync_api.expect(page.locator("nav.nav")).to_be_visible()
        page.click("nav >> text=Escalations")
        sync_api.expect(page).to_have_url(re.compile(r"/escalations$"))
    page.context.close()
