"""Runs recorded before the SLA clocks existed still replay on today's workflow code.

`request_lifecycle_before_sla.json` is the history of a request (filed, triaged, started,
resolved, closed) run by the workflow as it was before the SLA slice. Today's code must take the
old path for it (`workflow.patched`), or a worker upgrade would fail every request in flight.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.request_lifecycle import RequestLifecycleWorkflow
from workflows.sandbox import workflow_runner

HISTORY = Path(__file__).parent / "histories" / "request_lifecycle_before_sla.json"
# A request (filed, triaged, resolution warning and breach, rejected) run by the workflow as it was
# before the catch-up from intake before a breach: today's code must replay its breach unchanged.
BREACH_HISTORY = (
    Path(__file__).parent / "histories" / "request_lifecycle_breach_before_catch_up.json"
)


async def test_a_history_from_before_the_sla_clocks_replays() -> None:
    history = WorkflowHistory.from_json("request-77", HISTORY.read_text())
    replayer = Replayer(
        workflows=[RequestLifecycleWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_a_breach_from_before_the_catch_up_replays() -> None:
    history = WorkflowHistory.from_json("request-78", BREACH_HISTORY.read_text())
    replayer = Replayer(
        workflows=[RequestLifecycleWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
