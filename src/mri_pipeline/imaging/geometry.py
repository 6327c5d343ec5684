"""Where the pixels of a stack of slices lie in patient coordinates (LPS, millimetres).

LPS is DICOM's patient coordinate system: +x towards the patient's left, +y posterior,
+z towards the head. A :class:`SliceStack` holds the Image Plane module values (PS3.3
C.7.6.2) of parallel slices, slice by slice.
"""

from __future__ import annotations

from dataclasses import dataclass

Vec3 = tuple[float, float, float]

SAGITTAL_ORIENTATION: tuple[Vec3, Vec3] = ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))
CORONAL_ORIENTATION: tuple[Vec3, Vec3] = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0))
AXIAL_ORIENTATION: tuple[Vec3, Vec3] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def add(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def scale(a: Vec3, factor: float) -> Vec3:
    return (a[0] * factor, a[1] * factor, a[2] * factor)


def dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def cross(a: Vec3, b: Vec3) -> Vec3:
    return (
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    )


@dataclass(frozen=True)
class SliceStack:
    """Parallel slices of one orientation and matrix (one Image Plane module per slice).

    ``row_direction`` and ``column_direction`` are the two halves of Image Orientation
    (Patient): the direction in which the column index grows along a row, and the one in
    which the row index grows down a column. ``positions`` are the Image Position
    (Patient) values, the centre of each slice's first pixel. ``pixel_spacing`` is in
    DICOM order: the distance between rows, then between columns.
    """

    row_direction: Vec3
    column_direction: Vec3
    positions: tuple[Vec3, ...]
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]
    slice_thickness: float

    def __post_init__(self) -> None:
        if not self.positions:
            raise ValueError("a stack needs at least one slice")
        for name, vector in (("row", self.row_direction), ("column", self.column_direction)):
            if abs(dot(vector, vector) - 1.0) > 1e-9:
                raise ValueError(f"the {name} direction {vector} is not a unit vector")
        if abs(dot(self.row_direction, self.column_direction)) > 1e-9:
            raise ValueError("the row and column directions are not orthogonal")

    @classmethod
    def centred(
        cls,
        *,
        orientation: tuple[Vec3, Vec3],
        centre: Vec3,
        matrix: tuple[int, int],
        pixel_spacing: tuple[float, float],
        slices: int,
        spacing: float,
        thickness: float,
        step: Vec3 | None = None,
    ) -> SliceStack:
        """A stack whose middle lies at ``centre``; slices follow each other along ``step``
        (by default the normal, row × column), ``spacing`` apart, centre to centre."""
        row_direction, column_direction = orientation
        rows, columns = matrix
        step_direction = step if step is not None else cross(row_direction, column_direction)
        to_first_pixel = add(
            scale(row_direction, -(columns - 1) / 2 * pixel_spacing[1]),
            scale(column_direction, -(rows - 1) / 2 * pixel_spacing[0]),
        )
        positions = tuple(
            add(
                add(centre, scale(step_direction, (k - (slices - 1) / 2) * spacing)), to_first_pixel
            )
            for k in range(slices)
        )
        return cls(
            row_direction=row_direction,
            column_direction=column_direction,
            positions=positions,
            rows=rows,
            columns=columns,
            pixel_spacing=pixel_spacing,
            slice_thickness=thickness,
        )

    @property
    def normal(self) -> Vec3:
        """Row direction × column direction, the normal DICOM readers stack slices along."""
        return cross(self.row_direction, self.column_direction)

    @property
    def image_orientation(self) -> tuple[float, ...]:
        return (*self.row_direction, *self.column_direction)

    @property
    def spacing_between_slices(self) -> float | None:
        """Centre-to-centre distance of neighbouring slices; ``None`` for a single slice.

        Rounded to the nanometre: an oblique stack's positions carry float error that
        would otherwise turn a planned 4.5 mm into 4.4999999999999964.
        """
        if len(self.positions) < 2:
            return None
        step = add(self.positions[1], scale(self.positions[0], -1.0))
        return round(float(dot(step, step) ** 0.5), 6)

    def slice_location(self, index: int) -> float:
        """Slice Location as many consoles write it: the position along the normal."""
        return dot(self.positions[index], self.normal)

    def pixel_point(self, index: int, row: float, column: float) -> Vec3:
        """The patient coordinates of (fractional) pixel ``row``, ``column`` of a slice."""
        along_row = scale(self.row_direction, column * self.pixel_spacing[1])
        down_column = scale(self.column_direction, row * self.pixel_spacing[0])
        return add(self.positions[index], add(along_row, down_column))

    def z_range(self) -> tuple[float, float]:
        """The lowest and highest patient z of all pixel centres (craniocaudal coverage)."""
        zs = [
            self.pixel_point(k, row, column)[2]
            for k in range(len(self.positions))
            for row in (0, self.rows - 1)
            for column in (0, self.columns - 1)
        ]
        return min(zs), max(zs)
