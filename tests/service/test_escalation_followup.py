"""Follow-up end to end: action items filed through the API climb the overdue ladder, and the
real `publish_escalation_event` activity posts each notice once to a real HTTP receiver standing
in for the gateway's `POST /internal/events` (signed as the worker's system identity)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.identity import Role
from services.common.settings import Settings
from services.gateway.notifications.schemas import EVENT_TYPES, EventIn
from tests.service.test_escalation_api import eventually, running_escalation

ALWAYS_OPEN = {"timezone": "UTC", "always_open": True}


async def test_overdue_items_climb_the_ladder_once_each_and_stop_when_done(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    settings = make_settings(
        escalation_reminder_lead_seconds=1.0,
        escalation_ladder_delay_seconds=2.0,
        escalation_ladder_repeats=0,
    )
    analyst = identity_headers(team="risk-mining", role=Role.ANALYST)
    async with running_escalation(settings) as esc:
        escalation = await esc.raise_escalation(analyst, team=unique_team, program_manager="pm-7")
        eid = escalation["id"]
        due = datetime.now(UTC) + timedelta(seconds=3)
        items = [
            await esc.add_item(
                eid,
                analyst,
                title=f"item {n}",
                owner=f"owner-{n}",
                owner_manager=f"manager-{n}" if n < 2 else None,
                due_at=due.isoformat(),
                calendar=ALWAYS_OPEN,
            )
            for n in range(3)
        ]

        def ids() -> list[str]:
            return [c["event_id"] for c in esc.receiver.of(eid)]

        async def received() -> list[str]:
            return ids()

        # Item 0 is done before its ladder starts: only its reminder goes.
        await eventually(
            received, lambda got: f"escalation-{eid}:item-{items[0]['id']}:reminder:1" in got
        )
        done = await esc.act_item(items[0]["id"], analyst, "complete", evidence="shipped")
        assert done.status_code == 200, done.text

        expected: set[str] = set()
        for item in items:
            prefix = f"escalation-{eid}:item-{item['id']}"
            expected.add(f"{prefix}:reminder:1")
            if item is items[0]:
                continue
            levels = ["owner", "owner_manager", "program_manager"]
            if item["owner_manager"] is None:
                levels.remove("owner_manager")
            expected |= {f"{prefix}:ladder:{level}:1" for level in levels}
        await eventually(received, lambda got: expected <= set(got), within=60)
        # Wait one more ladder delay: nothing is sent twice, nothing more is sent.
        await asyncio.sleep(2.5)
        calls = esc.receiver.of(eid)
        assert sorted(ids()) == sorted(expected)
        assert {c["_caller_role"] for c in calls} == {"system"}
        # Every payload is one the gateway's `POST /internal/events` accepts.
        for call in calls:
            event = EventIn.model_validate({k: v for k, v in call.items() if k != "_caller_role"})
            assert event.type in EVENT_TYPES
        assert {c["team"] for c in calls} == {unique_team}
        by_item: dict[int, list[dict[str, Any]]] = {}
        for call in calls:
            by_item.setdefault(call["data"]["action_item_id"], []).append(call)
        # Each item's notices arrive in ladder order.
        for item in items[1:]:
            levels = [
                c["data"]["level"] for c in by_item[item["id"]] if c["type"] == "escalation.overdue"
            ]
            assert levels == (
                ["owner", "owner_manager", "program_manager"]
                if item["owner_manager"]
                else ["owner", "program_manager"]
            )
            recipients = [c["data"]["recipient"] for c in by_item[item["id"]]]
            assert recipients[-1] == "pm-7"
