"""Secrets never reach the logs, keys and tokens are compared in constant time, and webhook
signatures carry a timestamp that bounds replays.

The log test drives the stack at DEBUG level: keys made by the CLI path and by the API, calls
with good, wrong and revoked keys, a subscription with its webhook secret and a real delivery to
a receiver, while every log line (structlog and stdlib, every service, the worker) is captured;
then no API key, webhook secret or identity token may appear in them.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import logging
import re
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO, cast

import httpx
import pytest
import structlog

from riskdesk.temporal_server import free_port
from services.common import identity, webhook_signature
from services.common.identity import Role
from services.gateway.keys import service as keys_service
from tests.security.conftest import SECRETS_NAMESPACE, scratch_database, settings_on
from tests.security.stack import RunningStack, running_stack

pytestmark = pytest.mark.timeout(240)

KEY_PATTERN = re.compile(r"rk_[a-z0-9]{8}_[A-Za-z0-9_-]{16,}")
TOKEN_PATTERN = re.compile(r"v1\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{40,}")
WEBHOOK_SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9_-]{16,}")


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every POST (headers and raw body)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                calls.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def debug_stack(
    tmp_path_factory: pytest.TempPathFactory, security_temporal: str
) -> Iterator[RunningStack]:
    """A stack logging at DEBUG, so the most there is to log is logged."""
    with scratch_database() as database_url:
        settings = settings_on(
            database_url,
            tmp_path_factory.mktemp("secrets") / "data",
            security_temporal,
            log_level="DEBUG",
            webhook_allow_private_targets=True,
            temporal_namespace=SECRETS_NAMESPACE,
        )
        with running_stack(settings) as stack:
            yield stack


class LogCapture:
    """Every log line from now on, as the configured renderers write them (JSON lines)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self._lock = threading.Lock()

    def __enter__(self) -> LogCapture:
        self._previous_factory = structlog.get_config()["logger_factory"]
        # Same processors (so the same JSON), written here as well as to the usual stream.
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(cast(TextIO, self._Tee(self)))
        )
        root = logging.getLogger()
        self.handler = logging.StreamHandler(self._Tee(self))
        self.handler.setFormatter(root.handlers[0].formatter if root.handlers else None)
        root.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        structlog.configure(logger_factory=self._previous_factory)
        logging.getLogger().removeHandler(self.handler)

    class _Tee(io.TextIOBase):
        def __init__(self, capture: LogCapture) -> None:
            self.capture = capture

        def write(self, text: str) -> int:
            with self.capture._lock:
                self.capture.buffer.write(text)
            return len(text)

        def flush(self) -> None:
            pass

    @property
    def text(self) -> str:
        with self._lock:
            return self.buffer.getvalue()


async def test_no_key_webhook_secret_or_identity_token_is_ever_logged(
    debug_stack: RunningStack,
) -> None:
    stack = debug_stack
    secrets: list[str] = []
    with Receiver() as receiver, LogCapture() as logs:
        async with httpx.AsyncClient(base_url=stack.gateway, timeout=30) as http:
            admin = await stack.key(team="risk-mining", role=Role.ADMIN, name="secrets admin")
            secrets.append(admin.plaintext)
            made = await http.post(
                "/api/v1/keys",
                json={"name": "secrets partner", "team": "buyer-risk", "role": "partner"},
                headers=admin.headers,
            )
            assert made.status_code == 201, made.text
            partner_key = made.json()["key"]
            partner = {"Authorization": f"Bearer {partner_key}"}
            secrets.append(partner_key)

            subscription = await http.post(
                "/api/v1/subscriptions",
                json={
                    "event_types": ["request.status_changed"],
                    "channel": "webhook",
                    "url": receiver.url,
                },
                headers=partner,
            )
            assert subscription.status_code == 201, subscription.text
            webhook_secret = subscription.json()["secret"]
            secrets.append(webhook_secret)

            filed = await http.post(
                "/api/v1/requests",
                json={"request_type": "mo_investigation", "title": "Secrets test"},
                headers=partner,
            )
            assert filed.status_code == 201, filed.text
            request_id = filed.json()["id"]
            triaged = await http.post(
                f"/api/v1/requests/{request_id}/transitions",
                json={"action": "triage"},
                headers=admin.headers,
            )
            assert triaged.status_code == 200, triaged.text

            # Wrong secrets are not logged either: a right id with a wrong secret, garbage.
            wrong = partner_key[:-4] + ("AAAA" if not partner_key.endswith("AAAA") else "BBBB")
            secrets.append(wrong)
            for bad in (wrong, "rk_garbage0_" + "x" * 40):
                refused = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {bad}"})
                assert refused.status_code == 401
            # A revoked key, used after its revocation.
            revoke = await http.post(
                f"/api/v1/keys/{made.json()['id']}/revoke", headers=admin.headers
            )
            assert revoke.status_code == 200, revoke.text
            assert (await http.get("/api/v1/me", headers=partner)).status_code == 401

            deadline = time.monotonic() + 30
            while not receiver.calls:
                assert time.monotonic() < deadline, "the webhook never arrived"
                await asyncio.sleep(0.1)

    headers, body = receiver.calls[0]
    signature = headers.get(webhook_signature.SIGNATURE_HEADER) or ""
    assert webhook_signature.verify(webhook_secret, signature, body)
    signed_at = int(dict(p.split("=", 1) for p in signature.split(","))["t"])
    assert abs(time.time() - signed_at) < 60
    # The same delivery replayed past the window is refused by the documented check.
    assert not webhook_signature.verify(webhook_secret, signature, body, now=signed_at + 301)

    text = logs.text
    # The capture saw the calls (else the test could not fail): the key ids are logged.
    assert f'"key_id": "{admin.id}"' in text
    assert "http_request" in text
    assert len(text.splitlines()) > 30
    leaked = [line for line in text.splitlines() if any(secret in line for secret in secrets)]
    assert not leaked, "secrets in the logs:\n" + "\n".join(leaked[:5])
    assert not KEY_PATTERN.findall(text), "an API key in the logs"
    assert not TOKEN_PATTERN.findall(text), "an identity token in the logs"
    assert not WEBHOOK_SECRET_PATTERN.findall(text), "a webhook secret in the logs"
    assert webhook_secret[6:] not in text


def _calls(function: Any) -> set[str]:
    """Names of the functions `function` calls (attribute calls by their attribute name)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
            elif isinstance(node.func, ast.Name):
                names.add(node.func.id)
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            names.add("==")
    return names


@pytest.mark.parametrize(
    "function",
    [keys_service.verify_key, identity.verify_identity, webhook_signature.verify],
    ids=["api key", "identity token", "webhook signature"],
)
def test_secrets_are_compared_in_constant_time(function: Any) -> None:
    calls = _calls(function)
    assert "compare_digest" in calls, f"{function.__name__} does not use hmac.compare_digest"


def test_a_key_is_checked_by_its_hash_not_its_text() -> None:
    source = inspect.getsource(keys_service.verify_key)
    assert "compare_digest(key.key_hash, hash_key(plaintext))" in source


def test_a_signature_outside_the_replay_window_is_refused() -> None:
    body = b'{"id": "e1"}'
    now = time.time()
    header = webhook_signature.sign("whsec_test", body, int(now))
    assert webhook_signature.verify("whsec_test", header, body, now=now)
    assert webhook_signature.verify("whsec_test", header, body, now=now + 299)
    assert not webhook_signature.verify("whsec_test", header, body, now=now + 301)
    assert not webhook_signature.verify("whsec_test", header, body, now=now - 301)
    assert not webhook_signature.verify("whsec_test", header.replace("t=", "t=1"), body, now=now)
    assert webhook_signature.DEFAULT_TOLERANCE_SECONDS == 300
