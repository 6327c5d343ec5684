"""Image QC on the committed sample studies and on broken copies of them made here: every
clean series passes, and each fault is caught with the sentence the radiographer sees."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813 - the name every SimpleITK user knows
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from mri_pipeline.domain.protocols import Catalogue, Protocol, parse_catalogue
from mri_pipeline.domain.qc import (
    Check,
    CheckResult,
    ExamOutcome,
    Outcome,
    check_series,
    examination_verdict,
    identify_series,
    missing_series,
)
from mri_pipeline.imaging.qc_measures import measure, thumbnail_png
from mri_pipeline.imaging.sample_studies import SampleCase, SampleManifest, load_manifest
from mri_pipeline.imaging.series_images import SeriesImages, load_series, load_series_bytes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_studies"
CATALOGUE_FILE = ROOT / "worklist/protocols.yaml"
SAGITTAL_IOP = ["0", "1", "0", "0", "0", "-1"]
MAX_STORED = 4095

Pixels = NDArray[np.float64]


@cache
def _manifest() -> SampleManifest:
    return load_manifest(SAMPLES)


@cache
def _catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), "protocols.yaml")


@cache
def _files(case: str, description: str) -> tuple[bytes, ...]:
    series = _manifest().case(case).series_by_description(description)
    assert series is not None, (case, description)
    return tuple(path.read_bytes() for path in series.paths(SAMPLES))


@cache
def _read(case: str, description: str) -> tuple[Dataset, ...]:
    return tuple(pydicom.dcmread(BytesIO(data)) for data in _files(case, description))


def datasets(description: str, case: str = "normal") -> list[Dataset]:
    """Fresh copies of a sample series' instances, in instance order, to break at will."""
    return [copy.deepcopy(ds) for ds in _read(case, description)]


def levels(case: str = "normal") -> dict[str, float]:
    return {level.name: level.z_center for level in _manifest().case(case).levels}


def protocol(code: str = "LSP-STD") -> Protocol:
    return _catalogue().protocol(code)


def check(
    instances: list[Dataset] | SeriesImages, code: str = "LSP-STD", case: str = "normal"
) -> list[CheckResult]:
    images = instances if isinstance(instances, SeriesImages) else load_series(instances)
    return check_series(measure(images), protocol(code), levels(case))


def of(results: list[CheckResult], check: Check) -> list[tuple[Outcome, str]]:
    return [(r.outcome, r.message) for r in results if r.check is check]


def problems(results: list[CheckResult]) -> list[tuple[Outcome, str]]:
    return [(r.outcome, r.message) for r in results if r.outcome is not Outcome.PASS]


def with_pixels(instances: list[Dataset], change: Callable[[Pixels], Pixels]) -> list[Dataset]:
    """The instances with their pixels (slices, rows, columns) replaced by ``change``."""
    stack = np.stack([ds.pixel_array for ds in instances]).astype(np.float64)
    changed = np.clip(np.rint(change(stack)), 0, MAX_STORED).astype("<u2")
    for ds, pixels in zip(instances, changed, strict=True):
        ds.PixelData = pixels.tobytes()
    return instances


def complex_noise(sd: float, seed: int = 7) -> Callable[[Pixels], Pixels]:
    """Magnitude of the image plus complex Gaussian noise: a noisier acquisition."""
    generator = np.random.default_rng(seed)

    def change(stack: Pixels) -> Pixels:
        real = stack + generator.normal(0.0, sd, stack.shape)
        imaginary = generator.normal(0.0, sd, stack.shape)
        result: Pixels = np.hypot(real, imaginary)
        return result

    return change


def ghosts(fraction: float) -> Callable[[Pixels], Pixels]:
    """Two faint copies of the body a quarter of the field away along the phase-encoding
    direction (ROW: across the columns), as periodic motion leaves them."""

    def change(stack: Pixels) -> Pixels:
        shift = stack.shape[2] // 4
        result: Pixels = stack + fraction * (
            np.roll(stack, shift, axis=2) + np.roll(stack, -shift, axis=2)
        )
        return result

    return change


def _all_series() -> list[tuple[str, str]]:
    return [(case.name, series.description) for case in _manifest().cases for series in case.series]


# The clean sample studies ---------------------------------------------------------------------


@pytest.mark.parametrize(("case", "description"), _all_series())
def test_every_series_of_the_clean_sample_studies_passes_every_check(
    case: str, description: str
) -> None:
    code = "LSP-INF" if description.endswith("+C") else "LSP-STD"
    if description.endswith(" SIJ"):
        code = "LSP-SPA"
    results = check(datasets(description, case), code, case)
    assert problems(results) == []
    checks = {r.check for r in results}
    if description == "LOC 3PL":
        assert checks == {Check.SEQUENCE, Check.GRID, Check.INTEGRITY}
    else:
        assert {Check.PLANE, Check.SLICES, Check.GRID, Check.INTEGRITY} <= checks
        assert {Check.SNR, Check.GHOSTING} <= checks
        assert (Check.COVERAGE in checks) is (code == "LSP-STD" or description.startswith("SAG"))


def _examination(case: SampleCase, code: str, leave_out: str = "") -> list[CheckResult]:
    """QC of a whole sample study as the MPPS completes it, made of the series the
    protocol lists (the normal case also holds post-contrast and SI-joint series)."""
    results: list[CheckResult] = []
    received: list[str] = []
    listed = {spec.description for spec in protocol(code).series}
    for series in case.series:
        if series.description == leave_out or series.description not in listed:
            continue
        measured = measure(load_series(list(_read(case.name, series.description))))
        spec = identify_series(measured, protocol(code))
        if spec is not None:
            received.append(spec.description)
        results += check_series(measured, protocol(code), levels(case.name))
    return results + missing_series(protocol(code), received)


@pytest.mark.parametrize("case", ["normal", "herniation_l4_l5", "stenosis_l3_l5", "fracture_l1"])
def test_each_clean_sample_examination_passes_qc(case: str) -> None:
    sample = _manifest().case(case)
    verdict = examination_verdict(_examination(sample, "LSP-STD"))
    assert verdict.outcome is ExamOutcome.PASSED, verdict.summary
    if case == "normal":
        with_contrast = examination_verdict(_examination(sample, "LSP-INF"))
        assert with_contrast.outcome is ExamOutcome.PASSED, with_contrast.summary


def test_the_files_as_orthanc_serves_them_measure_as_the_datasets_do() -> None:
    from_bytes = measure(load_series_bytes(list(_files("normal", "AX T2 TSE"))))
    from_datasets = measure(load_series(datasets("AX T2 TSE")))
    assert from_bytes == from_datasets
    assert from_bytes.snr == pytest.approx(27.6, abs=1.0)  # the generator's target is 28
    assert from_bytes.noise_sigma == pytest.approx(1.5, rel=0.05)  # the generator's σ


# Missing series ----------------------------------------------------------------------------


def test_a_dropped_required_series_fails_the_examination() -> None:
    sample = _manifest().case("normal")
    verdict = examination_verdict(_examination(sample, "LSP-STD", leave_out="SAG STIR"))
    assert verdict.outcome is ExamOutcome.FAILED
    assert verdict.summary == (
        "QC failed, 1 problem to resolve before the patient leaves: SAG STIR is missing: "
        "protocol LSP-STD requires it."
    )


def test_a_dropped_contrast_series_fails_a_gadolinium_examination() -> None:
    sample = _manifest().case("normal")
    verdict = examination_verdict(_examination(sample, "LSP-INF", leave_out="AX T1 FS +C"))
    assert verdict.summary == (
        "QC failed, 1 problem to resolve before the patient leaves: AX T1 FS +C is missing: "
        "protocol LSP-INF requires it after gadolinium."
    )


# Geometry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("AX T2 TSE", "AX T2 TSE: slice 7 of 37 missing (gap 10 mm)."),
        ("SAG STIR", "SAG STIR: slice 7 of 13 missing (gap 9 mm)."),
    ],
)
def test_a_dropped_middle_slice_is_named_with_the_gap(description: str, message: str) -> None:
    instances = [ds for ds in datasets(description) if ds.InstanceNumber != 7]
    assert problems(check(instances)) == [(Outcome.FAIL, message)]


def test_a_duplicated_slice_is_caught() -> None:
    instances = datasets("AX T2 TSE")
    twin = copy.deepcopy(instances[9])
    twin.InstanceNumber = 38
    twin.SOPInstanceUID = pydicom.uid.generate_uid()
    assert problems(check([*instances, twin])) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: slices 10 and 11 of 38 are at the same position (duplicate slice).",
        ),
        (
            Outcome.WARN,
            "AX T2 TSE: image 38 is out of order: it lies between images 10 and 11; viewers "
            "that sort by image number show it in the wrong place.",
        ),
    ]


def test_a_series_numbered_and_sent_in_reverse_order_is_fine() -> None:
    instances = datasets("AX T2 TSE")[::-1]
    for number, ds in enumerate(instances, start=1):
        ds.InstanceNumber = number
    assert problems(check(instances)) == []


def test_two_swapped_image_numbers_are_a_warning() -> None:
    instances = datasets("AX T2 TSE")
    instances[4].InstanceNumber, instances[5].InstanceNumber = 6, 5
    assert problems(check(instances)) == [
        (
            Outcome.WARN,
            "AX T2 TSE: image 6 is out of order: it lies between images 4 and 5; viewers that "
            "sort by image number show it in the wrong place.",
        )
    ]


def test_a_flipped_slice_is_caught() -> None:
    instances = datasets("AX T2 TSE")
    flipped = [-float(v) for v in instances[6].ImageOrientationPatient[:3]]
    instances[6].ImageOrientationPatient = [*flipped, *instances[6].ImageOrientationPatient[3:]]
    assert problems(check(instances)) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: image 7 is flipped (its orientation is reversed) compared with the "
            "other 36 slices.",
        ),
        (Outcome.FAIL, "AX T2 TSE: slice 7 of 37 missing (gap 10 mm)."),
    ]


def test_sagittal_images_labelled_axial_fail_the_plane_check() -> None:
    instances = datasets("SAG T2 TSE")
    for ds in instances:
        ds.SeriesDescription = ds.ProtocolName = "AX T2 TSE"
    assert problems(check(instances)) == [
        (Outcome.FAIL, "AX T2 TSE: the images are sagittal, but the series is described as axial.")
    ]


def test_an_axial_series_whose_orientation_was_changed_to_sagittal_fails() -> None:
    instances = datasets("AX T2 TSE")
    for ds in instances:
        ds.ImageOrientationPatient = SAGITTAL_IOP
    assert problems(check(instances)) == [
        (Outcome.FAIL, "AX T2 TSE: the images are sagittal, but the series is described as axial."),
        (Outcome.FAIL, "AX T2 TSE: all 37 slices are at the same position."),
    ]


def test_a_sagittal_stack_moved_off_the_sacrum_fails_coverage() -> None:
    instances = datasets("SAG T2 TSE")
    for ds in instances:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 60.0]  # the field moved 60 mm towards the head
    assert problems(check(instances)) == [
        (
            Outcome.FAIL,
            "SAG T2 TSE: the images stop 15.1 mm above S1 (the sacrum); move the field of view "
            "towards the feet.",
        )
    ]


def test_an_axial_stack_too_short_for_the_named_levels_fails_coverage() -> None:
    instances = [ds for ds in datasets("AX T2 TSE") if ds.InstanceNumber <= 13]
    assert problems(check(instances)) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: L3-L4 is not covered (12 mm above the highest slice); add slices or "
            "move the stack towards the head.",
        )
    ]


# Pixels --------------------------------------------------------------------------------------


def test_a_constant_value_series_is_blank() -> None:
    instances = with_pixels(datasets("AX T2 TSE"), lambda stack: np.full_like(stack, 1000.0))
    results = check(instances)
    assert problems(results) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: all 37 images are blank (every pixel 1000): no signal was recorded.",
        )
    ]
    assert examination_verdict(results).outcome is ExamOutcome.FAILED


def test_a_blank_and_a_saturated_slice_are_caught() -> None:
    def change(stack: Pixels) -> Pixels:
        stack[6] = 0.0
        stack[11] *= 200.0  # receiver gain far too high: the tissue clips at 4095
        return stack

    integrity = of(check(with_pixels(datasets("AX T2 TSE"), change)), Check.INTEGRITY)
    assert integrity[0] == (Outcome.FAIL, "AX T2 TSE: image 7 of 37 is blank (no signal).")
    assert integrity[1][0] is Outcome.FAIL
    assert integrity[1][1].startswith("AX T2 TSE: image 12 is saturated: ")
    assert integrity[1][1].endswith(
        "of its pixels sit at the top of the scale; check the receiver gain and repeat."
    )


@pytest.mark.parametrize(
    ("description", "sd", "outcome", "snr"),
    [
        ("AX T2 TSE", 6.0, Outcome.WARN, "7"),
        ("AX T2 TSE", 10.0, Outcome.FAIL, "4"),
        ("SAG STIR", 5.0, Outcome.WARN, "7"),
        ("SAG STIR", 9.0, Outcome.FAIL, "4"),
    ],
)
def test_heavy_added_noise_lowers_the_signal_to_noise_but_is_not_ghosting(
    description: str, sd: float, outcome: Outcome, snr: str
) -> None:
    results = check(with_pixels(datasets(description), complex_noise(sd)))
    assert [r.check for r in results if r.outcome is not Outcome.PASS] == [Check.SNR]
    found = of(results, Check.SNR)[0]
    assert found[0] is outcome
    assert found[1].startswith(f"{description}: signal-to-noise about {snr} (")


@pytest.mark.parametrize(
    ("description", "fraction", "outcome", "percent"),
    [
        ("SAG T2 TSE", 0.03, Outcome.WARN, "4.9%"),
        ("SAG T2 TSE", 0.1, Outcome.FAIL, "14.1%"),
        ("SAG STIR", 0.1, Outcome.FAIL, "16.2%"),
    ],
)
def test_ghost_copies_along_the_phase_direction_are_caught_and_are_not_noise(
    description: str, fraction: float, outcome: Outcome, percent: str
) -> None:
    results = check(with_pixels(datasets(description), ghosts(fraction)))
    assert [r.check for r in results if r.outcome is not Outcome.PASS] == [Check.GHOSTING]
    found = of(results, Check.GHOSTING)[0]
    assert found[0] is outcome
    assert found[1].startswith(
        f"{description}: ghosting along the phase-encoding direction is {percent} of the body "
        "signal ("
    )


def test_a_truncated_pixel_data_element_fails_only_that_image() -> None:
    instances = datasets("AX T2 TSE")
    instances[6].PixelData = instances[6].PixelData[:65536]
    assert problems(check(instances)) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: image 7 cannot be displayed: pixel data truncated (65536 of 131072 bytes).",
        )
    ]


def test_a_truncated_file_is_unreadable_and_leaves_a_gap() -> None:
    files = list(_files("normal", "AX T2 TSE"))
    files[6] = files[6][: len(files[6]) // 2]
    assert problems(check(load_series_bytes(files))) == [
        (Outcome.FAIL, "AX T2 TSE: slice 7 of 37 missing (gap 10 mm)."),
        (
            Outcome.FAIL,
            "AX T2 TSE: a file could not be read (file 7 of 37: the file is incomplete "
            "(truncated)); send the series again.",
        ),
    ]


def test_a_file_cut_anywhere_is_reported_never_raised() -> None:
    deflated = _files("normal", "AX T2 TSE")[6]
    ds = pydicom.dcmread(BytesIO(deflated))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    plain = BytesIO()
    ds.save_as(plain, enforce_file_format=True)
    for data in (deflated, plain.getvalue()):
        for end in range(0, len(data), 701):
            integrity = of(check(load_series_bytes([data[:end]])), Check.INTEGRITY)
            assert integrity, end
            assert all(outcome is Outcome.FAIL for outcome, _ in integrity), (end, integrity)


# Thumbnail -----------------------------------------------------------------------------------


def test_the_thumbnail_is_the_middle_slice_as_an_8_bit_png(tmp_path: Path) -> None:
    images = load_series(datasets("SAG T2 TSE"))
    data = thumbnail_png(images)
    path = tmp_path / "thumbnail.png"
    path.write_bytes(data)
    picture = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert picture.dtype == np.uint8
    assert picture.shape == (256, 256)
    middle = images.pixels[6]
    assert np.corrcoef(picture.ravel(), middle.ravel())[0, 1] > 0.95
    assert picture.min() == 0 and picture.max() == 255


def test_a_large_matrix_is_shrunk_to_at_most_256_pixels(tmp_path: Path) -> None:
    images = load_series(datasets("AX T2 TSE"))
    large = SeriesImages(
        acquisition=images.acquisition,
        slices=images.slices,
        pixels=np.repeat(np.repeat(images.pixels, 2, axis=1), 3, axis=2),  # 512×768
        pixel_slices=images.pixel_slices,
    )
    path = tmp_path / "large.png"
    path.write_bytes(thumbnail_png(large))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path))).shape == (170, 256)
