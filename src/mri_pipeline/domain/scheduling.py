"""Finding the next free slot on a scanner's day (pure: the caller supplies the bookings)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta

from mri_pipeline.domain.errors import DomainError


class NoFreeSlot(DomainError):
    """Nothing fits within the booking horizon."""


def _round_up(moment: datetime, step_minutes: int) -> datetime:
    moment = moment.replace(second=0, microsecond=0) + (
        timedelta(minutes=1) if moment.second or moment.microsecond else timedelta()
    )
    remainder = moment.minute % step_minutes
    return moment + timedelta(minutes=(step_minutes - remainder) % step_minutes)


def next_free_slot(
    bookings: Iterable[tuple[datetime, datetime]],
    *,
    not_before: datetime,
    minutes: int,
    day_start: time,
    day_end: time,
    step_minutes: int = 5,
    horizon_days: int = 90,
) -> datetime:
    """The earliest start ≥ ``not_before`` where ``minutes`` fit in the working day
    without overlapping any booking. All datetimes are naive clinic-local times."""
    busy = sorted(bookings)
    length = timedelta(minutes=minutes)
    candidate = _round_up(not_before, step_minutes)
    limit = not_before + timedelta(days=horizon_days)
    while candidate < limit:
        opening = datetime.combine(candidate.date(), day_start)
        closing = datetime.combine(candidate.date(), day_end)
        if candidate < opening:
            candidate = opening
        if candidate + length > closing:
            candidate = datetime.combine(candidate.date() + timedelta(days=1), day_start)
            continue
        clash = next((b for b in busy if b[0] < candidate + length and candidate < b[1]), None)
        if clash is None:
            return candidate
        candidate = _round_up(clash[1], step_minutes)
    raise NoFreeSlot(f"no free {minutes}-minute slot within {horizon_days} days")


def overlapping(
    bookings: Iterable[tuple[datetime, datetime]], start: datetime, minutes: int
) -> tuple[datetime, datetime] | None:
    """The first booking that a slot of ``minutes`` from ``start`` would overlap."""
    end = start + timedelta(minutes=minutes)
    return next((b for b in sorted(bookings) if b[0] < end and start < b[1]), None)
