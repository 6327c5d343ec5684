"""Turnaround figures: percentiles, share within target, per priority and per clinic day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mri_pipeline.domain.protocols import Priority
from mri_pipeline.domain.turnaround import (
    SCAN_TARGET,
    TARGETS,
    Interval,
    Measure,
    by_day,
    clinic_days,
    day_start,
    describe,
    figures,
    median,
    percentile,
    shown_priority,
    within,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def done(priority: Priority, length: timedelta, ended: datetime = NOW) -> Interval:
    return Interval(priority, ended - length, ended)


def waiting(priority: Priority, since: timedelta) -> Interval:
    return Interval(priority, NOW - since, None)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([5.0], 0.9, 5.0),
        ([1.0, 2.0], 0.5, 1.5),  # an even count: the mean of the middle two
        ([3.0, 1.0, 2.0], 0.5, 2.0),  # unsorted input
        ([30.0, 45.0, 120.0], 0.9, 105.0),  # rank 1.8: 45 + 0.8 × 75
        ([45.0, 50.0, 50.0, 180.0, 300.0], 0.9, 252.0),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        (list(map(float, range(1, 11))), 0.9, 9.1),  # numpy's default agrees
    ],
)
def test_percentiles_interpolate_between_the_closest_ranks(
    values: list[float], fraction: float, expected: float
) -> None:
    assert percentile(values, fraction) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "fraction"), [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_a_percentile_of_nothing_or_outside_0_to_1_is_refused(
    values: list[float], fraction: float
) -> None:
    with pytest.raises(ValueError):
        percentile(values, fraction)


def test_the_median_is_the_50th_percentile() -> None:
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


@pytest.mark.parametrize(
    ("length", "target", "expected"),
    [
        (59 * MIN, HOUR, True),
        (HOUR, HOUR, True),  # the target's own minute counts
        (HOUR + timedelta(seconds=1), HOUR, False),
        (100 * HOUR, None, None),  # no target: neither met nor missed
    ],
)
def test_within_target(length: timedelta, target: timedelta | None, expected: bool | None) -> None:
    assert within(length, target) is expected


@pytest.mark.parametrize(
    ("priority", "shown"),
    [
        (Priority.STAT, Priority.STAT),
        (Priority.HIGH, Priority.HIGH),
        (Priority.MEDIUM, Priority.ROUTINE),
        (Priority.LOW, Priority.LOW),
    ],
)
def test_medium_is_counted_as_routine(priority: Priority, shown: Priority) -> None:
    assert shown_priority(priority) is shown


def test_the_targets_are_b3s() -> None:
    assert SCAN_TARGET == {Priority.STAT: 4 * HOUR, Priority.HIGH: 48 * HOUR}
    assert TARGETS[Measure.REPORT_TURNAROUND] == {
        Priority.STAT: HOUR,
        Priority.HIGH: 8 * HOUR,
        Priority.ROUTINE: 48 * HOUR,
        Priority.LOW: 5 * 24 * HOUR,
    }


def test_figures_per_priority_count_what_ended_in_the_period_and_what_still_waits() -> None:
    since = NOW - 30 * 24 * HOUR
    intervals = [
        done(Priority.STAT, 30 * MIN),
        done(Priority.STAT, 45 * MIN, NOW - 3 * 24 * HOUR),
        done(Priority.STAT, 2 * HOUR),
        done(Priority.STAT, 10 * MIN, since - MIN),  # ended before the period
        waiting(Priority.STAT, 40 * MIN),
        waiting(Priority.STAT, 90 * MIN),  # past the 1 h report target
        done(Priority.HIGH, 6 * HOUR),
        done(Priority.MEDIUM, 20 * HOUR),  # counted as ROUTINE
        done(Priority.ROUTINE, 50 * HOUR),
    ]
    rows = {r.priority: r for r in figures(intervals, Measure.REPORT_TURNAROUND, since, NOW)}
    assert list(rows) == [Priority.STAT, Priority.HIGH, Priority.ROUTINE, Priority.LOW]

    stat = rows[Priority.STAT]
    assert (stat.done, stat.median, stat.p90) == (3, 45 * MIN, 105 * MIN)
    assert (stat.target, stat.within_target) == (HOUR, 2)
    assert stat.share_within == pytest.approx(2 / 3)
    assert (stat.waiting, stat.waiting_over_target) == (2, 1)
    routine = rows[Priority.ROUTINE]
    assert (routine.done, routine.median, routine.within_target) == (2, 35 * HOUR, 1)
    low = rows[Priority.LOW]
    assert (low.done, low.median, low.p90, low.share_within) == (0, None, None, None)
    assert low.target == 5 * 24 * HOUR


@pytest.mark.parametrize(
    ("priority", "length", "within_target", "target", "aim"),
    [
        (Priority.STAT, 3 * HOUR, 1, 4 * HOUR, HOUR),
        (Priority.STAT, 5 * HOUR, 0, 4 * HOUR, HOUR),
        (Priority.HIGH, 47 * HOUR, 1, 48 * HOUR, None),
        (Priority.ROUTINE, 20 * 24 * HOUR, None, None, None),  # booked: no target
        (Priority.LOW, 40 * 24 * HOUR, None, None, None),
    ],
)
def test_scan_waits_are_held_against_the_scan_targets(
    priority: Priority,
    length: timedelta,
    within_target: int | None,
    target: timedelta | None,
    aim: timedelta | None,
) -> None:
    rows = figures([done(priority, length)], Measure.SCAN_WAIT, NOW - 24 * HOUR, NOW)
    row = next(r for r in rows if r.priority is priority)
    assert (row.done, row.within_target, row.target, row.aim) == (1, within_target, target, aim)


def test_a_wait_without_a_target_is_never_counted_over_it() -> None:
    rows = figures([waiting(Priority.ROUTINE, 90 * 24 * HOUR)], Measure.SCAN_WAIT, NOW, NOW)
    routine = next(r for r in rows if r.priority is Priority.ROUTINE)
    assert (routine.waiting, routine.waiting_over_target) == (1, None)


def test_days_are_the_clinics_and_count_what_ended_on_each() -> None:
    # London in summer is UTC+1: 23:30 UTC on 30 June is already 1 July at the clinic.
    summer = [
        done(Priority.STAT, 30 * MIN, datetime(2026, 6, 30, 23, 30, tzinfo=UTC)),
        done(Priority.STAT, 2 * HOUR, datetime(2026, 7, 1, 9, 0, tzinfo=UTC)),
        done(Priority.LOW, 3 * 24 * HOUR, datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
        done(Priority.HIGH, HOUR, datetime(2026, 6, 29, 12, 0, tzinfo=UTC)),
        waiting(Priority.STAT, HOUR),
    ]
    days = clinic_days(date(2026, 7, 1), 3)
    assert days == [date(2026, 6, 29), date(2026, 6, 30), date(2026, 7, 1)]
    rows = by_day(summer, Measure.REPORT_TURNAROUND, days, LONDON)
    assert [(r.day, r.done, r.within_target, r.over_target) for r in rows] == [
        (date(2026, 6, 29), 1, 1, 0),
        (date(2026, 6, 30), 0, 0, 0),
        (date(2026, 7, 1), 3, 2, 1),  # LOW 3 d is within its 5 d
    ]
    assert rows[2].median == 2 * HOUR
    assert rows[1].median is None and rows[1].share_within is None


def test_on_the_scan_measure_a_day_separates_waits_without_a_target() -> None:
    day = date(2026, 3, 2)
    rows = by_day(
        [done(Priority.ROUTINE, 9 * 24 * HOUR), done(Priority.STAT, 5 * HOUR)],
        Measure.SCAN_WAIT,
        [day],
        LONDON,
    )
    only = rows[0]
    assert (only.done, only.with_target, only.within_target, only.without_target) == (2, 1, 0, 1)
    assert only.share_within == 0.0


def test_a_clinic_day_starts_at_local_midnight() -> None:
    assert day_start(date(2026, 7, 1), LONDON) == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)
    assert day_start(date(2026, 3, 2), LONDON) == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("length", "words"),
    [
        (None, "–"),
        (timedelta(seconds=59), "0 min"),
        (45 * MIN, "45 min"),
        (HOUR, "1 h"),
        (105 * MIN, "1 h 45 min"),
        (24 * HOUR, "1 d"),
        (30 * HOUR, "1 d 6 h"),
        (10 * 24 * HOUR + HOUR + 59 * MIN, "10 d 1 h"),  # rounded down
        (-20 * MIN, "-20 min"),
    ],
)
def test_durations_are_said_in_the_largest_units(length: timedelta | None, words: str) -> None:
    assert describe(length) == words
