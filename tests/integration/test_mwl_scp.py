"""The worklist SCP against real peers: DCMTK findscu/echoscu and a pynetdicom console."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pynetdicom.association
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from mri_pipeline.db.engine import make_engine, make_session_factory
from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.orders import OrderRequest, PatientIn, create_order
from mri_pipeline.services.worklist import WorklistFinder, record_status
from mri_pipeline.services.worklist_files import store_item
from tests.conftest import free_port
from tests.integration.dbtools import restart_postgresql
from tests.integration.dcmtk import echoscu, findscu
from tests.integration.test_worklist_narrowing import synthetic_item

TODAY = "20260302"
USUAL_KEYS = [
    "0010,0010",
    "0010,0020",
    "0010,0030",
    "0010,0040",
    "0008,0050",
    "0020,000D",
    "0040,1001",
    "0032,1060",
    "(0040,0100)[0].0040,0001=MRI1",
    f"(0040,0100)[0].0040,0002={TODAY}",
    "(0040,0100)[0].0040,0003",
    "(0040,0100)[0].0008,0060=MR",
    "(0040,0100)[0].0040,0009",
    "(0040,0100)[0].0040,0007",
]


def book(runtime: Runtime, patient_id: str, name: str, station: str, **extra: Any) -> str:
    request = OrderRequest(
        patient=PatientIn(patient_id=patient_id, name=name, birth_date="1970-01-01", sex="M"),
        indication=extra.pop("indication", "radiculopathy"),
        station=station,
        **extra,
    )
    with runtime.sessions() as session, session.begin():
        return create_order(session, runtime.desk, request).accession_number


def serve(runtime: Runtime, *, allow_any_ae: bool = False) -> Any:
    config = DicomServerConfig(
        ae_title=runtime.settings.ae_title,
        host="127.0.0.1",
        port=runtime.settings.dicom_port,
        allow_any_ae=allow_any_ae,
        max_associations=32,
    )
    return start_dicom_server(config, runtime.nodes, runtime.finder)


@pytest.fixture
def scp(runtime: Runtime) -> Iterator[int]:
    server = serve(runtime)
    try:
        yield runtime.settings.dicom_port
    finally:
        server.shutdown()


@pytest.fixture
def booked(runtime: Runtime) -> dict[str, str]:
    return {
        "mueller": book(runtime, "PID0001", "Müller^Hans", "MRI1"),
        "dvorak": book(runtime, "PID0002", "Dvořák^Antonín", "MRI2"),
        "smith": book(runtime, "PID0003", "Smith^John", "MRI1"),
    }


def test_echoscu_gets_verification_success(scp: int) -> None:
    done = echoscu(scp)
    assert done.returncode == 0, done.stdout + done.stderr


def test_console_query_returns_exactly_the_requested_keys(
    scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    result = findscu(scp, USUAL_KEYS, tmp_path)
    assert result.returncode == 0, result.output
    accessions = sorted(str(r.AccessionNumber) for r in result.responses)
    assert accessions == sorted([booked["mueller"], booked["smith"]])
    requested = {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "ScheduledProcedureStepSequence",
        "SpecificCharacterSet",
    }
    for response in result.responses:
        assert set(response.dir()) <= requested
        step = response.ScheduledProcedureStepSequence[0]
        assert set(step.dir()) == {
            "ScheduledStationAETitle",
            "ScheduledProcedureStepStartDate",
            "ScheduledProcedureStepStartTime",
            "Modality",
            "ScheduledProcedureStepID",
            "ScheduledProcedureStepDescription",
        }
        assert step.ScheduledStationAETitle == "MRI1"
        assert step.ScheduledProcedureStepDescription.startswith("LSP-RAD")


def test_utf8_names_come_back_with_their_character_set(
    scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    result = findscu(scp, ["0008,0005=ISO_IR 192", "0010,0010=müller*", "0008,0050"], tmp_path)
    assert result.returncode == 0, result.output
    assert len(result.responses) == 1
    response = result.responses[0]
    assert response.SpecificCharacterSet == "ISO_IR 192"
    assert str(response.PatientName) == "Müller^Hans"


def test_ascii_only_answers_carry_no_character_set(
    scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    result = findscu(scp, ["0010,0010=SMITH*", "0010,0020"], tmp_path)
    assert [str(r.PatientID) for r in result.responses] == ["PID0003"]
    assert "SpecificCharacterSet" not in result.responses[0]


def test_a_latin1_console_gets_latin1_with_other_letters_transliterated(
    runtime: Runtime, booked: dict[str, str]
) -> None:
    server = serve(runtime)
    try:
        answers = pynetdicom_find(runtime.settings.dicom_port, "MRI2", name_query("*"))
    finally:
        server.shutdown()
    names = {str(ds.PatientName): ds.get("SpecificCharacterSet") for _status, ds in answers if ds}
    assert names["Müller^Hans"] == "ISO_IR 100"
    assert names["Dvorák^Antonín"] == "ISO_IR 100"  # ř is not Latin-1; á and í are


def test_an_unknown_calling_ae_is_rejected_and_logged(
    scp: int, booked: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mri_pipeline.dicom.server")
    result = findscu(scp, ["0010,0010"], tmp_path, calling="ROGUE")
    assert result.returncode != 0
    assert "Rejected" in result.output or "rejected" in result.output
    assert result.responses == []
    assert echoscu(scp, calling="ROGUE").returncode != 0
    assert "association rejected calling_ae=ROGUE" in caplog.text


def test_a_wrong_called_ae_is_rejected(scp: int, tmp_path: Path) -> None:
    result = findscu(scp, ["0010,0010"], tmp_path, called="SOMEONE_ELSE")
    assert result.returncode != 0
    assert "Rejected" in result.output or "rejected" in result.output


def test_allow_any_ae_lets_an_unknown_console_query(
    runtime: Runtime, booked: dict[str, str], tmp_path: Path
) -> None:
    server = serve(runtime, allow_any_ae=True)
    try:
        result = findscu(runtime.settings.dicom_port, ["0010,0020"], tmp_path, calling="ROGUE")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.output
    assert len(result.responses) == 3


def test_completed_and_cancelled_steps_are_hidden_unless_status_is_a_key(
    runtime: Runtime, scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    with runtime.sessions() as session, session.begin():
        step = session.query(ScheduledStep).filter_by(accession_number=booked["smith"]).one()
        record_status(session, step, "COMPLETED", at=datetime.now(UTC))
    broad = findscu(scp, ["0008,0050", "(0040,0100)[0].0040,0001=MRI1"], tmp_path)
    assert [str(r.AccessionNumber) for r in broad.responses] == [booked["mueller"]]
    by_status = findscu(scp, ["0008,0050", "(0040,0100)[0].0040,0020=COMPLETED"], tmp_path)
    assert [str(r.AccessionNumber) for r in by_status.responses] == [booked["smith"]]


def test_departed_is_hidden_from_broad_queries_but_shown_to_patient_queries(
    runtime: Runtime, scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    with runtime.sessions() as session, session.begin():
        step = session.query(ScheduledStep).filter_by(accession_number=booked["smith"]).one()
        record_status(session, step, "DEPARTED", at=datetime.now(UTC))
    broad = findscu(scp, ["0008,0050", "(0040,0100)[0].0040,0001=MRI1"], tmp_path)
    assert booked["smith"] not in [str(r.AccessionNumber) for r in broad.responses]
    patient = findscu(scp, ["0008,0050", "0010,0020=PID0003"], tmp_path)
    assert [str(r.AccessionNumber) for r in patient.responses] == [booked["smith"]]


def name_query(name: str) -> Dataset:
    query = Dataset()
    query.PatientName = name
    query.PatientID = ""
    query.AccessionNumber = ""
    return query


def pynetdicom_find(port: int, calling: str, query: Dataset) -> list[tuple[int, Dataset | None]]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="LSP_RIS")
    assert assoc.is_established
    try:
        return [
            (int(status.Status), identifier)
            for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
            if status
        ]
    finally:
        assoc.release()


def test_two_step_items_in_the_query_get_a900_and_the_server_keeps_serving(
    scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    query = name_query("")
    query.ScheduledProcedureStepSequence = Sequence([Dataset(), Dataset()])
    query.ScheduledProcedureStepSequence[0].Modality = "MR"
    answers = pynetdicom_find(scp, "FINDSCU", query)
    assert [status for status, _ in answers] == [0xA900]
    assert len(findscu(scp, ["0010,0020"], tmp_path).responses) == 3


def test_a_malformed_date_key_gets_a_failure_status_not_a_crash(
    scp: int, booked: dict[str, str], tmp_path: Path
) -> None:
    query = name_query("")
    step = Dataset()
    step.ScheduledProcedureStepStartDate = "2026-03-02"
    query.ScheduledProcedureStepSequence = Sequence([step])
    answers = pynetdicom_find(scp, "FINDSCU", query)
    assert [status for status, _ in answers] == [0xA900]
    assert len(findscu(scp, ["0010,0020"], tmp_path).responses) == 3


def test_a_value_in_an_unsupported_key_gives_ff01_pending(scp: int, booked: dict[str, str]) -> None:
    query = name_query("Smith*")
    query.add_new(0x00091010, "LO", "vendor key")
    answers = pynetdicom_find(scp, "FINDSCU", query)
    assert [status for status, _ in answers] == [0xFF01, 0x0000]


def test_c_cancel_from_findscu_stops_the_answers(
    runtime: Runtime, scp: int, tmp_path: Path
) -> None:
    template = synthetic_item(random.Random(1), 0)
    template.PatientName = "Cancel^Me"
    template.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus = "SCHEDULED"
    with runtime.sessions() as session, session.begin():
        for n in range(1500):
            template.AccessionNumber = f"C{n:05d}"
            template.StudyInstanceUID = f"1.2.3.9.{n}"
            template.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = f"C{n:05d}"
            store_item(session, template, source="test")
    result = findscu(
        scp, ["0010,0010=Cancel*", "0008,0050"], tmp_path, extra=["--cancel", "1", "-v"]
    )
    assert result.returncode == 0, result.output
    assert "MatchingTerminatedDueToCancelRequest" in result.output, result.output[-2000:]
    assert 1 <= len(result.responses) < 1500


GARBAGE_IDENTIFIERS = [
    b"\x10\x00\x10\x00PN\x20\x00Smith",  # a value shorter than its length says
    b"\x10\x00\x10\x00\xff\xff\xff\xffabc",  # undefined length on a text element
    b"\x40\x00\x00\x01\x10\x00\x00\x00\xfe\xff\x00\xe0\x20\x00\x00\x00abc",  # broken item
    b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 999",  # a character set nobody knows
    b"\x40\x00\x02\x00\x0a\x00\x00\x002026-13-45",  # a date that is not a date
    b"\x10\x00",  # two bytes
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("garbage", GARBAGE_IDENTIFIERS)
def test_garbage_identifiers_get_an_answer_and_the_server_keeps_serving(
    scp: int,
    booked: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    garbage: bytes,
) -> None:
    monkeypatch.setattr(pynetdicom.association, "encode", lambda *_args, **_kw: garbage)
    answers = pynetdicom_find(scp, "FINDSCU", name_query(""))
    monkeypatch.undo()
    final = answers[-1][0]
    assert final in (0x0000, 0xA900, 0xC310), hex(final)
    assert all(status in (0xFF00, 0xFF01) for status, _ in answers[:-1])
    assert len(findscu(scp, ["0010,0020"], tmp_path).responses) == 3


def test_an_unreachable_database_gets_c001_and_the_server_keeps_serving(
    runtime: Runtime, tmp_path: Path
) -> None:
    # Port 1 on loopback: nothing listens, so every connection attempt fails at once.
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    finder = WorklistFinder(make_session_factory(engine))
    port = free_port()
    config = DicomServerConfig("LSP_RIS", "127.0.0.1", port, False, 4)
    server = start_dicom_server(config, runtime.nodes, finder)
    try:
        answers = pynetdicom_find(port, "FINDSCU", name_query("Smith*"))
        assert [status for status, _ in answers] == [0xC001]
        assert echoscu(port).returncode == 0
    finally:
        server.shutdown()
        engine.dispose()


def test_the_worklist_answers_again_after_a_database_restart(
    runtime: Runtime, scp: int, booked: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    assert len(findscu(scp, ["0010,0020"], tmp_path).responses) == 3
    if database_url.startswith("postgresql"):
        restart_postgresql()
    else:
        runtime.engine.dispose()
    assert len(findscu(scp, ["0010,0020"], tmp_path).responses) == 3
