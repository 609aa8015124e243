"""The partner client's initiative methods (sync and async) against the real gateway and intake
service under uvicorn, with real keys, on each database backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from riskdesk.client import (
    AsyncRiskdeskClient,
    AuthenticationError,
    Initiative,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    RiskdeskClient,
    ValidationError,
)
from services.common.identity import Role
from tests.security.conftest import security_settings
from tests.security.stack import RunningStack, running_stack

YEAR = 2031


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    temporal_address: str,
) -> Iterator[RunningStack]:
    """The gateway, the services and a worker in this process, for this module."""
    data_dir = tmp_path_factory.mktemp("client-initiatives") / "data"
    with running_stack(security_settings(request, backend, data_dir, temporal_address)) as running:
        yield running


def key(stack: RunningStack, *, team: str, role: Role) -> str:
    """A new API key's plaintext."""
    made = asyncio.run(stack.key(team=team, role=role, name="client initiatives"))
    return made.plaintext


def idea(**fields: Any) -> dict[str, Any]:
    """The fields of a valid proposal (overridable)."""
    return {
        "title": "Gift-card drain detector",
        "problem": "Gift-card balances are drained within minutes of an account takeover.",
        "proposal": "Score redemptions with a sequence model and hold the risky ones.",
        "ai": True,
        "expected_benefit": {
            "accounts_protected_per_year": 400,
            "money_saved_per_year": Decimal("250000.00"),
            "currency": "USD",
        },
        "effort_person_weeks": Decimal("10"),
        "confidence": "medium",
        **fields,
    }


def test_sync_client_proposes_edits_moves_and_plans_initiatives(stack: RunningStack) -> None:
    team = f"client-{uuid.uuid4().hex[:6]}"
    partner_key = key(stack, team=team, role=Role.PARTNER)
    pm_key = key(stack, team="program-office", role=Role.PROGRAM_MANAGER)
    other_key = key(stack, team=f"other-{uuid.uuid4().hex[:6]}", role=Role.PARTNER)
    with (
        RiskdeskClient(stack.gateway, api_key=partner_key) as client,
        RiskdeskClient(stack.gateway, api_key=pm_key) as pm,
        RiskdeskClient(stack.gateway, api_key=other_key) as other,
    ):
        first = client.propose_initiative(idempotency_key=f"idea-{team}", **idea())
        assert isinstance(first, Initiative)
        assert (first.team, first.status, first.source_kind) == (team, "proposed", "partner")
        assert first.expected_benefit.money_saved_per_year == Decimal("250000.00")
        assert first.score > 0
        # The same idempotency key answers with the first proposal, not a second one.
        again = client.propose_initiative(idempotency_key=f"idea-{team}", **idea())
        assert again.id == first.id
        small = client.propose_initiative(
            **idea(title="Coupon stacking rule", ai=False, confidence="high")
        )

        assert client.get_initiative(first.id).title == first.title
        page = client.list_initiatives(sort="-score", limit=1)
        assert len(page.items) == 1
        assert page.next_cursor is not None
        assert sorted(i.id for i in client.iter_initiatives(limit=1)) == sorted(
            [first.id, small.id]
        )
        assert [i.id for i in client.list_initiatives(ai=False).items] == [small.id]
        # Another team's partner neither lists nor reads them.
        assert other.list_initiatives().items == []
        with pytest.raises(NotFoundError):
            other.get_initiative(first.id)

        edited = client.update_initiative(
            first.id, version=first.version, title="Gift-card drain detector v2"
        )
        assert edited.title == "Gift-card drain detector v2"
        assert edited.version == first.version + 1
        with pytest.raises(PreconditionFailedError) as stale:
            client.update_initiative(first.id, version=first.version, title="lost update")
        assert stale.value.status == 412
        with pytest.raises(ValidationError) as invalid:
            client.update_initiative(first.id, version=edited.version, confidence="certain")
        assert any("confidence" in error["field"] for error in invalid.value.errors), (
            invalid.value.problem
        )

        with pytest.raises(PermissionDeniedError):
            client.transition_initiative(first.id, "shortlist")
        pm.transition_initiative(first.id, "shortlist")
        committed = pm.transition_initiative(first.id, "commit", target_quarter=f"{YEAR}-Q2")
        assert (committed.status, committed.target_quarter) == ("committed", f"{YEAR}-Q2")
        with pytest.raises(InvalidTransitionError) as wrong:
            pm.transition_initiative(first.id, "measure")
        assert "start" in wrong.value.allowed_actions

        roadmap = pm.roadmap(YEAR, team=team)
        assert roadmap.year == YEAR
        quarters = {quarter.quarter: quarter for quarter in roadmap.quarters}
        assert [item.id for item in quarters[f"{YEAR}-Q2"].items] == [first.id]
        assert roadmap.totals["initiatives"] == 1
        with pytest.raises(ValidationError):
            pm.roadmap(1900)
        with pytest.raises(NotFoundError):
            pm.get_initiative(10**9)
    with (
        RiskdeskClient(stack.gateway, api_key="rk_badbadba_" + "x" * 43) as stranger,
        pytest.raises(AuthenticationError),
    ):
        stranger.list_initiatives()


async def test_async_client_mirrors_the_sync_one(stack: RunningStack) -> None:
    team = f"client-{uuid.uuid4().hex[:6]}"
    partner = await stack.key(team=team, role=Role.PARTNER)
    pm = await stack.key(team="program-office", role=Role.PROGRAM_MANAGER)
    async with (
        AsyncRiskdeskClient(stack.gateway, api_key=partner.plaintext) as client,
        AsyncRiskdeskClient(stack.gateway, api_key=pm.plaintext) as staff,
    ):
        made = await client.propose_initiative(**idea(target_quarter=f"{YEAR}-Q3"))
        assert (await client.get_initiative(made.id)).id == made.id
        assert [i.id async for i in client.iter_initiatives(limit=1)] == [made.id]
        edited = await client.update_initiative(made.id, version=made.version, reach=5000)
        assert edited.reach == 5000
        with pytest.raises(PreconditionFailedError):
            await client.update_initiative(made.id, version=made.version, reach=1)
        await staff.transition_initiative(made.id, "shortlist")
        await staff.transition_initiative(made.id, "commit")
        dropped = await staff.transition_initiative(made.id, "drop", reason="Budget moved")
        assert (dropped.status, dropped.drop_reason) == ("dropped", "Budget moved")
        with pytest.raises(InvalidTransitionError):
            await staff.transition_initiative(made.id, "start")
        assert (await staff.roadmap(YEAR, team=team)).totals["initiatives"] == 0
        assert [i.id for i in (await staff.list_initiatives(team=team)).items] == [made.id]
        with pytest.raises(ValidationError):
            await client.propose_initiative(**idea(effort_person_weeks=0))
