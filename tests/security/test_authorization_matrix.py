"""The authorisation matrix: every route of every service, called as every role, gets the status
the table below says.

The routes are ENUMERATED from the gateway's aggregated OpenAPI document and from each service's
own (plus the routes they keep out of it), so a route added without a rule here fails
`test_every_route_has_a_rule`. Through the gateway each route is called as a partner of the owning
team, a partner of another team, an analyst, a program manager, an approver and an admin (with
real rows in the path), with no key and with a revoked key; each service is called directly with
no identity token, an expired one and a forged one (signed with the wrong secret).

Reading a rule: `expect("all=200 other_partner=404")` — groups are `all`, `staff` (analyst,
program_manager, admin) and `partners`; later words win. A role whose expected status is 2xx
gets rows of its own from `fresh` when the call changes state, so each role starts from the
same state.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.settings import ServiceName
from tests.security.stack import RunningStack
from tests.security.world import RCA, ROLES, TEAM, World, build_world, monday, unique

pytestmark = pytest.mark.timeout(240)

GROUPS = {
    "all": ROLES,
    "staff": ("analyst", "program_manager", "admin"),
    "partners": ("partner", "other_partner"),
}
UNAUTHENTICATED = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/metrics"})
Body = dict[str, Any] | Callable[[World], dict[str, Any]] | None
Fresh = Callable[[World], Awaitable[dict[str, Any]]]


def expect(spec: str) -> dict[str, int]:
    """Per-role statuses from `group=status` words, later words overriding earlier ones."""
    result: dict[str, int] = {}
    for word in spec.split():
        name, _, status = word.partition("=")
        for role in GROUPS.get(name, (name,)):
            assert role in ROLES, f"unknown role {role!r} in {spec!r}"
            result[role] = int(status)
    assert set(result) == set(ROLES), f"{spec!r} leaves out {set(ROLES) - set(result)}"
    return result


@dataclass(frozen=True)
class Rule:
    """Who may call one route, and how to call it so that only the caller decides the status."""

    method: str
    path: str
    expect: dict[str, int]
    body: Body = None
    fresh: Fresh | None = None
    fresh_for_all: bool = False  # every role gets fresh rows (where the state is checked first)
    if_match: str | None = None  # path whose current ETag goes in If-Match
    query: dict[str, str] | None = None
    note: str = ""
    also: frozenset[int] = frozenset()  # statuses that do not depend on the caller (readiness)

    @property
    def route(self) -> tuple[str, str]:
        return self.method, self.path


def rule(method: str, path: str, spec: str, **kwargs: Any) -> Rule:
    """A rule for `METHOD /path`."""
    return Rule(method=method, path=path, expect=expect(spec), **kwargs)


# Team-owned rows: a partner of another team gets 404, never 403 (existence is not revealed).
READ_OWN = "all=200 other_partner=404"
STAFF_WRITE_OWN = "staff=200 approver=403 partner=403 other_partner=404"
# The sop service checks the role before it looks the row up: every partner gets 403, which
# reveals nothing either.
STAFF_WRITE = "staff=200 approver=403 partners=403"
V = "/api/v1"
R = f"{V}/requests/{{request_id}}"
E = f"{V}/escalations/{{escalation_id}}"
S = f"{V}/sops/{{sop_id}}"
SV = f"{S}/versions/{{number}}"
RU = f"{V}/rules/{{rule_id}}"
IN = f"{V}/initiatives/{{initiative_id}}"

RULES: tuple[Rule, ...] = (
    # --- gateway: health and docs are open; keys are for admins -------------------------
    rule("GET", "/healthz", "all=200"),
    rule("GET", "/readyz", "all=200", also=frozenset({503})),  # 503: a service slow to answer
    rule("GET", f"{V}/me", "all=200"),
    rule("GET", f"{V}/keys", "all=403 admin=200"),
    rule(
        "POST",
        f"{V}/keys",
        "all=403 admin=201",
        body={"name": "made by the matrix", "team": TEAM, "role": "partner"},
    ),
    rule("POST", f"{V}/keys/{{key_id}}/revoke", "all=403 admin=200", fresh=World.fresh_key),
    # --- gateway: subscriptions (partners: own team's only) -------------------------------
    rule(
        "POST",
        f"{V}/subscriptions",
        "all=201 other_partner=422",
        body={
            "event_types": ["sla.breached"],
            "channel": "webhook",
            "url": "https://hooks.example.com/x",
            "team": TEAM,
        },
        note="a partner names its own team; another team's partner is refused (422 naming "
        "body.team). The approver subscribes like staff (see the report).",
    ),
    rule("GET", f"{V}/subscriptions", "all=200"),
    rule("GET", f"{V}/subscriptions/{{subscription_id}}", READ_OWN),
    rule(
        "DELETE",
        f"{V}/subscriptions/{{subscription_id}}",
        "all=204 other_partner=404",
        fresh=World.fresh_subscription,
    ),
    rule("GET", f"{V}/subscriptions/{{subscription_id}}/deliveries", READ_OWN),
    rule(
        "POST",
        f"{V}/subscriptions/{{subscription_id}}/deliveries/{{delivery_id}}/replay",
        "all=404 partners=403",
        note="non-partners pass the role check and meet a delivery that does not exist",
    ),
    # --- gateway: calendars and SLA policies (admins and program managers write) -----------
    rule("GET", f"{V}/calendars", "all=200"),
    rule("GET", f"{V}/calendars/{{calendar_id}}", "all=200"),
    rule(
        "POST",
        f"{V}/calendars",
        "all=403 admin=201 program_manager=201",
        body=World.calendar_body,
    ),
    rule(
        "PUT",
        f"{V}/calendars/{{calendar_id}}",
        "all=403 admin=200 program_manager=200",
        body={"name": "Always open", "calendar": {"timezone": "UTC", "always_open": True}},
    ),
    rule(
        "POST",
        f"{V}/sla/preview",
        "all=200",
        body={"calendar_id": "24x7", "start": "2026-01-05T09:00:00Z", "target": "PT1H"},
    ),
    rule(
        "GET",
        f"{V}/sla/policies/match",
        "all=200",
        query={"request_type": "mo_investigation", "priority": "P1"},
    ),
    rule("GET", f"{V}/sla/policies", "all=200"),
    rule("GET", f"{V}/sla/policies/{{policy_id}}", "all=200"),
    rule(
        "POST",
        f"{V}/sla/policies",
        "all=403 admin=201 program_manager=201",
        body=World.policy_body,
    ),
    rule(
        "PUT",
        f"{V}/sla/policies/{{policy_id}}",
        "all=403 admin=200 program_manager=200",
        body=lambda w: {k: v for k, v in w.policy_body().items() if k != "id"},
    ),
    rule(
        "DELETE",
        f"{V}/sla/policies/{{policy_id}}",
        "all=403 admin=204 program_manager=204",
        fresh=World.fresh_policy,
    ),
    rule("GET", f"{V}/alerts/aging", "all=200"),
    # --- intake: requests --------------------------------------------------------------------
    rule(
        "POST",
        f"{V}/requests",
        "staff=201 partner=201 other_partner=403 approver=403",
        body={"request_type": "data_request", "title": "Matrix filing", "team": TEAM},
        note="staff file for any team; a partner only for its own",
    ),
    rule("GET", f"{V}/requests", "all=200"),
    rule("GET", f"{V}/requests/queue", "staff=200 approver=403 partners=403"),
    rule("GET", f"{V}/requests/export.csv", "all=200"),
    rule("GET", R, READ_OWN),
    rule(
        "PATCH",
        R,
        "all=200 other_partner=404 approver=403",
        body={"tags": ["matrix"]},
        if_match=R,
    ),
    rule(
        "POST",
        f"{R}/transitions",
        STAFF_WRITE_OWN,
        body={"action": "triage"},
        fresh=World.fresh_request,
    ),
    rule("GET", f"{R}/events", READ_OWN),
    rule("GET", f"{R}/sla", READ_OWN),
    rule("GET", f"{R}/similar", READ_OWN),
    rule(
        "POST",
        f"{R}/comments",
        "all=201 other_partner=404 approver=403",
        body={"body": "Looking into it"},
    ),
    rule("GET", f"{R}/comments", READ_OWN),
    rule(
        "PATCH",
        f"{R}/comments/{{comment_id}}",
        "all=403 partner=200 other_partner=404",
        body={"body": "More info, edited"},
        note="only the author (the owning partner here) edits a comment",
    ),
    rule("GET", f"{R}/comments/{{comment_id}}/revisions", READ_OWN),
    rule("GET", f"{V}/request-types", "all=200"),
    rule("GET", f"{V}/request-types/{{request_type}}", "all=200"),
    rule(
        "PUT",
        f"{V}/request-types/{{request_type}}",
        "all=403 admin=200",
        body={"fields": [{"name": "region", "kind": "string", "required": False}]},
    ),
    rule("GET", f"{V}/request-queues", "staff=200 approver=403 partners=403"),
    rule(
        "PUT",
        f"{V}/request-queues/{{queue}}/members/{{member}}",
        "all=403 admin=201",
    ),
    rule("GET", f"{V}/request-queues/{{queue}}", "staff=200 approver=403 partners=403"),
    rule(
        "POST",
        f"{R}/auto-assign",
        "staff=200 approver=403 partners=403",
        body=lambda w: {"queue": w.ids["queue"]},
    ),
    rule(
        "DELETE",
        f"{V}/request-queues/{{queue}}/members/{{member}}",
        "all=403 admin=204",
    ),
    # --- escalation ---------------------------------------------------------------------------
    rule(
        "POST",
        f"{V}/escalations",
        "staff=201 approver=403 partner=201 other_partner=403",
        body={
            "source": "partner",
            "severity": "sev3",
            "title": "Matrix escalation",
            "owner": "owner-1",
            "team": TEAM,
        },
    ),
    rule("GET", f"{V}/escalations", "all=200"),
    rule("GET", E, READ_OWN),
    rule("PATCH", E, STAFF_WRITE_OWN, body={"summary": "Edited by the matrix"}),
    rule(
        "POST",
        f"{E}/transitions",
        STAFF_WRITE_OWN,
        body={"action": "mitigate"},
        fresh=World.fresh_escalation,
    ),
    rule(
        "POST",
        f"{E}/closure-approval",
        "all=403 program_manager=200 other_partner=404",
        body={"note": "ok"},
        fresh=World.fresh_pending_closure,
    ),
    rule("PUT", f"{E}/rca", STAFF_WRITE_OWN, body=RCA),
    rule("GET", f"{E}/rca", READ_OWN),
    rule(
        "POST",
        f"{E}/action-items",
        "staff=201 approver=403 partner=403 other_partner=404",
        body={"title": "Matrix item", "owner": "owner-1"},
    ),
    rule("GET", f"{E}/action-items", READ_OWN),
    rule("GET", f"{V}/action-items", "all=200"),
    rule("GET", f"{V}/action-items/{{item_id}}", READ_OWN),
    rule("PATCH", f"{V}/action-items/{{item_id}}", STAFF_WRITE_OWN, body={"description": "x"}),
    rule(
        "POST",
        f"{V}/action-items/{{item_id}}/transitions",
        STAFF_WRITE_OWN,
        body={"action": "start"},
        fresh=World.fresh_item,
    ),
    rule(
        "POST",
        f"{V}/gaps",
        "staff=201 approver=403 partners=403",
        body={"title": "Matrix gap", "owning_team": TEAM},
    ),
    rule("GET", f"{V}/gaps", "all=200"),
    rule("GET", f"{V}/gaps/stats", "all=200"),
    rule("GET", f"{V}/gaps/{{gap_id}}", READ_OWN),
    rule("PATCH", f"{V}/gaps/{{gap_id}}", STAFF_WRITE_OWN, body={"description": "x"}),
    rule(
        "POST",
        f"{V}/gaps/{{gap_id}}/transitions",
        STAFF_WRITE_OWN,
        body={"action": "accept"},
        fresh=World.fresh_gap,
    ),
    # --- sop: SOPs are shared across orgs (every key reads them); staff write ----------------
    rule("POST", f"{V}/sops", "staff=201 approver=403 partners=403", body=World.sop_body),
    rule("GET", f"{V}/sops", "all=200"),
    rule("GET", S, "all=200"),
    rule("PATCH", S, "staff=200 approver=403 partners=403", body={"title": "Seller fraud v2"}),
    rule("POST", f"{S}/reviews", "staff=200 approver=403 partners=403", body={"note": "ok"}),
    rule("GET", f"{S}/events", "all=200"),
    rule("GET", f"{S}/diff", "all=200", query={"from": "1", "to": "1"}),
    rule(
        "POST",
        f"{S}/versions",
        "staff=201 approver=403 partners=403",
        body={"content": "# v2\n", "change_summary": "matrix"},
        fresh=World.fresh_effective,
    ),
    rule("GET", f"{S}/versions", "all=200"),
    rule("GET", SV, "all=200"),
    rule(
        "PATCH",
        SV,
        "staff=200 approver=403 partners=403",
        body={"content": "# edited\n"},
        fresh=World.fresh_sop,
    ),
    rule(
        "POST",
        f"{SV}/submit",
        "staff=200 approver=403 partners=403",
        fresh=World.fresh_sop,
    ),
    rule(
        "POST",
        f"{SV}/decisions",
        "all=403 approver=200",
        body={"decision": "approve"},
        fresh=World.fresh_submitted,
        fresh_for_all=True,
        note="only an approver the SOP's policy names decides",
    ),
    rule("GET", f"{SV}/approval", "all=200"),
    rule(
        "POST",
        f"{SV}/retire",
        "all=403 program_manager=200 admin=200",
        fresh=World.fresh_effective,
    ),
    rule(
        "POST",
        f"{SV}/rollouts",
        "all=403 program_manager=201 admin=201",
        body=World.rollout_body,
        fresh=World.fresh_approved,
    ),
    rule("GET", f"{V}/rollouts/{{rollout_id}}", "all=200"),
    rule(
        "POST",
        f"{V}/rollouts/{{rollout_id}}/acknowledgements",
        "all=403 program_manager=200 admin=200",
        body=lambda w: {"org": w.ids["org"]},
        fresh=World.fresh_rollout,
        note="an org's lead (by subject) or a program manager",
    ),
    rule("GET", f"{V}/parity", "all=200"),
    rule("GET", f"{V}/orgs", "all=200"),
    # --- sop: detection rules and MOs (team-owned) ------------------------------------------
    rule(
        "POST",
        f"{V}/rules",
        "staff=201 approver=403 partners=403",
        body=lambda w: {"id": unique("R").upper(), "name": "n", "owner": "o", "team": TEAM},
    ),
    rule("GET", f"{V}/rules", "all=200"),
    rule("GET", f"{V}/rules/deprecation-candidates", "all=200"),
    rule(
        "POST",
        f"{V}/rules/metrics",
        "staff=200 approver=403 partners=403",
        body=lambda w: {
            "items": [{"rule_id": w.ids["rule_id"], "week_start": monday(), "hits": 0}]
        },
    ),
    rule("GET", RU, READ_OWN),
    rule("PATCH", RU, STAFF_WRITE, body={"description": "edited"}),
    rule(
        "POST",
        f"{RU}/metrics",
        STAFF_WRITE.replace("staff=200", "staff=201"),
        body=lambda w: {"week_start": monday(), "hits": 3},
    ),
    rule("GET", f"{RU}/metrics", READ_OWN),
    rule(
        "POST",
        f"{RU}/deprecation",
        STAFF_WRITE.replace("staff=200", "staff=201"),
        body={"reason": "No hits", "monitoring_seconds": 1},
        fresh=World.fresh_rule,
    ),
    rule("GET", f"{RU}/deprecation", READ_OWN),
    rule("GET", f"{RU}/deprecations", READ_OWN),
    rule(
        "POST",
        f"{RU}/deprecation/decisions",
        "all=403 program_manager=200 approver=200 admin=200",
        body={"decision": "approve"},
        fresh=World.fresh_awaiting_decision,
        fresh_for_all=True,
    ),
    rule(
        "POST", f"{V}/mos", "staff=201 approver=403 partners=403", body={"name": "MO", "team": TEAM}
    ),
    rule("GET", f"{V}/mos", "all=200"),
    rule("GET", f"{V}/mos/similar", "all=200", query={"q": "reshipped parcels"}),
    rule("GET", f"{V}/mos/{{mo_id}}", READ_OWN),
    rule("PATCH", f"{V}/mos/{{mo_id}}", STAFF_WRITE, body={"summary": "edited"}),
    rule("GET", f"{V}/mos/{{mo_id}}/similar", READ_OWN),
    # --- intake: OP1 initiatives (a partner proposes for, and reads, its own team's) ----------
    rule("GET", f"{V}/initiatives", "all=200"),
    rule("GET", f"{V}/initiatives/roadmap", "all=200", query={"year": "2026"}),
    rule(
        "POST",
        f"{V}/initiatives",
        "staff=201 partner=201 other_partner=403 approver=403",
        body=World.initiative_body,
        note="staff name any team; a partner only its own",
    ),
    rule("GET", IN, READ_OWN),
    rule(
        "PATCH",
        IN,
        "all=200 other_partner=404 approver=403",
        body={"title": "Reship velocity rule, edited"},
        if_match=IN,
        note="a partner edits its own team's while it is proposed (the world's one stays so)",
    ),
    rule(
        "POST",
        f"{IN}/transitions",
        STAFF_WRITE_OWN,
        body={"action": "shortlist"},
        fresh=World.fresh_initiative,
    ),
    # --- escalation: the person directory (staff read; program managers and admins write) ---
    rule("GET", f"{V}/people", "staff=200 approver=403 partners=403"),
    rule("GET", f"{V}/people/{{handle}}", "staff=200 approver=403 partners=403"),
    rule(
        "PUT",
        f"{V}/people/{{handle}}",
        "all=403 program_manager=200 admin=200",
        body={"display_name": "Owner One", "email": "owner-1@example.com"},
        note="replaces the world's entry (201 would be a new handle)",
    ),
    # --- gateway: the weekly report (staff read and write notes; managers set goals) --------
    rule("GET", f"{V}/reports/goals", "staff=200 approver=403 partners=403"),
    rule(
        "PUT",
        f"{V}/reports/goals/{{metric}}",
        "all=403 program_manager=200 admin=200",
        body={"target": 10},
    ),
    rule("GET", f"{V}/reports/weekly", "staff=200 approver=403 partners=403"),
    rule(
        "PUT",
        f"{V}/reports/weekly/{{week}}/notes/{{metric}}",
        "staff=200 approver=403 partners=403",
        body={"note": "On track after the new rule."},
    ),
    # --- intake: MO suggestions (staff judge them) --------------------------------------------
    rule(
        "POST",
        f"{R}/mo-suggestions/{{mo_id}}/decision",
        "staff=200 approver=403 partners=403",
        body={"decision": "confirm"},
        note="the world judged the pair once, so each call replaces the verdict (200, not 201)",
    ),
    rule("GET", f"{V}/requests/mo-suggestion-labels", "staff=200 approver=403 partners=403"),
    rule(
        "GET", f"{V}/requests/mo-suggestion-labels/precision", "staff=200 approver=403 partners=403"
    ),
    rule("GET", f"{R}/mo-suggestions", READ_OWN),
    rule("GET", f"{V}/stats/escalations", "staff=200 approver=403 partners=403"),
    rule("GET", f"{V}/stats/intake", "staff=200 approver=403 partners=403"),
    rule("GET", f"{V}/stats/sops", "staff=200 approver=403 partners=403"),
)

# Routes outside the public API: only the worker (the `system` role) may call them. Through the
# gateway an API key never reaches them (no identity token: 401 on the gateway's own, 404 for a
# service's, which the gateway does not forward).
INTERNAL_ROUTES: dict[ServiceName, frozenset[tuple[str, str]]] = {
    "gateway": frozenset(
        {
            ("POST", "/internal/events"),
            ("GET", "/internal/deliveries/{delivery_id}"),
            ("POST", "/internal/deliveries/{delivery_id}/attempts"),
            ("POST", "/internal/deliveries/{delivery_id}/dead"),
            ("POST", "/internal/sla/resolve"),
            ("GET", "/internal/calendars/{calendar_id}"),
            ("POST", "/internal/reports/weekly/{week}"),
        }
    ),
    "intake": frozenset(
        {
            ("PUT", "/internal/requests/{request_id}/sla"),
            ("GET", "/internal/requests/{request_id}/lifecycle-events"),
            ("GET", "/internal/requests/{request_id}/mo-matching"),
            ("PUT", "/internal/mo-catalog"),
            ("PUT", "/internal/requests/{request_id}/embedding"),
            ("PUT", "/internal/requests/{request_id}/mo-suggestions"),
        }
    ),
    "escalation": frozenset(),
    "sop": frozenset(
        {
            ("POST", "/internal/rules/{rule_id}/deprecations/{deprecation_id}/monitoring"),
            ("POST", "/internal/rules/{rule_id}/deprecations/{deprecation_id}/check"),
            ("POST", "/internal/rules/{rule_id}/deprecations/{deprecation_id}/outcome"),
            ("POST", "/internal/sops/{sop_id}/events"),
            ("PUT", "/internal/sops/versions/{version_id}/approval-outcome"),
            ("GET", "/internal/sops/reviews/due"),
            ("GET", "/internal/mos/catalog"),
            ("GET", "/internal/mos/{mo_id}/matching-text"),
            ("POST", "/internal/mos/match"),
            ("PUT", "/internal/mos/{mo_id}/embedding"),
        }
    ),
}
# Valid bodies, so that where a service checks the role after validating, the role check is what
# answers (every other internal route takes `{}` or no body).
INTERNAL_BODIES: dict[str, dict[str, Any]] = {
    "/internal/rules/{rule_id}/deprecations/{deprecation_id}/outcome": {
        "outcome": "retained",
        "decided_by": "matrix",
    },
    "/internal/sops/{sop_id}/events": {
        "event_id": "matrix-1",
        "kind": "matrix",
        "actor": "matrix",
        "occurred_at": "2026-01-05T09:00:00Z",
    },
    "/internal/sops/versions/{version_id}/approval-outcome": {
        "review_round": 1,
        "outcome": "approved",
    },
}
# Internal routes the gateway calls with the caller's own identity (any role; a partner's answer
# is its own team's): no API key reaches them, and the public route in front is in RULES.
CALLER_INTERNAL_ROUTES: dict[ServiceName, frozenset[tuple[str, str]]] = {
    "intake": frozenset({("POST", "/internal/requests/aging")}),  # behind GET /alerts/aging
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head")


def spec_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (METHOD, path) of an OpenAPI document."""
    return {
        (method.upper(), path)
        for path, item in spec.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    }


def hidden_routes(app: Any) -> set[tuple[str, str]]:
    """Routes an app serves but keeps out of its OpenAPI document (FastAPI routers only)."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        contexts: Iterable[Any] = (
            route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else ()
        )
        for context in contexts:
            if not context.include_in_schema:
                found |= {(m, context.path) for m in context.methods if m != "HEAD"}
    return found


def fill(path: str, values: dict[str, Any]) -> str:
    """`path` with its `{params}` replaced by `values` (an unknown one by 1)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), path)


@pytest.fixture(scope="module")
async def world(security_stack: RunningStack) -> AsyncIterator[World]:
    async with httpx.AsyncClient(base_url=security_stack.gateway, timeout=30) as http:
        yield await build_world(security_stack, http)


@pytest.fixture(scope="module")
async def documents(world: World) -> dict[str, dict[str, Any]]:
    """The gateway's aggregated OpenAPI document and each service's own."""
    stack = world.stack
    docs = {"aggregated": (await world.http.get("/openapi.json")).json()}
    assert "x-riskdesk-unavailable" not in docs["aggregated"]["info"]
    for service in ("intake", "escalation", "sop"):
        token = sign_identity(
            Identity(subject="matrix", team="riskdesk", role=Role.SYSTEM),
            secret=stack.settings.identity_secret,
            ttl_seconds=60,
        )
        response = await world.http.get(
            f"{stack.urls[service]}/openapi.json", headers={IDENTITY_HEADER: token}
        )
        assert response.status_code == 200
        docs[service] = response.json()
    return docs


async def test_every_route_has_a_rule(world: World, documents: dict[str, dict[str, Any]]) -> None:
    public = {route for route in spec_routes(documents["aggregated"])}
    ruled = {r.route for r in RULES}
    assert len(ruled) == len(RULES), "a route has two rules"
    assert not public - ruled, f"routes without a rule in RULES: {sorted(public - ruled)}"
    assert not ruled - public, f"rules for routes that do not exist: {sorted(ruled - public)}"
    for service in ("gateway", "intake", "escalation", "sop"):
        # The console's HTML pages (session cookies, not API keys) are out of this matrix.
        served = {
            route
            for route in hidden_routes(world.stack.apps[service])
            if route[1].startswith("/internal/")
        }
        if service != "gateway":
            served |= {
                route
                for route in spec_routes(documents[service])
                if route[1].startswith("/internal/")
            }
        known = INTERNAL_ROUTES[service] | CALLER_INTERNAL_ROUTES.get(service, frozenset())
        assert not served - known, f"{service}: internal routes without a rule: {served - known}"
        assert not known - served, f"{service}: stale internal rules: {known - served}"


async def call_as(world: World, r: Rule, role: str) -> httpx.Response:
    """Call the rule's route as `role`, with fresh rows when the role is expected to change them."""
    values = dict(world.ids)
    if r.fresh is not None and (r.fresh_for_all or 200 <= r.expect[role] < 300):
        values.update(await r.fresh(world))
    headers: dict[str, str] = {}
    if r.if_match is not None:
        headers["If-Match"] = await world.etag(fill(r.if_match, values))
    body = r.body(world) if callable(r.body) else r.body
    if body is None and r.method in ("POST", "PUT", "PATCH"):
        body = {}
    return await world.call(
        r.method, fill(r.path, values), role, json=body, headers=headers, params=r.query
    )


async def test_every_role_gets_the_status_the_matrix_says(world: World) -> None:
    failures: list[str] = []
    checked = 0
    for r in RULES:
        # Admins last: they may change shared rows the others read.
        for role in sorted(ROLES, key=lambda name: name == "admin"):
            try:
                response = await call_as(world, r, role)
            except AssertionError as exc:  # a fresh row could not be made
                failures.append(f"{r.method} {r.path} as {role}: setup failed: {exc}")
                continue
            checked += 1
            if response.status_code != r.expect[role] and response.status_code not in r.also:
                failures.append(
                    f"{r.method} {r.path} as {role}: {response.status_code} "
                    f"(expected {r.expect[role]}) {response.text[:200]}"
                )
            elif response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
    print(f"authorisation matrix: {checked} calls, {len(RULES)} routes x {len(ROLES)} roles")
    assert not failures, "\n".join(failures)


async def test_no_key_and_a_revoked_key_get_401_everywhere(
    world: World, documents: dict[str, dict[str, Any]]
) -> None:
    revoked = await world.stack.key(team=TEAM, role=Role.ADMIN, name="to be revoked")
    assert (await world.http.get("/api/v1/me", headers=revoked.headers)).status_code == 200
    await world.ok("POST", f"/api/v1/keys/{revoked.id}/revoke", "admin")
    callers = {
        "no key": {},
        "revoked key": revoked.headers,
        "garbage": {"Authorization": "Bearer x"},
    }
    checked = 0
    for method, path in sorted(spec_routes(documents["aggregated"])):
        for name, headers in callers.items():
            response = await world.http.request(method, fill(path, world.ids), headers=headers)
            checked += 1
            expected = 200 if path in UNAUTHENTICATED else 401
            assert response.status_code == expected, f"{method} {path} with {name}: {response.text}"
            if expected == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
    print(f"no key / revoked key / garbage: {checked} calls")


def token(
    world: World, *, role: Role = Role.ADMIN, secret: str | None = None, age: float = 0
) -> str:
    """An identity token; `secret` other than the stack's forges it, `age` backdates it."""
    return sign_identity(
        Identity(subject="matrix", team=TEAM, role=role),
        secret=secret or world.stack.settings.identity_secret,
        ttl_seconds=60,
        now=time.time() - age,
    )


async def test_services_refuse_missing_expired_and_forged_identity_tokens(
    world: World, documents: dict[str, dict[str, Any]]
) -> None:
    stack = world.stack
    bad = {
        "no token": {},
        "expired token": {IDENTITY_HEADER: token(world, age=3600)},
        "forged token": {IDENTITY_HEADER: token(world, secret="not-the-secret-" * 3)},
        "garbage token": {IDENTITY_HEADER: "v1.e30.AAAA"},
    }
    checked = 0
    for service in ("intake", "escalation", "sop", "gateway"):
        routes = (
            INTERNAL_ROUTES["gateway"]
            if service == "gateway"
            else spec_routes(documents[service])
            | INTERNAL_ROUTES[service]
            | CALLER_INTERNAL_ROUTES.get(service, frozenset())
        )
        for method, path in sorted(routes):
            url = stack.urls[service] + fill(path, world.ids)
            for name, headers in bad.items():
                response = await world.http.request(method, url, headers=headers, json={})
                checked += 1
                expected = 200 if path in UNAUTHENTICATED else 401
                assert response.status_code == expected, (
                    f"{service} {method} {path} with {name}: {response.text}"
                )
    print(f"direct calls with missing/expired/forged tokens: {checked}")


async def test_internal_routes_are_for_the_worker_only(world: World) -> None:
    stack = world.stack
    failures: list[str] = []
    for service, routes in INTERNAL_ROUTES.items():
        for method, path in sorted(routes):
            url = stack.urls[service] + fill(path, world.ids)
            body = INTERNAL_BODIES.get(path, {})
            # A valid token of any role but `system` is refused.
            for role in tuple(Role)[:-1]:
                response = await world.http.request(
                    method, url, headers={IDENTITY_HEADER: token(world, role=role)}, json=body
                )
                if response.status_code != 403:
                    failures.append(f"{service} {method} {path} as {role}: {response.text}")
            # An API key, even an admin's, never reaches them through the gateway.
            through = await world.call(method, fill(path, world.ids), "admin", json=body)
            if through.status_code != (401 if service == "gateway" else 404):
                failures.append(f"{method} {path} through the gateway: {through.text}")
    assert not failures, "\n".join(failures)


async def test_partners_file_for_their_own_team_only(world: World) -> None:
    mine = await world.call(
        "POST", "/api/v1/requests", "other_partner", json={"request_type": "other", "title": "t"}
    )
    assert mine.status_code == 201
    assert mine.json()["team"] == world.keys["other_partner"].team
    theirs = await world.call(
        "POST",
        "/api/v1/requests",
        "other_partner",
        json={"request_type": "other", "title": "t", "team": TEAM},
    )
    assert theirs.status_code == 403
    # Lists never show another team's rows to a partner.
    listed = await world.ok("GET", "/api/v1/requests?limit=200", "other_partner")
    assert {item["team"] for item in listed["items"]} <= {world.keys["other_partner"].team}
