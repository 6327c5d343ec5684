"""The sample studies' manifest (``sample_studies/manifest.json``): what every file is.

For each case: the study, a clinical summary, where the reported levels lie (LPS z, so
that a coverage check knows where L1 … S1 are), and for each series its description,
plane, weighting, geometry, the levels it covers and every file with its SHA-256.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "manifest.json"


class Plane(StrEnum):
    SAGITTAL = "SAG"
    CORONAL = "COR"  # also semicoronal (tilted) stacks
    AXIAL = "AX"
    THREE_PLANE = "3PL"  # a localizer: one sagittal, one coronal and one axial slice


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelPosition(_Frozen):
    """A vertebra or disc and the LPS z its posterior margin spans, in millimetres."""

    name: str = Field(examples=["L4-L5"])
    kind: str = Field(examples=["vertebra", "disc"])
    z_superior: float
    z_inferior: float
    z_center: float


class SampleFile(_Frozen):
    """One DICOM file, by its path relative to the sample directory."""

    path: str
    instance_number: int
    sop_instance_uid: str
    sha256: str
    size: int


class SampleSeries(_Frozen):
    """One series as written, with its geometry and files."""

    number: int
    description: str
    slug: str
    plane: Plane
    weighting: str
    contrast: bool
    series_instance_uid: str
    instance_count: int
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # DICOM order: between rows, between columns
    slice_thickness: float
    spacing_between_slices: float | None  # None for the three-plane localizer
    z_range: tuple[float, float]  # lowest and highest LPS z of the pixel centres
    levels_covered: tuple[str, ...]  # levels whose z_center lies within z_range
    files: tuple[SampleFile, ...]

    def paths(self, sample_dir: Path) -> list[Path]:
        """The series' files in instance order, under ``sample_dir``."""
        return [sample_dir / item.path for item in self.files]


class SampleCase(_Frozen):
    """One synthetic examination."""

    name: str
    description: str
    protocol_code: str
    patient_id: str
    patient_name: str
    study_instance_uid: str
    frame_of_reference_uid: str
    levels: tuple[LevelPosition, ...]
    series: tuple[SampleSeries, ...]

    def series_by_description(self, description: str) -> SampleSeries | None:
        return next((s for s in self.series if s.description == description), None)

    def paths_by_description(self, sample_dir: Path) -> dict[str, list[Path]]:
        """Series description → the case's files of that series, in instance order."""
        return {series.description: series.paths(sample_dir) for series in self.series}

    def level(self, name: str) -> LevelPosition:
        for level in self.levels:
            if level.name == name:
                return level
        known = ", ".join(level.name for level in self.levels)
        raise KeyError(f"no level {name!r} in case {self.name}; known: {known}")


class SampleManifest(_Frozen):
    """Every case the generator wrote, and with which version of it."""

    generator: str
    transfer_syntax_uid: str
    cases: tuple[SampleCase, ...]

    def case(self, name: str) -> SampleCase:
        for case in self.cases:
            if case.name == name:
                return case
        known = ", ".join(case.name for case in self.cases)
        raise KeyError(f"no sample case {name!r}; known: {known}")

    @property
    def files(self) -> list[SampleFile]:
        return [item for case in self.cases for series in case.series for item in series.files]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def load_manifest(sample_dir: Path) -> SampleManifest:
    """The manifest written by the generator into ``sample_dir``."""
    text = (sample_dir / MANIFEST_NAME).read_text(encoding="utf-8")
    return SampleManifest.model_validate_json(text)
