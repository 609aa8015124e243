"""Demo data for the web console, seeded once by `riskdesk up` after the demo requests.

Every console page then shows something real: an SOP version waiting on the demo approver's
decision, an effective SOP rolled out to part of the orgs (so parity has laggards), a Sev-2
escalation with action items, and a detection rule that has not fired in months (a deprecation
candidate). Everything goes through the public API with the admin key, like a person would.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

APPROVER_TEAM = "site-leads"
APPROVER_KEY_NAME = "demo approver (riskdesk up)"
WAIT_SECONDS = 20.0


class DemoSeedError(Exception):
    """A demo call was refused; the launcher reports it and tries again on the next start."""


def key_id_of(plaintext: str) -> str:
    """The public id inside a key (`rk_<id>_<secret>`)."""
    return plaintext.split("_")[1]


async def _call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    key: str,
    body: dict[str, Any] | None = None,
    *,
    ok: tuple[int, ...] = (200, 201),
) -> Any:
    response = await client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {key}"}
    )
    if response.status_code not in ok:
        raise DemoSeedError(f"{method} {path} gave {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else None


async def _sop(
    client: httpx.AsyncClient, admin: str, approver_id: str, *, key: str, title: str, content: str
) -> dict[str, Any]:
    body = {
        "key": key,
        "title": title,
        "owning_team": "risk-mining",
        "approval_policy": {"stages": [{"name": "site leads", "approvers": [approver_id]}]},
        "content": content,
    }
    created: dict[str, Any] = await _call(client, "POST", "/api/v1/sops", admin, body)
    await _call(client, "POST", f"/api/v1/sops/{created['id']}/versions/1/submit", admin)
    return created


async def _wait_for_status(
    client: httpx.AsyncClient, admin: str, path: str, statuses: set[str]
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        version: dict[str, Any] = await _call(client, "GET", path, admin)
        if version["status"] in statuses:
            return version
        if time.monotonic() > deadline:
            raise DemoSeedError(f"{path} stayed {version['status']}")
        await asyncio.sleep(0.3)


async def seed_console_demo(
    client: httpx.AsyncClient, *, admin_key: str, approver_key: str, team: str
) -> None:
    """Create the console's demo data through the gateway `client` (not idempotent: run once)."""
    now = datetime.now(UTC)
    approver_id = key_id_of(approver_key)

    # An SOP version the demo approver has yet to decide on (the approval inbox).
    await _sop(
        client,
        admin_key,
        approver_id,
        key="SOP-GIFT-1",
        title="Gift-card resale investigation",
        content="# Gift-card resale\n1. Pull the buyer's last 30 days of gift-card orders.\n"
        "2. Link accounts by device and payment instrument.\n3. Escalate rings over 20 accounts.\n",
    )
    # An SOP approved, rolled out to every org and acknowledged by one (the parity matrix).
    rolled = await _sop(
        client,
        admin_key,
        approver_id,
        key="SOP-CHBK-2",
        title="Chargeback dispute triage",
        content="# Chargebacks\n1. Check the dispute reason code.\n2. Match against known MOs.\n",
    )
    version_path = f"/api/v1/sops/{rolled['id']}/versions/1"
    await _call(client, "POST", f"{version_path}/decisions", approver_key, {"decision": "approve"})
    await _wait_for_status(client, admin_key, version_path, {"approved"})
    orgs: list[dict[str, Any]] = await _call(client, "GET", "/api/v1/orgs", admin_key)
    if orgs:
        wave = {
            "orgs": [org["id"] for org in orgs],
            "due_at": (now + timedelta(days=7)).isoformat(),
        }
        rollout = await _call(
            client, "POST", f"{version_path}/rollouts", admin_key, {"waves": [wave]}
        )
        await _call(
            client,
            "POST",
            f"/api/v1/rollouts/{rollout['id']}/acknowledgements",
            admin_key,
            {"org": orgs[0]["id"], "training_completed": True},
        )

    # A Sev-2 escalation of the demo team with action items (the escalations board).
    escalation = await _call(
        client,
        "POST",
        "/api/v1/escalations",
        admin_key,
        {
            "source": "sev2_ticket",
            "severity": "sev2",
            "title": "Gift-card ring bypassed velocity limits",
            "summary": "Sev-2: 240 accounts bought gift cards with stolen cards over a weekend.",
            "external_ref": "SEV2-4711",
            "owner": "priya",
            "team": team,
        },
    )
    for title, owner, days in (
        ("Add device-link rule for new buyer accounts", "priya", 2),
        ("Backfill chargebacks of the affected accounts", "marco", 5),
        ("Write the COE document", "priya", 7),
    ):
        await _call(
            client,
            "POST",
            f"/api/v1/escalations/{escalation['id']}/action-items",
            admin_key,
            {"title": title, "owner": owner, "due_at": (now + timedelta(days=days)).isoformat()},
        )

    # A rule live for months that never fired (a deprecation candidate).
    await _call(
        client,
        "POST",
        "/api/v1/rules",
        admin_key,
        {
            "id": "R-042",
            "name": "Prepaid card BIN velocity (legacy)",
            "owner": "marco",
            "team": team,
            "description": "Superseded by the device-link rules; has not fired since deployment.",
            "deployed_at": (now - timedelta(days=200)).isoformat(),
        },
    )
