"""Waiting times and turnaround against the B.3 targets: medians, percentiles, the share
within target, per priority and per day. Pure.

Two measures (DOMAIN.md B.3):

- referral → scan: the order's creation to the acquisition's start (the MPPS N-CREATE,
  else the first image received), against the scan target;
- images complete → final report, against the report target (``REPORT_TARGET``).

Percentiles interpolate linearly between the closest ranks (Hyndman and Fan type 7,
numpy's default), so the median of an even count is the mean of the middle two.
MEDIUM is counted as ROUTINE, as routing treats it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from mri_pipeline.domain.protocols import Priority
from mri_pipeline.domain.routing import REPORT_TARGET


class Measure(StrEnum):
    SCAN_WAIT = "scan_wait"  # referral → scan
    REPORT_TURNAROUND = "report_turnaround"  # images complete → final report

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Measure.SCAN_WAIT: "Referral → scan",
    Measure.REPORT_TURNAROUND: "Images complete → final report",
}

# The priorities the department view reports on, most urgent first.
SHOWN = (Priority.STAT, Priority.HIGH, Priority.ROUTINE, Priority.LOW)

# B.3 scan targets (request → images). STAT: the UK national CES standard; HIGH: the
# project's 48 h default. ROUTINE and LOW are booked to a date, so they have no target.
SCAN_TARGET: Mapping[Priority, timedelta] = {
    Priority.STAT: timedelta(hours=4),
    Priority.HIGH: timedelta(hours=48),
}
# B.3: the clinic's own, stricter aim for a STAT scan.
SCAN_AIM: Mapping[Priority, timedelta] = {Priority.STAT: timedelta(hours=1)}

TARGETS: Mapping[Measure, Mapping[Priority, timedelta]] = {
    Measure.SCAN_WAIT: SCAN_TARGET,
    Measure.REPORT_TURNAROUND: {p: REPORT_TARGET[p] for p in SHOWN},
}
AIMS: Mapping[Measure, Mapping[Priority, timedelta]] = {
    Measure.SCAN_WAIT: SCAN_AIM,
    Measure.REPORT_TURNAROUND: {},
}


def shown_priority(priority: Priority) -> Priority:
    """The column a priority is counted in: MEDIUM goes with ROUTINE."""
    return Priority.ROUTINE if priority is Priority.MEDIUM else priority


@dataclass(frozen=True)
class Interval:
    """One examination's wait: from ``start``; ``end`` None while it is still waiting."""

    priority: Priority
    start: datetime
    end: datetime | None

    @property
    def length(self) -> timedelta | None:
        return self.end - self.start if self.end is not None else None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0–1) percentile of ``values``, interpolated between the closest ranks."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def within(length: timedelta, target: timedelta | None) -> bool | None:
    """Met when the wait is at most the target (the target's own minute counts); None
    when the priority has no target."""
    return None if target is None else length <= target


@dataclass(frozen=True)
class PriorityFigures:
    """One priority's finished waits in a period, and those still waiting now."""

    priority: Priority
    target: timedelta | None
    aim: timedelta | None
    done: int
    median: timedelta | None
    p90: timedelta | None
    within_target: int | None  # None: no target for this priority
    waiting: int
    waiting_over_target: int | None

    @property
    def share_within(self) -> float | None:
        if self.within_target is None or self.done == 0:
            return None
        return self.within_target / self.done


def _seconds(lengths: Iterable[timedelta]) -> list[float]:
    return [length.total_seconds() for length in lengths]


def figures(
    intervals: Iterable[Interval],
    measure: Measure,
    since: datetime,
    now: datetime,
    priorities: Sequence[Priority] = SHOWN,
) -> list[PriorityFigures]:
    """Per priority: the waits that ended in ``[since, now]`` (median, 90th percentile,
    how many within target) and the waits still open at ``now`` (how many already past
    their target)."""
    targets, aims = TARGETS[measure], AIMS[measure]
    ended: dict[Priority, list[timedelta]] = {p: [] for p in priorities}
    open_since: dict[Priority, list[datetime]] = {p: [] for p in priorities}
    for interval in intervals:
        priority = shown_priority(interval.priority)
        if priority not in ended:
            continue
        if interval.end is None:
            if interval.start <= now:
                open_since[priority].append(interval.start)
        elif since <= interval.end <= now:
            ended[priority].append(interval.end - interval.start)
    result = []
    for priority in priorities:
        target = targets.get(priority)
        lengths = ended[priority]
        seconds = _seconds(lengths)
        result.append(
            PriorityFigures(
                priority=priority,
                target=target,
                aim=aims.get(priority),
                done=len(lengths),
                median=timedelta(seconds=median(seconds)) if seconds else None,
                p90=timedelta(seconds=percentile(seconds, 0.9)) if seconds else None,
                within_target=(
                    sum(1 for length in lengths if length <= target) if target else None
                ),
                waiting=len(open_since[priority]),
                waiting_over_target=(
                    sum(1 for start in open_since[priority] if now - start > target)
                    if target
                    else None
                ),
            )
        )
    return result


@dataclass(frozen=True)
class DayFigures:
    """The waits that ended on one clinic day."""

    day: date
    done: int
    with_target: int  # of ``done``, those whose priority has a target
    within_target: int
    median: timedelta | None

    @property
    def over_target(self) -> int:
        return self.with_target - self.within_target

    @property
    def without_target(self) -> int:
        return self.done - self.with_target

    @property
    def share_within(self) -> float | None:
        return self.within_target / self.with_target if self.with_target else None


def clinic_days(today: date, count: int) -> list[date]:
    """The ``count`` clinic days ending with ``today``, oldest first."""
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Midnight at the clinic that begins ``day`` (an aware moment)."""
    return datetime.combine(day, time(0), tzinfo=zone)


def by_day(
    intervals: Iterable[Interval], measure: Measure, days: Sequence[date], zone: ZoneInfo
) -> list[DayFigures]:
    """Per clinic day of ``days``: the waits that ended that day (in the clinic's time
    zone), how many had a target and how many met it, and their median."""
    targets = TARGETS[measure]
    lengths: dict[date, list[tuple[timedelta, timedelta | None]]] = {d: [] for d in days}
    for interval in intervals:
        if interval.end is None:
            continue
        day = interval.end.astimezone(zone).date()
        if day in lengths:
            target = targets.get(shown_priority(interval.priority))
            lengths[day].append((interval.end - interval.start, target))
    result = []
    for day in days:
        found = lengths[day]
        seconds = _seconds(length for length, _ in found)
        result.append(
            DayFigures(
                day=day,
                done=len(found),
                with_target=sum(1 for _, target in found if target is not None),
                within_target=sum(1 for length, target in found if within(length, target)),
                median=timedelta(seconds=median(seconds)) if seconds else None,
            )
        )
    return result


def describe(length: timedelta | None) -> str:
    """ "45 min", "4 h", "3 h 10 min", "2 d", "2 d 4 h"; "–" for none. Rounded down to
    the minute."""
    if length is None:
        return "–"
    if length < timedelta(0):
        return f"-{describe(-length)}"
    minutes = int(length.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"
