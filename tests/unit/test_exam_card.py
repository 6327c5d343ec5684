"""The simulated console picks a sample series for every series a protocol asks for, and
the examination it sends with the sample studies passes image QC."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from mri_pipeline.dicom.exam_card import CASE_BY_PROTOCOL, DEFAULT_CASE, closest_sample, exam_card
from mri_pipeline.dicom.scanner import restamp
from mri_pipeline.domain.protocols import Catalogue, parse_catalogue
from mri_pipeline.domain.qc import (
    Check,
    CheckResult,
    ExamOutcome,
    Outcome,
    Plane,
    SeriesMeasurements,
    check_series,
    examination_verdict,
    identify_series,
    missing_series,
)
from mri_pipeline.imaging.qc_measures import measure
from mri_pipeline.imaging.sample_studies import SampleManifest, load_manifest
from mri_pipeline.imaging.series_images import load_series

ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = ROOT / "sample_studies"
CATALOGUE_FILE = ROOT / "worklist/protocols.yaml"

SAMPLES = [
    "LOC 3PL",
    "SAG T1 TSE",
    "SAG T2 TSE",
    "SAG STIR",
    "AX T2 TSE",
    "AX T1 TSE",
    "SAG T1 FS +C",
    "AX T1 FS +C",
]
WITH_SI_JOINTS = [*SAMPLES, "COR-OBL T1 TSE SIJ", "COR-OBL STIR SIJ"]


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("SAG T2 TSE", "SAG T2 TSE"),
        ("COR STIR", "SAG STIR"),
        ("COR T2 TSE", "SAG T2 TSE"),
        ("SAG 3D T2", "SAG T2 TSE"),
        ("COR T1 FS +C", "SAG T1 FS +C"),
        ("COR-OBL T1 TSE SIJ", "SAG T1 TSE"),
        ("COR-OBL STIR SIJ", "SAG STIR"),
        ("AX-OBL T2 FS SIJ", "AX T2 TSE"),
        ("SAG T2 DIXON", "SAG T2 TSE"),
    ],
)
def test_without_the_plane_the_closest_sample_keeps_weighting_then_contrast(
    wanted: str, chosen: str
) -> None:
    assert closest_sample(wanted, SAMPLES) == chosen


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("COR-OBL T1 TSE SIJ", "COR-OBL T1 TSE SIJ"),
        ("COR-OBL 3D T1 GRE SIJ", "COR-OBL T1 TSE SIJ"),
        ("COR STIR", "COR-OBL STIR SIJ"),
        # a T1 in the right plane only warns in image QC; a sagittal T2 would fail it
        ("COR T2 TSE", "COR-OBL T1 TSE SIJ"),
        ("COR T1 FS +C", "COR-OBL T1 TSE SIJ"),
        ("AX-OBL T2 FS SIJ", "AX T2 TSE"),
        ("AX DWI", "AX T2 TSE"),
    ],
)
def test_the_closest_sample_keeps_the_plane_first(wanted: str, chosen: str) -> None:
    assert closest_sample(wanted, WITH_SI_JOINTS) == chosen


def test_no_samples_no_choice() -> None:
    assert closest_sample("SAG T2 TSE", []) is None


# The simulated examination of every protocol through image QC -----------------------------


@cache
def _catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), "protocols.yaml")


@cache
def _manifest() -> SampleManifest:
    return load_manifest(SAMPLES_DIR)


def _worklist_item(code: str) -> Dataset:
    """What the console needs of a worklist item to stamp the sample images."""
    code_item = Dataset()
    code_item.CodeValue = code
    code_item.CodingSchemeDesignator = "99LSPINE"
    step = Dataset()
    step.ScheduledProcedureStepID = "SPS1"
    step.ScheduledProtocolCodeSequence = DicomSequence([code_item])
    item = Dataset()
    item.PatientName = "Simulated^Patient"
    item.PatientID = "SIM1"
    item.AccessionNumber = "LSP0001"
    item.StudyInstanceUID = "2.25.1"
    item.RequestedProcedureID = "RP1"
    item.ScheduledProcedureStepSequence = DicomSequence([step])
    return item


def _simulated(code: str, include_optional: bool) -> list[SeriesMeasurements]:
    """The series ``scanner simulate`` sends for ``code``, measured as QC measures them."""
    case = CASE_BY_PROTOCOL.get(code, DEFAULT_CASE)
    manifest = _manifest()
    plan = exam_card(
        _catalogue().protocol(code),
        manifest.case(case).paths_by_description(SAMPLES_DIR),
        manifest.case(DEFAULT_CASE).paths_by_description(SAMPLES_DIR),
        include_optional=include_optional,
    )
    made = restamp(
        plan, _worklist_item(code), station="MRI1", now=datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    )
    return [measure(load_series(images)) for _, images in made]


def _qc(
    code: str, series: list[SeriesMeasurements], levels: dict[str, float] | None
) -> list[CheckResult]:
    protocol = _catalogue().protocol(code)
    results: list[CheckResult] = []
    received: list[str] = []
    for measured in series:
        spec = identify_series(measured, protocol)
        if spec is not None:
            received.append(spec.description)
        results += check_series(measured, protocol, levels)
    return results + missing_series(protocol, received)


@pytest.mark.parametrize("include_optional", [False, True], ids=["required", "with-optional"])
@pytest.mark.parametrize("code", _catalogue().protocol_codes)
def test_the_simulated_examination_of_every_protocol_passes_image_qc(
    code: str, include_optional: bool
) -> None:
    protocol = _catalogue().protocol(code)
    case = _manifest().case(CASE_BY_PROTOCOL.get(code, DEFAULT_CASE))
    series = _simulated(code, include_optional)
    axials = [s.description for s in series if s.plane is Plane.AXIAL]
    # The QC worker judges coverage by the stack's length; the phantom's level positions
    # (which a model or atlas would give) judge it level by level.
    for levels in (None, {level.name: level.z_center for level in case.levels}):
        results = _qc(code, series, levels)
        verdict = examination_verdict(results)
        assert verdict.outcome in (ExamOutcome.PASSED, ExamOutcome.PASSED_WITH_WARNINGS), (
            verdict.summary
        )
        assert [r.message for r in results if r.outcome is Outcome.FAIL] == []
        coverage = [r for r in results if r.check is Check.COVERAGE]
        assert all(r.outcome is Outcome.PASS for r in coverage)
        if protocol.axial_level_names:
            judged = {r.series_description for r in coverage}
            assert set(axials) <= judged, "an axial series escaped the coverage check"
