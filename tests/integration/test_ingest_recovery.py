"""Nothing lost, nothing twice: ingest killed with SIGKILL mid-study, Orthanc restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from mri_pipeline.config import Settings
from mri_pipeline.db.models import ReceivedInstance, ReceivedStudy, StepEvent
from mri_pipeline.dicom.console_messages import PerformedSeries
from mri_pipeline.dicom.scanner import Peer, ScannerConsole, restamp
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.orthanc import OrthancProcess
from mri_pipeline.runtime import Runtime, build_runtime
from tests.conftest import ROOT, fixed_clock
from tests.integration.orthanc_tools import NEEDS_ORTHANC, orthanc_get, start_orthanc
from tests.integration.test_ingest import plan
from tests.integration.test_mwl_scp import book

pytestmark = NEEDS_ORTHANC

SERIES = ("SAG T1 TSE", "SAG T2 TSE", "AX T2 TSE")
IMAGES_PER_SERIES = 20
TOTAL = len(SERIES) * IMAGES_PER_SERIES


class Scene:
    """Orthanc, the MWL/MPPS server and a console; ingest is run by each test."""

    def __init__(self, settings: Settings, orthanc: OrthancProcess) -> None:
        self.settings = settings.model_copy(
            update={
                "orthanc_http_port": orthanc.http_port,
                "orthanc_dicom_port": orthanc.dicom_port,
                "ingest_batch_size": 5,  # many small transactions: a kill lands mid-study
                "ingest_poll_interval": 0.05,
            }
        )
        self.orthanc = orthanc
        self.runtime: Runtime = build_runtime(self.settings, clock=fixed_clock)
        config = DicomServerConfig("LSP_RIS", "127.0.0.1", self.settings.dicom_port, False, 8)
        self.server = start_dicom_server(
            config, self.runtime.nodes, self.runtime.finder, self.runtime.mpps
        )
        self.console = ScannerConsole(
            "MRI1",
            ris=Peer("127.0.0.1", self.settings.dicom_port, "LSP_RIS"),
            pacs=Peer("127.0.0.1", orthanc.dicom_port, orthanc.ae_title),
        )

    def close(self) -> None:
        self.server.shutdown()
        self.runtime.close()

    def examination(self, patient_id: str) -> tuple[str, str, list[PerformedSeries], list[Dataset]]:
        """Book, start the MPPS and make the images; returns accession, MPPS UID, series, images."""
        accession = book(self.runtime, patient_id, "Kill^Test", "MRI1")
        [item] = self.console.worklist(accession=accession)
        mpps_uid = self.console.start(item, now=fixed_clock())
        made = restamp(
            plan(*SERIES, images=IMAGES_PER_SERIES), item, station="MRI1", now=fixed_clock()
        )
        return (
            accession,
            mpps_uid,
            [series for series, _ in made],
            [ds for _, images in made for ds in images],
        )

    def store_slowly(self, images: list[Dataset], pause: float = 0.02) -> threading.Thread:
        def _store() -> None:
            for start in range(0, len(images), 4):
                self.console.store(images[start : start + 4])
                time.sleep(pause)

        thread = threading.Thread(target=_store)
        thread.start()
        return thread

    def instances(self) -> int:
        with self.runtime.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ReceivedInstance)) or 0)

    def state(self, accession: str) -> str | None:
        with self.runtime.sessions() as session:
            return session.scalar(
                select(ReceivedStudy.state).where(ReceivedStudy.accession_number == accession)
            )

    def check_once(self, accession: str) -> None:
        """Every image recorded exactly once, one study, one event of each kind."""
        with self.runtime.sessions() as session:
            rows = list(session.execute(select(ReceivedInstance.sop_instance_uid)).scalars())
            study = session.execute(select(ReceivedStudy)).scalar_one()
            kinds = list(
                session.execute(
                    select(StepEvent.kind).where(StepEvent.study_instance_uid.is_not(None))
                ).scalars()
            )
        assert len(rows) == len(set(rows)) == TOTAL
        assert study.instance_count == TOTAL
        assert study.accession_number == accession
        assert study.state == "ready_for_reading"
        assert kinds == ["STUDY_RECEIVING", "STUDY_READY_FOR_READING"]
        statistics = orthanc_get(self.orthanc, f"/studies/{study.orthanc_id}/statistics")
        assert isinstance(statistics, dict)
        assert statistics["CountInstances"] == TOTAL


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def scene(settings: Settings, tmp_path: Path) -> Iterator[Scene]:
    with start_orthanc(tmp_path) as orthanc:
        built = Scene(settings, orthanc)
        try:
            yield built
        finally:
            built.close()


def ingest_process(scene: Scene) -> subprocess.Popen[bytes]:
    settings = scene.settings
    environment = {
        **os.environ,
        "MRI_PIPELINE_DATABASE_URL": settings.resolved_database_url(),
        "MRI_PIPELINE_VAR_DIR": str(settings.var_dir),
        "MRI_PIPELINE_PROTOCOLS_FILE": str(ROOT / "worklist/protocols.yaml"),
        "MRI_PIPELINE_NODES_FILE": str(ROOT / "dicom_nodes/nodes.yaml"),
        "MRI_PIPELINE_ORTHANC_HTTP_PORT": str(settings.orthanc_http_port),
        "MRI_PIPELINE_INGEST_BATCH_SIZE": str(settings.ingest_batch_size),
        "MRI_PIPELINE_INGEST_POLL_INTERVAL": str(settings.ingest_poll_interval),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mri_pipeline", "ingest", "run"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_ingest_killed_mid_study_and_restarted_records_every_image_once(scene: Scene) -> None:
    accession, mpps_uid, series, images = scene.examination("KILL1")
    storing = scene.store_slowly(images)
    worker = ingest_process(scene)
    try:
        wait_for(lambda: scene.instances() >= 8)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = scene.instances()
    storing.join(timeout=60)
    assert killed_at < TOTAL, "the kill came after the study was complete"
    scene.console.finish(mpps_uid, series, now=fixed_clock())

    worker = ingest_process(scene)
    try:
        wait_for(lambda: scene.state(accession) == "ready_for_reading")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
    scene.check_once(accession)


def test_orthanc_restarted_mid_study_loses_nothing(scene: Scene) -> None:
    accession, mpps_uid, series, images = scene.examination("RESTART1")
    client = scene.runtime.orthanc_client()
    stop = threading.Event()
    worker = threading.Thread(
        target=scene.runtime.ingest(client).run, args=(stop,), kwargs={"interval": 0.05}
    )
    worker.start()
    try:
        half = len(images) // 2
        scene.console.store(images[:half])
        wait_for(lambda: scene.instances() == half)
        scene.orthanc.stop()
        time.sleep(0.5)  # ingest meets a closed port, and says so
        scene.orthanc.start()
        scene.console.store(images[half:])
        scene.console.finish(mpps_uid, series, now=fixed_clock())
        wait_for(lambda: scene.state(accession) == "ready_for_reading")
    finally:
        stop.set()
        worker.join(timeout=10)
        client.close()
    scene.check_once(accession)
