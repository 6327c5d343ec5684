"""QC rules on where the slices are: plane, spacing and matrix (issue 5).

Slices are numbered as the console numbers them, in acquisition order: "slice 7 of 20"
is the seventh position of the stack, counting the positions a gap leaves empty.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

from mri_pipeline.domain.qc_description import SeriesExpectation, plane_fits
from mri_pipeline.domain.qc_measurements import (
    ImageGrid,
    Plane,
    SeriesMeasurements,
    Stack,
    angle_between,
)
from mri_pipeline.domain.qc_results import Check, CheckResult, Outcome, mm
from mri_pipeline.domain.qc_thresholds import QcThresholds

_STRAY_SLICES_FROM = 3  # a single slice beside a stack of at least this many is stray


def _numbers(values: Sequence[int | None]) -> str:
    named = [str(v) for v in values if v is not None]
    return ", ".join(named) if named else "without a number"


def _images_carry(values: Sequence[int | None]) -> str:
    """``image 8 carries`` or ``images 3, 4 carry``."""
    if len(values) == 1:
        return f"image {_numbers(values)} carries"
    return f"images {_numbers(values)} carry"


def check_plane(
    name: str, series: SeriesMeasurements, expected: SeriesExpectation
) -> list[CheckResult]:
    """The images lie in the plane the description names (SAG, COR, AX, -OBL)."""
    if expected.localizer or series.localizer_like:
        return []
    if not series.stacks:
        if not series.instances:
            return []
        return [
            CheckResult(
                name,
                Check.PLANE,
                Outcome.FAIL,
                f"{name}: the images carry no position or orientation; the plane cannot be "
                "checked.",
            )
        ]
    plane = series.plane
    assert plane is not None  # there are stacks
    tilt = series.stacks[0].tilt_degrees
    tilted = f", tilted {tilt:.0f}°" if tilt >= 1 else ""
    if expected.plane is None:
        return [
            CheckResult(
                name,
                Check.PLANE,
                Outcome.PASS,
                f"{name}: the images are {plane.word}{tilted} (the description names no plane).",
            )
        ]
    if plane_fits(series, expected):
        return [
            CheckResult(
                name, Check.PLANE, Outcome.PASS, f"{name}: {plane.word} as described{tilted}."
            )
        ]
    if plane is Plane.OBLIQUE:
        return [
            CheckResult(
                name,
                Check.PLANE,
                Outcome.WARN,
                f"{name}: the slices are tilted {tilt:.0f}° from the {expected.plane.word} "
                "plane; check the planning.",
            )
        ]
    return [
        CheckResult(
            name,
            Check.PLANE,
            Outcome.FAIL,
            f"{name}: the images are {plane.word}, but the series is described as "
            f"{expected.plane.word}.",
        )
    ]


def _stray(name: str, main: Stack, other: Stack) -> CheckResult:
    angle = angle_between(other.normal, main.normal)
    if angle > 179:
        how = "is flipped (its orientation is reversed)"
    elif angle < 1:
        how = (
            f"is rotated {angle_between(other.row_direction, main.row_direction):.0f}° in its plane"
        )
    else:
        how = f"is tilted {angle:.0f}°"
    image = other.instance_numbers[0]
    label = "an image without a number" if image is None else f"image {image}"
    return CheckResult(
        name,
        Check.SLICES,
        Outcome.FAIL,
        f"{name}: {label} {how} compared with the other {len(main)} slices.",
    )


def _displaced(numbers: Sequence[int | None]) -> list[int]:
    """Indices of instance numbers out of order: outside the longest run that rises or,
    for a stack numbered the other way, falls."""
    rising = _outside_rising(numbers)
    falling = _outside_rising([None if n is None else -n for n in numbers])
    return rising if len(rising) <= len(falling) else falling


def _outside_rising(numbers: Sequence[int | None]) -> list[int]:
    """Indices of instance numbers outside the longest increasing run."""
    known = [(i, n) for i, n in enumerate(numbers) if n is not None]
    tails: list[int] = []  # smallest tail value of an increasing run of each length
    tail_index: list[int] = []
    parent = [-1] * len(known)
    for k, (_, number) in enumerate(known):
        at = bisect_left(tails, number)
        if at == len(tails):
            tails.append(number)
            tail_index.append(k)
        else:
            tails[at] = number
            tail_index[at] = k
        parent[k] = tail_index[at - 1] if at > 0 else -1
    keep: set[int] = set()
    k = tail_index[-1] if tail_index else -1
    while k >= 0:
        keep.add(k)
        k = parent[k]
    return [known[k][0] for k in range(len(known)) if k not in keep]


def _spacing(name: str, stack: Stack, block: str, limits: QcThresholds) -> list[CheckResult]:
    steps = stack.steps
    if not steps:
        return []
    nominal = sorted(steps)[(len(steps) - 1) // 2]  # the lower median: gaps are longer
    if nominal <= 0:
        return [
            CheckResult(
                name,
                Check.SLICES,
                Outcome.FAIL,
                f"{name}: {block}all {len(stack)} slices are at the same position.",
            )
        ]
    tolerance = limits.spacing_tolerance * nominal
    missing_total = sum(
        max(round(step / nominal) - 1, 0) for step in steps if step > nominal + tolerance
    )
    total = len(stack) + missing_total
    results = []
    missing_before = 0
    for index, step in enumerate(steps):
        before, after = index + 1 + missing_before, index + 2 + missing_before
        if step <= limits.duplicate_fraction * nominal:
            results.append(
                CheckResult(
                    name,
                    Check.SLICES,
                    Outcome.FAIL,
                    f"{name}: {block}slices {before} and {after} of {total} are at the same "
                    "position (duplicate slice).",
                )
            )
        elif step > nominal + tolerance:
            missing = round(step / nominal) - 1
            if missing >= 1 and abs(step - (missing + 1) * nominal) <= tolerance:
                first, last = before + 1, before + missing
                which = f"slice {first}" if missing == 1 else f"slices {first}-{last}"
                text = f"{which} of {total} missing (gap {mm(step)} mm)"
                missing_before += missing
            else:
                text = (
                    f"gap of {mm(step)} mm between slices {before} and {after} of {total} "
                    f"(the others are {mm(nominal)} mm apart)"
                )
            results.append(CheckResult(name, Check.SLICES, Outcome.FAIL, f"{name}: {block}{text}."))
        elif step < nominal - tolerance:
            results.append(
                CheckResult(
                    name,
                    Check.SLICES,
                    Outcome.WARN,
                    f"{name}: {block}slices {before} and {after} of {total} are only "
                    f"{mm(step)} mm apart (the others {mm(nominal)} mm): uneven spacing.",
                )
            )
    displaced = _displaced(stack.instance_numbers)
    if displaced:
        index = displaced[0]
        numbers = stack.instance_numbers
        around = [numbers[i] for i in (index - 1, index + 1) if 0 <= i < len(numbers)]
        where = (
            f"between images {_numbers(around).replace(', ', ' and ')}"
            if len(around) == 2
            else f"next to image {_numbers(around)}"
        )
        results.append(
            CheckResult(
                name,
                Check.SLICES,
                Outcome.WARN,
                f"{name}: {block}image {_numbers([numbers[index]])} is out of order: it lies "
                f"{where}; viewers that sort by image number show it in the wrong place.",
            )
        )
    if not results:
        results.append(
            CheckResult(
                name,
                Check.SLICES,
                Outcome.PASS,
                f"{name}: {block}{len(stack)} slices {mm(nominal)} mm apart, no gap, "
                "duplicate or reversed slice.",
            )
        )
    return results


def check_slices(
    name: str, series: SeriesMeasurements, expected: SeriesExpectation, limits: QcThresholds
) -> list[CheckResult]:
    """Even spacing, no gap, duplicate, out-of-order or stray (tilted, flipped) slice."""
    if expected.localizer or series.localizer_like or not series.stacks:
        return []
    results = []
    if series.without_geometry:
        results.append(
            CheckResult(
                name,
                Check.SLICES,
                Outcome.FAIL,
                f"{name}: {_images_carry(series.without_geometry)} no position or orientation.",
            )
        )
    main = series.stacks[0]
    stray = len(main) >= _STRAY_SLICES_FROM
    blocks = [s for s in series.stacks if len(s) > 1 or not stray]
    results += [_stray(name, main, s) for s in series.stacks[1:] if len(s) == 1 and stray]
    for number, stack in enumerate(blocks, start=1):
        block = f"block {number}: " if len(blocks) > 1 else ""
        results += _spacing(name, stack, block, limits)
    return results


def _grids_match(a: ImageGrid, b: ImageGrid, tolerance: float) -> bool:
    if (a.rows, a.columns) != (b.rows, b.columns):
        return False
    if a.pixel_spacing is None or b.pixel_spacing is None:
        return a.pixel_spacing == b.pixel_spacing
    return all(
        abs(x - y) <= tolerance * max(x, y)
        for x, y in zip(a.pixel_spacing, b.pixel_spacing, strict=True)
    )


def check_grid(name: str, series: SeriesMeasurements, limits: QcThresholds) -> list[CheckResult]:
    """One matrix and pixel spacing for every image of the series."""
    gridded = [(i.instance_number, i.grid) for i in series.instances if i.grid is not None]
    results = []
    without = [i.instance_number for i in series.instances if i.grid is None]
    if without:
        results.append(
            CheckResult(
                name,
                Check.GRID,
                Outcome.FAIL,
                f"{name}: {_images_carry(without)} no matrix size.",
            )
        )
    if not gridded:
        return results
    usual = Counter(grid for _, grid in gridded).most_common(1)[0][0]
    for number, grid in gridded:
        if not _grids_match(grid, usual, limits.pixel_spacing_tolerance):
            results.append(
                CheckResult(
                    name,
                    Check.GRID,
                    Outcome.FAIL,
                    f"{name}: image {_numbers([number])} is {grid.text()}; the others are "
                    f"{usual.text()}.",
                )
            )
    if not results:
        results.append(
            CheckResult(
                name,
                Check.GRID,
                Outcome.PASS,
                f"{name}: all {len(gridded)} images {usual.text()}.",
            )
        )
    return results
