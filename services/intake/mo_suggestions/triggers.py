"""When a request needs its MO suggestions (re)computed: filed, or title/description changed.

Called from the request's event writer (services/intake/service.py `_record_event`) in the same
transaction as the change: the outbox signals `RequestMoMatchingWorkflow`. Imports no use case
module, so the event writer can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.logging import current_request_id
from services.common.outbox import enqueue_signal
from services.intake.models import OutboxEvent
from workflows.mo_embedding_contracts import (
    REQUEST_MO_MATCHING_WORKFLOW,
    REQUEST_TEXT_CHANGED_SIGNAL,
    RequestMoMatchingInput,
    request_mo_matching_workflow_id,
)

TEXT_FIELDS = frozenset({"title", "description"})


def text_changed(*, kind: str, data: Mapping[str, Any]) -> bool:
    """Whether an event (`created`, or a change record `{"changes": {...}}`) changed the text."""
    if kind == "created":
        return True
    changes = data.get("changes")
    return isinstance(changes, Mapping) and not TEXT_FIELDS.isdisjoint(changes)


def enqueue_mo_matching(
    session: AsyncSession, *, request_id: int, task_queue: str, reason: str
) -> None:
    """Signal the request's MO-matching workflow (started if needed) in this transaction."""
    signal = RequestMoMatchingInput(
        request_id=request_id, reason=reason, trace_request_id=current_request_id()
    )
    enqueue_signal(
        session,
        OutboxEvent,
        workflow_id=request_mo_matching_workflow_id(request_id),
        workflow_type=REQUEST_MO_MATCHING_WORKFLOW,
        task_queue=task_queue,
        start_arg=signal,
        signal_name=REQUEST_TEXT_CHANGED_SIGNAL,
        signal_arg=signal,
    )
