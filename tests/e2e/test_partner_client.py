"""The partner client and `riskdesk request ...` against a real stack launched as `riskdesk up`
does (Temporal dev server, the four services, the worker), through the gateway with real keys."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskdesk.client import (
    AsyncRiskdeskClient,
    AuthenticationError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    RiskdeskClient,
    TransportError,
    ValidationError,
)
from riskdesk.temporal_server import free_port
from tests.e2e.test_stack import RunningStack, launch, stack_environment, stop

# On the embedded default only (`riskdesk up`'s SQLite): each stack start costs a minute, and
# PostgreSQL under a launched stack is covered by tests/e2e/test_stack.py, tests/faults and
# tests/security.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RISKDESK = str(Path(sys.executable).parent / "riskdesk")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One `riskdesk up` for every test of this module, on the embedded default (SQLite): a stack
    start costs a minute, and a launched stack on PostgreSQL is covered by tests/e2e/test_stack.py,
    tests/faults and tests/security."""
    database_url = None
    tmp_path = tmp_path_factory.mktemp("partner-client")
    running = launch(stack_environment(tmp_path, database_url), tmp_path / "up.log")
    try:
        yield running
    finally:
        stop(running.process)


def make_key(stack: RunningStack, *, team: str, role: str) -> str:
    response = httpx.post(
        f"{stack.gateway}/api/v1/keys",
        json={"name": f"client {role} {team}", "team": team, "role": role},
        headers={"Authorization": f"Bearer {stack.admin_key}"},
        timeout=15,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def cli(
    stack: RunningStack, key: str | None, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`riskdesk request ...` as a partner runs it: URL and key from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKDESK_")}
    env["RISKDESK_URL"] = stack.gateway
    if key is not None:
        env["RISKDESK_API_KEY"] = key
    return subprocess.run(
        [RISKDESK, "request", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_the_client_modules_import_without_the_services() -> None:
    code = (
        "import sys, riskdesk.client, riskdesk.client_cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('services', 'workflows'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_sync_client_files_lists_exports_and_raises_clear_errors(stack: RunningStack) -> None:
    team = f"client-{uuid.uuid4().hex[:6]}"
    partner_key = make_key(stack, team=team, role="partner")
    analyst_key = make_key(stack, team="risk-mining", role="analyst")
    with (
        RiskdeskClient(stack.gateway, api_key=partner_key) as client,
        RiskdeskClient(stack.gateway, api_key=analyst_key) as staff,
    ):
        first = client.file_request(
            request_type="mo_investigation",
            title="Gift card resale ring on new accounts",
            description="Fresh accounts buy gift cards with stolen cards and resell them.",
            external_refs=["JIRA-900"],
            tags=["gift-cards"],
            idempotency_key="client-test-1",
        )
        again = client.file_request(
            request_type="mo_investigation",
            title="Gift card resale ring on new accounts",
            description="Fresh accounts buy gift cards with stolen cards and resell them.",
            external_refs=["JIRA-900"],
            tags=["gift-cards"],
            idempotency_key="client-test-1",
        )
        assert again.id == first.id
        second = client.file_request(
            request_type="deep_dive", title="Resale of gift cards", external_refs=["jira-900"]
        )
        assert first.id in {m.id for m in second.similar}
        assert client.get_request(first.id).title == first.title
        assert [r.id for r in client.iter_requests(limit=1)] == [second.id, first.id]
        page = client.list_requests(q="gift", sort="created_at")
        assert [r.id for r in page.items] == [first.id, second.id]
        exported = b"".join(client.export_csv(tag="gift-cards")).decode()
        assert [int(r["id"]) for r in csv.DictReader(io.StringIO(exported))] == [first.id]
        similar = client.similar(first.id)
        assert second.id in {m.id for m in similar.similar}

        resolved = staff.transition(first.id, "triage")
        resolved = staff.transition(first.id, "start")
        resolved = staff.transition(first.id, "resolve", note="rules R-1, R-2 deployed")
        assert resolved.status == "resolved"
        reopened = client.reopen(first.id, reason="still seeing it in DE")
        assert reopened.status == "in_progress"
        staff.transition(first.id, "resolve")
        confirmed = client.confirm(first.id)
        assert (confirmed.status, confirmed.resolution) == ("closed", "done")

        # Every problem+json error is a typed exception with a clear message.
        with pytest.raises(InvalidTransitionError) as invalid:
            client.confirm(second.id)
        assert invalid.value.status == 409
        assert invalid.value.allowed_actions == []
        assert "allowed actions now" in invalid.value.message
        with pytest.raises(PermissionDeniedError) as forbidden:
            client.transition(second.id, "triage")
        assert "may not triage" in str(forbidden.value)
        with pytest.raises(ValidationError) as invalid_field:
            client.file_request(request_type="mo_investigation", title="")
        assert invalid_field.value.errors
        assert "title" in invalid_field.value.message
        with pytest.raises(NotFoundError):
            client.get_request(2_000_000_000)
        with pytest.raises(ValidationError) as bad_filter:
            client.list_requests(older_than="someday")
        assert "older_than" in bad_filter.value.message
    with (
        RiskdeskClient(stack.gateway, api_key="rk_not_a_key") as stranger,
        pytest.raises(AuthenticationError) as unauthenticated,
    ):
        stranger.list_requests()
    assert "check the API key" in unauthenticated.value.message
    with (
        RiskdeskClient(f"http://127.0.0.1:{free_port()}", api_key="x", timeout=2) as nowhere,
        pytest.raises(TransportError) as unreachable,
    ):
        nowhere.list_requests()
    assert "cannot reach riskdesk" in unreachable.value.message


async def test_async_client_mirrors_the_sync_one(stack: RunningStack) -> None:
    team = f"client-{uuid.uuid4().hex[:6]}"
    partner_key = make_key(stack, team=team, role="partner")
    async with AsyncRiskdeskClient(stack.gateway, api_key=partner_key) as client:
        filed = await client.file_request(request_type="data_request", title="Async filing")
        assert (await client.get_request(filed.id)).id == filed.id
        assert [r.id async for r in client.iter_requests()] == [filed.id]
        chunks = [chunk async for chunk in client.export_csv()]
        assert str(filed.id) in b"".join(chunks).decode()
        assert (await client.similar(filed.id)).request_id == filed.id
        with pytest.raises(InvalidTransitionError):
            await client.confirm(filed.id)
        with pytest.raises(NotFoundError):
            await client.similar(2_000_000_000)


def test_cli_files_lists_shows_confirms_reopens_and_imports(
    stack: RunningStack, tmp_path: Path
) -> None:
    team = f"cli-{uuid.uuid4().hex[:6]}"
    key = make_key(stack, team=team, role="partner")
    analyst = make_key(stack, team="risk-mining", role="analyst")

    filed = cli(stack, key, "file", "--type", "mo_investigation", "--title", "CLI filed ring",
                "--tag", "cli", "--ref", "JIRA-5", "--json")  # fmt: skip
    assert filed.returncode == 0, filed.stderr
    request_id = json.loads(filed.stdout)["id"]
    text = cli(stack, key, "file", "--type", "other", "--title", "CLI filed ring again",
               "--ref", "jira-5")  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert f"possible duplicate #{request_id}" in text.stdout

    listed = cli(stack, key, "list", "--q", "ring", "--sort", "created_at")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].startswith(f"#{request_id}")
    shown = cli(stack, key, "show", str(request_id), "--similar")
    assert shown.returncode == 0, shown.stderr
    assert "CLI filed ring" in shown.stdout
    assert "refs JIRA-5" in shown.stdout
    exported = tmp_path / "out.csv"
    assert cli(stack, key, "list", "--tag", "cli", "--csv", str(exported)).returncode == 0
    assert str(request_id) in exported.read_text()

    with RiskdeskClient(stack.gateway, api_key=analyst) as staff:
        for action in ("triage", "start", "resolve"):
            staff.transition(request_id, action)
    reopened = cli(stack, key, "reopen", str(request_id), "--reason", "not fixed")
    assert reopened.returncode == 0, reopened.stderr
    assert "in_progress" in reopened.stdout
    with RiskdeskClient(stack.gateway, api_key=analyst) as staff:
        staff.transition(request_id, "resolve")
    confirmed = cli(stack, key, "confirm", str(request_id))
    assert confirmed.returncode == 0, confirmed.stderr
    assert "closed (done)" in confirmed.stdout

    # Errors: a clear message on stderr, exit 1; no key at all is a usage error (2).
    refused = cli(stack, key, "confirm", str(request_id))
    assert refused.returncode == 1
    assert "409" in refused.stderr
    assert "allowed actions now: none" in refused.stderr
    missing = cli(stack, key, "show", "2000000000")
    assert missing.returncode == 1
    assert "404" in missing.stderr
    bad_key = cli(stack, "rk_wrong", "list")
    assert bad_key.returncode == 1
    assert "401" in bad_key.stderr
    no_key = cli(stack, None, "list", cwd=tmp_path)
    assert no_key.returncode == 2
    assert "no API key" in no_key.stderr

    # The key can also live in .riskdesk/api.key.
    (tmp_path / ".riskdesk").mkdir()
    (tmp_path / ".riskdesk" / "api.key").write_text(key + "\n")
    assert cli(stack, None, "show", str(request_id), cwd=tmp_path).returncode == 0

    # Import: good rows filed, bad rows reported with the reason, a re-run files nothing twice.
    source = tmp_path / "batch.csv"
    source.write_text(
        "request_type,title,description,priority,tags,external_refs\n"
        "mo_investigation,Imported one,first row,P1,imported;batch,JIRA-71\n"
        "deep_dive,,missing title,P2,,\n"
        "not_a_type,Imported three,,P2,,\n"
        "data_request,Imported four,,P3,imported,\n"
    )
    first = cli(stack, key, "import", str(source))
    assert first.returncode == 1, first.stderr
    assert "4/4 rows, 2 failed" in first.stderr
    assert "2 filed, 2 failed of 4 rows" in first.stderr
    assert "row 3: FAILED 422" in first.stdout
    assert "title" in first.stdout
    assert "row 4: FAILED 422" in first.stdout
    assert "request_type" in first.stdout
    filed_ids = sorted(
        int(line.split("#")[1].split()[0])
        for line in first.stdout.splitlines()
        if "filed #" in line
    )
    second = cli(stack, key, "import", str(source), "--json")
    assert second.returncode == 1
    report: dict[str, Any] = json.loads(second.stdout)
    assert sorted(row["id"] for row in report["filed"]) == filed_ids
    assert [row["row"] for row in report["failed"]] == [3, 4]
    with RiskdeskClient(stack.gateway, api_key=key) as client:
        assert len(client.list_requests(tag="imported").items) == 2

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("title,colour\nx,blue\n")
    refused_file = cli(stack, key, "import", str(unknown))
    assert refused_file.returncode == 2
    assert "unknown column(s) colour" in refused_file.stderr


def test_cli_comment(stack: RunningStack) -> None:
    key = make_key(stack, team=f"cli-{uuid.uuid4().hex[:6]}", role="partner")
    with RiskdeskClient(stack.gateway, api_key=key) as client:
        filed = client.file_request(request_type="other", title="Comment on me")
        probe = httpx.get(
            f"{stack.gateway}/api/v1/requests/{filed.id}/comments",
            headers={"Authorization": f"Bearer {key}"},
            timeout=15,
        )
    assert probe.status_code == 200, probe.text
    commented = cli(stack, key, "comment", str(filed.id), "Evidence in JIRA-12")
    assert commented.returncode == 0, commented.stderr
    assert f"commented on #{filed.id} (public)" in commented.stdout
    empty = cli(stack, key, "comment", str(filed.id), "  ")
    assert empty.returncode == 2
