"""Contracts of the lifecycle's catch-up: reading from intake the events not yet signalled.

Before it raises an SLA breach, `RequestLifecycleWorkflow` asks intake (the source of truth) for
the request's events after the last version it applied, so a signal still waiting in the outbox
cannot make an on-time request look breached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.contracts import RequestEventSignal

ACTIVITY_FETCH_REQUEST_EVENTS = "fetch_request_events"


@dataclass
class FetchRequestEventsInput:
    """Input of `fetch_request_events`: events after `after_version` that occurred by `until`."""

    request_id: int
    after_version: int
    until: datetime
    trace_request_id: str | None = None


@dataclass
class FetchedRequestEvents:
    """The events intake holds that the workflow has not applied yet, oldest first."""

    events: list[RequestEventSignal] = field(default_factory=list)
