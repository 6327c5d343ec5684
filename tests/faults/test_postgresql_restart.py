"""PostgreSQL restarted while consoles send MPPS: every request is answered (Success, or a
failure the console repeats), and afterwards each step is in its final state with one
MPPS and each event once.

The RIS is ``mri-pipeline dicom serve`` as a real process; two consoles (the two
scanners) each run their day's examinations: worklist, N-CREATE IN PROGRESS, the scan
(the console refreshing its worklist meanwhile), N-SET COMPLETED (every fourth
DISCONTINUED). The cluster is restarted once the consoles are at work, and they carry
on until each has done two more examinations after it. PostgreSQL only: the fault is
PostgreSQL's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mri_pipeline.db.models import PerformedStep, PerformedStepMessage, ScheduledStep
from mri_pipeline.dicom.console_messages import PerformedSeries
from mri_pipeline.dicom.scanner import Peer
from mri_pipeline.runtime import build_runtime
from tests.conftest import POSTGRES_URL, fixed_clock, make_settings, postgres_schema
from tests.faults.console import PersistentConsole
from tests.faults.scene import (
    count,
    names_logged,
    performed_kinds,
    rows,
    step_events,
)
from tests.integration.dbtools import restart_postgresql
from tests.integration.test_mwl_scp import book
from tests.integration.worker_processes import spawn, stop, wait_for

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="a PostgreSQL restart needs PostgreSQL: set MRI_PIPELINE_TEST_DATABASE_URL (CI does)",
)

CONSOLES = ("MRI1", "MRI2")
BOOKED = 30  # examinations booked on each scanner, more than the consoles get through
AFTER = 2  # examinations each console performs once the restart is over
SCAN = 0.1  # seconds between N-CREATE and N-SET, with worklist queries
DISCONTINUE_EVERY = 4
REASON = "110513"  # discontinued for unspecified reason: no new step offered


def started_at() -> datetime:
    """When the PostgreSQL server last started."""
    admin = create_engine(POSTGRES_URL, poolclass=NullPool)
    with admin.connect() as connection:
        started = connection.scalar(text("SELECT pg_postmaster_start_time()"))
    admin.dispose()
    assert isinstance(started, datetime)
    return started


def run_day(
    console: PersistentConsole, accessions: list[str], over: threading.Event
) -> list[tuple[str, str, str]]:
    """The console's examinations until two after the restart is ``over``; returns
    (accession, MPPS UID, final status) of each performed."""
    done: list[tuple[str, str, str]] = []
    after = 0
    for number, accession in enumerate(accessions, start=1):
        if after == AFTER:
            break
        after += over.is_set()
        [item] = console.worklist(accession=accession)
        uid = console.start(item, now=fixed_clock())
        scanning = time.monotonic() + SCAN
        while time.monotonic() < scanning:  # the console keeps its worklist fresh
            console.worklist(accession=accession)
            time.sleep(0.02)
        reason = REASON if number % DISCONTINUE_EVERY == 0 else None
        series = [PerformedSeries.made(name, images=3) for name in ("SAG T2 TSE", "AX T2 TSE")]
        console.finish(uid, series, now=fixed_clock(), discontinue=reason)
        done.append((accession, uid, "DISCONTINUED" if reason else "COMPLETED"))
    return done


def test_postgresql_restarted_during_mpps_traffic_loses_and_doubles_nothing(
    tmp_path: Path, checked: Callable[[str], None]
) -> None:
    with postgres_schema() as url:
        settings = make_settings(url, tmp_path)
        runtime = build_runtime(settings, clock=fixed_clock)
        ris = spawn("ris", ["dicom", "serve"], settings, also=("dicom_host", "dicom_port"))
        try:
            wait_for(lambda: ris.count("worklist and MPPS SCP") > 0, "the RIS starting", [ris])
            patients = {
                (station, n): f"Restart^{station}{n}" for station in CONSOLES for n in range(BOOKED)
            }
            days = {
                station: [
                    book(runtime, f"{station}P{n}", patients[station, n], station)
                    for n in range(BOOKED)
                ]
                for station in CONSOLES
            }
            consoles = {
                station: PersistentConsole(
                    station,
                    ris=Peer("127.0.0.1", settings.dicom_port, settings.ae_title),
                    pacs=Peer("127.0.0.1", 1, "UNUSED"),
                    patience=60,
                )
                for station in CONSOLES
            }
            before = started_at()
            over = threading.Event()
            with ThreadPoolExecutor(max_workers=len(CONSOLES)) as pool:
                try:
                    running = [pool.submit(run_day, consoles[s], days[s], over) for s in CONSOLES]
                    wait_for(
                        lambda: rows(runtime, PerformedStep) >= 4, "the consoles at work", [ris]
                    )
                    restart_postgresql()
                finally:
                    over.set()
                performed = [outcome for day in running for outcome in day.result(timeout=180)]
            restarted = started_at() != before
            total = len(performed)
            assert total < len(CONSOLES) * BOOKED, "the consoles ran out of examinations"
            # The RIS lived through it and answers as before.
            assert consoles["MRI1"].worklist(accession=days["MRI1"][0]) == []  # completed
            assert ris.process.poll() is None, ris.output()[-3000:]
            assert names_logged([ris], patients.values()) == []

            with runtime.sessions() as session:
                events = 0
                for accession, uid, status in performed:
                    kinds = Counter(e.kind for e in step_events(session, accession, uid, status))
                    assert kinds == performed_kinds(status), (accession, kinds)
                    events += kinds.total()
                assert count(session, PerformedStep) == total
                assert count(session, PerformedStepMessage) == 2 * total
                waiting = count(session, ScheduledStep, ScheduledStep.status == "SCHEDULED")
                assert waiting == len(CONSOLES) * BOOKED - total
        finally:
            stop([ris])
            runtime.close()

    requests = sum(c.attempts.total() for c in consoles.values())
    repeated = sum((c.repeated for c in consoles.values()), Counter[tuple[str, str]]())
    failures = sum((c.failures for c in consoles.values()), Counter[tuple[str, int]]())
    checked(
        f"faults: PostgreSQL restart during MPPS: {total} steps, {total} MPPS, "
        f"{requests} requests ({repeated.total()} repeated: {dict(repeated)}), {events} events "
        f"checked; cluster restarted: {restarted}"
    )
    # Every request was answered: a repeat was for a failure status, never for silence.
    assert {why for _, why in repeated} <= {"FailureStatus"}, repeated
    assert {code for _, code in failures} <= {0x0110}, failures
    if restarted:
        assert repeated, "the restart met no request"
