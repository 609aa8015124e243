"""The workflow's side of the SLA contracts, checked against the gateway's own schemas.

The gateway's resolve answer must parse into `SlaPolicy`, and the events the workflow publishes
must be accepted by the gateway's `EventIn`, so the three parts built apart still fit together.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from workflows.contracts import PublishSlaEventInput, SlaPolicy
from workflows.request_lifecycle import event_body

gateway_sla = pytest.importorskip("services.gateway.sla.schemas")
gateway_events = pytest.importorskip("services.gateway.notifications.schemas")


def test_the_gateway_resolution_parses_into_the_workflow_policy() -> None:
    resolved = gateway_sla.ResolvedPolicy(
        policy_id="p1-high",
        policy_name="P1",
        first_response_target="PT4H",
        resolution_target="PT24H",
        warning_thresholds=[50, 75, 90],
        pause_statuses=["waiting_on_requester"],
        auto_close_after=None,
        calendar_id="india",
        calendar={"timezone": "Asia/Kolkata", "always_open": True},
    )
    policy = TypeAdapter(SlaPolicy).validate_json(resolved.model_dump_json())
    assert policy == SlaPolicy(
        policy_id="p1-high",
        policy_name="P1",
        first_response_target="PT4H",
        resolution_target="PT24H",
        calendar_id="india",
        calendar={"timezone": "Asia/Kolkata", "always_open": True},
        warning_thresholds=[50, 75, 90],
        pause_statuses=["waiting_on_requester"],
        auto_close_after=None,
    )


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (
            "sla.warning",
            {
                "request_id": 7,
                "clock": "resolution",
                "threshold": 75,
                "due_at": "2026-12-01T10:00:00+00:00",
                "elapsed_seconds": 30.0,
                "target_seconds": 40.0,
            },
        ),
        (
            "sla.breached",
            {
                "request_id": 7,
                "clock": "first_response",
                "due_at": "2026-12-01T10:00:00+00:00",
                "breached_at": "2026-12-01T10:00:00+00:00",
            },
        ),
    ],
)
def test_published_events_are_what_the_gateway_accepts(kind: str, data: dict[str, object]) -> None:
    event = PublishSlaEventInput(
        event_id="request-7:resolution:warning:75:0",
        type=kind,
        team="buyer-risk",
        occurred_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        request_id=7,
        data=data,
    )
    accepted = gateway_events.EventIn.model_validate(event_body(event))
    assert accepted.event_id == event.event_id
    assert accepted.subject.model_dump() == {"kind": "request", "id": "7"}
    assert accepted.data == data
