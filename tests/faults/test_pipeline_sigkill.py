"""SIGKILL of the pipeline while it ingests 20 examinations: restarted, it loses nothing
and does nothing twice.

The pipeline is ``mri-pipeline up`` as a one-machine clinic runs it under a supervisor:
one process with the MWL/MPPS server, the API and the ingest, QC and routing threads,
and Orthanc as its child. The kill does not kill that Orthanc: its parent-death signal
is SIGTERM, so it shuts down cleanly, and the restarted ``up`` starts it again on the
same storage and index. A supervisor (systemd) starts a unit again once its last process
has ended, and so does the test. So the images acknowledged before the kill must still be
there after it, with Orthanc's change log. (test_orthanc_restart covers an Orthanc run
as its own service.)

One console performs the 20 examinations one after the other: worklist, MPPS IN PROGRESS,
C-STORE, MPPS COMPLETED. The kill comes when half of them are done and ingest is at work
on them. The console then finds the RIS and the PACS gone in mid-examination, and repeats
what was not acknowledged until the restarted pipeline answers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from mri_pipeline.db.models import Assignment, ReceivedInstance
from mri_pipeline.dicom.scanner import Examination, Peer
from mri_pipeline.orthanc import orthanc_credentials
from mri_pipeline.runtime import build_runtime
from tests.conftest import fixed_clock
from tests.faults.console import PersistentConsole, cauda_equina_card, examine
from tests.faults.scene import (
    audit_examinations,
    fault_settings,
    kill,
    names_logged,
    rows,
    serving,
    up,
    wait_for_orthanc_to_stop,
)
from tests.integration.orthanc_tools import NEEDS_ORTHANC
from tests.integration.test_mwl_scp import book
from tests.integration.worker_processes import Worker, stop, wait_for

pytestmark = NEEDS_ORTHANC

EXAMINATIONS = 20


def test_pipeline_killed_while_ingesting_20_examinations_records_and_routes_each_once(
    database_url: str, tmp_path: Path, checked: Callable[[str], None]
) -> None:
    settings = fault_settings(database_url, tmp_path, ingest_batch_size=8)
    runtime = build_runtime(settings, clock=fixed_clock)
    workers: list[Worker] = []
    try:
        patients = [f"Killed^Patient{n:02d}" for n in range(EXAMINATIONS)]
        accessions = [
            book(runtime, f"KILL{n:02d}", name, "MRI1", indication="suspected-ces")
            for n, name in enumerate(patients)
        ]
        card = cauda_equina_card()
        total = EXAMINATIONS * sum(len(series.templates) for series in card)
        workers += serving([up(settings, "pipeline-1")])
        console = PersistentConsole(
            "MRI1",
            ris=Peer("127.0.0.1", settings.dicom_port, settings.ae_title),
            pacs=Peer("127.0.0.1", settings.orthanc_dicom_port, "LSP_PACS"),
        )
        examinations: list[Examination] = []

        def day() -> None:
            for accession in accessions:
                examinations.append(examine(console, accession, card))

        with ThreadPoolExecutor(max_workers=1) as pool:
            performing = pool.submit(day)
            wait_for(
                lambda: (
                    len(examinations) >= EXAMINATIONS // 2 and rows(runtime, ReceivedInstance) > 0
                ),
                "half the examinations performed, ingest at work",
                workers,
                timeout=120,
            )
            kill(workers[0])
            at_kill = (rows(runtime, ReceivedInstance), rows(runtime, Assignment))
            wait_for_orthanc_to_stop(settings)
            workers += serving([up(settings, "pipeline-2")])
            performing.result(timeout=300)
        wait_for(
            lambda: rows(runtime, Assignment) == EXAMINATIONS,
            "every examination routed",
            workers[1:],
            timeout=180,
        )
        orthanc = httpx.Client(
            base_url=f"http://127.0.0.1:{settings.orthanc_http_port}",
            auth=orthanc_credentials(settings.var_dir),
            timeout=10,
        )
        with orthanc:
            tally = audit_examinations(runtime, orthanc, examinations)
    finally:
        stop(workers)
        runtime.close()

    # The kill came in the middle of ingest, and the console, half-way, met it.
    assert 0 < at_kill[0] < total and at_kill[1] < EXAMINATIONS, at_kill
    assert console.repeated, "the console never noticed the kill"
    assert names_logged(workers, patients) == []
    backend = make_url(database_url).get_backend_name()
    checked(
        f"faults: pipeline SIGKILL ({backend}): {tally.examinations} examinations, "
        f"{tally.instances} instances, {tally.assignments} assignments, {tally.events} events "
        f"checked; killed with {at_kill[0]}/{total} images recorded and {at_kill[1]} routed; "
        f"the console repeated {sum(console.repeated.values())} requests and resent "
        f"{console.resent()} images"
    )
    assert tally.examinations == tally.assignments == EXAMINATIONS
    assert tally.instances == total
