"""Hostile input: schemathesis generates calls for every operation of the aggregated OpenAPI
document and sends them THROUGH THE GATEWAY with an admin key and a partner key.

Checks on every response: never a 500 (nor any other undocumented 5xx), the status code is one
the operation documents, the content type is the documented one, and the body validates against
the documented schema. A 502/503/504 that the operation documents (a service or Temporal did not
answer in time, on a loaded machine) is a legitimate answer, but only a rare one: more than
`MAX_TRANSIENT_SHARE` of the calls fails the test.
`make test` runs a few examples per operation, the same ones every run; `make fuzz` runs many
new ones (`RISKDESK_FUZZ_EXAMPLES`, examples per operation and key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.common.identity import Role
from tests.security.stack import RunningStack

pytestmark = pytest.mark.timeout(1800)

EXAMPLES = int(os.environ.get("RISKDESK_FUZZ_EXAMPLES", "3"))
# `make test` replays the same few examples each run (a red build names a real change, not an
# unlucky draw); `make fuzz`, which sets RISKDESK_FUZZ_EXAMPLES, explores new ones every run.
DERANDOMIZE = "RISKDESK_FUZZ_EXAMPLES" not in os.environ
# Documented "try again" answers: the gateway's own (502, 504) and a service's (503).
TRANSIENT_STATUSES = frozenset({502, 503, 504})
MAX_TRANSIENT_SHARE = 0.05


@dataclass
class Tally:
    """How many calls were made, and which got a documented transient 5xx."""

    calls: int = 0
    transient: list[str] = field(default_factory=list)


def server_error_check(tally: Tally) -> Any:
    """`not_a_server_error`, except for a documented 502/503/504 problem (counted in `tally`).

    Whether it is documented is `status_code_conformance`'s check; this one insists on a
    problem document and keeps count: an operation whose every call got one fails, and so does
    a run where they are more than rare.
    """

    def not_an_unexpected_server_error(ctx: CheckContext, response: Any, case: Any) -> bool | None:
        tally.calls += 1
        if response.status_code in TRANSIENT_STATUSES:
            content_type = (response.headers.get("content-type") or [""])[0]
            assert content_type.startswith("application/problem+json"), (
                f"{case.operation.label}: {response.status_code} is not a problem document"
            )
            tally.transient.append(
                f"{case.operation.label}: {response.status_code} {response.text[:200]}"
            )
            return None
        return not_a_server_error(ctx, response, case)

    return not_an_unexpected_server_error


def checks_for(tally: Tally) -> list[Any]:
    """The checks of every generated call."""
    return [
        server_error_check(tally),
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


def fuzz_operation(
    operation: Any,
    *,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
    tally: Tally,
) -> str | None:
    """Run `EXAMPLES` generated calls of one operation; the first failure, or None."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the case as found
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, session=session, timeout=30)
        case.validate_response(response, checks=checks_for(tally), headers=headers)

    calls, transient = tally.calls, len(tally.transient)
    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports an exception group
        return f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}"
    if tally.calls > calls and len(tally.transient) - transient == tally.calls - calls:
        return f"{operation.label}: every call got a 5xx: {tally.transient[-1]}"
    return None


@pytest.mark.parametrize("role", [Role.ADMIN, Role.PARTNER])
def test_generated_calls_through_the_gateway_get_no_5xx_and_match_the_schema(
    security_stack: RunningStack, role: Role
) -> None:
    base_url = security_stack.gateway
    spec = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    assert "x-riskdesk-unavailable" not in spec["info"], spec["info"]
    schema = schemathesis.openapi.from_dict(spec)
    key = security_stack.run(security_stack.key(team="buyer-risk", role=role, name="fuzz"))
    failures: list[str] = []
    operations = 0
    tally = Tally()
    with requests.Session() as session:
        for result in cast(Any, schema.get_all_operations()):
            operation = result.ok()
            operations += 1
            failure = fuzz_operation(
                operation, base_url=base_url, headers=key.headers, session=session, tally=tally
            )
            if failure is not None:
                failures.append(failure)
    transient = tally.transient
    print(
        f"fuzzed {operations} operations x {EXAMPLES} examples as {role}: {tally.calls} calls, "
        f"{len(transient)} documented 502/503/504"
    )
    assert operations > 50
    assert not failures, f"{len(failures)} operations failed:\n" + "\n\n".join(failures)
    assert len(transient) <= MAX_TRANSIENT_SHARE * tally.calls, "\n".join(transient)
