"""From tissue labels to MR magnitude pixels: contrast by weighting, coil profile, noise.

Each tissue has a relative signal (per mille of fat on T1) for each weighting. A pixel's
value is the mean over its sub-samples (partial volume), lightly smoothed (the point
spread of a finite k-space), shaded by a posterior spine-array coil, scaled to counts,
and given Rician noise: the magnitude of the signal plus complex Gaussian noise, as a
magnitude image has. Integer sums and elementwise IEEE arithmetic only, and a seeded
PCG64 generator, so the same inputs give the same pixels on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from mri_pipeline.imaging.anatomy import FloatArray, Tissue
from mri_pipeline.imaging.canvas import LabelArray

PixelArray = NDArray[np.uint16]

MAX_STORED = 4095  # Bits Stored 12
COIL_BACK_Y = 115.0  # the spine array lies under the patient's back (LPS +y)


class Weighting(StrEnum):
    """How a series weights the tissues."""

    GRE = "GRE"  # localizer: gradient echo, inflow-bright vessels
    T1 = "T1"
    T2 = "T2"
    STIR = "STIR"  # inversion recovery: fat nulled, fluid and oedema bright
    T1_FS_GD = "T1 FS GD"  # fat-suppressed T1 after gadolinium


_T = Tissue
# Per mille of fat on T1. Columns: GRE, T1, T2, STIR, T1 FS after gadolinium.
_SIGNAL: dict[Tissue, tuple[int, int, int, int, int]] = {
    _T.AIR: (0, 0, 0, 0, 0),
    _T.SUBCUTANEOUS_FAT: (800, 1000, 820, 30, 60),
    _T.FAT: (800, 1000, 820, 30, 60),
    _T.MUSCLE: (420, 380, 220, 180, 300),
    _T.VISCERA: (380, 360, 450, 350, 280),
    _T.VESSEL: (900, 30, 30, 30, 60),
    _T.MARROW: (450, 700, 480, 90, 150),
    _T.CORTEX: (30, 30, 30, 30, 30),
    _T.POSTERIOR_BONE: (420, 600, 420, 80, 130),
    _T.ANNULUS: (300, 320, 180, 150, 380),
    _T.NUCLEUS: (420, 330, 900, 750, 240),
    _T.DEGENERATE_NUCLEUS: (300, 310, 260, 220, 240),
    _T.HERNIATION: (320, 320, 420, 380, 300),
    _T.CSF: (650, 100, 1000, 880, 80),
    _T.NEURAL: (400, 400, 350, 300, 330),
    _T.EPIDURAL_VEINS: (500, 300, 550, 450, 750),
    _T.LIGAMENT: (200, 250, 150, 120, 220),
    _T.FACET_FLUID: (600, 120, 900, 820, 120),
    _T.OEDEMA: (450, 220, 780, 950, 520),
    _T.FRACTURE_LINE: (80, 80, 80, 120, 90),
}
_COLUMN = {w: index for index, w in enumerate(Weighting)}
# The mean signal of the body (per mille, coil shading included) in each weighting, as
# measured on the sagittal sample series: the noise is set so that this mean is the
# series' target SNR times the noise σ.
_BODY_MEAN = {
    Weighting.GRE: 438.0,
    Weighting.T1: 454.0,
    Weighting.T2: 410.0,
    Weighting.STIR: 160.0,
    Weighting.T1_FS_GD: 189.0,
}


def tissue_signal(weighting: Weighting) -> Mapping[Tissue, int]:
    """The relative signal (per mille of fat on T1) of every tissue in ``weighting``."""
    column = _COLUMN[weighting]
    return {tissue: values[column] for tissue, values in _SIGNAL.items()}


def signal_table(weighting: Weighting) -> NDArray[np.int32]:
    """Label value → relative signal, as a lookup array."""
    table = np.zeros(max(int(t) for t in Tissue) + 1, dtype=np.int32)
    for tissue, value in tissue_signal(weighting).items():
        table[int(tissue)] = value
    return table


def noise_seed(*parts: str) -> int:
    """A 64-bit generator seed derived from names (case, series), stable across runs."""
    digest = hashlib.sha256("/".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def counts_per_mille(weighting: Weighting, snr: float, noise_sigma: float) -> float:
    """Counts per unit of relative signal that put the body's mean ``snr`` σ above zero."""
    return snr * noise_sigma / _BODY_MEAN[weighting]


def _smooth(values: NDArray[np.int64], axis: int) -> NDArray[np.int64]:
    """[1 2 1] along ``axis`` with the edge repeated: an exact integer low-pass."""
    first = np.take(values, [0], axis=axis)
    last = np.take(values, [-1], axis=axis)
    padded = np.concatenate([first, values, last], axis=axis)
    n = values.shape[axis]
    before = np.take(padded, np.arange(0, n), axis=axis)
    middle = np.take(padded, np.arange(1, n + 1), axis=axis)
    after = np.take(padded, np.arange(2, n + 2), axis=axis)
    result: NDArray[np.int64] = before + 2 * middle + after
    return result


def coil_gain(y: FloatArray) -> FloatArray:
    """Receive sensitivity of a posterior spine array: 1 at the back, 0.65 at the front."""
    depth = np.minimum(np.maximum((COIL_BACK_Y - y) / 230.0, 0.0), 1.0)
    result: FloatArray = 1.0 - 0.35 * depth
    return result


def render(
    samples: LabelArray,
    y: FloatArray,
    weighting: Weighting,
    *,
    snr: float,
    noise_sigma: float,
    seed: int,
) -> PixelArray:
    """Magnitude pixels (slices, rows, columns) from labels sampled within each pixel.

    ``samples`` has shape (slices, rows, columns, samples), ``y`` the patient y of each
    pixel centre. ``noise_sigma`` is the standard deviation, in counts, of each of the two
    Gaussian noise channels.
    """
    table = signal_table(weighting)
    summed = table[samples].sum(axis=-1, dtype=np.int64)
    smoothed = _smooth(_smooth(summed, axis=1), axis=2)
    weight = 16.0 * samples.shape[-1]
    per_mille = smoothed.astype(np.float64) / weight
    signal = per_mille * counts_per_mille(weighting, snr, noise_sigma) * coil_gain(y)
    generator = np.random.Generator(np.random.PCG64(seed))
    noise = generator.standard_normal((2, *signal.shape)) * noise_sigma
    magnitude = np.sqrt((signal + noise[0]) ** 2 + noise[1] ** 2)
    pixels: PixelArray = np.minimum(np.rint(magnitude), MAX_STORED).astype(np.uint16)
    return pixels
