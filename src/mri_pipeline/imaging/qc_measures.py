"""Measure a series for image QC: geometry from the headers, numbers from the pixels.

Everything here measures; nothing judges. The limits live in ``domain.qc_thresholds``
and the rules in ``domain.qc``.

Noise and ghosting follow the two-region idea of NEMA MS 1 on a magnitude image: the
body is found on a 4×4 block-averaged copy (Otsu threshold on the logarithm, so that
the split is air against tissue rather than dark against bright tissue), filled along
each line of the phase-encoding direction, and a margin of 15 mm around it belongs to
neither region (edge blurring, chemical shift, dark fat on STIR). The background noise is
Rayleigh-distributed; its σ comes from differences of pixels two apart along the
frequency direction, E|R₁ − R₂| = σ√π(√2 − 1), which a smooth ghost hardly moves and
which does not mind pixel correlation from two-fold interpolation. Ghosting is the
background signal above the Rayleigh mean σ√(π/2) along the phase direction, over the
body's mean signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mri_pipeline.domain.qc_measurements import (
    InstanceMeasurement,
    PixelStats,
    SeriesMeasurements,
    Stack,
    Vec3,
)
from mri_pipeline.imaging.png import encode_gray8
from mri_pipeline.imaging.series_images import FloatArray, SeriesImages, SliceHeader

BoolArray = NDArray[np.bool_]

BLOCK = 4  # pixels per side of the blocks the body is found on
MARGIN_MM = 15.0  # around the body outline: neither body nor background
LAG = 2  # pixels between the two of a noise difference
MIN_NOISE_PAIRS = 500
MIN_BAND_PIXELS = 500
RAYLEIGH_MEAN = math.sqrt(math.pi / 2)  # mean of the background magnitude, per σ
RAYLEIGH_MEAN_ABS_DIFFERENCE = math.sqrt(math.pi) * (math.sqrt(2) - 1)
RAYLEIGH_SD = math.sqrt(2 - math.pi / 2)
# A block of pure noise averages BLOCK² Rayleigh pixels: brighter than its mean plus five
# standard deviations of that average, it holds signal.
QUIET_BLOCK = RAYLEIGH_MEAN + 5 * RAYLEIGH_SD / BLOCK
ORIENTATION_TOLERANCE = 0.01  # direction cosines that differ less are the same stack
THUMBNAIL_MAX = 256


def measure(series: SeriesImages) -> SeriesMeasurements:
    """Geometry, per-image statistics, noise, body signal and ghosting of one series."""
    stacks, without = _stacks(series.slices)
    noise, body, ghosting = _quality(series)
    return SeriesMeasurements(
        acquisition=series.acquisition,
        instances=_instances(series),
        stacks=stacks,
        unreadable_files=series.unreadable,
        without_geometry=without,
        noise_sigma=noise,
        body_mean=body,
        ghosting_ratio=ghosting,
    )


# Per image --------------------------------------------------------------------------


def _stats(pixels: FloatArray) -> list[PixelStats]:
    """Mean, standard deviation and share of pixels at the maximum of each image."""
    if len(pixels) == 0:
        return []
    flat = pixels.reshape(len(pixels), -1)
    mean = flat.mean(axis=1, dtype=np.float64)
    sd = flat.std(axis=1, dtype=np.float64)
    top = flat.max(axis=1)
    at_top = np.count_nonzero(flat == top[:, None], axis=1) / flat.shape[1]
    return [
        PixelStats(float(m), float(s), float(f) if t > 0 else 0.0)
        for m, s, f, t in zip(mean, sd, at_top, top, strict=True)
    ]


def _instances(series: SeriesImages) -> tuple[InstanceMeasurement, ...]:
    stats: dict[int, PixelStats] = dict(
        zip(series.pixel_slices, _stats(series.pixels), strict=True)
    )
    for index, array in series.other_pixels:
        stats[index] = _stats(array[None])[0]
    problems = {u.slice_index: u.reason for u in series.undecodable}
    return tuple(
        InstanceMeasurement(
            instance_number=header.instance_number,
            grid=header.grid,
            pixels=stats.get(index),
            problem=problems.get(index),
        )
        for index, header in enumerate(series.slices)
    )


# Geometry ---------------------------------------------------------------------------


def _same(a: Vec3, b: Vec3) -> bool:
    return all(abs(x - y) <= ORIENTATION_TOLERANCE for x, y in zip(a, b, strict=True))


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _reach(header: SliceHeader, normal: Vec3, axis: int) -> tuple[float, float]:
    """Lowest and highest coordinate ``axis`` the slice reaches: its pixel centres, and
    half the slice thickness along the normal."""
    assert header.position is not None and header.row_direction is not None
    assert header.column_direction is not None
    grid = header.grid
    along_row = along_column = 0.0
    if grid is not None and grid.pixel_spacing is not None:
        along_column = (grid.rows - 1) * grid.pixel_spacing[0]
        along_row = (grid.columns - 1) * grid.pixel_spacing[1]
    corners = [
        header.position[axis] + c * header.row_direction[axis] + r * header.column_direction[axis]
        for c in (0.0, along_row)
        for r in (0.0, along_column)
    ]
    half = abs(normal[axis]) * (header.slice_thickness or 0.0) / 2
    return min(corners) - half, max(corners) + half


def _stack(headers: list[SliceHeader]) -> Stack:
    first = headers[0]
    assert first.row_direction is not None and first.column_direction is not None
    normal = first.normal
    assert normal is not None
    along = {id(h): _dot(h.position, normal) for h in headers if h.position is not None}
    ordered = sorted(headers, key=lambda h: (along[id(h)], h.instance_number or 0))
    numbers = [h.instance_number for h in ordered]
    if numbers[0] is not None and numbers[-1] is not None and numbers[0] > numbers[-1]:
        ordered.reverse()  # number as the console does: first image first
    z = [_reach(h, normal, 2) for h in ordered]
    x = [_reach(h, normal, 0) for h in ordered]
    thicknesses = sorted(h.slice_thickness for h in ordered if h.slice_thickness is not None)
    return Stack(
        normal=normal,
        row_direction=first.row_direction,
        instance_numbers=tuple(h.instance_number for h in ordered),
        positions=tuple(along[id(h)] for h in ordered),
        slice_thickness=thicknesses[len(thicknesses) // 2] if thicknesses else None,
        z_range=(min(low for low, _ in z), max(high for _, high in z)),
        x_range=(min(low for low, _ in x), max(high for _, high in x)),
    )


def _stacks(
    slices: tuple[SliceHeader, ...],
) -> tuple[tuple[Stack, ...], tuple[int | None, ...]]:
    """The slices grouped by orientation into stacks, largest first, and the instances
    that carry no position or orientation."""
    groups: list[list[SliceHeader]] = []
    without: list[int | None] = []
    for header in slices:
        row, column = header.row_direction, header.column_direction
        if row is None or column is None or header.position is None:
            without.append(header.instance_number)
            continue
        for group in groups:
            first = group[0]
            assert first.row_direction is not None and first.column_direction is not None
            if _same(row, first.row_direction) and _same(column, first.column_direction):
                group.append(header)
                break
        else:
            groups.append([header])
    groups.sort(key=len, reverse=True)
    return tuple(_stack(group) for group in groups), tuple(without)


# Noise, body signal and ghosting ----------------------------------------------------


@dataclass(frozen=True)
class _Regions:
    """Full-resolution masks over the cropped stack."""

    body: BoolArray  # inside the outline, filled along the phase direction
    band: BoolArray  # background on phase lines that cross the body
    free: BoolArray  # background on phase lines that do not


def _otsu(values: NDArray[np.float64]) -> float:
    """The threshold that best splits ``values`` in two classes (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=128)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(hist * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def _dilate(mask: BoolArray, radius: int, axis: int) -> BoolArray:
    """``mask`` grown by ``radius`` cells both ways along ``axis``."""
    grown = mask.copy()
    length = mask.shape[axis]
    for shift in range(1, min(radius, length - 1) + 1):
        ahead = [slice(None)] * mask.ndim
        behind = [slice(None)] * mask.ndim
        ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
        grown[tuple(behind)] |= mask[tuple(ahead)]
        grown[tuple(ahead)] |= mask[tuple(behind)]
    return grown


def _regions(coarse: NDArray[np.float64], phase_axis: int, margin: int) -> _Regions:
    """Body, phase-band and free background on the block grid, then at full size."""
    tissue = coarse > math.expm1(_otsu(np.log1p(np.maximum(coarse, 0.0))))
    length = tissue.shape[phase_axis]
    crosses = tissue.any(axis=phase_axis, keepdims=True)
    first = np.argmax(tissue, axis=phase_axis, keepdims=True)
    last = length - 1 - np.argmax(np.flip(tissue, axis=phase_axis), axis=phase_axis, keepdims=True)
    shape = [1] * tissue.ndim
    shape[phase_axis] = length
    index = np.arange(length).reshape(shape)
    body = crosses & (index >= first) & (index <= last)
    near = _dilate(_dilate(body, margin, 1), margin, 2)
    band = crosses & ~near
    free = ~crosses & ~near
    return _Regions(*(_full(mask) for mask in (body, band, free)))


def _full(mask: BoolArray) -> BoolArray:
    grown: BoolArray = np.repeat(np.repeat(mask, BLOCK, axis=1), BLOCK, axis=2)
    return grown


def _noise_sigma(pixels: FloatArray, background: BoolArray, axis: int) -> float | None:
    """σ of the complex noise from pixel pairs ``LAG`` apart along ``axis``."""
    ahead = [slice(None)] * 3
    behind = [slice(None)] * 3
    ahead[axis], behind[axis] = slice(LAG, None), slice(None, -LAG)
    both = background[tuple(ahead)] & background[tuple(behind)]
    if np.count_nonzero(both) < MIN_NOISE_PAIRS:
        return None
    difference = pixels[tuple(ahead)][both] - pixels[tuple(behind)][both]
    return float(np.abs(difference).mean(dtype=np.float64)) / RAYLEIGH_MEAN_ABS_DIFFERENCE


def _background_sigma(
    image: FloatArray, coarse: NDArray[np.float64], regions: _Regions, axis: int
) -> float | None:
    """σ from the background away from the phase bands when there is enough of it, else
    from all background; then again from the blocks no brighter than noise can be, so
    that dark tissue (suppressed fat) and ghosts left in the background do not count."""
    background = regions.free
    sigma = _noise_sigma(image, background, axis)
    if sigma is None:
        background = regions.free | regions.band
        sigma = _noise_sigma(image, background, axis)
    if sigma is None:
        return None
    quiet = background & _full(coarse < QUIET_BLOCK * sigma)
    return _noise_sigma(image, quiet, axis) or sigma


def _quality(series: SeriesImages) -> tuple[float | None, float | None, float | None]:
    """Noise σ, mean body signal, and ghosting ratio (None where not measurable)."""
    pixels = series.pixels
    if len(pixels) == 0:
        return None, None, None
    varying = pixels.reshape(len(pixels), -1).std(axis=1) > 0
    rows, columns = pixels.shape[1] // BLOCK * BLOCK, pixels.shape[2] // BLOCK * BLOCK
    if not varying.any() or rows == 0 or columns == 0:
        return None, None, None
    image = pixels[varying, :rows, :columns]
    coarse = image.reshape(len(image), rows // BLOCK, BLOCK, columns // BLOCK, BLOCK).mean(
        axis=(2, 4), dtype=np.float64
    )
    margin = math.ceil(MARGIN_MM / (BLOCK * _pixel_size(series)))
    phase = series.acquisition.phase_encoding_direction
    # ROW: phase encoded along a row, so ghosts repeat across the columns (axis 2).
    axes = [2] if phase == "ROW" else [1] if phase == "COL" else [2, 1]
    sigma = body_mean = ghosting = None
    for phase_axis in axes:
        regions = _regions(coarse, phase_axis, margin)
        frequency_axis = 3 - phase_axis
        if sigma is None:
            sigma = _background_sigma(image, coarse, regions, frequency_axis)
        if body_mean is None and regions.body.any():
            body_mean = float(image[regions.body].mean(dtype=np.float64))
        if sigma is None or not body_mean or np.count_nonzero(regions.band) < MIN_BAND_PIXELS:
            continue
        excess = float(image[regions.band].mean(dtype=np.float64)) - RAYLEIGH_MEAN * sigma
        ratio = max(excess, 0.0) / body_mean
        ghosting = ratio if ghosting is None else max(ghosting, ratio)
    return sigma, body_mean, ghosting


def _pixel_size(series: SeriesImages) -> float:
    for index in series.pixel_slices:
        grid = series.slices[index].grid
        if grid is not None and grid.pixel_spacing is not None:
            return max(min(grid.pixel_spacing), 0.1)
    return 1.0


# Thumbnail --------------------------------------------------------------------------


def thumbnail_png(series: SeriesImages) -> bytes:
    """The middle slice, windowed from the 0.5th to the 99.5th percentile, as an 8-bit
    PNG at most 256 pixels a side; a black square when no image decoded."""
    if len(series.pixels) == 0:
        return encode_gray8(np.zeros((64, 64), dtype=np.uint8))
    middle = len(series.slices) // 2
    plane = min(range(len(series.pixel_slices)), key=lambda k: abs(series.pixel_slices[k] - middle))
    image = series.pixels[plane]
    factor = max(1, math.ceil(max(image.shape) / THUMBNAIL_MAX))
    rows, columns = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    if factor > 1 and rows and columns:
        image = (
            image[:rows, :columns]
            .reshape(rows // factor, factor, columns // factor, factor)
            .mean(axis=(1, 3))
        )
    low, high = np.percentile(image, (0.5, 99.5))
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = np.clip((image - low) * scale, 0, 255)
    return encode_gray8(np.rint(scaled).astype(np.uint8))
