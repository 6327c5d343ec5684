"""The synthetic lumbar spine sample studies: deterministic, small, true to their geometry,
and showing each case's pathology in the pixels where the manifest says it is."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterator
from functools import cache
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from mri_pipeline.domain.protocols import parse_catalogue
from mri_pipeline.imaging.anatomy import Tissue
from mri_pipeline.imaging.geometry import SliceStack, cross, dot
from mri_pipeline.imaging.manifest import MANIFEST_NAME, Plane
from mri_pipeline.imaging.phantom import SpinePhantom, pixel_coordinate
from mri_pipeline.imaging.sample_dicom import StudyIdentity
from mri_pipeline.imaging.sample_studies import (
    CASES,
    SampleCase,
    SampleManifest,
    SampleSeries,
    generate_sample_studies,
    load_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "sample_studies"
CATALOGUE_FILE = ROOT / "worklist/protocols.yaml"
MAX_BYTES = 23_500_000  # axials T12-L1 to S1 and the SI-joint series need 23 MB
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
VERTEBRAL_BODY = (Tissue.MARROW, Tissue.CORTEX, Tissue.OEDEMA, Tissue.FRACTURE_LINE)

Pixels = NDArray[np.float64]
Mask = NDArray[np.bool_]


# Fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    generate_sample_studies(out, workers=2)
    return out


@pytest.fixture(scope="module")
def manifest(sample_dir: Path) -> SampleManifest:
    return load_manifest(sample_dir)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    """A second run, in one process, into a directory holding an earlier run's leftovers
    (a series and a case no longer made) and a file that is not the generator's."""
    out = tmp_path_factory.mktemp("regenerated")
    for leftover in ("normal/09_old-series/001.dcm", "retired_case/01_loc-3pl/001.dcm"):
        (out / leftover).parent.mkdir(parents=True)
        (out / leftover).write_bytes(b"stale")
    retired = SampleCase(
        name="retired_case",
        description="made by an earlier generator",
        protocol_code="LSP-STD",
        patient_id="OLD",
        patient_name="OLD^CASE",
        study_instance_uid="2.25.1",
        frame_of_reference_uid="2.25.2",
        levels=(),
        series=(),
    )
    old = SampleManifest(
        generator="old", transfer_syntax_uid="1.2.840.10008.1.2.1", cases=(retired,)
    )
    (out / MANIFEST_NAME).write_text(old.to_json(), encoding="utf-8")
    (out / "README.txt").write_text("not the generator's", encoding="utf-8")
    return out, generate_sample_studies(out, workers=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_series(manifest: SampleManifest) -> Iterator[tuple[SampleCase, SampleSeries]]:
    for case in manifest.cases:
        for series in case.series:
            yield case, series


@cache
def datasets(sample_dir: Path, case: str, description: str) -> tuple[Dataset, ...]:
    series = load_manifest(sample_dir).case(case).series_by_description(description)
    assert series is not None, f"{case} has no {description}"
    return tuple(pydicom.dcmread(path) for path in series.paths(sample_dir))


def floats(value: object) -> tuple[float, ...]:
    assert isinstance(value, list | tuple | pydicom.multival.MultiValue)
    return tuple(float(v) for v in value)


def vec3(value: object) -> tuple[float, float, float]:
    x, y, z = floats(value)
    return (x, y, z)


def stacks_of(images: tuple[Dataset, ...]) -> list[SliceStack]:
    """The geometry the headers declare: one stack per orientation."""
    stacks: list[SliceStack] = []
    groups: dict[tuple[float, ...], list[Dataset]] = {}
    for ds in images:
        groups.setdefault(floats(ds.ImageOrientationPatient), []).append(ds)
    for orientation, group in groups.items():
        first = group[0]
        spacing = floats(first.PixelSpacing)
        stacks.append(
            SliceStack(
                row_direction=(orientation[0], orientation[1], orientation[2]),
                column_direction=(orientation[3], orientation[4], orientation[5]),
                positions=tuple(vec3(ds.ImagePositionPatient) for ds in group),
                rows=int(first.Rows),
                columns=int(first.Columns),
                pixel_spacing=(spacing[0], spacing[1]),
                slice_thickness=float(first.SliceThickness),
            )
        )
    return stacks


@cache
def pixels(sample_dir: Path, case: str, description: str) -> Pixels:
    images = datasets(sample_dir, case, description)
    return np.stack([ds.pixel_array for ds in images]).astype(np.float64)


@cache
def labels(sample_dir: Path, case: str, description: str) -> NDArray[np.uint8]:
    """The phantom's tissue at every pixel centre, placed by the files' own geometry."""
    phantom = SpinePhantom(case)
    stacks = stacks_of(datasets(sample_dir, case, description))
    return np.concatenate([phantom.labels_at(stack) for stack in stacks])


def interior(mask: Mask, in_plane_only: bool = False) -> Mask:
    """Pixels of ``mask`` whose neighbours are in it too (away from partial volume)."""
    result = mask.copy()
    axes = (1, 2) if in_plane_only else (0, 1, 2)
    for axis in axes:
        if mask.shape[axis] < 3:
            continue
        for shift in (1, -1):
            rolled = np.roll(mask, shift, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            rolled[tuple(edge)] = False
            result &= rolled
    return result


def tissue_mean(sample_dir: Path, case: str, description: str, *tissues: Tissue) -> float:
    mask = interior(np.isin(labels(sample_dir, case, description), [int(t) for t in tissues]))
    assert mask.sum() >= 20, f"too few {tissues} pixels in {case} {description}"
    return float(pixels(sample_dir, case, description)[mask].mean())


# Determinism, size, layout ----------------------------------------------------------------


def test_two_runs_write_byte_identical_files(
    manifest: SampleManifest, regenerated: tuple[Path, SampleManifest]
) -> None:
    out, second = regenerated
    first_hashes = {item.path: item.sha256 for item in manifest.files}
    assert first_hashes == {item.path: item.sha256 for item in second.files}
    assert {item.path: sha256(out / item.path) for item in second.files} == first_hashes
    assert (out / MANIFEST_NAME).read_text(encoding="utf-8") == manifest.to_json()


def test_a_run_replaces_its_own_leftovers_and_keeps_other_files(
    regenerated: tuple[Path, SampleManifest],
) -> None:
    out, _ = regenerated
    assert not (out / "normal/09_old-series").exists()
    assert not (out / "retired_case").exists()
    assert (out / "README.txt").read_text(encoding="utf-8") == "not the generator's"


def test_the_manifest_lists_every_file_with_its_hash(
    sample_dir: Path, manifest: SampleManifest
) -> None:
    on_disk = {
        path.relative_to(sample_dir).as_posix() for path in sample_dir.rglob("*") if path.is_file()
    }
    listed = {item.path for item in manifest.files}
    assert on_disk == listed | {MANIFEST_NAME}
    for item in manifest.files:
        assert sha256(sample_dir / item.path) == item.sha256, item.path
        assert (sample_dir / item.path).stat().st_size == item.size
    assert manifest.generator.startswith("mri_pipeline.imaging.sample_studies ")
    assert json.loads((sample_dir / MANIFEST_NAME).read_text())["generator"] == manifest.generator


def test_everything_written_fits_in_23_5_mb(sample_dir: Path) -> None:
    total = sum(path.stat().st_size for path in sample_dir.rglob("*") if path.is_file())
    assert total <= MAX_BYTES, f"{total / 1e6:.1f} MB"


def test_layout_is_case_numbered_series_slug_instance(manifest: SampleManifest) -> None:
    assert [case.name for case in manifest.cases] == list(CASES)
    for case, series in all_series(manifest):
        assert series.instance_count == len(series.files) > 0
        for number, item in enumerate(series.files, start=1):
            assert item.path == f"{case.name}/{series.number:02d}_{series.slug}/{number:03d}.dcm"
            assert item.instance_number == number


def test_the_committed_sample_studies_are_what_the_generator_makes(
    manifest: SampleManifest,
) -> None:
    assert (COMMITTED / MANIFEST_NAME).is_file(), (
        "sample_studies/ is missing: python -m mri_pipeline.imaging.sample_studies sample_studies"
    )
    committed = load_manifest(COMMITTED)
    assert committed.to_json() == manifest.to_json(), "regenerate sample_studies/"
    for item in committed.files:
        assert sha256(COMMITTED / item.path) == item.sha256, item.path


def test_manifest_api(sample_dir: Path, manifest: SampleManifest) -> None:
    normal = manifest.case("normal")
    series = normal.series_by_description("SAG T2 TSE")
    assert series is not None and series.plane is Plane.SAGITTAL
    assert all(path.is_file() for path in series.paths(sample_dir))
    assert normal.series_by_description("COR T2 TSE") is None
    assert manifest.case("fracture_l1").series_by_description("SAG T1 FS +C") is None
    with pytest.raises(KeyError, match="herniation_l4_l5"):
        manifest.case("no_such_case")
    assert normal.level("L4-L5").kind == "disc"


# The protocol and the DICOM attributes -------------------------------------------------


def test_every_study_runs_lsp_std_and_the_normal_one_adds_si_joint_and_contrast_series(
    manifest: SampleManifest,
) -> None:
    catalogue = parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), str(CATALOGUE_FILE))
    standard = [spec.description for spec in catalogue.protocol("LSP-STD").series]
    si_joints = [spec.description for spec in catalogue.protocol("LSP-SPA").series]
    with_gadolinium = [spec.description for spec in catalogue.protocol("LSP-INF").series]
    normal_extra = ["COR-OBL T1 TSE SIJ", "COR-OBL STIR SIJ", "SAG T1 FS +C", "AX T1 FS +C"]
    for case in manifest.cases:
        descriptions = [series.description for series in case.series]
        assert descriptions[: len(standard)] == standard
        extra = descriptions[len(standard) :]
        assert extra == (normal_extra if case.name == "normal" else [])
        assert set(extra) <= set(si_joints) | set(with_gadolinium)
        assert [series.contrast for series in case.series] == [
            d.endswith("+C") for d in descriptions
        ]


def test_every_file_is_a_complete_mr_image(sample_dir: Path, manifest: SampleManifest) -> None:
    instance_uids: set[str] = set()
    for case, series in all_series(manifest):
        images = datasets(sample_dir, case.name, series.description)
        for number, ds in enumerate(images, start=1):
            assert ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
            assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == MR_IMAGE_STORAGE
            assert ds.SOPInstanceUID == series.files[number - 1].sop_instance_uid
            assert ds.StudyInstanceUID == case.study_instance_uid
            assert ds.SeriesInstanceUID == series.series_instance_uid
            assert ds.FrameOfReferenceUID == case.frame_of_reference_uid
            assert "PositionReferenceIndicator" in ds
            assert (ds.PatientID, ds.PatientName) == (case.patient_id, case.patient_name)
            assert ds.AccessionNumber == ""
            assert ds.Modality == "MR" and ds.Manufacturer == "LSP Synthetic"
            assert ds.ImageType == ["ORIGINAL", "PRIMARY", "M", "ND"]
            assert ds.SeriesDescription == ds.ProtocolName == series.description
            assert ds.SeriesNumber == series.number and ds.InstanceNumber == number
            assert (ds.PatientPosition, ds.BodyPartExamined) == ("HFS", "LSPINE")
            assert ds.MagneticFieldStrength == 1.5 and ds.MRAcquisitionType == "2D"
            assert ds.PhotometricInterpretation == "MONOCHROME2"
            assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
            assert ds.PixelRepresentation == 0 and int(ds.pixel_array.max()) <= 4095
            assert (ds.Rows, ds.Columns) == (series.rows, series.columns)
            assert floats(ds.PixelSpacing) == series.pixel_spacing
            assert float(ds.SliceThickness) == series.slice_thickness
            assert float(ds.WindowWidth) > 0
            assert ("ContrastBolusAgent" in ds) is series.contrast
            value = ds.get("ScanOptions", "")
            options = [value] if isinstance(value, str) else list(value)
            assert ("FS" in options) is series.description.endswith("FS +C")
            assert ("IR" in options) is ("InversionTime" in ds) is (series.weighting == "STIR")
            assert str(ds.SOPInstanceUID).startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
            instance_uids.add(str(ds.SOPInstanceUID))
        if series.weighting == "T1":
            assert float(images[0].RepetitionTime) < 1000 and float(images[0].EchoTime) < 20
        if series.weighting == "T2":
            assert float(images[0].RepetitionTime) > 2000 and float(images[0].EchoTime) > 80
    assert len(instance_uids) == len(manifest.files)
    assert len({case.study_instance_uid for case in manifest.cases}) == len(manifest.cases)


def test_a_new_identity_replaces_every_patient_and_study_identifier(sample_dir: Path) -> None:
    ds = copy.deepcopy(datasets(sample_dir, "normal", "SAG T2 TSE")[0])
    StudyIdentity(
        patient_name="Müller^Anna",
        patient_id="P123",
        patient_birth_date="19700101",
        patient_sex="F",
        study_instance_uid="2.25.42",
        accession_number="LSP0001",
    ).stamp(ds)
    assert (ds.PatientName, ds.PatientID, ds.AccessionNumber) == ("Müller^Anna", "P123", "LSP0001")
    assert ds.StudyInstanceUID == "2.25.42"
    keywords = ("PatientName", "PatientID", "PatientBirthDate", "StudyID", "StudyInstanceUID")
    assert not [keyword for keyword in keywords if "SAMPLE" in str(ds.get(keyword))]


# Geometry -----------------------------------------------------------------------------


def test_slices_are_exactly_spacing_between_slices_apart_along_the_normal(
    sample_dir: Path, manifest: SampleManifest
) -> None:
    for case, series in all_series(manifest):
        images = datasets(sample_dir, case.name, series.description)
        orientations = {floats(ds.ImageOrientationPatient) for ds in images}
        if series.plane is Plane.THREE_PLANE:
            assert len(images) == len(orientations) == 3
            normals = [cross(vec3(o[:3]), vec3(o[3:])) for o in orientations]
            assert all(abs(dot(a, b)) < 1e-9 for a, b in combinations(normals, 2))
            assert "SpacingBetweenSlices" not in images[0]
            continue
        assert len(orientations) == 1
        orientation = orientations.pop()
        normal = cross(vec3(orientation[:3]), vec3(orientation[3:]))
        spacing = float(images[0].SpacingBetweenSlices)
        assert spacing == series.spacing_between_slices
        assert spacing >= float(images[0].SliceThickness)  # contiguous or a gap, no overlap
        signs = set()
        for before, after in pairwise(images):
            step = np.subtract(
                floats(after.ImagePositionPatient), floats(before.ImagePositionPatient)
            )
            along = float(np.dot(step, normal))
            assert abs(abs(along) - spacing) < 1e-6
            assert np.allclose(step, along * np.asarray(normal), atol=1e-6)  # no in-plane shift
            signs.add(math.copysign(1.0, along))
        assert len(signs) == 1
        for ds in images:
            assert float(ds.SliceLocation) == pytest.approx(
                dot(vec3(ds.ImagePositionPatient), normal)
            )
            assert ds.InStackPositionNumber == ds.InstanceNumber
            assert floats(ds.PixelSpacing) == series.pixel_spacing


def test_sagittal_series_run_left_ward_through_both_foramina_from_above_l1_to_below_s1(
    sample_dir: Path, manifest: SampleManifest
) -> None:
    for case, series in all_series(manifest):
        if series.plane is not Plane.SAGITTAL:
            continue
        images = datasets(sample_dir, case.name, series.description)
        assert floats(images[0].ImageOrientationPatient) == (0, 1, 0, 0, 0, -1)
        assert 13 <= len(images) <= 15 and 3.5 <= float(images[0].SliceThickness) <= 4
        xs = [vec3(ds.ImagePositionPatient)[0] for ds in images]
        assert xs == sorted(xs) and xs[0] <= -25 and xs[-1] >= 25
        (stack,) = stacks_of(images)
        low, high = stack.z_range()
        assert high >= case.level("T12").z_superior and high >= case.level("L1").z_superior
        assert low <= case.level("S1").z_inferior
        assert 280 <= high - low + stack.pixel_spacing[0] <= 320
        assert {"T12", "L1", "L3", "L5", "S1", "L5-S1"} <= set(series.levels_covered)


def test_axial_stacks_cover_every_disc_a_protocol_names_from_t12_l1_to_l5_s1(
    sample_dir: Path, manifest: SampleManifest
) -> None:
    catalogue = parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), str(CATALOGUE_FILE))
    named = {
        level
        for code in catalogue.protocol_codes
        for level in catalogue.protocol(code).axial_level_names
    }
    discs = ("T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
    assert named <= set(discs)
    for case, series in all_series(manifest):
        if series.plane is not Plane.AXIAL:
            continue
        images = datasets(sample_dir, case.name, series.description)
        assert floats(images[0].ImageOrientationPatient) == (1, 0, 0, 0, 1, 0)
        assert (len(images), series.rows, series.columns) == (37, 256, 256)
        assert (float(images[0].SliceThickness), series.spacing_between_slices) == (4, 5)
        zs = [vec3(ds.ImagePositionPatient)[2] for ds in images]
        half = float(images[0].SliceThickness) / 2
        for disc in discs:
            middle = case.level(disc).z_center
            assert min(zs) - half <= middle <= max(zs) + half, disc
            assert min(abs(z - middle) for z in zs) <= 1.5, disc  # a slice through the disc
            assert disc in series.levels_covered


def test_the_si_joint_series_are_semicoronal_through_the_sacrum(
    sample_dir: Path, manifest: SampleManifest
) -> None:
    normal = manifest.case("normal")
    for description in ("COR-OBL T1 TSE SIJ", "COR-OBL STIR SIJ"):
        series = normal.series_by_description(description)
        assert series is not None and series.plane is Plane.CORONAL
        images = datasets(sample_dir, "normal", description)
        (stack,) = stacks_of(images)
        assert stack.row_direction == (1, 0, 0)
        tilt = math.degrees(math.acos(abs(stack.normal[1])))
        assert 20 <= tilt <= 30  # back from coronal, along the sacrum
        assert stack.column_direction[1] > 0  # the feet end of the image lies further back
        middle = labels(sample_dir, "normal", description)[len(images) // 2]
        z = pixel_coordinate(stack, 2)[len(images) // 2]
        below_s1 = normal.level("S1").z_inferior
        sacral_marrow = (middle == Tissue.MARROW) & (z < below_s1) & (z > below_s1 - 40)
        assert sacral_marrow.sum() * stack.pixel_spacing[0] * stack.pixel_spacing[1] > 500


# Contrast, pathology and noise, measured on the pixels --------------------------------


def test_csf_is_brighter_than_marrow_on_t2_and_darker_on_t1(sample_dir: Path) -> None:
    for case in CASES:
        t2_csf = tissue_mean(sample_dir, case, "SAG T2 TSE", Tissue.CSF)
        t2_marrow = tissue_mean(sample_dir, case, "SAG T2 TSE", Tissue.MARROW)
        t1_csf = tissue_mean(sample_dir, case, "SAG T1 TSE", Tissue.CSF)
        t1_marrow = tissue_mean(sample_dir, case, "SAG T1 TSE", Tissue.MARROW)
        assert t2_csf > 1.5 * t2_marrow, case
        assert t1_csf < 0.5 * t1_marrow, case


def test_fat_is_bright_on_t1_and_suppressed_on_stir_and_post_contrast_fs(sample_dir: Path) -> None:
    fat, muscle, csf = Tissue.SUBCUTANEOUS_FAT, Tissue.MUSCLE, Tissue.CSF
    for case in CASES:
        assert tissue_mean(sample_dir, case, "SAG T1 TSE", fat) > 2 * tissue_mean(
            sample_dir, case, "SAG T1 TSE", muscle
        )
        stir_fat = tissue_mean(sample_dir, case, "SAG STIR", fat)
        assert stir_fat < 0.5 * tissue_mean(sample_dir, case, "SAG STIR", muscle)
        assert stir_fat < 0.2 * tissue_mean(sample_dir, case, "SAG STIR", csf)
    post = "SAG T1 FS +C"
    assert tissue_mean(sample_dir, "normal", post, fat) < 0.5 * tissue_mean(
        sample_dir, "normal", post, muscle
    )


def test_gadolinium_enhances_the_epidural_veins_and_disc_margins(sample_dir: Path) -> None:
    def ratio(description: str, tissue: Tissue, reference: Tissue) -> float:
        return tissue_mean(sample_dir, "normal", description, tissue) / tissue_mean(
            sample_dir, "normal", description, reference
        )

    veins, muscle = Tissue.EPIDURAL_VEINS, Tissue.MUSCLE
    assert ratio("AX T1 FS +C", veins, muscle) > 1.5 > 1.0 > ratio("AX T1 TSE", veins, muscle)
    assert ratio("SAG T1 FS +C", Tissue.ANNULUS, Tissue.NUCLEUS) > 1.2
    assert ratio("SAG T1 TSE", Tissue.ANNULUS, Tissue.NUCLEUS) < 1.05


def level_mask(sample_dir: Path, case: str, description: str, level: str) -> Mask:
    """Pixels whose centre lies between the level's superior and inferior heights."""
    (stack,) = stacks_of(datasets(sample_dir, case, description))
    z = pixel_coordinate(stack, 2)
    spans = load_manifest(sample_dir).case(case).level(level)
    inside: Mask = (z >= spans.z_inferior) & (z <= spans.z_superior)
    return inside


def test_l1_marrow_oedema_is_bright_on_stir_and_dark_on_t1_in_the_fracture_only(
    sample_dir: Path,
) -> None:
    def marrow_mean(case: str, description: str, level: str) -> float:
        found = np.isin(labels(sample_dir, case, description), [Tissue.MARROW, Tissue.OEDEMA])
        mask = interior(found) & level_mask(sample_dir, case, description, level)
        assert mask.sum() >= 20
        return float(pixels(sample_dir, case, description)[mask].mean())

    assert marrow_mean("fracture_l1", "SAG STIR", "L1") > 3 * marrow_mean(
        "fracture_l1", "SAG STIR", "L3"
    )
    assert marrow_mean("fracture_l1", "SAG T1 TSE", "L1") < 0.7 * marrow_mean(
        "fracture_l1", "SAG T1 TSE", "L3"
    )
    assert marrow_mean("normal", "SAG STIR", "L1") < 1.3 * marrow_mean("normal", "SAG STIR", "L3")


def body_heights(sample_dir: Path, case: str, level: str) -> tuple[float, float]:
    """Anterior and posterior height (mm) of a vertebral body on the midline sagittal slice,
    measured 4 mm inside its front and back walls."""
    images = datasets(sample_dir, case, "SAG T1 TSE")
    (stack,) = stacks_of(images)
    middle = min(range(len(images)), key=lambda k: abs(stack.positions[k][0]))
    body = np.isin(labels(sample_dir, case, "SAG T1 TSE")[middle], [int(t) for t in VERTEBRAL_BODY])
    z = pixel_coordinate(stack, 2)[middle][:, 0]
    row = int(np.argmin(np.abs(z - load_manifest(sample_dir).case(case).level(level).z_center)))
    columns = np.flatnonzero(body[row])
    inset = round(4 / stack.pixel_spacing[1])
    heights = []
    for column in (columns.min() + inset, columns.max() - inset):
        top = bottom = row
        while top > 0 and body[top - 1, column]:
            top -= 1
        while bottom < stack.rows - 1 and body[bottom + 1, column]:
            bottom += 1
        heights.append((bottom - top + 1) * stack.pixel_spacing[0])
    return heights[0], heights[1]


def test_l1_is_wedged_in_the_fracture_and_not_in_the_normal_spine(sample_dir: Path) -> None:
    anterior, posterior = body_heights(sample_dir, "fracture_l1", "L1")
    l3_anterior, _ = body_heights(sample_dir, "fracture_l1", "L3")
    assert anterior < 0.8 * l3_anterior
    assert anterior < 0.8 * posterior
    normal_anterior, normal_posterior = body_heights(sample_dir, "normal", "L1")
    assert normal_anterior > 0.9 * normal_posterior


def bright_canal_area(sample_dir: Path, case: str, level: str) -> float:
    """Area (mm²) of CSF-bright pixels inside the normal thecal sac on the axial T2 slice
    nearest the disc: what is left of the sac once disc, ligament or bone take its room."""
    description = "AX T2 TSE"
    images = datasets(sample_dir, case, description)
    z_center = load_manifest(sample_dir).case(case).level(level).z_center
    index = min(
        range(len(images)), key=lambda k: abs(vec3(images[k].ImagePositionPatient)[2] - z_center)
    )
    normal_labels = labels(sample_dir, "normal", description)
    sac = np.isin(normal_labels[index], [Tissue.CSF, Tissue.NEURAL])
    for _ in range(2):  # a margin: the sac may be displaced, never larger
        sac = (
            sac
            | np.roll(sac, 1, 0)
            | np.roll(sac, -1, 0)
            | np.roll(sac, 1, 1)
            | np.roll(sac, -1, 1)
        )
    csf = tissue_mean(sample_dir, "normal", description, Tissue.CSF)
    muscle = tissue_mean(sample_dir, "normal", description, Tissue.MUSCLE)
    bright = pixels(sample_dir, case, description)[index] > (csf + muscle) / 2
    spacing = floats(images[index].PixelSpacing)
    return float((bright & sac).sum() * spacing[0] * spacing[1])


def test_the_l4_l5_herniation_takes_room_from_the_thecal_sac(sample_dir: Path) -> None:
    normal = bright_canal_area(sample_dir, "normal", "L4-L5")
    assert normal > 150  # mm²: a normal lumbar thecal sac
    assert bright_canal_area(sample_dir, "herniation_l4_l5", "L4-L5") < 0.7 * normal
    assert bright_canal_area(sample_dir, "herniation_l4_l5", "L3-L4") > 0.85 * bright_canal_area(
        sample_dir, "normal", "L3-L4"
    )


def test_the_canal_is_stenotic_at_l3_l4_and_l4_l5_only(sample_dir: Path) -> None:
    for level in ("L3-L4", "L4-L5"):
        normal = bright_canal_area(sample_dir, "normal", level)
        assert bright_canal_area(sample_dir, "stenosis_l3_l5", level) < 0.6 * normal, level
    normal = bright_canal_area(sample_dir, "normal", "L5-S1")
    assert bright_canal_area(sample_dir, "stenosis_l3_l5", "L5-S1") > 0.85 * normal


def test_background_noise_is_rician_and_gives_a_plausible_snr(
    sample_dir: Path, manifest: SampleManifest
) -> None:
    for case, series in all_series(manifest):
        tissue = labels(sample_dir, case.name, series.description)
        image = pixels(sample_dir, case.name, series.description)
        air = interior(interior(interior(tissue == Tissue.AIR, True), True), True)
        background = image[air]
        assert background.size > 10_000
        # Pure noise in a magnitude image follows a Rayleigh distribution.
        assert 0.45 < background.std() / background.mean() < 0.62, series.description
        sigma = background.mean() / math.sqrt(math.pi / 2)
        snr = image[tissue != Tissue.AIR].mean() / sigma
        assert 10 <= snr <= 80, (case.name, series.description, snr)
