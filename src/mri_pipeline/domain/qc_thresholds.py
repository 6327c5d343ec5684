"""The limits image QC judges a series by (issue 5); a protocol may override some of them.

Every default is a project choice **[U]** (DOMAIN.md A.1 gives typical geometry only);
the clinic's radiologists and physicist confirm or change them, per protocol, in the
``qc:`` section of ``worklist/protocols.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QcThresholds:
    """Where a measurement turns a check from pass to warn or fail."""

    # Slices: a step between neighbouring slices more than this fraction away from the
    # series' usual step is a gap (longer) or an overlap (shorter); a step shorter than
    # ``duplicate_fraction`` of it is the same position twice.
    spacing_tolerance: float = 0.1
    duplicate_fraction: float = 0.1
    # In-plane pixel spacing that differs by more than this fraction is another grid.
    pixel_spacing_tolerance: float = 0.01
    # Signal-to-noise: mean body signal over the noise σ of the background. The sample
    # studies lie at 20-35; a clinical lumbar TSE is rarely diagnostic below about 6.
    snr_warn: float = 12.0
    snr_fail: float = 6.0
    # Ghosting: signal above the noise floor in the background along the phase-encoding
    # direction, as a fraction of the mean body signal. The ACR phantom limit is 0.025;
    # patients move more than phantoms, so warn at 3 % and fail at 8 %.
    ghosting_warn: float = 0.03
    ghosting_fail: float = 0.08
    # A slice is blank when its pixels hardly vary: standard deviation below the
    # absolute floor (counts), or below this fraction of the series' typical slice.
    blank_sd: float = 0.5
    blank_relative_sd: float = 0.1
    # A slice is saturated (clipped) when this fraction of its pixels sit at its maximum.
    saturation_fraction: float = 0.005
    # Sagittal coverage: with level positions, these two must lie inside the field
    # (the thoracolumbar junction and the sacrum); without them, this head-to-foot field.
    sagittal_top_level: str = "T12-L1"
    sagittal_bottom_level: str = "S1"
    sagittal_min_field_mm: float = 200.0
    # Left to right, a sagittal stack reaches through both neural foramina.
    sagittal_min_lr_mm: float = 50.0
    # Axial coverage without level positions: a stack at least this long per interval
    # between the protocol's named disc levels (a lumbar vertebra and disc ≈ 30-35 mm).
    axial_mm_per_level: float = 28.0

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.snr_fail < self.snr_warn:
            problems.append(
                f"snr_fail ({self.snr_fail}) must be above 0 and below snr_warn ({self.snr_warn})"
            )
        if not 0 < self.ghosting_warn < self.ghosting_fail:
            problems.append(
                f"ghosting_warn ({self.ghosting_warn}) must be above 0 and below "
                f"ghosting_fail ({self.ghosting_fail})"
            )
        if not 0 < self.duplicate_fraction < 1 - self.spacing_tolerance < 1:
            problems.append("duplicate_fraction and spacing_tolerance must leave 0 < d < 1 - t")
        for name in (
            "pixel_spacing_tolerance",
            "blank_sd",
            "blank_relative_sd",
            "saturation_fraction",
            "sagittal_min_field_mm",
            "sagittal_min_lr_mm",
            "axial_mm_per_level",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be above 0")
        if problems:
            raise ValueError("; ".join(problems))
