"""Dataclasses that cross the service <-> workflow boundary (inputs, signals, query results).

Services build them and put them in outbox rows (serialised as JSON); workflows receive them
through the pydantic data converter. Every field added later must have a default, so rows already
waiting in an outbox, and histories already recorded, still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

REQUEST_LIFECYCLE_WORKFLOW = "RequestLifecycleWorkflow"
REQUEST_EVENT_SIGNAL = "request_event"
REQUEST_STATE_QUERY = "state"


def request_workflow_id(request_id: int) -> str:
    """The workflow id of a request's lifecycle (`request-<id>`)."""
    return f"request-{request_id}"


@dataclass
class RequestLifecycleCarry:
    """State a lifecycle run hands to its successor on continue-as-new."""

    seen_event_ids: list[str] = field(default_factory=list)
    events_seen: int = 0
    last_event_id: str | None = None
    version: int = 0


@dataclass
class RequestLifecycleInput:
    """Start argument of `RequestLifecycleWorkflow`: the request when the event happened."""

    request_id: int
    team: str
    request_type: str
    priority: str
    status: str
    carry: RequestLifecycleCarry | None = None


@dataclass
class RequestEventSignal:
    """One change of a request, delivered at least once; `event_id` identifies repeats."""

    event_id: str
    request_id: int
    kind: str
    action: str | None
    from_status: str | None
    to_status: str
    priority: str
    actor: str
    occurred_at: datetime
    trace_request_id: str | None = None
    # The request's version after this change: lets the workflow ignore an event older than one it
    # has already applied, even once its id has left the bounded dedup window.
    version: int = 0


@dataclass
class RequestLifecycleState:
    """What the `state` query (and the workflow's result) reports."""

    request_id: int
    status: str
    priority: str
    events_seen: int
    last_event_id: str | None
    version: int
