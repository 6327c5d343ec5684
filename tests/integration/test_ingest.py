"""Ingest against a real Orthanc, a real MWL/MPPS server and a pynetdicom console."""

from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from sqlalchemy import func, insert, select, update

from mri_pipeline.db.models import (
    IngestCursor,
    PerformedStep,
    PerformedStepMessage,
    ReceivedInstance,
    ReceivedSeries,
    ReceivedStudy,
    StepEvent,
)
from mri_pipeline.dicom.console_messages import MR_IMAGE_STORAGE
from mri_pipeline.dicom.scanner import PlannedSeries, perform, restamp
from mri_pipeline.services.ingest import CURSOR_NAME
from tests.conftest import ROOT, fixed_clock
from tests.integration.api_tools import api_client
from tests.integration.orthanc_tools import (
    NEEDS_ORTHANC,
    Patient,
    Pipeline,
    mr_template,
    orthanc_get,
    storescu,
    write_mr_series,
)
from tests.integration.test_mwl_scp import book

pytestmark = NEEDS_ORTHANC


def plan(*descriptions: str, images: int = 4) -> list[PlannedSeries]:
    return [
        PlannedSeries(description, [mr_template(n) for n in range(1, images + 1)])
        for description in descriptions
    ]


def item_for(pipeline: Pipeline, accession: str) -> Dataset:
    [item] = pipeline.console.worklist(accession=accession)
    return item


def orthanc_study_instances(pipeline: Pipeline, orthanc_id: str) -> int:
    statistics = orthanc_get(pipeline.orthanc, f"/studies/{orthanc_id}/statistics")
    assert isinstance(statistics, dict)
    return int(statistics["CountInstances"])


def events(pipeline: Pipeline, study_uid: str) -> list[str]:
    with pipeline.runtime.sessions() as session:
        return list(
            session.execute(
                select(StepEvent.kind)
                .where(StepEvent.study_instance_uid == study_uid)
                .order_by(StepEvent.id)
            ).scalars()
        )


def test_examination_is_ready_for_reading_once_mpps_completed_and_all_images_stored(
    pipeline: Pipeline,
) -> None:
    accession = book(pipeline.runtime, "PID1", "Müller^Hans", "MRI1")
    item = item_for(pipeline, accession)
    done = perform(
        pipeline.console,
        item,
        plan("SAG T1 TSE", "SAG T2 TSE", "AX T2 TSE"),
        clock=fixed_clock,
    )
    assert done.stored == 12 and not done.failed

    pipeline.drain(lambda: pipeline.state(accession) == "ready_for_reading")

    study = pipeline.study(accession)
    assert study.study_instance_uid == item.StudyInstanceUID
    assert study.reconciliation == "matched"
    assert study.completion_basis == "mpps"
    assert study.patient_id == "PID1"
    assert study.instance_count == 12
    assert orthanc_study_instances(pipeline, study.orthanc_id) == 12
    with pipeline.runtime.sessions() as session:
        descriptions = session.execute(
            select(ReceivedSeries.series_description, ReceivedSeries.instance_count)
            .where(ReceivedSeries.study_pk == study.id)
            .order_by(ReceivedSeries.series_number)
        ).all()
    assert [tuple(row) for row in descriptions] == [
        ("SAG T1 TSE", 4),
        ("SAG T2 TSE", 4),
        ("AX T2 TSE", 4),
    ]
    assert events(pipeline, study.study_instance_uid) == [
        "STUDY_RECEIVING",
        "STUDY_READY_FOR_READING",
    ]

    with api_client(pipeline.runtime) as api:
        shown = api.get(f"/api/studies/{study.study_instance_uid}").json()
        assert shown["state"] == "ready_for_reading"
        assert shown["accession_number"] == accession
        assert [s["series_description"] for s in shown["series"]] == [
            "SAG T1 TSE",
            "SAG T2 TSE",
            "AX T2 TSE",
        ]
        ready = api.get("/api/studies", params={"state": "ready_for_reading"}).json()
        assert [s["study_instance_uid"] for s in ready] == [study.study_instance_uid]
        assert api.get("/api/studies", params={"state": "receiving"}).json() == []
        assert api.get("/api/studies", params={"state": "lost"}).status_code == 422
        assert api.get("/api/studies/1.2.3").status_code == 404
        timeline = api.get(f"/api/procedures/{accession}").json()
        assert "STUDY_READY_FOR_READING" in [e["kind"] for e in timeline["events"]]


def test_mpps_completed_before_the_last_images_waits_for_them(pipeline: Pipeline) -> None:
    accession = book(pipeline.runtime, "PID2", "Smith^John", "MRI1")
    item = item_for(pipeline, accession)
    console = pipeline.console
    mpps_uid = console.start(item, now=fixed_clock())
    series = plan("SAG T2 TSE", "AX T2 TSE", images=5)
    first, second = restamp(series, item, station="MRI1", now=fixed_clock())
    console.store(first[1])
    console.finish(mpps_uid, [first[0], second[0]], now=fixed_clock())

    pipeline.drain(lambda: pipeline.study(accession).instance_count == 5)
    pipeline.ingest.run_pass()
    study = pipeline.study(accession)
    assert study.state == "receiving"
    assert study.state_note == "MPPS completed; 5 of 10 referenced instances not yet stored"

    console.store(second[1])
    pipeline.drain(lambda: pipeline.state(accession) == "ready_for_reading")
    assert pipeline.study(accession).instance_count == 10


def test_without_mpps_the_study_is_complete_when_orthanc_calls_it_stable(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    accession = book(pipeline.runtime, "PID3", "Doe^Jane", "MRI1")
    item = item_for(pipeline, accession)
    series = write_mr_series(
        tmp_path / "nompps",
        patient=Patient("PID3", "Doe^Jane"),
        accession_number=accession,
        study_instance_uid=str(item.StudyInstanceUID),
        description="SAG T2 TSE",
        images=3,
    )
    done = storescu(pipeline.orthanc.dicom_port, series.paths)
    assert done.returncode == 0, done.stderr
    pipeline.drain(lambda: pipeline.study(accession).instance_count == 3)
    assert pipeline.state(accession) == "receiving"

    pipeline.drain(lambda: pipeline.state(accession) == "ready_for_reading")
    study = pipeline.study(accession)
    assert study.completion_basis == "stable"
    assert study.stable


def test_a_study_without_an_order_goes_to_the_unmatched_queue(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    series = write_mr_series(
        tmp_path / "orphan",
        patient=Patient("WALKIN1", "Walk^In"),
        accession_number="NOSUCH1",
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        description="SAG T2 TSE",
        images=2,
    )
    assert storescu(pipeline.orthanc.dicom_port, series.paths).returncode == 0
    pipeline.drain(lambda: pipeline.study("NOSUCH1").instance_count == 2)
    time.sleep(3)  # past Orthanc's stable age: stability alone never makes it readable
    pipeline.drain(lambda: pipeline.study("NOSUCH1").stable)

    study = pipeline.study("NOSUCH1")
    assert study.reconciliation == "unmatched"
    assert study.procedure_pk is None
    assert study.state == "receiving"
    assert events(pipeline, study.study_instance_uid) == ["STUDY_UNMATCHED"]
    with api_client(pipeline.runtime) as api:
        queue = api.get("/api/reconciliation").json()["studies"]
    assert [(q["accession_number"], q["reconciliation"]) for q in queue] == [
        ("NOSUCH1", "unmatched")
    ]


def test_wrong_patient_for_the_accession_is_flagged_never_merged(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    accession = book(pipeline.runtime, "PID4", "Brown^Anna", "MRI1")
    item = item_for(pipeline, accession)
    series = write_mr_series(
        tmp_path / "wrong",
        patient=Patient("PID9", "Brown^Anna"),
        accession_number=accession,
        study_instance_uid=str(item.StudyInstanceUID),
        description="SAG T2 TSE",
        images=2,
    )
    assert storescu(pipeline.orthanc.dicom_port, series.paths).returncode == 0
    pipeline.drain(lambda: pipeline.study(accession).instance_count == 2)

    study = pipeline.study(accession)
    assert study.reconciliation == "mismatch"
    assert study.reconciliation_note == (
        f"accession {accession}: patient ID PID9 in the images, PID4 on the order"
    )
    time.sleep(3)
    pipeline.drain(lambda: pipeline.study(accession).stable)
    assert pipeline.state(accession) == "receiving"  # held for a person


def test_discontinued_examination_is_not_ready_for_reading(pipeline: Pipeline) -> None:
    accession = book(pipeline.runtime, "PID5", "Green^Tom", "MRI1")
    done = perform(
        pipeline.console,
        item_for(pipeline, accession),
        plan("SAG T1 TSE", "SAG T2 TSE", "AX T2 TSE", "AX T1 TSE"),
        clock=fixed_clock,
        discontinue="110515",
    )
    assert done.stored == 8
    pipeline.drain(lambda: pipeline.state(accession) == "discontinued")
    study = pipeline.study(accession)
    assert study.instance_count == 8
    assert "discontinued" in (study.state_note or "")


def test_replaying_the_change_log_records_nothing_twice(pipeline: Pipeline) -> None:
    accession = book(pipeline.runtime, "PID6", "White^Eve", "MRI1")
    perform(
        pipeline.console,
        item_for(pipeline, accession),
        plan("SAG T2 TSE", "AX T2 TSE", images=6),
        clock=fixed_clock,
    )
    pipeline.drain(lambda: pipeline.state(accession) == "ready_for_reading")

    with pipeline.runtime.sessions.begin() as session:
        session.execute(
            update(IngestCursor).where(IngestCursor.name == CURSOR_NAME).values(last_seq=0)
        )
    pipeline.drain(lambda: pipeline.ingest.cursor() > 0)
    pipeline.ingest.run_pass()

    with pipeline.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ReceivedInstance)) == 12
        assert session.scalar(select(func.count()).select_from(ReceivedStudy)) == 1
    study = pipeline.study(accession)
    assert study.instance_count == 12
    assert events(pipeline, study.study_instance_uid) == [
        "STUDY_RECEIVING",
        "STUDY_READY_FOR_READING",
    ]


def test_truncated_and_non_dicom_input_is_refused_without_harm(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    good = write_mr_series(
        tmp_path / "good",
        patient=Patient("PID7", "Grey^Sam"),
        accession_number="LSPX1",
        study_instance_uid="1.2.826.0.1.3680043.8.498.7",
        description="SAG T2 TSE",
        images=2,
    )
    # The file ends before its Study Instance UID (0020,000D). A file cut inside its
    # pixel data is accepted by Orthanc: finding that is QC's integrity check.
    truncated = tmp_path / "truncated.dcm"
    whole = good.paths[0].read_bytes()
    truncated.write_bytes(whole[: whole.index(b"\x20\x00\x0d\x00UI")])

    # storescu refuses to send a file it cannot read; pynetdicom sends its raw bytes.
    ae = AE(ae_title="MRI1")
    ae.dimse_timeout = 15
    ae.add_requested_context(MR_IMAGE_STORAGE)
    assoc = ae.associate("127.0.0.1", pipeline.orthanc.dicom_port, ae_title="LSP_PACS")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(truncated)
    finally:
        assoc.release()
    assert status and status.Status >= 0xA000  # a failure, not a success or warning

    answer = httpx.post(
        f"{pipeline.orthanc.url}/instances",
        content=b"this is a referral letter, not DICOM",
        auth=pipeline.orthanc.auth,
        timeout=10,
    )
    assert answer.status_code == 400
    instances = orthanc_get(pipeline.orthanc, "/instances")
    assert instances == []

    report = pipeline.ingest.run_pass()
    assert report.new_instances == 0

    assert storescu(pipeline.orthanc.dicom_port, good.paths).returncode == 0
    pipeline.drain(lambda: pipeline.study("LSPX1").instance_count == 2)


def test_storescu_of_a_sample_study_is_stored_whole_and_queued_without_an_order(
    pipeline: Pipeline,
) -> None:
    from mri_pipeline.imaging.sample_studies import load_manifest

    samples = ROOT / "sample_studies"
    case = load_manifest(samples).case("herniation_l4_l5")
    paths = [path for series in case.series for path in series.paths(samples)]
    done = storescu(pipeline.orthanc.dicom_port, paths)
    assert done.returncode == 0, done.stderr

    def recorded() -> int:
        with pipeline.runtime.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ReceivedInstance)) or 0)

    pipeline.drain(lambda: recorded() == len(paths))
    with pipeline.runtime.sessions() as session:
        study = session.execute(select(ReceivedStudy)).scalar_one()
        series = list(
            session.execute(
                select(ReceivedSeries.series_description, ReceivedSeries.instance_count)
                .where(ReceivedSeries.study_pk == study.id)
                .order_by(ReceivedSeries.series_number)
            ).all()
        )
    assert study.study_instance_uid == case.study_instance_uid
    assert study.reconciliation == "unmatched"
    assert [tuple(row) for row in series] == [
        (s.description, s.instance_count) for s in case.series
    ]
    assert orthanc_study_instances(pipeline, study.orthanc_id) == len(paths)


def test_the_client_fetches_a_series_files_from_orthanc(pipeline: Pipeline, tmp_path: Path) -> None:
    written = write_mr_series(
        tmp_path / "fetch",
        patient=Patient("PID8", "Fetch^Me"),
        accession_number="LSPF1",
        study_instance_uid="1.2.826.0.1.3680043.8.498.8",
        description="AX T2 TSE",
        images=3,
    )
    assert storescu(pipeline.orthanc.dicom_port, written.paths).returncode == 0
    pipeline.drain(lambda: pipeline.study("LSPF1").instance_count == 3)
    with pipeline.runtime.sessions() as session:
        orthanc_id = session.scalar(select(ReceivedSeries.orthanc_id))
    assert orthanc_id is not None
    files = pipeline.ingest.orthanc.series_files(orthanc_id)
    fetched = sorted(str(dcmread(BytesIO(f)).SOPInstanceUID) for f in files)
    assert fetched == sorted(written.sop_instance_uids)


def test_an_mpps_message_committed_after_a_newer_one_still_gets_its_study_judged(
    pipeline: Pipeline,
) -> None:
    """Two consoles' MPPS transactions on PostgreSQL: the one that took the lower id may
    commit last. Ingest must not step over it for having seen a higher id already."""
    if pipeline.runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite commits one writer at a time: ids always commit in order")
    studies = {}
    for accession in (book(pipeline.runtime, f"ORD{n}", "Order^Out", "MRI1") for n in (1, 2)):
        item = item_for(pipeline, accession)
        pipeline.console.start(item, now=fixed_clock())
        [(_series, images)] = restamp(
            plan("SAG T2 TSE", images=2), item, station="MRI1", now=fixed_clock()
        )
        pipeline.console.store(images)
        studies[accession] = str(item.StudyInstanceUID)
    first, second = studies
    pipeline.drain(lambda: all(pipeline.study(a).instance_count == 2 for a in studies))
    ingest = pipeline.ingest
    assert ingest._mpps_changed() == set()  # nothing new since the drain

    with pipeline.runtime.sessions() as session:
        step_of = dict(
            session.execute(
                select(PerformedStep.study_instance_uid, PerformedStep.id).where(
                    PerformedStep.study_instance_uid.in_(studies.values())
                )
            ).all()
        )

    def message(accession: str) -> Any:
        return insert(PerformedStepMessage).values(
            performed_step_pk=step_of[studies[accession]],
            operation="N-SET",
            calling_ae_title="MRI1",
            dataset_json="{}",
            ignored_tags=[],
            received_at=fixed_clock(),
        )

    with pipeline.runtime.engine.connect() as slow:
        slow.begin()
        slow.execute(message(first))  # takes the lower id, commits last
        with pipeline.runtime.engine.begin() as quick:
            quick.execute(message(second))
        assert ingest._mpps_changed() == {pipeline.study(second).id}
        slow.commit()
    assert ingest._mpps_changed() == {pipeline.study(first).id}
    assert ingest._mpps_changed() == set()
