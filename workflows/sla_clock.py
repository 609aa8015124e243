"""One SLA clock as a pure state machine: business time worked, deadline, warnings and breach.

No I/O and no clock reading: every operation takes the instant it happens at, and all arithmetic
goes through `services.common.business_time`, so the workflow (with `workflow.now()`) and the tests
(with any instant) get the same answers. The dataclass is what the workflow keeps and carries over
continue-as-new, so every field is plain data the pydantic converter round-trips.

Model. A clock counts business time on its calendar from `started_at`, minus its `pauses`, plus
`carried` (time worked before `started_at`, kept by a re-target). It is running, paused (since
`paused_since`), or stopped (at `stopped_at`). Rules, as ServiceNow and Jira SM apply them:

- A pause moves the deadline by exactly the business time it covered (it becomes a pause span).
- `stop` freezes the worked time; `resume_after_reopen` continues from there (the gap between the
  stop and the reopen is a pause), it does not restart.
- `retarget` (a priority change picked a new policy) keeps the time worked so far and measures it
  against the new target on the new calendar from now on; it bumps `generation` (event ids carry it,
  so a breach under the new target is a new event). Thresholds the worked time has already passed
  under the new target count as sent (no late warning for a line already crossed). If the worked
  time already exceeds the new target, an existing breach is kept, else the breach is due at once;
  if it is below the new target, a previous breach is cleared (the clock runs again, on time).
- A warning at threshold t fires when worked time reaches t% of the target; the breach fires at
  100%. Each fires once per generation: `warnings_sent` and `breached_at` are the durable record.
  `breached_at` is the deadline instant, even if the breach is noticed later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from services.common.business_time import ZERO, Calendar, add, elapsed

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
BREACH = "breach"
WARNING = "warning"
# Pauses kept as spans before they are folded into `carried` (keeps the arithmetic and the
# continue-as-new payload bounded however often a request waits on its requester).
MAX_PAUSE_SPANS = 16


class ClockState(StrEnum):
    """What the `sla` query reports for a clock."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    BREACHED = "breached"


@dataclass(frozen=True, slots=True)
class Alarm:
    """An instant at which a clock raises an event: a warning at `threshold` % or the breach."""

    at: datetime
    kind: str
    threshold: int | None = None


@dataclass
class Clock:
    """One SLA clock (`first_response` or `resolution`); see the module docstring."""

    name: str
    target: timedelta
    calendar: dict[str, Any]
    thresholds: list[int]
    started_at: datetime
    carried: timedelta = ZERO
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)
    paused_since: datetime | None = None
    stopped_at: datetime | None = None
    warnings_sent: list[int] = field(default_factory=list)
    breached_at: datetime | None = None
    generation: int = 0

    @classmethod
    def start(
        cls,
        *,
        name: str,
        target: timedelta,
        calendar: Mapping[str, Any],
        thresholds: Sequence[int],
        at: datetime,
    ) -> Clock:
        """A running clock from `at` (validates the calendar: raises CalendarError)."""
        spec = dict(calendar)
        _calendar(_key(spec))
        return cls(
            name=name,
            target=target,
            calendar=spec,
            thresholds=sorted({int(t) for t in thresholds if 0 < int(t) < 100}),
            started_at=at,
        )

    # --- reading -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Counting now: neither paused nor stopped."""
        return self.stopped_at is None and self.paused_since is None

    def state(self) -> ClockState:
        """Stopped wins over breached (a met-late clock is stopped); breached over paused."""
        if self.stopped_at is not None:
            return ClockState.STOPPED
        if self.breached_at is not None:
            return ClockState.BREACHED
        if self.paused_since is not None:
            return ClockState.PAUSED
        return ClockState.RUNNING

    def elapsed(self, at: datetime) -> timedelta:
        """Business time worked up to `at` (frozen while paused or stopped)."""
        end = at
        for frozen in (self.stopped_at, self.paused_since):
            if frozen is not None and frozen < end:
                end = frozen
        return self.carried + elapsed(self._cal(), self.started_at, end, self.pauses)

    def remaining(self, at: datetime) -> timedelta:
        """Target less worked time at `at`; negative once breached."""
        return self.target - self.elapsed(at)

    def due_at(self) -> datetime | None:
        """The deadline; None while paused (it moves until the clock resumes).

        A stopped clock reports the deadline it had when it stopped.
        """
        if self.paused_since is not None:
            return None
        return self._instant_of(self.target)

    def next_alarm(self) -> Alarm | None:
        """The earliest warning or breach not yet raised; None unless running."""
        if not self.running:
            return None
        for threshold in self.thresholds:
            if threshold not in self.warnings_sent:
                return Alarm(self._instant_of(self.target * threshold / 100), WARNING, threshold)
        if self.breached_at is None:
            return Alarm(self._instant_of(self.target), BREACH)
        return None

    def due_alarms(self, at: datetime) -> list[Alarm]:
        """Every pending alarm at or before `at`, in order (several after a long outage)."""
        due: list[Alarm] = []
        probe = replace(self, warnings_sent=list(self.warnings_sent))
        while (alarm := probe.next_alarm()) is not None and alarm.at <= at:
            due.append(alarm)
            probe.mark_raised(alarm)
        return due

    # --- changing ------------------------------------------------------------------------

    def mark_raised(self, alarm: Alarm) -> None:
        """Record that `alarm` was raised (its event is sent once, with a deterministic id)."""
        if alarm.kind == BREACH:
            self.breached_at = self.breached_at or alarm.at
        elif alarm.threshold is not None and alarm.threshold not in self.warnings_sent:
            self.warnings_sent = sorted([*self.warnings_sent, alarm.threshold])

    def pause(self, at: datetime) -> None:
        """Stop counting from `at` until `resume` (no effect unless running)."""
        if self.running:
            self.paused_since = max(at, self.started_at)

    def resume(self, at: datetime) -> None:
        """Count again from `at`; the paused span moves the deadline (no effect unless paused)."""
        if self.paused_since is None or self.stopped_at is not None:
            return
        self._add_pause(self.paused_since, at)
        self.paused_since = None

    def stop(self, at: datetime) -> None:
        """Stop for good (triage, first response, resolved, closed); a paused clock stays frozen."""
        if self.stopped_at is not None:
            return
        if self.paused_since is not None:
            # Frozen since the pause began: that is where worked time ends.
            self.stopped_at, self.paused_since = self.paused_since, None
            return
        self.stopped_at = max(at, self.started_at)

    def resume_after_reopen(self, at: datetime) -> None:
        """Continue a stopped clock from `at`, keeping its worked time (reopen does not restart)."""
        if self.stopped_at is None:
            return
        stopped, self.stopped_at = self.stopped_at, None
        self._add_pause(stopped, at)

    def retarget(
        self,
        *,
        target: timedelta,
        calendar: Mapping[str, Any],
        thresholds: Sequence[int],
        at: datetime,
    ) -> None:
        """Measure against a new target/calendar from `at`, keeping the time worked so far."""
        spec = dict(calendar)
        _calendar(_key(spec))
        worked = self.elapsed(at)
        was_paused, was_stopped = self.paused_since is not None, self.stopped_at is not None
        at = max(at, self.started_at)
        self.target, self.calendar, self.carried = target, spec, worked
        self.thresholds = sorted({int(t) for t in thresholds if 0 < int(t) < 100})
        self.started_at, self.pauses = at, []
        self.paused_since = at if was_paused else None
        self.stopped_at = at if was_stopped else None
        self.generation += 1
        self.warnings_sent = [t for t in self.thresholds if worked >= target * t / 100]
        if worked < target:
            self.breached_at = None

    # --- internals -----------------------------------------------------------------------

    def _cal(self) -> Calendar:
        return _calendar(_key(self.calendar))

    def _instant_of(self, worked: timedelta) -> datetime:
        """When the worked time reaches `worked` (counting on from the current segment)."""
        return add(self._cal(), self.started_at, max(worked - self.carried, ZERO), self.pauses)

    def _add_pause(self, begin: datetime, end: datetime) -> None:
        begin = max(begin, self.started_at)
        if end <= begin:
            return
        self.pauses.append((begin, end))
        if len(self.pauses) > MAX_PAUSE_SPANS:
            # Fold the spans into `carried`: same worked time, same deadline, less state.
            self.carried += elapsed(self._cal(), self.started_at, end, self.pauses)
            self.started_at, self.pauses = end, []


def _key(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=128)
def _calendar(key: str) -> Calendar:
    # Pure and deterministic (a parse of the spec), so caching it is safe in workflow code.
    return Calendar.from_spec(json.loads(key))
