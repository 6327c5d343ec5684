"""A real Orthanc for tests, small MR images to store into it, and DCMTK's storescu."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid
from sqlalchemy import select

from mri_pipeline.db.models import ReceivedSeries, ReceivedStudy
from mri_pipeline.dicom.scanner import ScannerConsole, explicit_file_meta
from mri_pipeline.domain.nodes import NodeTable, parse_node_table
from mri_pipeline.orthanc import OrthancProcess
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.ingest import Ingest
from tests.conftest import ROOT, free_port

BASE_CONFIGURATION = ROOT / "orthanc.json"
# The marks of every test module that runs a real Orthanc and DCMTK.
NEEDS_ORTHANC = [
    pytest.mark.dcmtk,
    pytest.mark.skipif(
        not Path("/usr/sbin/Orthanc").exists() or shutil.which("storescu") is None,
        reason="needs the Debian orthanc package and DCMTK",
    ),
]


def node_table() -> NodeTable:
    path = ROOT / "dicom_nodes/nodes.yaml"
    return parse_node_table(path.read_text(encoding="utf-8"), str(path))


def start_orthanc(
    var_dir: Path,
    *,
    stable_age: int | None = None,
    http_port: int | None = None,
    dicom_port: int | None = None,
) -> OrthancProcess:
    """An Orthanc on free ports (not started: use it as a context manager or ``start()``).

    ``stable_age`` overrides the committed StableAge so tests need not wait a minute.
    """
    base = BASE_CONFIGURATION
    if stable_age is not None:
        configuration = json.loads(base.read_text(encoding="utf-8"))
        configuration["StableAge"] = stable_age
        base = var_dir / "orthanc-base.json"
        base.write_text(json.dumps(configuration), encoding="utf-8")
    return OrthancProcess(
        node_table(),
        var_dir=var_dir,
        base_configuration=base,
        http_port=http_port or free_port(),
        dicom_port=dicom_port or free_port(),
    )


@dataclass
class Patient:
    patient_id: str
    name: str


@dataclass
class SeriesFiles:
    """One written series: its UID, its instances' UIDs and their files."""

    description: str
    series_instance_uid: str
    sop_instance_uids: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


def write_mr_series(
    folder: Path,
    *,
    patient: Patient,
    accession_number: str,
    study_instance_uid: str,
    description: str,
    images: int,
    series_number: int = 1,
    size: int = 16,
) -> SeriesFiles:
    """``images`` small MR images of one series, written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    series = SeriesFiles(description, str(generate_uid()))
    for number in range(1, images + 1):
        ds = mr_template(number, size=size)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.StudyInstanceUID = study_instance_uid
        ds.SeriesInstanceUID = series.series_instance_uid
        ds.PatientID = patient.patient_id
        ds.PatientName = patient.name
        ds.AccessionNumber = accession_number
        ds.SeriesDescription = description
        ds.ProtocolName = description
        ds.SeriesNumber = series_number
        ds.file_meta = explicit_file_meta(ds)
        path = folder / f"{series_number:02d}-{number:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        series.sop_instance_uids.append(str(ds.SOPInstanceUID))
        series.paths.append(path)
    return series


def storescu(
    port: int,
    paths: Sequence[Path],
    *,
    calling: str = "MRI1",
    called: str = "LSP_PACS",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    command = ["storescu", "-to", "20", "-aet", calling, "-aec", called, *extra]
    return subprocess.run(
        [*command, "127.0.0.1", str(port), *(str(p) for p in paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def orthanc_get(orthanc: OrthancProcess, path: str) -> object:
    answer = httpx.get(f"{orthanc.url}{path}", auth=orthanc.auth, timeout=10)
    answer.raise_for_status()
    return answer.json()


def instance_count(orthanc: OrthancProcess) -> int:
    instances = orthanc_get(orthanc, "/instances")
    assert isinstance(instances, list)
    return len(instances)


def mr_template(number: int, *, size: int = 16) -> Dataset:
    """An in-memory MR image for the scanner console to re-stamp."""
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "TEMPLATE"
    ds.PatientName = "TEMPLATE^IMAGE"
    ds.Modality = "MR"
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(size * size * 2)
    return ds


@dataclass
class Pipeline:
    runtime: Runtime
    orthanc: OrthancProcess
    ingest: Ingest
    console: ScannerConsole

    def study(self, accession: str) -> ReceivedStudy:
        with self.runtime.sessions() as session:
            study = session.execute(
                select(ReceivedStudy).where(ReceivedStudy.accession_number == accession)
            ).scalar_one()
            session.expunge(study)
            return study

    def drain(self, until: Callable[[], bool], timeout: float = 20) -> None:
        """Run ingest passes until ``until()`` holds (Orthanc's stable event takes seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            self.ingest.run_pass()
            if until():
                return
            assert time.monotonic() < deadline, "ingest did not get there in time"
            time.sleep(0.2)

    def state(self, accession: str) -> str:
        return self.study(accession).state

    def study_series(self, study_instance_uid: str) -> list[str]:
        with self.runtime.sessions() as session:
            return list(
                session.execute(
                    select(ReceivedSeries.series_instance_uid)
                    .join(ReceivedStudy, ReceivedStudy.id == ReceivedSeries.study_pk)
                    .where(ReceivedStudy.study_instance_uid == study_instance_uid)
                ).scalars()
            )
