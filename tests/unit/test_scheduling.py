"""Next free slot on a station's day."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from mri_pipeline.domain.scheduling import NoFreeSlot, next_free_slot, overlapping

DAY = dict(day_start=time(7, 0), day_end=time(21, 0))


def at(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute)


def test_an_empty_day_books_now_rounded_up_to_five_minutes() -> None:
    assert next_free_slot([], not_before=at(8, 2), minutes=30, **DAY) == at(8, 5)


def test_before_opening_books_the_opening() -> None:
    assert next_free_slot([], not_before=at(5, 0), minutes=30, **DAY) == at(7, 0)


def test_a_booking_pushes_the_slot_to_its_end() -> None:
    busy = [(at(8), at(8, 30)), (at(8, 30), at(9, 15))]
    assert next_free_slot(busy, not_before=at(8), minutes=30, **DAY) == at(9, 15)


def test_a_gap_that_is_long_enough_is_used() -> None:
    busy = [(at(8), at(8, 30)), (at(9, 0), at(10))]
    assert next_free_slot(busy, not_before=at(8), minutes=30, **DAY) == at(8, 30)
    assert next_free_slot(busy, not_before=at(8), minutes=45, **DAY) == at(10)


def test_a_slot_that_would_run_past_closing_moves_to_the_next_morning() -> None:
    assert next_free_slot([], not_before=at(20, 40), minutes=30, **DAY) == at(7, 0, day=3)


def test_no_slot_within_the_horizon_is_an_error() -> None:
    with pytest.raises(NoFreeSlot):
        next_free_slot([], not_before=at(8), minutes=15 * 60, **DAY, horizon_days=3)


def test_overlapping_finds_the_clash() -> None:
    busy = [(at(9), at(9, 30))]
    assert overlapping(busy, at(9, 15), 30) == busy[0]
    assert overlapping(busy, at(9, 30), 30) is None
    assert overlapping(busy, at(8, 30), 30) is None
