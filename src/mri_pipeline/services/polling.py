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
        except OrthancUnavailable as error:
            if not outage:
                log.warning("%s waiting for Orthanc: %s", name, error)
            outage = True
            delay = min(max(delay * 2, interval), MAX_DELAY)
            stop.wait(delay)
            continue
        except SQLAlchemyError as error:
            if not database_away(error):
                log.exception("%s pass failed; retrying", name)
            elif not outage:
                log.warning("%s waiting for the database: %s", name, describe_database_error(error))
            outage = outage or database_away(error)
            delay = min(max(delay * 2, interval), MAX_DELAY)
            stop.wait(delay)
            continue
        except Exception:
            log.exception("%s pass failed; retrying", name)
            delay = min(max(delay * 2, interval), MAX_DELAY)
            stop.wait(delay)
            continue
        if outage:
            log.info("%s working again", name)
        outage, delay = False, interval
        if not more:
            stop.wait(interval)
