"""QC of simulated examinations: series checked as they arrive, a verdict per examination."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import select

from mri_pipeline.db.models import StepEvent
from mri_pipeline.dicom.exam_card import exam_card
from mri_pipeline.dicom.scanner import PlannedSeries, perform, restamp
from mri_pipeline.domain.access import Role
from mri_pipeline.imaging.sample_studies import load_manifest
from mri_pipeline.services.qc import QcWorker, ready_for_routing
from tests.conftest import ROOT, fixed_clock
from tests.integration.api_tools import api_client
from tests.integration.orthanc_tools import Pipeline
from tests.integration.test_ingest import item_for
from tests.integration.test_mwl_scp import book

SAMPLES = ROOT / "sample_studies"


def sample_series(case: str) -> dict[str, list[Path]]:
    return load_manifest(SAMPLES).case(case).paths_by_description(SAMPLES)


def examine(pipeline: Pipeline, patient_id: str, *, drop_ax_slice: int | None = None) -> Dataset:
    """Book a screening examination (LSP-SCREEN), perform it with the normal sample images."""
    accession = book(pipeline.runtime, patient_id, "Qc^Patient", "MRI1", indication="screening")
    item = item_for(pipeline, accession)
    normal = sample_series("normal")
    plan = exam_card(pipeline.runtime.catalogue.protocol("LSP-SCREEN"), normal, normal)
    if drop_ax_slice is not None:
        plan = [
            PlannedSeries(
                s.description,
                [t for n, t in enumerate(s.templates, 1) if n != drop_ax_slice]
                if s.description == "AX T2 TSE"
                else s.templates,
            )
            for s in plan
        ]
    perform(pipeline.console, item, plan, clock=fixed_clock)
    pipeline.drain(lambda: pipeline.state(accession) == "ready_for_reading")
    return item


def qc_until_verdict(pipeline: Pipeline) -> None:
    worker = QcWorker(
        pipeline.runtime.sessions,
        pipeline.ingest.orthanc,
        pipeline.runtime.catalogue,
        clock=fixed_clock,
    )
    for _ in range(3):
        if worker.run_pass()["verdicts"]:
            return
    raise AssertionError("no QC verdict")


def test_clean_examination_passes_qc_with_a_thumbnail_per_series(pipeline: Pipeline) -> None:
    study_uid = str(examine(pipeline, "QC1").StudyInstanceUID)
    qc_until_verdict(pipeline)
    with api_client(pipeline.runtime) as api:
        qc = api.get(f"/api/studies/{study_uid}/qc").json()
        assert qc["verdict"] == "PASSED", qc
        assert [s["series_description"] for s in qc["series"]] == [
            "LOC 3PL",
            "SAG T1 TSE",
            "SAG T2 TSE",
            "SAG STIR",
            "AX T2 TSE",
        ]
        assert all(s["outcome"] == "PASS" for s in qc["series"])
        series_uid = qc["series"][1]["series_instance_uid"]
        png = api.get(f"/api/studies/{study_uid}/series/{series_uid}/thumbnail.png")
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert api.get(f"/api/studies/{study_uid}/series/1.2.3/thumbnail.png").status_code == 404


def test_a_missing_axial_slice_fails_the_examination_in_words(pipeline: Pipeline) -> None:
    study_uid = str(examine(pipeline, "QC2", drop_ax_slice=7).StudyInstanceUID)
    qc_until_verdict(pipeline)
    with api_client(pipeline.runtime) as api:
        qc = api.get(f"/api/studies/{study_uid}/qc").json()
    assert qc["verdict"] == "FAILED"
    [axial] = [s for s in qc["series"] if s["series_description"] == "AX T2 TSE"]
    assert axial["outcome"] == "FAIL"
    messages = [r["message"] for r in axial["results"] if r["outcome"] == "FAIL"]
    assert "AX T2 TSE: slice 7 of 37 missing (gap 10 mm)." in messages, messages
    assert "AX T2 TSE" in qc["summary"]
    others = [s for s in qc["series"] if s["series_description"] != "AX T2 TSE"]
    assert all(s["outcome"] == "PASS" for s in others)


def routable(pipeline: Pipeline) -> list[str]:
    with pipeline.runtime.sessions() as session:
        return [s.study_instance_uid for s in ready_for_routing(session)]


def test_a_failed_examination_is_held_until_a_radiographer_accepts_it(pipeline: Pipeline) -> None:
    study_uid = str(examine(pipeline, "QC3", drop_ax_slice=7).StudyInstanceUID)
    qc_until_verdict(pipeline)
    assert routable(pipeline) == []
    with api_client(pipeline.runtime, Role.RADIOLOGIST, "rad.okafor") as radiologist:
        refused = radiologist.post(
            f"/api/studies/{study_uid}/qc/accept", json={"reason": "looks fine to me"}
        )
        assert refused.status_code == 403  # accepting a failed examination is the radiographer's
    with api_client(pipeline.runtime, Role.RADIOGRAPHER) as api:
        accepted = api.post(
            f"/api/studies/{study_uid}/qc/accept",
            json={"reason": "gap outside the levels of interest"},
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["verdict"] == "ACCEPTED"
        again = api.post(f"/api/studies/{study_uid}/qc/accept", json={"reason": "twice"})
        assert again.status_code == 409
        assert "not FAILED" in again.json()["detail"]
        assert api.post(f"/api/studies/{study_uid}/qc/accept", json={}).status_code == 422
        kinds = [e["kind"] for e in api.get(f"/api/studies/{study_uid}").json()["events"]]
    assert kinds[-2:] == ["QC_FAILED", "QC_ACCEPTED"]
    with pipeline.runtime.sessions() as session:
        accepted_by = session.scalar(select(StepEvent.actor).where(StepEvent.kind == "QC_ACCEPTED"))
    assert accepted_by is not None and accepted_by.startswith("radiographer-")
    assert routable(pipeline) == [study_uid]


def test_a_repeated_series_replaces_the_failed_one(pipeline: Pipeline) -> None:
    item = examine(pipeline, "QC4", drop_ax_slice=7)
    study_uid = str(item.StudyInstanceUID)
    qc_until_verdict(pipeline)
    repeat = [
        s
        for s in exam_card(
            pipeline.runtime.catalogue.protocol("LSP-SCREEN"),
            sample_series("normal"),
            sample_series("normal"),
        )
        if s.description == "AX T2 TSE"
    ]
    [(_, images)] = restamp(repeat, item, station="MRI1", now=fixed_clock())
    assert len(pipeline.console.store(images).stored) == 37
    pipeline.drain(lambda: len(pipeline.study_series(study_uid)) == 6)
    qc_until_verdict(pipeline)

    with api_client(pipeline.runtime) as api:
        qc = api.get(f"/api/studies/{study_uid}/qc").json()
    assert qc["verdict"] == "PASSED", qc["summary"]
    axials = [s for s in qc["series"] if s["series_description"] == "AX T2 TSE"]
    assert sorted((s["outcome"], s["counts"]) for s in axials) == [("FAIL", False), ("PASS", True)]
    assert routable(pipeline) == [study_uid]
