"""Deterministic synthetic lumbar spine MR studies for demos, tests and the simulator.

One study per phantom case, its series those of protocol LSP-STD (DOMAIN.md A.2), the
axials long enough for every protocol's ``axial_levels`` (T12-L1 to L5-S1); the normal
case adds the semicoronal ``COR-OBL T1 TSE SIJ`` and ``COR-OBL STIR SIJ`` of LSP-SPA and
the post-gadolinium ``SAG T1 FS +C`` and ``AX T1 FS +C``, so that the simulated console
has a series in the right plane for every protocol. Files are
MR Image Storage in Deflated Explicit VR Little Endian, laid out as
``<case>/<NN>_<series slug>/<instance>.dcm`` next to ``manifest.json``. Running the
generator twice gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mri_pipeline.imaging.acquisition import PROTOCOL_CODE, SeriesPlan, series_plan
from mri_pipeline.imaging.anatomy import PhantomCase
from mri_pipeline.imaging.canvas import LabelArray
from mri_pipeline.imaging.geometry import SliceStack
from mri_pipeline.imaging.manifest import (
    MANIFEST_NAME,
    LevelPosition,
    SampleCase,
    SampleFile,
    SampleManifest,
    SampleSeries,
    load_manifest,
)
from mri_pipeline.imaging.mr_signal import PixelArray, noise_seed, render
from mri_pipeline.imaging.phantom import Level, SpinePhantom, pixel_coordinate
from mri_pipeline.imaging.sample_dicom import (
    TRANSFER_SYNTAX,
    SeriesHeader,
    StudyIdentity,
    mr_image,
    sample_uid,
    write,
)

__all__ = [
    "CASES",
    "GENERATOR",
    "SampleCase",
    "SampleManifest",
    "SampleSeries",
    "generate_sample_studies",
    "load_manifest",
    "series_plan",
]

log = logging.getLogger(__name__)

GENERATOR = "mri_pipeline.imaging.sample_studies 1.0"
CASES: tuple[str, ...] = tuple(case.value for case in PhantomCase)
NOISE_SIGMA = 1.5  # counts, each of the two channels of the complex noise
INPLANE_SAMPLES = 2  # per pixel side, for partial volume at edges
THROUGH_SAMPLES = 3  # across the slice thickness

_DESCRIPTIONS = {
    PhantomCase.NORMAL: (
        "Normal lumbar spine: normal alignment, vertebral body heights, marrow signal and "
        "disc hydration; conus ends at L1-L2; no canal or foraminal narrowing. Includes "
        "semicoronal T1 and STIR through the sacrum (normal marrow; the phantom has no iliac "
        "bones, hence no SI joints) and post-gadolinium fat-suppressed T1 (mild disc margin "
        "and epidural venous enhancement)."
    ),
    PhantomCase.HERNIATION_L4_L5: (
        "Left paracentral L4-L5 disc extrusion migrating caudally behind L5, effacing the "
        "anterior thecal sac and the traversing left L5 root; desiccated L4-L5 disc."
    ),
    PhantomCase.STENOSIS_L3_L5: (
        "Degenerative central canal stenosis at L3-L4 and L4-L5: ligamentum flavum "
        "thickening, facet hypertrophy and disc bulges narrow the thecal sac to a fraction "
        "of normal; degenerated discs L3-L4 to L5-S1."
    ),
    PhantomCase.FRACTURE_L1: (
        "Acute L1 anterior wedge compression fracture (anterior height about 60 % of the "
        "posterior) with bone marrow oedema, dark on T1 and bright on STIR, and a fracture "
        "line under the superior endplate; posterior wall intact; degenerated L4-L5 and L5-S1."
    ),
}
_PATIENTS = {  # birth date, sex
    PhantomCase.NORMAL: ("19850614", "F"),
    PhantomCase.HERNIATION_L4_L5: ("19790203", "M"),
    PhantomCase.STENOSIS_L3_L5: ("19551120", "M"),
    PhantomCase.FRACTURE_L1: ("19480817", "F"),
}


def case_identity(case: PhantomCase | str) -> StudyIdentity:
    """The placeholder patient and study of ``case``."""
    case = PhantomCase(case)
    tag = case.value.upper().replace("_", "-")
    birth_date, sex = _PATIENTS[case]
    return StudyIdentity(
        patient_name=f"SAMPLE^{tag}",
        patient_id=f"SAMPLE-{tag}",
        patient_birth_date=birth_date,
        patient_sex=sex,
        study_instance_uid=sample_uid(case.value, "study"),
    )


def render_series(
    phantom: SpinePhantom,
    plan: SeriesPlan,
    cache: dict[SliceStack, LabelArray] | None = None,
) -> list[tuple[SliceStack, PixelArray]]:
    """The pixels of every stack of ``plan`` (slices, rows, columns); ``cache`` keeps the
    sampled labels for the next series of the same geometry."""
    rendered = []
    cache = {} if cache is None else cache
    for index, stack in enumerate(plan.stacks):
        samples = cache.get(stack)
        if samples is None:
            samples = phantom.sample(stack, inplane=INPLANE_SAMPLES, through=THROUGH_SAMPLES)
            cache[stack] = samples
        seed = noise_seed(phantom.case.value, plan.description, str(index))
        pixels = render(
            samples,
            pixel_coordinate(stack, 1),
            plan.weighting,
            snr=plan.snr,
            noise_sigma=NOISE_SIGMA,
            seed=seed,
        )
        rendered.append((stack, pixels))
    return rendered


def _window(images: list[tuple[SliceStack, PixelArray]]) -> tuple[float, float]:
    values = np.concatenate([pixels.ravel() for _, pixels in images])
    top = float(np.percentile(values, 99.5, method="nearest"))
    return round(top / 2), round(top)


def _time(minutes_after_start: int) -> str:
    hours, minutes = divmod(9 * 60 + minutes_after_start, 60)
    return f"{hours:02d}{minutes:02d}00"


def _covered(levels: list[Level], z_range: tuple[float, float]) -> tuple[str, ...]:
    low, high = z_range
    return tuple(level.name for level in levels if low <= level.z_center <= high)


def _write_series(
    phantom: SpinePhantom,
    plan: SeriesPlan,
    identity: StudyIdentity,
    frame: str,
    out_dir: Path,
    cache: dict[SliceStack, LabelArray],
) -> SampleSeries:
    case = phantom.case.value
    images = render_series(phantom, plan, cache)
    header = SeriesHeader(
        identity=identity,
        frame_of_reference_uid=frame,
        series_instance_uid=sample_uid(case, "series", plan.description),
        series_number=plan.number,
        description=plan.description,
        series_time=_time(plan.minutes_after_start),
        sequence=plan.sequence,
        contrast=plan.contrast,
        window=_window(images),
        software_version=GENERATOR,
    )
    files: list[SampleFile] = []
    for stack_number, (stack, pixels) in enumerate(images, start=1):
        for index in range(len(stack.positions)):
            number = len(files) + 1
            ds = mr_image(
                header,
                stack,
                index,
                pixels[index],
                instance_number=number,
                stack_id=str(stack_number),
            )
            relative = f"{case}/{plan.directory}/{number:03d}.dcm"
            path = out_dir / relative
            write(ds, path)
            data = path.read_bytes()
            files.append(
                SampleFile(
                    path=relative,
                    instance_number=number,
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                )
            )
    first = plan.stacks[0]
    z_ranges = [stack.z_range() for stack in plan.stacks]
    z_range = (min(z[0] for z in z_ranges), max(z[1] for z in z_ranges))
    return SampleSeries(
        number=plan.number,
        description=plan.description,
        slug=plan.slug,
        plane=plan.plane,
        weighting=plan.weighting.value,
        contrast=plan.contrast,
        series_instance_uid=header.series_instance_uid,
        instance_count=len(files),
        rows=first.rows,
        columns=first.columns,
        pixel_spacing=first.pixel_spacing,
        slice_thickness=first.slice_thickness,
        spacing_between_slices=None if len(plan.stacks) > 1 else first.spacing_between_slices,
        z_range=z_range,
        levels_covered=_covered(phantom.levels(), z_range),
        files=tuple(files),
    )


def write_case(case: PhantomCase | str, out_dir: Path) -> SampleCase:
    """Write one case's study under ``out_dir / case`` and describe it."""
    phantom = SpinePhantom(case)
    name = phantom.case.value
    identity = case_identity(name)
    frame = sample_uid(name, "frame-of-reference")
    cache: dict[SliceStack, LabelArray] = {}
    series = tuple(
        _write_series(phantom, plan, identity, frame, out_dir, cache) for plan in series_plan(name)
    )
    levels = tuple(
        LevelPosition(
            name=level.name,
            kind=level.kind.value,
            z_superior=level.z_superior,
            z_inferior=level.z_inferior,
            z_center=level.z_center,
        )
        for level in phantom.levels()
    )
    return SampleCase(
        name=name,
        description=_DESCRIPTIONS[phantom.case],
        protocol_code=PROTOCOL_CODE,
        patient_id=identity.patient_id,
        patient_name=identity.patient_name,
        study_instance_uid=identity.study_instance_uid,
        frame_of_reference_uid=frame,
        levels=levels,
        series=series,
    )


def _remove_owned(out_dir: Path) -> None:
    """Delete what an earlier run wrote: the manifest and the case directories."""
    names = set(CASES)
    manifest = out_dir / MANIFEST_NAME
    if manifest.is_file():
        try:
            names |= {case.name for case in load_manifest(out_dir).cases}
        except ValueError:
            log.warning("unreadable sample manifest %s: removing the known cases only", manifest)
        manifest.unlink()
    for name in sorted(names):
        directory = out_dir / name
        if re.fullmatch(r"[a-z0-9_]+", name) and directory.is_dir():
            shutil.rmtree(directory)


def generate_sample_studies(out_dir: Path, *, workers: int | None = None) -> SampleManifest:
    """Write every case into ``out_dir`` (replacing an earlier run's files) and the
    manifest; return the manifest. Cases are written by up to ``workers`` processes
    (default: one per CPU); the files do not depend on how many."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_owned(out_dir)
    count = min(len(CASES), workers or os.cpu_count() or 1)
    if count > 1:
        with ProcessPoolExecutor(max_workers=count) as pool:
            cases = tuple(pool.map(write_case, CASES, [out_dir] * len(CASES)))
    else:
        cases = tuple(write_case(case, out_dir) for case in CASES)
    manifest = SampleManifest(
        generator=GENERATOR, transfer_syntax_uid=str(TRANSFER_SYNTAX), cases=cases
    )
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    log.info("wrote %d sample files to %s", len(manifest.files), out_dir)
    return manifest


def main(argv: list[str] | None = None) -> None:
    """``python -m mri_pipeline.imaging.sample_studies OUT_DIR``: (re)write the samples."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir", type=Path, help="e.g. sample_studies at the repository root")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifest = generate_sample_studies(args.out_dir)
    size = sum(item.size for item in manifest.files)
    elapsed = time.perf_counter() - started
    print(f"{len(manifest.files)} files, {size / 1e6:.1f} MB, in {elapsed:.1f} s: {args.out_dir}")


if __name__ == "__main__":
    main()
