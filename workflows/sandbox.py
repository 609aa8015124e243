"""The workflow sandbox every riskdesk worker runs workflows in.

Business calendars (`services.common.business_time`, used by the SLA clocks inside workflow code)
load public holidays lazily, per country and year, from `holidays`, which imports `dateutil`.
Imported inside the sandbox they trip its restrictions (dateutil reads `time.localtime()` at
import). Both are deterministic, so they are passed through: imported once, outside the sandbox.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = ("holidays", "dateutil")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandboxed runner with the pass-through modules riskdesk's workflows need."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
