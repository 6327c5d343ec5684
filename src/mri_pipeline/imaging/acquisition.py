"""How the sample studies are acquired: which series, with what parameters, where.

Series descriptions are those of DOMAIN.md A.1; the standard study is protocol LSP-STD
(A.2). Timing parameters are typical 1.5 T values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mri_pipeline.imaging.anatomy import PhantomCase
from mri_pipeline.imaging.geometry import (
    AXIAL_ORIENTATION,
    CORONAL_ORIENTATION,
    SAGITTAL_ORIENTATION,
    SliceStack,
)
from mri_pipeline.imaging.manifest import Plane
from mri_pipeline.imaging.mr_signal import Weighting
from mri_pipeline.imaging.sample_dicom import PulseSequence

PROTOCOL_CODE = "LSP-STD"


def _tse(
    echo_time: float, repetition_time: float, train: int, scan_options: tuple[str, ...] = ()
) -> PulseSequence:
    """A turbo (fast) spin echo with ``train`` echoes per excitation."""
    return PulseSequence(
        scanning_sequence=("SE",),
        sequence_variant=("SK", "OSP"),
        scan_options=scan_options,
        sequence_name=f"*tse2d1_{train}",
        repetition_time=repetition_time,
        echo_time=echo_time,
        echo_train_length=train,
        flip_angle=150.0,
        pixel_bandwidth=190.0,
        averages=2.0,
    )


_LOCALIZER = PulseSequence(
    scanning_sequence=("GR",),
    sequence_variant=("SP", "OSP"),
    scan_options=(),
    sequence_name="*fl2d1",
    repetition_time=8.6,
    echo_time=4.0,
    echo_train_length=1,
    flip_angle=20.0,
    pixel_bandwidth=320.0,
    averages=1.0,
)
_STIR = PulseSequence(
    scanning_sequence=("SE", "IR"),
    sequence_variant=("SK", "MP", "OSP"),
    scan_options=("IR",),
    sequence_name="*tir2d1_13",
    repetition_time=4000.0,
    echo_time=60.0,
    echo_train_length=13,
    flip_angle=150.0,
    pixel_bandwidth=250.0,
    averages=2.0,
    inversion_time=150.0,
)
_T1 = _tse(11.0, 550.0, 3)
_T2 = _tse(100.0, 3500.0, 17)
_AX_T2 = _tse(100.0, 4000.0, 17)
_AX_T1 = _tse(10.0, 600.0, 3)
_T1_FS = _tse(11.0, 600.0, 3, ("FS",))

# Sagittal: 13 slices, 4 mm, 0.5 mm gap, from right to left (+x) through both
# foramina; 300 mm field of view from T10 to S3. Axial: 37 slices, 4 mm with a 1 mm gap,
# from the top of S1 up to the top of the T12-L1 disc (the stack's middle halfway
# between the T12-L1 and L5-S1 discs): every level a protocol's ``axial_levels`` names
# (T12-L1 to L5-S1 for stenosis), with a slice within 1.5 mm of every disc's middle.
SAGITTAL = SliceStack.centred(
    orientation=SAGITTAL_ORIENTATION,
    centre=(0.0, 10.0, 0.0),
    matrix=(256, 256),
    pixel_spacing=(1.171875, 1.171875),
    slices=13,
    spacing=4.5,
    thickness=4.0,
    step=(1.0, 0.0, 0.0),
)
AXIAL = SliceStack.centred(
    orientation=AXIAL_ORIENTATION,
    centre=(0.0, 20.0, -1.5),
    matrix=(256, 256),
    pixel_spacing=(0.9375, 0.9375),
    slices=37,
    spacing=5.0,
    thickness=4.0,
)
# Semicoronal, for the SI joints (LSP-SPA): parallel to the back of the sacrum at S2, which
# the phantom tilts about 25° from the coronal plane; 13 slices, 4 mm, 0.5 mm gap, from
# the front of the sacral bodies to the sacral arches. 384 mm across, wider than the
# pelvis, so that background on both sides gives the noise.
_SACRAL_TILT = math.radians(25.0)
SEMICORONAL = SliceStack.centred(
    orientation=((1.0, 0.0, 0.0), (0.0, math.sin(_SACRAL_TILT), -math.cos(_SACRAL_TILT))),
    centre=(0.0, 46.0, -129.0),
    matrix=(256, 256),
    pixel_spacing=(1.5, 1.5),
    slices=13,
    spacing=4.5,
    thickness=4.0,
)
# The localizer: one sagittal slice on the midline, one coronal slice through the
# vertebral bodies and one axial slice through L3, each 10 mm thick over 400 mm.
_LOCALIZER_STACKS = tuple(
    SliceStack.centred(
        orientation=orientation,
        centre=centre,
        matrix=(256, 256),
        pixel_spacing=(1.5625, 1.5625),
        slices=1,
        spacing=10.0,
        thickness=10.0,
    )
    for orientation, centre in (
        (SAGITTAL_ORIENTATION, (0.0, 0.0, -5.0)),
        (CORONAL_ORIENTATION, (0.0, 15.0, -5.0)),
        (AXIAL_ORIENTATION, (0.0, 0.0, -5.0)),
    )
)


@dataclass(frozen=True)
class SeriesPlan:
    """One series to write: what it is called, how it weights tissue, where its slices are."""

    number: int
    description: str
    plane: Plane
    weighting: Weighting
    stacks: tuple[SliceStack, ...]  # one, or one per slice for the three-plane localizer
    sequence: PulseSequence
    snr: float
    contrast: bool = False
    minutes_after_start: int = 0

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.description.lower()).strip("-")

    @property
    def directory(self) -> str:
        return f"{self.number:02d}_{self.slug}"


def series_plan(case: PhantomCase | str) -> list[SeriesPlan]:
    """The series of ``case``'s study in acquisition order."""
    sag, ax = (SAGITTAL,), (AXIAL,)
    plan = [
        SeriesPlan(
            1, "LOC 3PL", Plane.THREE_PLANE, Weighting.GRE, _LOCALIZER_STACKS, _LOCALIZER, snr=25
        ),
        SeriesPlan(
            2, "SAG T1 TSE", Plane.SAGITTAL, Weighting.T1, sag, _T1, snr=30, minutes_after_start=1
        ),
        SeriesPlan(
            3, "SAG T2 TSE", Plane.SAGITTAL, Weighting.T2, sag, _T2, snr=32, minutes_after_start=5
        ),
        SeriesPlan(
            4, "SAG STIR", Plane.SAGITTAL, Weighting.STIR, sag, _STIR, snr=22, minutes_after_start=9
        ),
        SeriesPlan(
            5, "AX T2 TSE", Plane.AXIAL, Weighting.T2, ax, _AX_T2, snr=28, minutes_after_start=13
        ),
        SeriesPlan(
            6, "AX T1 TSE", Plane.AXIAL, Weighting.T1, ax, _AX_T1, snr=26, minutes_after_start=17
        ),
    ]
    if PhantomCase(case) is PhantomCase.NORMAL:
        # The semicoronal SI-joint series of LSP-SPA, then gadolinium as for a WO+W
        # protocol (LSP-INF, LSP-TUM, LSP-POSTOP).
        sij = (SEMICORONAL,)
        plan += [
            SeriesPlan(
                7,
                "COR-OBL T1 TSE SIJ",
                Plane.CORONAL,
                Weighting.T1,
                sij,
                _T1,
                snr=30,
                minutes_after_start=21,
            ),
            SeriesPlan(
                8,
                "COR-OBL STIR SIJ",
                Plane.CORONAL,
                Weighting.STIR,
                sij,
                _STIR,
                snr=22,
                minutes_after_start=25,
            ),
            SeriesPlan(
                9,
                "SAG T1 FS +C",
                Plane.SAGITTAL,
                Weighting.T1_FS_GD,
                sag,
                _T1_FS,
                snr=24,
                contrast=True,
                minutes_after_start=33,
            ),
            SeriesPlan(
                10,
                "AX T1 FS +C",
                Plane.AXIAL,
                Weighting.T1_FS_GD,
                ax,
                _T1_FS,
                snr=24,
                contrast=True,
                minutes_after_start=37,
            ),
        ]
    return plan
