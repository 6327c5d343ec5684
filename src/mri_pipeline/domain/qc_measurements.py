"""What image QC measures on one series, as plain numbers the rules in ``qc`` judge.

The imaging adapter fills these from the DICOM headers and the pixels; nothing here
reads an image. Positions are DICOM patient coordinates (LPS, millimetres): +x towards
the patient's left, +y posterior, +z towards the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

Vec3 = tuple[float, float, float]

# A stack tilted further than this from the nearest of the three body planes is oblique.
# Angled axial blocks through the lower lumbar discs reach 30-35°, so allow 40°.
OBLIQUE_DEGREES = 40.0


class Plane(StrEnum):
    """The body plane of a stack of slices, as series descriptions abbreviate it."""

    SAGITTAL = "SAG"
    CORONAL = "COR"
    AXIAL = "AX"
    OBLIQUE = "OBLIQUE"
    MIXED = "MIXED"  # slices of several planes, as a three-plane localizer has

    @property
    def word(self) -> str:
        return _WORDS[self]


_WORDS = {
    Plane.SAGITTAL: "sagittal",
    Plane.CORONAL: "coronal",
    Plane.AXIAL: "axial",
    Plane.OBLIQUE: "oblique",
    Plane.MIXED: "in several planes",
}
_AXES = (Plane.SAGITTAL, Plane.CORONAL, Plane.AXIAL)  # normal along x, y, z


def plane_of(normal: Vec3) -> tuple[Plane, float]:
    """The plane of slices with ``normal`` and its tilt in degrees from that plane."""
    length = math.sqrt(sum(c * c for c in normal))
    if length == 0:
        return Plane.OBLIQUE, 90.0
    cosines = [abs(c) / length for c in normal]
    axis = max(range(3), key=lambda i: cosines[i])
    tilt = math.degrees(math.acos(min(1.0, cosines[axis])))
    return (_AXES[axis] if tilt <= OBLIQUE_DEGREES else Plane.OBLIQUE), tilt


def angle_between(a: Vec3, b: Vec3) -> float:
    """The angle between two directions, in degrees (0-180)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0:
        return 0.0
    return math.degrees(math.acos(max(-1.0, min(1.0, dot / norm))))


class Weighting(StrEnum):
    """The tissue contrast of a series, as its timing parameters give it."""

    T1 = "T1"
    T2 = "T2"
    PD = "PD"
    STIR = "STIR"
    FLAIR = "FLAIR"
    GRE = "GRE"
    DWI = "DWI"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class AcquisitionFacts:
    """The MR Image module values that say which sequence a series is (PS3.3 C.8.3.1)."""

    series_description: str = ""
    protocol_name: str = ""
    series_number: int | None = None
    repetition_time: float | None = None  # ms
    echo_time: float | None = None  # ms
    inversion_time: float | None = None  # ms
    scanning_sequence: tuple[str, ...] = ()  # SE, IR, GR, EP, RM
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()  # FS: fat saturation
    mr_acquisition_type: str | None = None  # 2D or 3D
    contrast_agent: str | None = None  # Contrast/Bolus Agent, when one was given
    phase_encoding_direction: str | None = None  # ROW or COL

    @property
    def weighting(self) -> Weighting:
        """T1, T2, PD, STIR, FLAIR, GRE or DWI from the sequence type, TR, TE and TI.

        Limits are the usual 1.5 T / 3 T ranges [U]: STIR has TI below 300 ms and FLAIR
        above 1500 ms; a spin echo is T1 with TR under 1000 ms and TE under 30 ms, T2
        with TR of 1500 ms or more and TE of 60 ms or more, PD with a long TR and TE
        under 40 ms.
        """
        scanning = set(self.scanning_sequence)
        tr, te, ti = self.repetition_time, self.echo_time, self.inversion_time
        if "EP" in scanning:
            return Weighting.DWI
        if ti is not None and ti > 0:
            if ti < 300:
                return Weighting.STIR
            if ti > 1500:
                return Weighting.FLAIR
        elif "IR" in scanning:
            return Weighting.UNKNOWN  # an inversion without its time
        if "GR" in scanning and "SE" not in scanning:
            return Weighting.GRE
        if tr is None or te is None:
            return Weighting.UNKNOWN
        if tr < 1000 and te < 30:
            return Weighting.T1
        if tr >= 1500 and te >= 60:
            return Weighting.T2
        if tr >= 1500 and te < 40:
            return Weighting.PD
        return Weighting.UNKNOWN

    @property
    def fat_suppressed(self) -> bool:
        """Fat saturation in Scan Options, or an inversion recovery that nulls fat."""
        return "FS" in self.scan_options or self.weighting is Weighting.STIR

    @property
    def contrast_given(self) -> bool:
        return bool(self.contrast_agent and self.contrast_agent.strip())

    @property
    def three_d(self) -> bool | None:
        if self.mr_acquisition_type is None:
            return None
        return self.mr_acquisition_type.upper() == "3D"


@dataclass(frozen=True)
class ImageGrid:
    """An image's matrix and in-plane pixel spacing (DICOM order: rows, then columns)."""

    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None

    def text(self) -> str:
        matrix = f"{self.rows}×{self.columns}"
        if self.pixel_spacing is None:
            return f"{matrix} (no pixel spacing)"
        row, column = self.pixel_spacing
        return f"{matrix} at {row:.2f}×{column:.2f} mm"


@dataclass(frozen=True)
class PixelStats:
    """Numbers of one decoded image."""

    mean: float
    sd: float
    saturated_fraction: float  # share of pixels at the image's maximum, when it is > 0


@dataclass(frozen=True)
class InstanceMeasurement:
    """One instance: its grid, and its pixel statistics or why its pixels did not decode."""

    instance_number: int | None
    grid: ImageGrid | None
    pixels: PixelStats | None = None
    problem: str | None = None  # e.g. "pixel data truncated (65536 of 131072 bytes)"


@dataclass(frozen=True)
class Stack:
    """Parallel slices of one orientation, in acquisition (instance) order."""

    normal: Vec3
    row_direction: Vec3
    instance_numbers: tuple[int | None, ...]
    positions: tuple[float, ...]  # along ``normal``, mm, one per slice
    slice_thickness: float | None
    z_range: tuple[float, float]  # lowest and highest LPS z the slices reach, mm
    x_range: tuple[float, float]  # the same left to right

    @property
    def plane(self) -> Plane:
        return plane_of(self.normal)[0]

    @property
    def tilt_degrees(self) -> float:
        return plane_of(self.normal)[1]

    @property
    def steps(self) -> tuple[float, ...]:
        """Distances between neighbouring slices, mm."""
        return tuple(abs(b - a) for a, b in zip(self.positions, self.positions[1:], strict=False))

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class SeriesMeasurements:
    """Everything QC judges about one series."""

    acquisition: AcquisitionFacts
    instances: tuple[InstanceMeasurement, ...] = ()
    stacks: tuple[Stack, ...] = ()  # largest first
    unreadable_files: tuple[str, ...] = ()  # files that are not readable DICOM, and why
    without_geometry: tuple[int | None, ...] = ()  # instances lacking position/orientation
    noise_sigma: float | None = None  # σ of the complex noise, from the background
    body_mean: float | None = None  # mean signal inside the body outline
    ghosting_ratio: float | None = None  # background signal along phase / body signal

    @property
    def description(self) -> str:
        return self.acquisition.series_description or self.acquisition.protocol_name

    @property
    def plane(self) -> Plane | None:
        """The plane of the stacks of several slices (a stray single slice does not count),
        MIXED when they differ or for single slices of several planes; None without
        geometry."""
        stacks = [stack for stack in self.stacks if len(stack) > 1] or list(self.stacks)
        planes = {stack.plane for stack in stacks}
        if not planes:
            return None
        return planes.pop() if len(planes) == 1 else Plane.MIXED

    @property
    def localizer_like(self) -> bool:
        """Single slices in several orientations: a localizer, not a stack to space-check."""
        return len(self.stacks) > 1 and all(len(stack) == 1 for stack in self.stacks)

    @property
    def snr(self) -> float | None:
        if self.noise_sigma is None or self.body_mean is None or self.noise_sigma <= 0:
            return None
        return self.body_mean / self.noise_sigma
