"""The data the authorisation matrix runs against: one key per role and real rows of each kind.

Rows belong to the owning team (`TEAM`); a second partner key belongs to `OTHER_TEAM`. Everything
is created through the gateway with real keys, as a user would. `fresh_*` make a new row for a
call that changes state (a transition, an approval), so every role that may act starts from the
same state.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from services.common.identity import Role
from tests.security.stack import ApiKey, RunningStack

TEAM = "buyer-risk"
OTHER_TEAM = "seller-risk"
STAFF_TEAM = "risk-mining"
ROLES = ("partner", "other_partner", "analyst", "program_manager", "approver", "admin")
ROLE_OF = {
    "partner": Role.PARTNER,
    "other_partner": Role.PARTNER,
    "analyst": Role.ANALYST,
    "program_manager": Role.PROGRAM_MANAGER,
    "approver": Role.APPROVER,
    "admin": Role.ADMIN,
}
RCA = {
    "what_happened": "A refund ring reshipped parcels.",
    "impact": "40 accounts.",
    "five_whys": [
        {"problem": "Not caught", "steps": [{"why": "Why?", "because": "No rule on reships"}]}
    ],
    "root_cause_category": "rule_gap",
}


_SOP_NUMBERS = itertools.count(random.randint(1, 900_000))


def unique(prefix: str) -> str:
    """A name no other call of this run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_WEEKS = itertools.count(1)


def monday(weeks_ago: int | None = None) -> str:
    """The Monday of a past ISO week (by default one no earlier call used)."""
    weeks_ago = next(_WEEKS) if weeks_ago is None else weeks_ago
    today = date.today()
    return (today - timedelta(days=today.weekday(), weeks=weeks_ago)).isoformat()


@dataclass
class World:
    """Keys of every role, the ids of the rows the routes' path parameters name, and factories."""

    stack: RunningStack
    http: httpx.AsyncClient
    keys: dict[str, ApiKey] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        """The Authorization header of a role's key."""
        return self.keys[role].headers

    async def call(
        self, method: str, path: str, role: str, *, json: Any = None, **kwargs: Any
    ) -> httpx.Response:
        """Call the gateway as `role`."""
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, json=json, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, role: str, json: Any = None) -> dict[str, Any]:
        """Call and insist on a 2xx; the JSON body."""
        response = await self.call(method, path, role, json=json)
        assert response.is_success, f"{method} {path} as {role}: {response.text}"
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    async def etag(self, path: str) -> str:
        """The current ETag of a resource (read as admin)."""
        response = await self.call("GET", path, "admin")
        assert response.status_code == 200, response.text
        return response.headers["etag"]

    async def eventually(
        self, probe: Callable[[], Awaitable[dict[str, Any]]], check: Callable[[Any], bool]
    ) -> dict[str, Any]:
        """Poll `probe` until `check` holds (workflows act asynchronously)."""
        deadline = time.monotonic() + 60
        while True:
            value = await probe()
            if check(value):
                return value
            assert time.monotonic() < deadline, f"never held; last {value!r}"
            await asyncio.sleep(0.1)

    # --- rows -----------------------------------------------------------------------------

    async def fresh_request(self) -> dict[str, Any]:
        """A new request of the owning team, filed by its partner."""
        body = await self.ok(
            "POST",
            "/api/v1/requests",
            "partner",
            {"request_type": "mo_investigation", "title": unique("Refund abuse")},
        )
        return {"request_id": body["id"]}

    async def fresh_escalation(self) -> dict[str, Any]:
        """A new open Sev-2 escalation of the owning team."""
        body = await self.ok(
            "POST",
            "/api/v1/escalations",
            "analyst",
            {
                "source": "sev2_ticket",
                "severity": "sev2",
                "title": unique("Gift-card wave"),
                "owner": "owner-1",
                "team": TEAM,
            },
        )
        return {"escalation_id": body["id"]}

    async def fresh_pending_closure(self) -> dict[str, Any]:
        """An executive escalation waiting for closure approval (needs no RCA)."""
        body = await self.ok(
            "POST",
            "/api/v1/escalations",
            "analyst",
            {
                "source": "executive",
                "severity": "sev1",
                "title": unique("Exec ask"),
                "owner": "owner-1",
                "team": TEAM,
            },
        )
        path = f"/api/v1/escalations/{body['id']}/transitions"
        await self.ok("POST", path, "analyst", {"action": "request_closure"})
        return {"escalation_id": body["id"]}

    async def fresh_item(self) -> dict[str, Any]:
        """A new open action item of a new escalation."""
        escalation = await self.fresh_escalation()
        body = await self.ok(
            "POST",
            f"/api/v1/escalations/{escalation['escalation_id']}/action-items",
            "analyst",
            {"title": unique("Velocity rule"), "owner": "owner-1"},
        )
        return {"item_id": body["id"], **escalation}

    async def fresh_gap(self) -> dict[str, Any]:
        """A new identified gap owned by the owning team."""
        body = await self.ok(
            "POST", "/api/v1/gaps", "analyst", {"title": unique("Gap"), "owning_team": TEAM}
        )
        return {"gap_id": body["id"]}

    def sop_body(self) -> dict[str, Any]:
        """A new SOP whose only approver is the approver key."""
        return {
            "key": f"SOP-SEC-{next(_SOP_NUMBERS)}",
            "title": "Seller fraud",
            "owning_team": TEAM,
            "approval_policy": {
                "stages": [{"name": "reviewers", "approvers": [self.keys["approver"].id]}]
            },
            "content": "# Seller fraud\n",
        }

    async def fresh_sop(self) -> dict[str, Any]:
        """A new SOP with its first version a draft."""
        body = await self.ok("POST", "/api/v1/sops", "analyst", self.sop_body())
        return {"sop_id": body["id"], "number": 1}

    async def fresh_submitted(self) -> dict[str, Any]:
        """A new SOP whose first version waits for its approver."""
        sop = await self.fresh_sop()
        await self.ok("POST", f"/api/v1/sops/{sop['sop_id']}/versions/1/submit", "analyst")
        return sop

    async def fresh_approved(self) -> dict[str, Any]:
        """A new SOP whose first version is approved (ready to roll out)."""
        sop = await self.fresh_submitted()
        base = f"/api/v1/sops/{sop['sop_id']}/versions/1"
        await self.ok("POST", f"{base}/decisions", "approver", {"decision": "approve"})
        await self.eventually(
            lambda: self.ok("GET", base, "admin"), lambda v: v["status"] == "approved"
        )
        return sop

    async def fresh_effective(self) -> dict[str, Any]:
        """A new SOP whose first version is effective (rolled out and acknowledged)."""
        rollout = await self.fresh_rollout()
        await self.ok(
            "POST",
            f"/api/v1/rollouts/{rollout['rollout_id']}/acknowledgements",
            "program_manager",
            {"org": self.ids["org"]},
        )
        return rollout

    async def fresh_rollout(self) -> dict[str, Any]:
        """A rollout of a new approved version to one org."""
        sop = await self.fresh_approved()
        body = await self.ok(
            "POST",
            f"/api/v1/sops/{sop['sop_id']}/versions/1/rollouts",
            "program_manager",
            self.rollout_body(),
        )
        return {"rollout_id": body["id"], **sop}

    def rollout_body(self) -> dict[str, Any]:
        """One wave, one org, due in a week."""
        due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
        return {"waves": [{"orgs": [self.ids["org"]], "due_at": due}]}

    async def fresh_rule(self) -> dict[str, Any]:
        """A new rule of the owning team."""
        rule_id = unique("R").upper()
        await self.ok(
            "POST",
            "/api/v1/rules",
            "analyst",
            {"id": rule_id, "name": "Reship velocity", "owner": "owner-1", "team": TEAM},
        )
        return {"rule_id": rule_id}

    async def fresh_deprecation(self) -> dict[str, Any]:
        """A rule under a proposed deprecation."""
        rule = await self.fresh_rule()
        await self.ok(
            "POST",
            f"/api/v1/rules/{rule['rule_id']}/deprecation",
            "analyst",
            {"reason": "No hits", "monitoring_seconds": 1},
        )
        return rule

    async def fresh_awaiting_decision(self) -> dict[str, Any]:
        """A rule whose deprecation finished monitoring and waits for a decider."""
        rule = await self.fresh_deprecation()
        await self.eventually(
            lambda: self.ok("GET", f"/api/v1/rules/{rule['rule_id']}/deprecation", "admin"),
            lambda d: d["stage"] == "awaiting_approval",
        )
        return rule

    def initiative_body(self) -> dict[str, Any]:
        """An OP1 idea of the owning team (a partner may propose it as it is)."""
        return {
            "title": unique("Reship velocity rule"),
            "source_kind": "partner",
            "problem": "Reshipped parcels are refunded twice.",
            "proposal": "A velocity rule on reships.",
            "ai": False,
            "expected_benefit": {"accounts_protected_per_year": 40},
            "effort_person_weeks": "2",
            "confidence": "high",
            "team": TEAM,
        }

    async def fresh_initiative(self) -> dict[str, Any]:
        """A new proposed initiative of the owning team."""
        body = await self.ok("POST", "/api/v1/initiatives", "analyst", self.initiative_body())
        return {"initiative_id": body["id"]}

    async def fresh_key(self) -> dict[str, Any]:
        """A new partner key of the owning team."""
        key = await self.stack.key(team=TEAM, role=Role.PARTNER)
        return {"key_id": key.id}

    async def fresh_subscription(self) -> dict[str, Any]:
        """A new webhook subscription of the owning team."""
        body = await self.ok(
            "POST",
            "/api/v1/subscriptions",
            "partner",
            {
                "event_types": ["request.status_changed"],
                "channel": "webhook",
                "url": "https://hooks.example.com/riskdesk",
            },
        )
        return {"subscription_id": body["id"]}

    async def fresh_policy(self) -> dict[str, Any]:
        """A new SLA policy."""
        body = await self.ok("POST", "/api/v1/sla/policies", "admin", self.policy_body())
        return {"policy_id": body["id"]}

    def policy_body(self) -> dict[str, Any]:
        """A valid SLA policy with a new id."""
        return {
            "id": unique("pol"),
            "name": "Security test policy",
            "order": random.randint(100, 10**6),
            "priorities": ["P3"],
            "first_response_target": "PT1H",
            "resolution_target": "PT8H",
            "calendar_id": "24x7",
        }

    def calendar_body(self) -> dict[str, Any]:
        """A valid calendar with a new id."""
        return {
            "id": unique("cal"),
            "name": "Security test calendar",
            "calendar": {"timezone": "UTC", "always_open": True},
        }


async def build_world(stack: RunningStack, http: httpx.AsyncClient) -> World:
    """Keys of every role and one row of each kind, owned by `TEAM`."""
    world = World(stack=stack, http=http)
    for role in ROLES:
        team = TEAM if role == "partner" else OTHER_TEAM if role == "other_partner" else STAFF_TEAM
        world.keys[role] = await stack.key(team=team, role=ROLE_OF[role], name=f"matrix {role}")
    ids = world.ids
    # The MO first, and a request whose title matches it: the worker suggests the MO for it.
    token = uuid.uuid4().hex[:8]
    mo = await world.ok(
        "POST", "/api/v1/mos", "analyst", {"name": f"Reship ring {token}", "team": TEAM}
    )
    ids["mo_id"] = mo["id"]
    filed = await world.ok(
        "POST",
        "/api/v1/requests",
        "partner",
        {"request_type": "mo_investigation", "title": f"Reship ring {token} again"},
    )
    ids["request_id"] = filed["id"]
    comment = await world.ok(
        "POST", f"/api/v1/requests/{ids['request_id']}/comments", "partner", {"body": "More info"}
    )
    ids["comment_id"] = comment["id"]
    ids["request_type"] = "mo_investigation"
    ids["queue"] = "security-queue"
    ids["member"] = "analyst-1"
    ids.update(await world.fresh_item())
    ids.update(await world.fresh_gap())
    orgs = await world.call("GET", "/api/v1/orgs", "admin")
    ids["org"] = orgs.json()[0]["id"]
    ids.update(await world.fresh_rollout())
    ids.update(await world.fresh_deprecation())
    ids["deprecation_id"] = (
        await world.ok("GET", f"/api/v1/rules/{ids['rule_id']}/deprecation", "admin")
    )["id"]
    ids.update(await world.fresh_subscription())
    ids["delivery_id"] = 1
    ids["key_id"] = world.keys["partner"].id
    ids["calendar_id"] = "24x7"
    ids.update(await world.fresh_policy())
    ids["version_id"] = 1
    ids.update(await world.fresh_initiative())
    ids["handle"] = "owner-1"
    await world.ok(
        "PUT",
        f"/api/v1/people/{ids['handle']}",
        "admin",
        {"display_name": "Owner One", "email": "owner-1@example.com"},
    )
    ids["metric"] = "requests_filed"
    last_week = date.today() - timedelta(weeks=1)
    ids["week"] = f"{last_week.isocalendar().year}-W{last_week.isocalendar().week:02d}"
    # A first verdict is a 201 and later ones 200: give the pair one, so every role replaces it.
    suggestions = f"/api/v1/requests/{ids['request_id']}/mo-suggestions"
    await world.eventually(
        lambda: world.ok("GET", suggestions, "admin"),
        lambda s: s["status"] == "ready" and ids["mo_id"] in {i["mo_id"] for i in s["items"]},
    )
    await world.ok(
        "POST", f"{suggestions}/{ids['mo_id']}/decision", "admin", {"decision": "reject"}
    )
    return world
