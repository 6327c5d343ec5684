"""Worklist files: DCMTK-made .wl files in, our items out, and agreement with wlmscpfs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.worklist_files import export_worklist_files, import_worklist_files
from tests.conftest import free_port
from tests.integration.dcmtk import echoscu, findscu

ITEM_DUMP = """
(0008,0005) CS [ISO_IR 192]
(0008,0050) SH [ACC{n:04d}]
(0008,0090) PN [REFERRER^ANNA]
(0010,0010) PN [{name}]
(0010,0020) LO [PID{n:04d}]
(0010,0030) DA [19700101]
(0010,0040) CS [M]
(0010,1030) DS [82]
(0010,2000) LO [Pacemaker: none]
(0010,2110) LO [Gadolinium: none known]
(0010,21c0) US 4
(0038,0500) LO [fasting since 06:00]
(0020,000d) UI [1.2.826.0.1.3680043.8.498.{n}]
(0032,1060) LO [MR Lumbar spine WO contrast - radiculopathy]
(0032,1064) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=3)
    (0008,0100) SH [30679-5]
    (0008,0102) SH [LN]
    (0008,0104) LO [MR Lumbar spine WO contrast]
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
(0040,0100) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=10)
    (0008,0060) CS [MR]
    (0040,0001) AE [{station}]
    (0040,0002) DA [{date}]
    (0040,0003) TM [{time}]
    (0040,0006) PN []
    (0040,0007) LO [LSP-RAD Lumbar spine radiculopathy]
    (0040,0009) SH [SPS{n:04d}]
    (0040,0010) SH [{station}]
    (0040,0011) SH [MR ROOM 1]
    (0040,0020) CS [SCHEDULED]
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
(0040,1001) SH [RP{n:04d}]
(0040,1003) SH [ROUTINE]
"""


def dump2dcm(directory: Path, n: int, *, name: str, station: str, date: str, time_: str) -> Path:
    """A worklist file made by DCMTK itself, as a RIS or wlmscpfs user would have it."""
    dump = directory / f"item{n}.dump"
    dump.write_text(
        ITEM_DUMP.format(n=n, name=name, station=station, date=date, time=time_), encoding="utf-8"
    )
    target = directory / f"item{n}.wl"
    subprocess.run(["dump2dcm", "-q", str(dump), str(target)], check=True, timeout=30)
    dump.unlink()
    return target


ITEMS = [
    (1, "Müller^Hans", "MRI1", "20260302", "083000"),
    (2, "Smith^John", "MRI1", "20260302", "090000"),
    (3, "Smith^Jane", "MRI2", "20260302", "100000"),
    (4, "Jones^Mary", "MRI1", "20260303", "073000"),
    (5, "Brown^Bob", "MRI2", "20260304", "180000"),
    (6, "Smithers^W", "MRI1", "20260301", "235900"),
]


@pytest.fixture
def wl_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return [dump2dcm(folder, n, name=nm, station=st, date=d, time_=t) for n, nm, st, d, t in ITEMS]


def test_import_keeps_every_attribute_the_file_held(
    runtime: Runtime, wl_files: list[Path], tmp_path: Path
) -> None:
    with runtime.sessions() as session, session.begin():
        report = import_worklist_files(session, wl_files[:1])
    assert report.imported == ["ACC0001/SPS0001"]
    server = start_dicom_server(
        DicomServerConfig("LSP_RIS", "127.0.0.1", runtime.settings.dicom_port, False, 8),
        runtime.nodes,
        runtime.finder,
    )
    try:
        result = findscu(
            runtime.settings.dicom_port,
            [
                "0010,0010",
                "0038,0500",
                "0010,21C0",
                "0010,2000",
                "0032,1064",
                "(0040,0100)[0].0040,0011",
            ],
            tmp_path / "out",
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.output
    [answer] = result.responses
    assert str(answer.PatientName) == "Müller^Hans"
    assert answer.PatientState == "fasting since 06:00"
    assert answer.PregnancyStatus == 4
    assert answer.MedicalAlerts == "Pacemaker: none"
    assert answer.RequestedProcedureCodeSequence[0].CodeValue == "30679-5"
    assert answer.ScheduledProcedureStepSequence[0].ScheduledProcedureStepLocation == "MR ROOM 1"


def test_an_unreadable_file_is_named_and_the_rest_are_imported(
    runtime: Runtime, wl_files: list[Path], tmp_path: Path
) -> None:
    garbage = tmp_path / "incoming" / "garbage.wl"
    garbage.write_bytes(b"this is not DICOM at all")
    truncated = tmp_path / "incoming" / "truncated.wl"
    truncated.write_bytes(wl_files[1].read_bytes()[:300])
    with runtime.sessions() as session, session.begin():
        report = import_worklist_files(session, [tmp_path / "incoming"])
    failed = {Path(path).name for path, _reason in report.failed}
    assert failed == {"garbage.wl", "truncated.wl"}
    assert len(report.imported) == len(ITEMS)


def test_importing_the_same_file_twice_updates_instead_of_duplicating(
    runtime: Runtime, wl_files: list[Path]
) -> None:
    for _ in range(2):
        with runtime.sessions() as session, session.begin():
            report = import_worklist_files(session, wl_files)
    assert len(report.updated) == len(ITEMS)
    with runtime.sessions() as session:
        assert session.query(ScheduledStep).count() == len(ITEMS)


def test_export_writes_files_that_read_back_identically(
    runtime: Runtime, wl_files: list[Path], tmp_path: Path
) -> None:
    with runtime.sessions() as session, session.begin():
        import_worklist_files(session, wl_files)
    with runtime.sessions() as session:
        written = export_worklist_files(session, tmp_path / "export")
    assert len(written) == len(ITEMS)
    originals = {str(dcmread(p).AccessionNumber): dcmread(p) for p in wl_files}
    for path in written:
        exported = dcmread(path)
        original = originals[str(exported.AccessionNumber)]
        assert exported.to_json_dict() == original.to_json_dict()


@pytest.fixture
def wlmscpfs(runtime: Runtime, wl_files: list[Path], tmp_path: Path) -> Iterator[int]:
    """DCMTK's reference worklist SCP serving the files we exported."""
    with runtime.sessions() as session, session.begin():
        import_worklist_files(session, wl_files)
    database = tmp_path / "wlmscpfs"
    with runtime.sessions() as session:
        export_worklist_files(session, database / "LSP_RIS")
    (database / "LSP_RIS" / "lockfile").touch()
    port = free_port()
    process = subprocess.Popen(
        ["wlmscpfs", "-dfp", str(database), "-dfr", "-csk", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if echoscu(port).returncode == 0:
                break
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


AGREEMENT_QUERIES = [
    ["(0040,0100)[0].0040,0001=MRI1"],
    ["(0040,0100)[0].0040,0002=20260302"],
    ["(0040,0100)[0].0040,0002=20260302-20260303"],
    ["(0040,0100)[0].0040,0002=-20260302"],
    ["(0040,0100)[0].0040,0002=20260303-"],
    ["(0040,0100)[0].0040,0001=MRI1", "(0040,0100)[0].0040,0002=20260302"],
    ["(0040,0100)[0].0040,0003=0800-0930"],
    ["(0040,0100)[0].0040,0002=20260301-20260302", "(0040,0100)[0].0040,0003=2300-0900"],
    ["(0040,0100)[0].0008,0060=MR"],
    ["0010,0020=PID0002"],
    ["0010,0010=Smith*"],
    ["0010,0010=Smith^J???"],
    ["0008,0050=ACC000?"],
    ["(0032,1064)[0].0008,0100=30679-5"],
]


@pytest.mark.parametrize("keys", AGREEMENT_QUERIES, ids=lambda k: " ".join(k))
def test_our_answers_agree_with_dcmtk_wlmscpfs(
    runtime: Runtime, wlmscpfs: int, tmp_path: Path, keys: list[str]
) -> None:
    server = start_dicom_server(
        DicomServerConfig("LSP_RIS", "127.0.0.1", runtime.settings.dicom_port, False, 8),
        runtime.nodes,
        runtime.finder,
    )
    request = ["0008,0050", "0010,0010", *keys]
    try:
        ours = findscu(runtime.settings.dicom_port, request, tmp_path / "ours")
    finally:
        server.shutdown()
    theirs = findscu(wlmscpfs, request, tmp_path / "theirs")
    assert ours.returncode == 0 and theirs.returncode == 0, ours.output + theirs.output
    assert sorted(str(r.AccessionNumber) for r in ours.responses) == sorted(
        str(r.AccessionNumber) for r in theirs.responses
    )
    assert ours.responses, "every agreement query should find something"
