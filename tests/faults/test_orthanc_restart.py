"""Orthanc restarted while a console stores a study: the console sends again what was not
acknowledged, and every image ends up in Orthanc once and in our rows once, the study
ready and routed once.

Here Orthanc is a service of its own, started by the test, as a department runs it (the
pipeline follows it over REST). The pipeline is the test's MWL/MPPS server plus the
ingest, QC and routing threads that ``up`` runs, in this process and on the test's
clock.

Orthanc goes down with SIGKILL (a crash, or the OOM killer) and its supervisor starts it
again. A clean stop (SIGTERM) would not interrupt the C-STORE: Orthanc lets the open
association finish before it exits, so the console would never notice.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from mri_pipeline.cli import _start_workers
from mri_pipeline.db.models import Assignment
from mri_pipeline.dicom.scanner import Peer
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import build_runtime
from tests.conftest import fixed_clock
from tests.faults.console import PersistentConsole, cauda_equina_card, examine
from tests.faults.scene import (
    audit_examinations,
    fault_settings,
    orthanc_pids,
    rows,
)
from tests.integration.orthanc_tools import NEEDS_ORTHANC, start_orthanc
from tests.integration.test_mwl_scp import book
from tests.integration.worker_processes import wait_for

pytestmark = NEEDS_ORTHANC

PACE = 0.1  # seconds between two images off the console: the crash lands mid-series


def test_orthanc_killed_and_restarted_during_a_c_store_keeps_every_image_once(
    database_url: str, tmp_path: Path, checked: Callable[[str], None]
) -> None:
    settings = fault_settings(database_url, tmp_path)
    orthanc = start_orthanc(
        tmp_path, http_port=settings.orthanc_http_port, dicom_port=settings.orthanc_dicom_port
    )
    card = cauda_equina_card()
    total = sum(len(series.templates) for series in card)
    with orthanc:
        runtime = build_runtime(settings, clock=fixed_clock)
        config = DicomServerConfig("LSP_RIS", "127.0.0.1", settings.dicom_port, False, 16)
        server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
        threads, stop = _start_workers(runtime)
        try:
            accession = book(
                runtime, "RESTART1", "Restart^Orthanc", "MRI1", indication="suspected-ces"
            )
            console = PersistentConsole(
                "MRI1",
                ris=Peer("127.0.0.1", settings.dicom_port, "LSP_RIS"),
                pacs=Peer("127.0.0.1", orthanc.dicom_port, orthanc.ae_title),
            )
            with ThreadPoolExecutor(max_workers=1) as pool:
                performing = pool.submit(examine, console, accession, card, pace=PACE)
                wait_for(lambda: sum(console.sent.values()) >= total // 3, "a third sent", [])
                at_crash = sum(console.sent.values())
                for pid in orthanc_pids(settings):
                    os.kill(pid, signal.SIGKILL)
                orthanc.stop()  # reaps it
                orthanc.start()
                examination = performing.result(timeout=120)

            wait_for(lambda: rows(runtime, Assignment) == 1, "routed", [], timeout=60)
            with httpx.Client(base_url=orthanc.url, auth=orthanc.auth, timeout=10) as client:
                tally = audit_examinations(runtime, client, [examination])
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            server.shutdown()
            runtime.close()

    # The crash broke the console's association in mid-study, and it carried on.
    assert at_crash < total
    assert sum(n for (operation, _), n in console.repeated.items() if operation == "C-STORE")
    backend = make_url(database_url).get_backend_name()
    checked(
        f"faults: Orthanc killed and restarted during C-STORE ({backend}): {tally.examinations} "
        f"examination, {tally.instances} instances, {tally.assignments} assignment, "
        f"{tally.events} events checked; Orthanc killed after {at_crash}/{total} images sent, "
        f"the console repeated {sum(console.repeated.values())} requests and resent "
        f"{console.resent()} images"
    )
    assert (tally.examinations, tally.instances, tally.assignments) == (1, total, 1)
