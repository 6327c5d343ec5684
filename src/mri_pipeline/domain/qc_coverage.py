"""QC rules on coverage (issue 5): the sagittal stack reaches from the thoracolumbar
junction to the sacrum and through both foramina; the axials cover the protocol's levels.

Level positions (LPS z, mm) come from outside, a model or an atlas; without them the
rules fall back on the length of the field.
"""

from __future__ import annotations

from collections.abc import Mapping

from mri_pipeline.domain.protocols import Protocol
from mri_pipeline.domain.qc_description import SeriesExpectation, plane_fits
from mri_pipeline.domain.qc_measurements import Plane, SeriesMeasurements
from mri_pipeline.domain.qc_results import Check, CheckResult, Outcome, mm
from mri_pipeline.domain.qc_thresholds import QcThresholds


def _covered(series: SeriesMeasurements) -> tuple[float, float, float]:
    """Lowest and highest z, and the left-right width, the slices reach."""
    low = min(stack.z_range[0] for stack in series.stacks)
    high = max(stack.z_range[1] for stack in series.stacks)
    left = max(stack.x_range[1] for stack in series.stacks)
    right = min(stack.x_range[0] for stack in series.stacks)
    return low, high, left - right


def _sagittal(
    name: str,
    series: SeriesMeasurements,
    levels: Mapping[str, float] | None,
    limits: QcThresholds,
) -> list[CheckResult]:
    low, high, width = _covered(series)
    top, bottom = limits.sagittal_top_level, limits.sagittal_bottom_level
    results = []
    if levels is not None and top in levels and bottom in levels:
        if levels[top] > high:
            results.append(
                CheckResult(
                    name,
                    Check.COVERAGE,
                    Outcome.FAIL,
                    f"{name}: the images stop {mm(levels[top] - high)} mm below {top} (the "
                    "thoracolumbar junction); move the field of view towards the head.",
                )
            )
        if levels[bottom] < low:
            results.append(
                CheckResult(
                    name,
                    Check.COVERAGE,
                    Outcome.FAIL,
                    f"{name}: the images stop {mm(low - levels[bottom])} mm above {bottom} "
                    "(the sacrum); move the field of view towards the feet.",
                )
            )
        if not results:
            results.append(
                CheckResult(
                    name,
                    Check.COVERAGE,
                    Outcome.PASS,
                    f"{name}: covers {top} to {bottom} ({mm(high - low)} mm head to foot).",
                )
            )
    elif high - low < limits.sagittal_min_field_mm:
        results.append(
            CheckResult(
                name,
                Check.COVERAGE,
                Outcome.FAIL,
                f"{name}: covers only {mm(high - low)} mm head to foot; at least "
                f"{mm(limits.sagittal_min_field_mm)} mm is needed to reach from {top} to the "
                "sacrum.",
            )
        )
    else:
        results.append(
            CheckResult(
                name,
                Check.COVERAGE,
                Outcome.PASS,
                f"{name}: covers {mm(high - low)} mm head to foot (at least "
                f"{mm(limits.sagittal_min_field_mm)} mm).",
            )
        )
    if width < limits.sagittal_min_lr_mm:
        results.append(
            CheckResult(
                name,
                Check.COVERAGE,
                Outcome.WARN,
                f"{name}: covers only {mm(width)} mm left to right; at least "
                f"{mm(limits.sagittal_min_lr_mm)} mm is needed to include both neural "
                "foramina; add slices.",
            )
        )
    else:
        results.append(
            CheckResult(
                name, Check.COVERAGE, Outcome.PASS, f"{name}: covers {mm(width)} mm left to right."
            )
        )
    return results


def _axial(
    name: str,
    series: SeriesMeasurements,
    protocol: Protocol,
    levels: Mapping[str, float] | None,
    limits: QcThresholds,
) -> list[CheckResult]:
    names = protocol.axial_level_names
    if not names:
        return []
    low, high, _ = _covered(series)
    results = []
    if levels is not None and all(level in levels for level in names):
        for level in names:
            z = levels[level]
            if z > high:
                where = f"{mm(z - high)} mm above the highest slice"
                move = "towards the head"
            elif z < low:
                where = f"{mm(low - z)} mm below the lowest slice"
                move = "towards the feet"
            else:
                continue
            results.append(
                CheckResult(
                    name,
                    Check.COVERAGE,
                    Outcome.FAIL,
                    f"{name}: {level} is not covered ({where}); add slices or move the "
                    f"stack {move}.",
                )
            )
        if not results:
            results.append(
                CheckResult(
                    name, Check.COVERAGE, Outcome.PASS, f"{name}: covers {', '.join(names)}."
                )
            )
        return results
    need = (len(names) - 1) * limits.axial_mm_per_level
    length = high - low
    if length < need:
        return [
            CheckResult(
                name,
                Check.COVERAGE,
                Outcome.FAIL,
                f"{name}: the stack is {mm(length)} mm long, too short for the "
                f"{len(names)} levels {', '.join(names)} (at least {mm(need)} mm).",
            )
        ]
    return [
        CheckResult(
            name,
            Check.COVERAGE,
            Outcome.PASS,
            f"{name}: the stack is {mm(length)} mm long, enough for {', '.join(names)} "
            f"(at least {mm(need)} mm).",
        )
    ]


def check_coverage(
    name: str,
    series: SeriesMeasurements,
    expected: SeriesExpectation,
    protocol: Protocol,
    levels: Mapping[str, float] | None,
    limits: QcThresholds,
) -> list[CheckResult]:
    """Sagittal: thoracolumbar junction to sacrum and both foramina; axial: the named
    levels. Not judged when the plane is already wrong."""
    if expected.localizer or not series.stacks or not plane_fits(series, expected):
        return []
    if expected.plane is Plane.SAGITTAL:
        return _sagittal(name, series, levels, limits)
    if expected.plane is Plane.AXIAL:
        return _axial(name, series, protocol, levels, limits)
    return []
