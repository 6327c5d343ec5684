"""The loop of a background worker that reads Orthanc: pass after pass until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from mri_pipeline.logsafe import database_away, describe_database_error
from mri_pipeline.orthanc.client import OrthancUnavailable

log = logging.getLogger(__name__)

MAX_DELAY = 5.0


def poll_until_stopped(
    stop: threading.Event, step: Callable[[], bool], *, interval: float, name: str
) -> None:
    """Call ``step`` until ``stop`` is set; it returns True when more work is waiting
    (call again at once), else the loop waits ``interval``. A failure backs off, doubling
    up to 5 s; an outage of Orthanc or of the database is logged once, and its end too."""
    outage = False
    delay = interval
    while not stop.is_set():
        try:
            more = step()
        except Exception as error:
            away = _outage(error)
            if away is None:
                log.exception("%s pass failed; retrying", name)
            elif not outage:
                log.warning("%s waiting for %s", name, away)
            outage = outage or away is not None
            delay = min(max(delay * 2, interval), MAX_DELAY)
            stop.wait(delay)
            continue
        if outage:
            log.info("%s working again", name)
        outage, delay = False, interval
        if not more:
            stop.wait(interval)


def _outage(error: Exception) -> str | None:
    """What is away, said once per outage; None for a fault worth its traceback."""
    if isinstance(error, OrthancUnavailable):
        return f"Orthanc: {error}"
    if isinstance(error, SQLAlchemyError) and database_away(error):
        return f"the database: {describe_database_error(error)}"
    return None
