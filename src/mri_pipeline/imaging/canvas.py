"""A grid of sample points to paint tissue labels on, and boxes of it to paint in.

The grid is rectilinear: ascending ``x``, ``y`` and ``z`` coordinate vectors (LPS, mm),
labels stored with axes (z, y, x). A :class:`Region` is the part of the grid inside a
box, its coordinates shaped to broadcast, so a shape is evaluated only where it can be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from mri_pipeline.imaging.anatomy import FloatArray, Tissue, posterior_wall_y

BoolArray = NDArray[np.bool_]
LabelArray = NDArray[np.uint8]

INF = 1e9  # an open end of a box


def _wall_bounds(z_low: float, z_high: float) -> tuple[float, float]:
    wall = posterior_wall_y(np.linspace(z_low, z_high, 65))
    return float(wall.min()) - 1.0, float(wall.max()) + 1.0


def _span(coords: FloatArray, low: float, high: float) -> slice:
    return slice(
        int(np.searchsorted(coords, low, side="left")),
        int(np.searchsorted(coords, high, side="right")),
    )


@dataclass
class Region:
    """The part of the canvas inside a box, with its coordinates ready to broadcast."""

    labels: LabelArray  # a view into the canvas, axes (z, y, x)
    x: FloatArray  # (1, 1, nx)
    y: FloatArray  # (1, ny, 1)
    z: FloatArray  # (nz, 1, 1)

    @cached_property
    def v(self) -> FloatArray:
        """Distance behind the posterior wall of the vertebral bodies, (nz, ny, 1)."""
        result: FloatArray = self.y - posterior_wall_y(self.z)
        return result

    @cached_property
    def ax(self) -> FloatArray:
        """Distance from the midline, for shapes mirrored left and right."""
        result: FloatArray = np.abs(self.x)
        return result

    def paint(
        self,
        mask: BoolArray,
        tissue: Tissue,
        *,
        within: Iterable[Tissue] | None = None,
        sparing: Iterable[Tissue] | None = None,
    ) -> None:
        selected = np.broadcast_to(mask, self.labels.shape)
        if within is None and sparing is None:
            self.labels[selected] = tissue
            return
        allowed = np.ones(256, dtype=np.bool_)
        if within is not None:
            allowed[:] = False
            allowed[[int(t) for t in within]] = True
        if sparing is not None:
            allowed[[int(t) for t in sparing]] = False
        current = self.labels[selected]
        self.labels[selected] = np.where(allowed[current], np.uint8(tissue), current)


@dataclass
class Canvas:
    """Labels on the grid spanned by ascending ``x``, ``y`` and ``z`` sample coordinates."""

    x: FloatArray
    y: FloatArray
    z: FloatArray
    labels: LabelArray = field(init=False)

    def __post_init__(self) -> None:
        for name, coords in (("x", self.x), ("y", self.y), ("z", self.z)):
            if coords.size > 1 and not bool(np.all(np.diff(coords) > 0)):
                raise ValueError(f"{name} sample coordinates must ascend")
        self.labels = np.zeros((self.z.size, self.y.size, self.x.size), dtype=np.uint8)

    def region(
        self,
        x: tuple[float, float] = (-INF, INF),
        y: tuple[float, float] = (-INF, INF),
        z: tuple[float, float] = (-INF, INF),
    ) -> Region | None:
        sx, sy, sz = _span(self.x, *x), _span(self.y, *y), _span(self.z, *z)
        if sx.start >= sx.stop or sy.start >= sy.stop or sz.start >= sz.stop:
            return None
        return Region(
            labels=self.labels[sz, sy, sx],
            x=self.x[sx][None, None, :],
            y=self.y[sy][None, :, None],
            z=self.z[sz][:, None, None],
        )

    def spine_region(
        self, x: tuple[float, float], v: tuple[float, float], z: tuple[float, float]
    ) -> Region | None:
        """A region given in the spine's frame: ``v`` is measured from the posterior wall."""
        if self.z.size == 0:
            return None
        z_low, z_high = max(z[0], float(self.z[0])), min(z[1], float(self.z[-1]))
        if z_low > z_high:
            return None
        wall_low, wall_high = _wall_bounds(z_low, z_high)
        return self.region(x, (wall_low + v[0], wall_high + v[1]), z)
