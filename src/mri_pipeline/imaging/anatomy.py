"""The phantom's skeleton: the levels of the spine, their heights and where they lie.

Lengths in millimetres, positions in patient LPS coordinates. The spine is built top to
bottom from fixed vertebral and disc heights with the middle of L3 at z = 0; its
posterior wall follows a lordotic curve (see :func:`posterior_wall_y`) and the sacrum
leans back below the L5-S1 disc.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class PhantomCase(StrEnum):
    """The clinical pictures the phantom can show."""

    NORMAL = "normal"
    HERNIATION_L4_L5 = "herniation_l4_l5"
    STENOSIS_L3_L5 = "stenosis_l3_l5"
    FRACTURE_L1 = "fracture_l1"


class LevelKind(StrEnum):
    VERTEBRA = "vertebra"
    DISC = "disc"


class Tissue(IntEnum):
    """The phantom's label values: one tissue class per label."""

    AIR = 0
    SUBCUTANEOUS_FAT = 1
    FAT = 2  # retroperitoneal, epidural and foraminal fat
    MUSCLE = 3
    VISCERA = 4
    VESSEL = 5  # aorta, vena cava, iliac vessels: flowing blood
    MARROW = 6  # fatty marrow of the vertebral bodies and the sacrum
    CORTEX = 7  # cortical bone and endplates
    POSTERIOR_BONE = 8  # pedicles, laminae, processes, facets, sacral arches
    ANNULUS = 9
    NUCLEUS = 10
    DEGENERATE_NUCLEUS = 11
    HERNIATION = 12  # disc material beyond the disc margin
    CSF = 13
    NEURAL = 14  # cord, conus, cauda equina and exiting roots
    EPIDURAL_VEINS = 15  # anterior internal vertebral venous plexus
    LIGAMENT = 16  # ligamentum flavum
    FACET_FLUID = 17
    OEDEMA = 18  # bone marrow oedema
    FRACTURE_LINE = 19  # impacted trabeculae under a fractured endplate


@dataclass(frozen=True)
class Vertebra:
    """A vertebral body: craniocaudal extent and half-width / half-depth of its section."""

    name: str
    z_inferior: float
    z_superior: float
    half_width: float
    half_depth: float

    @property
    def height(self) -> float:
        return self.z_superior - self.z_inferior

    @property
    def z_center(self) -> float:
        return (self.z_superior + self.z_inferior) / 2

    @property
    def sacral(self) -> bool:
        return self.name.startswith("S")


@dataclass(frozen=True)
class Disc:
    """The intervertebral disc between ``upper`` and ``lower`` (a rudiment in the sacrum)."""

    upper: Vertebra
    lower: Vertebra

    @property
    def name(self) -> str:
        return f"{self.upper.name}-{self.lower.name}"

    @property
    def z_superior(self) -> float:
        return self.upper.z_inferior

    @property
    def z_inferior(self) -> float:
        return self.lower.z_superior

    @property
    def z_center(self) -> float:
        return (self.z_superior + self.z_inferior) / 2

    @property
    def height(self) -> float:
        return self.z_superior - self.z_inferior


# Name, body height, half-width, half-depth, and the height of the disc below it.
_COLUMN: tuple[tuple[str, float, float, float, float], ...] = (
    ("T7", 20.0, 15.0, 12.0, 4.0),
    ("T8", 20.0, 15.5, 12.5, 4.0),
    ("T9", 21.0, 16.0, 13.0, 5.0),
    ("T10", 22.0, 17.0, 13.0, 5.0),
    ("T11", 23.0, 18.0, 14.0, 6.0),
    ("T12", 24.0, 19.0, 14.5, 7.0),
    ("L1", 25.0, 20.0, 15.0, 8.0),
    ("L2", 26.0, 21.0, 15.5, 9.0),
    ("L3", 26.0, 22.0, 16.0, 9.0),
    ("L4", 26.0, 23.0, 16.5, 10.0),
    ("L5", 25.0, 24.0, 16.5, 9.0),
    ("S1", 25.0, 25.0, 16.0, 2.0),
    ("S2", 20.0, 21.0, 13.0, 1.5),
    ("S3", 16.0, 17.0, 11.0, 1.5),
    ("S4", 13.0, 13.0, 9.0, 1.5),
    ("S5", 10.0, 10.0, 7.0, 0.0),
)
_ANCHOR = "L3"  # its middle is at z = 0, near where the magnet's isocentre would be


def _build_column() -> tuple[tuple[Vertebra, ...], tuple[Disc, ...]]:
    # Heights from the top of the column down to the anchor's middle.
    above = 0.0
    for name, height, _, _, disc_below in _COLUMN:
        if name == _ANCHOR:
            above += height / 2
            break
        above += height + disc_below
    top = above
    vertebrae: list[Vertebra] = []
    for name, height, half_width, half_depth, disc_below in _COLUMN:
        vertebrae.append(Vertebra(name, top - height, top, half_width, half_depth))
        top -= height + disc_below
    discs = tuple(Disc(upper, lower) for upper, lower in pairwise(vertebrae))
    return tuple(vertebrae), discs


VERTEBRAE, DISCS = _build_column()
LUMBAR_REPORTED = ("T12", "L1", "L2", "L3", "L4", "L5", "S1")
"""The vertebrae a lumbar study reports on, with the discs between them."""


def vertebra(name: str) -> Vertebra:
    for candidate in VERTEBRAE:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def disc(name: str) -> Disc:
    for candidate in DISCS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


CONUS_TIP_Z = disc("L1-L2").z_center
THECAL_SAC_END_Z = vertebra("S2").z_center
SACRUM_TOP_Z = vertebra("S1").z_superior


def reported_levels() -> list[Vertebra | Disc]:
    """T12, T12-L1, L1, … L5-S1, S1, top to bottom."""
    levels: list[Vertebra | Disc] = []
    for name in LUMBAR_REPORTED:
        levels.append(vertebra(name))
        if name != LUMBAR_REPORTED[-1]:
            levels.append(next(d for d in DISCS if d.upper.name == name))
    return levels


def posterior_wall_y(z: FloatArray) -> FloatArray:
    """The y of the vertebral bodies' posterior wall at height ``z``.

    A parabola with its most anterior point at L3 gives the lumbar lordosis; below the top
    of S1 the sacrum tilts back. Only additions and multiplications, so the phantom is
    bit-for-bit the same on every machine.
    """
    lordosis = 30.0 + 0.0006 * z * z
    below_sacral_top = np.maximum(SACRUM_TOP_Z - z, 0.0)
    return lordosis + 0.3 * below_sacral_top
