"""What a series description such as ``AX T1 FS +C`` promises about its images
(DOMAIN.md A.1): plane, weighting, fat suppression, contrast, 2D or 3D."""

from __future__ import annotations

from dataclasses import dataclass

from mri_pipeline.domain.protocols import POST_CONTRAST_MARK
from mri_pipeline.domain.qc_measurements import Plane, SeriesMeasurements, Weighting

_PLANES = {"SAG": Plane.SAGITTAL, "COR": Plane.CORONAL, "AX": Plane.AXIAL, "TRA": Plane.AXIAL}
_LOCALIZERS = {"LOC", "LOCALIZER", "SCOUT", "SURVEY"}
_WEIGHTINGS = {w.value: w for w in Weighting if w is not Weighting.UNKNOWN}


@dataclass(frozen=True)
class SeriesExpectation:
    """What a series description such as ``AX T1 FS +C`` promises about the images."""

    plane: Plane | None
    oblique: bool = False  # COR-OBL, AX-OBL: tilted on purpose
    weighting: Weighting | None = None
    fat_suppressed: bool = False
    contrast: bool = False
    three_d: bool = False
    localizer: bool = False


def expectation_of(description: str) -> SeriesExpectation:
    """The plane, weighting, fat suppression, contrast and 2D/3D a description names."""
    tokens = description.upper().split()
    if not tokens:
        return SeriesExpectation(plane=None)
    if tokens[0] in _LOCALIZERS:
        return SeriesExpectation(plane=None, weighting=Weighting.GRE, localizer=True)
    plane_word, _, suffix = tokens[0].partition("-")
    weighting = next((_WEIGHTINGS[t] for t in tokens if t in _WEIGHTINGS), None)
    if "GRE" in tokens:
        weighting = Weighting.GRE
    return SeriesExpectation(
        plane=_PLANES.get(plane_word),
        oblique=suffix == "OBL",
        weighting=weighting,
        fat_suppressed=bool({"FS", "STIR", "DIXON"} & set(tokens)),
        contrast=POST_CONTRAST_MARK in tokens,
        three_d="3D" in tokens,
    )


def plane_fits(series: SeriesMeasurements, expected: SeriesExpectation) -> bool:
    """Whether the measured plane is the one described (an oblique one for -OBL)."""
    plane = series.plane
    return plane is expected.plane or (expected.oblique and plane is Plane.OBLIQUE)
