"""A small load generator for the fault tests: partners file requests, analysts work them.

Each actor loops: file a P1 request, then follow one of three plans for it (leave it `new` so its
first-response clock breaches, work it to `in_progress`, or work it to `closed`). Every POST
carries its own `Idempotency-Key`; an ambiguous failure (connection refused or cut, timeout,
502/503/504 while a part is down) is retried with the same key until it succeeds, so a call
that did commit before its answer was lost is answered from the first attempt, never done twice.
Every other answer is recorded as it is (the test asserts there are none).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Longer than any outage the tests cause: a call that cannot succeed by then is a failure.
GIVE_UP_SECONDS = 120.0
PLANS: dict[str, tuple[str, ...]] = {
    "idle": (),
    "working": ("triage", "start"),
    "closed": ("triage", "start", "resolve", "close"),
}
FINAL_STATUS = {"idle": "new", "working": "in_progress", "closed": "closed"}


@dataclass
class Filed:
    """A request the gateway accepted (2xx) and what the load did with it."""

    id: int
    title: str
    plan: str
    created_at: str
    actions_done: list[str] = field(default_factory=list)

    @property
    def final_status(self) -> str:
        """The status the request must end in, given the actions that were accepted."""
        if len(self.actions_done) == len(PLANS[self.plan]):
            return FINAL_STATUS[self.plan]
        return "unfinished"


@dataclass
class Refusal:
    """A call answered with something other than success or a retryable failure."""

    what: str
    status: int
    body: str


@dataclass
class LoadGenerator:
    """Files and transitions requests through the gateway until stopped."""

    client: httpx.AsyncClient
    partner_key: str
    analyst_key: str
    actors: int = 3
    pause_seconds: float = 0.1
    filed: dict[int, Filed] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    _successes: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> None:
        """Start the actors in the background."""
        self._tasks = [asyncio.create_task(self._actor()) for _ in range(self.actors)]

    async def stop(self) -> None:
        """Let each actor finish the request it is on, then return."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def accepted_since(self, instant: float) -> int:
        """How many successful answers arrived after `instant` (unix time)."""
        return sum(1 for at in self._successes if at >= instant)

    async def _post(self, what: str, path: str, key: str, body: dict[str, Any]) -> Any:
        """POST with one Idempotency-Key, retried while the answer is ambiguous; None if refused."""
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while True:
            try:
                response = await self.client.post(path, json=body, headers=headers)
            except httpx.TransportError as error:
                self.answers[type(error).__name__] += 1
            else:
                self.answers[str(response.status_code)] += 1
                if response.is_success:
                    self._successes.append(time.time())
                    return response.json()
                if response.status_code not in RETRYABLE_STATUSES:
                    self.refusals.append(Refusal(what, response.status_code, response.text))
                    return None
            if time.monotonic() > give_up:
                self.refusals.append(Refusal(what, 0, "gave up retrying"))
                return None
            self.retries += 1
            await asyncio.sleep(0.2)

    async def _actor(self) -> None:
        while not self._stop.is_set():
            number = next(self._numbers)
            plan = list(PLANS)[number % len(PLANS)]
            title = f"Fault-load request {uuid.uuid4().hex[:12]}"
            body = {"request_type": "mo_investigation", "title": title, "priority": "P1"}
            created = await self._post("file", "/api/v1/requests", self.partner_key, body)
            if created is None:
                continue
            filed = Filed(int(created["id"]), title, plan, str(created["created_at"]))
            self.filed[filed.id] = filed
            for action in PLANS[plan]:
                await asyncio.sleep(self.pause_seconds)
                key = self.partner_key if action == "close" else self.analyst_key
                path = f"/api/v1/requests/{filed.id}/transitions"
                if await self._post(action, path, key, {"action": action}) is None:
                    break
                filed.actions_done.append(action)
            await asyncio.sleep(self.pause_seconds)
