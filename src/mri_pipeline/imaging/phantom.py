"""A synthetic lumbar spine, T7 to the coccyx, that can be sampled at any slice geometry.

The phantom is analytic (see :mod:`mri_pipeline.imaging.phantom_shapes`): tissue labels
are computed at the very points a stack of slices needs, so a sagittal and an axial
series are both sharp and agree on where everything is. Cases: ``normal``,
``herniation_l4_l5`` (left paracentral L4-L5 extrusion), ``stenosis_l3_l5`` (central
canal stenosis at L3-L4 and L4-L5 from ligamentum flavum and facet hypertrophy and disc
bulges) and ``fracture_l1`` (L1 anterior wedge compression with marrow oedema).

Coordinates are DICOM patient coordinates (LPS) in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813 - the name every SimpleITK user knows

from mri_pipeline.imaging.anatomy import (
    Disc,
    FloatArray,
    LevelKind,
    PhantomCase,
    Tissue,
    Vertebra,
    reported_levels,
)
from mri_pipeline.imaging.canvas import Canvas, LabelArray
from mri_pipeline.imaging.geometry import SliceStack, Vec3, add, scale
from mri_pipeline.imaging.phantom_shapes import Painter

__all__ = ["Level", "PhantomCase", "SpinePhantom", "Tissue"]


@dataclass(frozen=True)
class Level:
    """A vertebra or a disc and the heights (LPS z) its posterior margin spans."""

    name: str
    kind: LevelKind
    z_superior: float
    z_inferior: float

    @property
    def z_center(self) -> float:
        return (self.z_superior + self.z_inferior) / 2

    @classmethod
    def of(cls, level: Vertebra | Disc) -> Level:
        kind = LevelKind.VERTEBRA if isinstance(level, Vertebra) else LevelKind.DISC
        return cls(level.name, kind, level.z_superior, level.z_inferior)


def _sub_offsets(count: int) -> list[float]:
    """Evenly spread sample offsets within one unit, centred on 0."""
    return [(m + 0.5) / count - 0.5 for m in range(count)]


def _unit_axis(vector: Vec3) -> tuple[int, float] | None:
    """(axis, sign) when ``vector`` is ± a coordinate axis, else ``None``."""
    axes = [index for index, component in enumerate(vector) if component != 0.0]
    if len(axes) == 1 and abs(vector[axes[0]]) == 1.0:
        return axes[0], vector[axes[0]]
    return None


class SpinePhantom:
    """The phantom of one case."""

    def __init__(self, case: PhantomCase | str) -> None:
        self.case = PhantomCase(case)

    @staticmethod
    def levels() -> list[Level]:
        """T12 … S1 and the discs between them, top to bottom (the same in every case:
        heights are those of the posterior wall, which a compression fracture spares)."""
        return [Level.of(level) for level in reported_levels()]

    def labels_on_grid(self, x: FloatArray, y: FloatArray, z: FloatArray) -> LabelArray:
        """Labels at every (x, y, z) of the grid the ascending vectors span; axes (z, y, x)."""
        canvas = Canvas(
            np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(z, np.float64)
        )
        Painter(self.case, canvas).paint()
        return canvas.labels

    def labels_at(self, stack: SliceStack) -> LabelArray:
        """The label at each pixel centre, shape (slices, rows, columns)."""
        return self.sample(stack)[..., 0]

    def sample(self, stack: SliceStack, *, inplane: int = 1, through: int = 1) -> LabelArray:
        """Labels at ``inplane`` × ``inplane`` points within each pixel and ``through``
        points across the slice thickness: shape (slices, rows, columns, samples).

        Stacks whose axes are coordinate axes are painted directly at those points; any
        other orientation is resampled by SimpleITK from a 1 mm grid around it.
        """
        direct = self._axis_aligned_sample(stack, inplane, through)
        if direct is not None:
            return direct
        return self._resampled(stack, inplane, through)

    def _axis_aligned_sample(
        self, stack: SliceStack, inplane: int, through: int
    ) -> LabelArray | None:
        normal = _unit_axis(stack.normal)
        down = _unit_axis(stack.column_direction)
        across = _unit_axis(stack.row_direction)
        if normal is None or down is None or across is None:
            return None
        normal_axis = normal[0]
        first = stack.positions[0]
        for position in stack.positions:
            for axis in range(3):
                if axis != normal_axis and position[axis] != first[axis]:
                    return None
        rows_spacing, columns_spacing = stack.pixel_spacing
        in_offsets = _sub_offsets(inplane)
        # Coordinates of the samples along each image axis: slices, rows, columns.
        along_slices = np.array(
            [
                position[normal_axis] + offset * stack.slice_thickness
                for position in stack.positions
                for offset in _sub_offsets(through)
            ]
        )
        image_axes: list[tuple[int, FloatArray]] = [(normal_axis, along_slices)]
        for (axis, sign), count, spacing in (
            (down, stack.rows, rows_spacing),
            (across, stack.columns, columns_spacing),
        ):
            steps = np.array([index + offset for index in range(count) for offset in in_offsets])
            image_axes.append((axis, first[axis] + sign * spacing * steps))
        coords: dict[int, FloatArray] = {}
        flipped: list[bool] = []
        for axis, values in image_axes:
            if values.size > 1 and bool(np.all(np.diff(values) < 0)):
                coords[axis] = values[::-1]
                flipped.append(True)
            elif values.size == 1 or bool(np.all(np.diff(values) > 0)):
                coords[axis] = values
                flipped.append(False)
            else:
                return None  # overlapping slices: sample points not in order
        labels = self.labels_on_grid(coords[0], coords[1], coords[2])
        # The canvas axes are (z, y, x): patient axis a is array axis 2 - a.
        image = np.transpose(labels, [2 - axis for axis, _ in image_axes])
        for index, flip in enumerate(flipped):
            if flip:
                image = np.flip(image, axis=index)
        n_slices, rows, columns = len(stack.positions), stack.rows, stack.columns
        image = image.reshape(n_slices, through, rows, inplane, columns, inplane)
        image = image.transpose(0, 2, 4, 1, 3, 5)
        return np.ascontiguousarray(image.reshape(n_slices, rows, columns, -1))

    def _resampled(self, stack: SliceStack, inplane: int, through: int) -> LabelArray:
        """Labels of an oblique stack: painted on a 1 mm grid around it, then resampled
        (nearest neighbour) at each sub-sample position by SimpleITK."""
        n_slices = len(stack.positions)
        step = stack.normal
        spacing = stack.spacing_between_slices or 1.0
        if n_slices > 1:
            step = scale(add(stack.positions[1], scale(stack.positions[0], -1.0)), 1.0 / spacing)
        corners = [
            stack.pixel_point(k, row, column)
            for k in (0, n_slices - 1)
            for row in (-1, stack.rows)
            for column in (-1, stack.columns)
        ]
        margin = stack.slice_thickness + 2.0
        lows = [float(np.floor(min(c[axis] for c in corners) - margin)) for axis in range(3)]
        highs = [float(np.ceil(max(c[axis] for c in corners) + margin)) for axis in range(3)]
        low: Vec3 = (lows[0], lows[1], lows[2])
        grid = [np.arange(lows[axis], highs[axis] + 1.0) for axis in range(3)]
        # The volume keeps SimpleITK's default geometry (origin 0, spacing 1 mm, axes
        # aligned), so output origins are given relative to the grid's first point.
        volume = sitk.GetImageFromArray(self.labels_on_grid(grid[0], grid[1], grid[2]))
        directions = (stack.row_direction, stack.column_direction, step)
        matrix = [directions[col][row] for row in range(3) for col in range(3)]
        rows_spacing, columns_spacing = stack.pixel_spacing
        samples = []
        for t in _sub_offsets(through):
            for di in _sub_offsets(inplane):
                for dj in _sub_offsets(inplane):
                    shift = add(
                        add(
                            scale(stack.row_direction, dj * columns_spacing),
                            scale(stack.column_direction, di * rows_spacing),
                        ),
                        scale(stack.normal, t * stack.slice_thickness),
                    )
                    origin = add(add(stack.positions[0], shift), scale(low, -1.0))
                    resampled = sitk.Resample(
                        volume,
                        [stack.columns, stack.rows, n_slices],
                        interpolator=sitk.sitkNearestNeighbor,
                        outputOrigin=origin,
                        outputSpacing=(columns_spacing, rows_spacing, spacing),
                        outputDirection=matrix,
                        defaultPixelValue=0,
                    )
                    samples.append(sitk.GetArrayFromImage(resampled))
        return np.stack(samples, axis=-1).astype(np.uint8)


def pixel_coordinate(stack: SliceStack, axis: int) -> FloatArray:
    """One patient coordinate (0 x, 1 y, 2 z) of every pixel centre, (slices, rows, columns)."""
    rows = np.arange(stack.rows, dtype=np.float64)[:, None]
    columns = np.arange(stack.columns, dtype=np.float64)[None, :]
    row_step = stack.column_direction[axis] * stack.pixel_spacing[0]
    column_step = stack.row_direction[axis] * stack.pixel_spacing[1]
    planes = [
        position[axis] + rows * row_step + columns * column_step for position in stack.positions
    ]
    return np.stack(planes).astype(np.float64)
