"""A worker's loop through an outage: one line when the database goes away, one when it
is back, no traceback for every pass in between; a real fault keeps its traceback."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from mri_pipeline.services import polling
from mri_pipeline.services.polling import poll_until_stopped


def run(outcomes: list[BaseException | None], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the loop over ``outcomes`` (an exception to raise, or None for a good pass);
    returns how many passes ran."""
    monkeypatch.setattr(polling, "MAX_DELAY", 0.001)
    stop = threading.Event()
    passes = []

    def step() -> bool:
        passes.append(1)
        outcome = outcomes[len(passes) - 1]
        if len(passes) == len(outcomes):
            stop.set()
        if outcome is not None:
            raise outcome
        return False

    poll_until_stopped(stop, step, interval=0.001, name="ingest")
    return len(passes)


def test_a_database_outage_is_one_warning_and_its_end_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    away = OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
    caplog.set_level(logging.INFO, logger="mri_pipeline.services.polling")
    assert run([away, away, away, None, None], monkeypatch) == 5
    assert [r.getMessage() for r in caplog.records] == [
        "ingest waiting for the database: ConnectionError server closed the connection "
        "[SQL: SELECT 1]",
        "ingest working again",
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_any_other_database_error_is_logged_with_its_traceback_every_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = IntegrityError("INSERT INTO x", {}, ValueError("constraint"))
    caplog.set_level(logging.INFO, logger="mri_pipeline.services.polling")
    assert run([broken, broken, None], monkeypatch) == 3
    failures = [r for r in caplog.records if r.exc_info is not None]
    assert [r.getMessage() for r in failures] == ["ingest pass failed; retrying"] * 2
