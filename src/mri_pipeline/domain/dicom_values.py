"""Parsing of DICOM DA and TM values, and ranges of them, as query keys use them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Generic, TypeVar

from mri_pipeline.domain.errors import InvalidQuery


def parse_da(value: str) -> date:
    """A DA value ``YYYYMMDD`` (the ACR-NEMA ``YYYY.MM.DD`` form is also read)."""
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        raise InvalidQuery(f"date {value!r} is not YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise InvalidQuery(f"date {value!r} is not a calendar date") from exc


def parse_tm(value: str) -> time:
    """A TM value ``HH[MM[SS[.F{1,6}]]]``; missing parts count as zero (TM 2230 = 223000)."""
    text = value.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if len(whole) not in (2, 4, 6) or not whole.isdigit():
        raise InvalidQuery(f"time {value!r} is not HH[MM[SS[.ffffff]]]")
    if fraction and (not fraction.isdigit() or len(fraction) > 6 or len(whole) != 6):
        raise InvalidQuery(f"time {value!r} has a bad fraction of a second")
    hour = int(whole[:2])
    minute = int(whole[2:4] or 0)
    second = int(whole[4:6] or 0)
    if second == 60:  # a leap second; DICOM allows it
        second = 59
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    try:
        return time(hour, minute, second, micro)
    except ValueError as exc:
        raise InvalidQuery(f"time {value!r} is out of range") from exc


T = TypeVar("T", date, time)


@dataclass(frozen=True)
class Range(Generic[T]):
    """An inclusive range; ``None`` is an open end."""

    low: T | None
    high: T | None


def _parse_range(value: str, parse: Callable[[str], T], kind: str) -> Range[T]:
    if "-" not in value:
        single = parse(value)
        return Range(single, single)
    low, _, high = value.partition("-")
    if "-" in high:
        raise InvalidQuery(f"{kind} range {value!r} has more than one '-'")
    if not low.strip() and not high.strip():
        raise InvalidQuery(f"{kind} range '-' has neither end")
    return Range(parse(low) if low.strip() else None, parse(high) if high.strip() else None)


def parse_date_key(value: str) -> Range[date]:
    """A DA matching key: single value or range (``d1-d2``, ``-d2``, ``d1-``)."""
    return _parse_range(value, parse_da, "date")


def parse_time_key(value: str) -> Range[time]:
    """A TM matching key: single value or range; a range may not cross midnight."""
    return _parse_range(value, parse_tm, "time")


def combine_interval(
    dates: Range[date] | None, times: Range[time] | None
) -> tuple[datetime | None, datetime | None]:
    """One datetime interval from a date key and a time key (PS3.4 K.6-1 remark).

    ``dates`` must be given; a missing time range covers the whole of each day.
    """
    assert dates is not None
    start_time = times.low if times is not None and times.low is not None else time.min
    end_time = times.high if times is not None and times.high is not None else time.max
    low = datetime.combine(dates.low, start_time) if dates.low is not None else None
    high = datetime.combine(dates.high, end_time) if dates.high is not None else None
    return low, high
