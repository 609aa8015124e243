"""The pure SLA clock: deadlines, pauses, stop/reopen, re-target, alarms, and its serialisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from services.common.business_time import Calendar, CalendarError, add, elapsed
from workflows.sla_clock import (
    BREACH,
    MAX_PAUSE_SPANS,
    RESOLUTION,
    WARNING,
    Alarm,
    Clock,
    ClockState,
)

ALWAYS = {"timezone": "UTC", "always_open": True}
INDIA = {
    "timezone": "Asia/Kolkata",
    "hours": {day: [["09:30", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "IN", "subdivision": None},
    "closed_dates": [],
}
T0 = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # a Tuesday, 09:30 in Kolkata
S = timedelta(seconds=1)
H = timedelta(hours=1)


def clock(
    target: timedelta = 100 * S,
    calendar: dict[str, Any] = ALWAYS,
    thresholds: tuple[int, ...] = (50, 75, 90),
    at: datetime = T0,
) -> Clock:
    return Clock.start(
        name=RESOLUTION, target=target, calendar=calendar, thresholds=thresholds, at=at
    )


def test_a_running_clock_warns_at_each_threshold_then_breaches_once() -> None:
    c = clock()
    assert c.state() is ClockState.RUNNING
    assert c.due_at() == T0 + 100 * S
    assert c.elapsed(T0 + 30 * S) == 30 * S
    assert c.remaining(T0 + 30 * S) == 70 * S
    assert c.next_alarm() == Alarm(T0 + 50 * S, WARNING, 50)
    assert c.due_alarms(T0 + 49 * S) == []
    fired = c.due_alarms(T0 + 95 * S)
    assert [(a.kind, a.threshold, a.at) for a in fired] == [
        (WARNING, 50, T0 + 50 * S),
        (WARNING, 75, T0 + 75 * S),
        (WARNING, 90, T0 + 90 * S),
    ]
    # due_alarms only looks: nothing is recorded until mark_raised.
    assert c.warnings_sent == []
    for alarm in fired:
        c.mark_raised(alarm)
        c.mark_raised(alarm)  # a repeat records nothing more
    assert c.warnings_sent == [50, 75, 90]
    assert c.next_alarm() == Alarm(T0 + 100 * S, BREACH)
    # The breach is the deadline instant, even when noticed late.
    (breach,) = c.due_alarms(T0 + 500 * S)
    c.mark_raised(breach)
    assert c.breached_at == T0 + 100 * S
    assert c.state() is ClockState.BREACHED
    assert c.next_alarm() is None
    assert c.due_alarms(T0 + 10_000 * S) == []
    assert c.remaining(T0 + 130 * S) == -30 * S


def test_thresholds_are_normalised() -> None:
    c = clock(thresholds=(90, 50, 50, 0, 100, 120))
    assert c.thresholds == [50, 90]
    assert clock(thresholds=()).next_alarm() == Alarm(T0 + 100 * S, BREACH)


def test_a_pause_moves_the_deadline_by_the_time_it_covered() -> None:
    c = clock()
    c.pause(T0 + 20 * S)
    assert c.state() is ClockState.PAUSED
    assert c.due_at() is None
    assert c.next_alarm() is None
    assert c.due_alarms(T0 + 10_000 * S) == []
    assert c.elapsed(T0 + 60 * S) == 20 * S
    c.pause(T0 + 30 * S)  # already paused: no effect
    c.resume(T0 + 50 * S)
    assert c.state() is ClockState.RUNNING
    assert c.pauses == [(T0 + 20 * S, T0 + 50 * S)]
    assert c.due_at() == T0 + 130 * S
    assert c.elapsed(T0 + 60 * S) == 30 * S
    assert c.next_alarm() == Alarm(T0 + 80 * S, WARNING, 50)
    c.resume(T0 + 70 * S)  # not paused: no effect
    assert c.due_at() == T0 + 130 * S


def test_a_pause_outside_business_hours_moves_nothing() -> None:
    c = clock(target=2 * H, calendar=INDIA)
    assert c.due_at() == T0 + 2 * H
    # 19:00-21:00 Kolkata the same day: closed anyway.
    c.pause(T0 + 9 * H + 30 * timedelta(minutes=1))
    c.resume(T0 + 11 * H + 30 * timedelta(minutes=1))
    assert c.due_at() == T0 + 2 * H


def test_business_calendar_deadline_spans_nights_and_weekends() -> None:
    # 8.5 business hours a day: 10 hours from Friday 09:30 ends Monday 11:00 Kolkata.
    friday = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    c = clock(target=10 * H, calendar=INDIA, at=friday)
    assert c.due_at() == datetime(2026, 12, 7, 5, 30, tzinfo=UTC)
    assert c.next_alarm() == Alarm(friday + 5 * H, WARNING, 50)
    # Saturday: nothing more worked than by Friday's close.
    assert c.elapsed(datetime(2026, 12, 5, 10, 0, tzinfo=UTC)) == timedelta(hours=8, minutes=30)


def test_stop_freezes_and_reopen_continues_rather_than_restarts() -> None:
    c = clock()
    c.stop(T0 + 40 * S)
    assert c.state() is ClockState.STOPPED
    assert c.elapsed(T0 + 1000 * S) == 40 * S
    assert c.next_alarm() is None
    assert c.due_at() == T0 + 100 * S  # the deadline it had
    c.stop(T0 + 60 * S)  # already stopped
    assert c.stopped_at == T0 + 40 * S
    c.resume_after_reopen(T0 + 140 * S)
    assert c.state() is ClockState.RUNNING
    assert c.elapsed(T0 + 150 * S) == 50 * S
    assert c.due_at() == T0 + 200 * S
    c.resume_after_reopen(T0 + 160 * S)  # not stopped: no effect
    assert c.due_at() == T0 + 200 * S


def test_stop_while_paused_ends_at_the_pause() -> None:
    c = clock()
    c.pause(T0 + 10 * S)
    c.stop(T0 + 50 * S)
    assert c.state() is ClockState.STOPPED
    assert c.paused_since is None
    assert c.elapsed(T0 + 60 * S) == 10 * S
    c.resume(T0 + 70 * S)  # a stopped clock does not resume on a status change
    assert c.state() is ClockState.STOPPED
    c.resume_after_reopen(T0 + 70 * S)
    assert c.elapsed(T0 + 80 * S) == 20 * S


def test_a_stopped_breached_clock_reports_stopped_with_its_breach() -> None:
    c = clock(thresholds=())
    for alarm in c.due_alarms(T0 + 150 * S):
        c.mark_raised(alarm)
    c.stop(T0 + 160 * S)
    assert c.state() is ClockState.STOPPED
    assert c.breached_at == T0 + 100 * S


def test_retarget_keeps_elapsed_and_counts_crossed_thresholds_as_sent() -> None:
    c = clock(target=100 * S)
    c.mark_raised(Alarm(T0 + 50 * S, WARNING, 50))
    c.retarget(target=200 * S, calendar=ALWAYS, thresholds=(25, 50, 75), at=T0 + 60 * S)
    assert c.generation == 1
    assert c.elapsed(T0 + 60 * S) == 60 * S
    assert c.elapsed(T0 + 70 * S) == 70 * S
    # 60 s worked of 200: 25 % (50 s) is passed, counted as sent; 50 % (100 s) is ahead.
    assert c.warnings_sent == [25]
    assert c.due_at() == T0 + 200 * S
    assert c.next_alarm() == Alarm(T0 + 100 * S, WARNING, 50)


def test_retarget_below_the_worked_time_breaches_at_once() -> None:
    c = clock(target=100 * S, thresholds=(50,))
    c.retarget(target=30 * S, calendar=ALWAYS, thresholds=(50,), at=T0 + 40 * S)
    assert c.warnings_sent == [50]
    assert c.next_alarm() == Alarm(T0 + 40 * S, BREACH)
    c.mark_raised(c.due_alarms(T0 + 40 * S)[0])
    assert c.breached_at == T0 + 40 * S
    # A second re-target still over the target keeps the breach; a longer one clears it.
    c.retarget(target=35 * S, calendar=ALWAYS, thresholds=(50,), at=T0 + 45 * S)
    assert (c.breached_at, c.generation) == (T0 + 40 * S, 2)
    c.retarget(target=100 * S, calendar=ALWAYS, thresholds=(50,), at=T0 + 50 * S)
    assert c.breached_at is None
    assert c.state() is ClockState.RUNNING
    assert c.due_at() == T0 + 100 * S


def test_retarget_onto_another_calendar_counts_on_there() -> None:
    c = clock(target=4 * H, calendar=ALWAYS, at=T0)
    # Retarget after one hour worked onto India hours: 3 business hours from 10:30 Kolkata.
    c.retarget(target=4 * H, calendar=INDIA, thresholds=(), at=T0 + H)
    assert c.due_at() == T0 + 4 * H
    c2 = clock(target=10 * H, calendar=ALWAYS, at=T0)
    c2.retarget(target=10 * H, calendar=INDIA, thresholds=(), at=T0 + H)
    # 9 hours left on India hours: 7.5 today (10:30-18:00), 1.5 tomorrow (09:30-11:00).
    assert c2.due_at() == datetime(2026, 12, 2, 5, 30, tzinfo=UTC)


def test_retarget_of_paused_and_stopped_clocks_keeps_them_so() -> None:
    paused = clock()
    paused.pause(T0 + 10 * S)
    paused.retarget(target=50 * S, calendar=ALWAYS, thresholds=(), at=T0 + 30 * S)
    assert paused.state() is ClockState.PAUSED
    assert paused.elapsed(T0 + 100 * S) == 10 * S
    paused.resume(T0 + 40 * S)
    assert paused.due_at() == T0 + 80 * S
    stopped = clock()
    stopped.stop(T0 + 10 * S)
    stopped.retarget(target=50 * S, calendar=ALWAYS, thresholds=(), at=T0 + 30 * S)
    assert stopped.state() is ClockState.STOPPED
    assert stopped.elapsed(T0 + 100 * S) == 10 * S


def test_bad_calendars_are_refused() -> None:
    with pytest.raises(CalendarError):
        clock(calendar={"timezone": "Mars/Olympus"})
    c = clock()
    with pytest.raises(CalendarError):
        c.retarget(target=S, calendar={"timezone": "UTC", "hours": {}}, thresholds=(), at=T0)
    assert c.generation == 0  # unchanged


def test_many_pauses_fold_without_changing_the_deadline() -> None:
    c = clock(target=10 * H, calendar=INDIA)
    spans = []
    for index in range(MAX_PAUSE_SPANS * 3):
        begin = T0 + index * 10 * timedelta(minutes=1)
        c.pause(begin)
        c.resume(begin + timedelta(minutes=5))
        spans.append((begin, begin + timedelta(minutes=5)))
    assert len(c.pauses) <= MAX_PAUSE_SPANS
    cal = Calendar.from_spec(INDIA)
    assert c.due_at() == add(cal, T0, 10 * H, spans)
    at = T0 + 30 * H
    assert c.elapsed(at) == elapsed(cal, T0, at, spans)


def test_the_clock_round_trips_through_the_data_converter_types() -> None:
    c = clock(calendar=INDIA)
    c.pause(T0 + H)
    c.resume(T0 + 2 * H)
    c.mark_raised(Alarm(T0, WARNING, 50))
    c.pause(T0 + 3 * H)
    adapter = TypeAdapter(Clock)
    again = adapter.validate_json(adapter.dump_json(c))
    assert again == c
    assert again.due_at() == c.due_at()


MINUTES = st.integers(min_value=0, max_value=60 * 24 * 14)


@settings(max_examples=60, deadline=None)
@given(
    target_minutes=st.integers(min_value=1, max_value=60 * 40),
    cuts=st.lists(MINUTES, min_size=0, max_size=12, unique=True),
    calendar=st.sampled_from([ALWAYS, INDIA]),
)
def test_pausing_and_resuming_agrees_with_business_time(
    target_minutes: int, cuts: list[int], calendar: dict[str, Any]
) -> None:
    """Any pause/resume sequence gives the deadline business_time computes with those pauses."""
    cuts = sorted(cuts)[: len(cuts) // 2 * 2]
    spans = [
        (T0 + timedelta(minutes=cuts[i]), T0 + timedelta(minutes=cuts[i + 1]))
        for i in range(0, len(cuts), 2)
        if cuts[i + 1] > cuts[i]
    ]
    c = clock(target=timedelta(minutes=target_minutes), calendar=calendar)
    for begin, end in spans:
        c.pause(begin)
        c.resume(end)
    cal = Calendar.from_spec(calendar)
    due = c.due_at()
    assert due == add(cal, T0, timedelta(minutes=target_minutes), spans)
    assert c.elapsed(due) == timedelta(minutes=target_minutes)
    # The warnings are in order and before the breach.
    alarms = c.due_alarms(due)
    assert [a.kind for a in alarms] == [WARNING, WARNING, WARNING, BREACH]
    assert [a.at for a in alarms] == sorted(a.at for a in alarms)


@settings(max_examples=40, deadline=None)
@given(
    worked=st.integers(min_value=0, max_value=400),
    new_target=st.integers(min_value=1, max_value=400),
)
def test_retarget_keeps_worked_time_exactly(worked: int, new_target: int) -> None:
    c = clock(target=100 * S)
    at = T0 + worked * S
    for alarm in c.due_alarms(at):
        c.mark_raised(alarm)
    c.retarget(target=new_target * S, calendar=ALWAYS, thresholds=(50, 75, 90), at=at)
    assert c.elapsed(at) == worked * S
    assert c.elapsed(at + 7 * S) == (worked + 7) * S
    assert c.warnings_sent == [t for t in (50, 75, 90) if worked * 100 >= new_target * t]
    assert (c.breached_at is not None) == (worked >= 100 and worked >= new_target)
    if worked < new_target:
        assert c.due_at() == T0 + new_target * S
