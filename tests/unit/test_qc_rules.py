"""Image QC rules (issue 5) on hand-made measurements: which series is which, what is
wrong with it, and the examination's verdict. Pure: no image is read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mri_pipeline.domain.protocols import Catalogue, CatalogueError, Protocol, parse_catalogue
from mri_pipeline.domain.qc import (
    AcquisitionFacts,
    Check,
    CheckResult,
    ExamOutcome,
    ImageGrid,
    InstanceMeasurement,
    Outcome,
    PixelStats,
    Plane,
    QcThresholds,
    SeriesMeasurements,
    Stack,
    Weighting,
    check_series,
    examination_verdict,
    identify_series,
    missing_series,
    plane_of,
)
from mri_pipeline.domain.qc_results import worst

CATALOGUE_FILE = Path(__file__).parents[2] / "worklist/protocols.yaml"
# Level centres (LPS z, mm) as the sample studies' manifest gives them.
LEVELS = {
    "T12-L1": 84.5,
    "L1-L2": 52.0,
    "L2-L3": 17.5,
    "L3-L4": -17.5,
    "L4-L5": -53.0,
    "L5-S1": -87.5,
    "S1": -104.5,
}
AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
SAGITTAL = ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))
T2 = {"repetition_time": 4000.0, "echo_time": 100.0}
T1 = {"repetition_time": 550.0, "echo_time": 11.0}
STIR = {"repetition_time": 4000.0, "echo_time": 60.0, "inversion_time": 150.0}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), "protocols.yaml")


@pytest.fixture(scope="module")
def std(catalogue: Catalogue) -> Protocol:
    return catalogue.protocol("LSP-STD")


# Factories ------------------------------------------------------------------------------


def facts(description: str, **values: object) -> AcquisitionFacts:
    defaults: dict[str, object] = {
        "series_description": description,
        "protocol_name": description,
        "scanning_sequence": ("SE",),
        "phase_encoding_direction": "ROW",
        **T2,
    }
    defaults.update(values)
    return AcquisitionFacts(**defaults)  # type: ignore[arg-type]


def stack(
    orientation: tuple[tuple[float, float, float], tuple[float, float, float]] = AXIAL,
    positions: list[float] | None = None,
    numbers: list[int] | None = None,
    z_range: tuple[float, float] | None = None,
    x_range: tuple[float, float] = (-120.0, 120.0),
    thickness: float = 4.0,
) -> Stack:
    """An axial stack of 20 slices 4 mm apart from L5-S1 up to L3-L4 by default."""
    row, column = orientation
    normal = (
        row[1] * column[2] - row[2] * column[1],
        row[2] * column[0] - row[0] * column[2],
        row[0] * column[1] - row[1] * column[0],
    )
    positions = positions if positions is not None else [-90.5 + 4 * k for k in range(20)]
    numbers = numbers if numbers is not None else list(range(1, len(positions) + 1))
    if z_range is None:
        z_range = (min(positions) - thickness / 2, max(positions) + thickness / 2)
    return Stack(
        normal=normal,
        row_direction=row,
        instance_numbers=tuple(numbers),
        positions=tuple(positions),
        slice_thickness=thickness,
        z_range=z_range,
        x_range=x_range,
    )


def sagittal_stack(**changes: object) -> Stack:
    """13 sagittal slices 4.5 mm apart, 300 mm head to foot, 58 mm left to right."""
    values: dict[str, object] = {
        "orientation": SAGITTAL,
        "positions": [27.0 - 4.5 * k for k in range(13)],
        "z_range": (-149.4, 149.4),
        "x_range": (-29.0, 29.0),
    }
    values.update(changes)
    return stack(**values)  # type: ignore[arg-type]


def instances(
    count: int = 20,
    grid: ImageGrid | None = None,
    by_number: dict[int, InstanceMeasurement] | None = None,
) -> tuple[InstanceMeasurement, ...]:
    grid = grid or ImageGrid(256, 256, (0.9375, 0.9375))
    normal = PixelStats(mean=35.0, sd=22.0, saturated_fraction=0.0001)
    return tuple(
        (by_number or {}).get(n, InstanceMeasurement(n, grid, normal)) for n in range(1, count + 1)
    )


def series(
    description: str = "AX T2 TSE",
    acquisition: AcquisitionFacts | None = None,
    stacks: tuple[Stack, ...] | None = None,
    **changes: object,
) -> SeriesMeasurements:
    """A clean axial T2 series unless told otherwise."""
    values: dict[str, object] = {
        "acquisition": acquisition or facts(description),
        "instances": instances(),
        "stacks": stacks if stacks is not None else (stack(),),
        "noise_sigma": 1.5,
        "body_mean": 42.0,
        "ghosting_ratio": 0.002,
    }
    values.update(changes)
    return SeriesMeasurements(**values)  # type: ignore[arg-type]


def sagittal(description: str = "SAG T2 TSE", **changes: object) -> SeriesMeasurements:
    values: dict[str, object] = {
        "acquisition": facts(description),
        "stacks": (sagittal_stack(),),
        "instances": instances(13, ImageGrid(256, 256, (1.171875, 1.171875))),
    }
    values.update(changes)
    return series(description, **values)  # type: ignore[arg-type]


def of(results: list[CheckResult], check: Check) -> list[tuple[Outcome, str]]:
    return [(r.outcome, r.message) for r in results if r.check is check]


def problems(results: list[CheckResult]) -> list[tuple[Outcome, str]]:
    return [(r.outcome, r.message) for r in results if r.outcome is not Outcome.PASS]


# Which series is which ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        (series("AX T2 TSE"), "AX T2 TSE"),
        (series(acquisition=facts("ax  t2 tse")), "AX T2 TSE"),
        (series(acquisition=facts("t2_tse_tra", protocol_name="AX T2 TSE")), "AX T2 TSE"),
        (series(acquisition=facts("t2_tse_tra", protocol_name="")), "AX T2 TSE"),
        (series(acquisition=facts("t1_tse_tra", protocol_name="", **T1)), "AX T1 TSE"),
        (sagittal(acquisition=facts("t1 sag", protocol_name="", **T1)), "SAG T1 TSE"),
        (sagittal(acquisition=facts("stir sag", protocol_name="", **STIR)), "SAG STIR"),
        (
            series(
                acquisition=facts("x", protocol_name=""),
                stacks=(stack(positions=[0.0]), sagittal_stack(positions=[0.0])),
            ),
            "LOC 3PL",
        ),
        (series(acquisition=facts("AX DWI", protocol_name="")), None),
        (series(acquisition=facts("ax pd", protocol_name="", echo_time=20.0)), None),
    ],
)
def test_a_series_is_identified_by_description_then_protocol_name_then_plane_and_weighting(
    std: Protocol, measured: SeriesMeasurements, expected: str | None
) -> None:
    spec = identify_series(measured, std)
    assert (spec.description if spec else None) == expected


def test_a_post_contrast_series_is_told_from_its_plain_twin_by_fat_sat_and_agent(
    catalogue: Catalogue,
) -> None:
    inf = catalogue.protocol("LSP-INF")
    plain = series(acquisition=facts("t1", protocol_name="", **T1))
    gd = series(
        acquisition=facts(
            "t1 fs gd", protocol_name="", scan_options=("FS",), contrast_agent="Gd", **T1
        )
    )
    assert identify_series(plain, inf).description == "AX T1 TSE"  # type: ignore[union-attr]
    assert identify_series(gd, inf).description == "AX T1 FS +C"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("timing", "sequence", "weighting"),
    [
        ({"repetition_time": 550.0, "echo_time": 11.0}, ("SE",), Weighting.T1),
        ({"repetition_time": 3500.0, "echo_time": 100.0}, ("SE",), Weighting.T2),
        ({"repetition_time": 3000.0, "echo_time": 20.0}, ("SE",), Weighting.PD),
        (STIR, ("SE", "IR"), Weighting.STIR),
        (
            {"repetition_time": 9000.0, "echo_time": 90.0, "inversion_time": 2500.0},
            ("SE", "IR"),
            Weighting.FLAIR,
        ),
        ({"repetition_time": 8.6, "echo_time": 4.0}, ("GR",), Weighting.GRE),
        ({"repetition_time": 5000.0, "echo_time": 70.0}, ("EP",), Weighting.DWI),
        ({"repetition_time": 1200.0, "echo_time": 50.0}, ("SE",), Weighting.UNKNOWN),
        ({"repetition_time": 4000.0, "echo_time": 60.0}, ("SE", "IR"), Weighting.UNKNOWN),
        ({}, ("SE",), Weighting.UNKNOWN),
    ],
)
def test_the_weighting_follows_from_sequence_tr_te_and_ti(
    timing: dict[str, float], sequence: tuple[str, ...], weighting: Weighting
) -> None:
    acquisition = AcquisitionFacts(
        scanning_sequence=sequence,
        repetition_time=timing.get("repetition_time"),
        echo_time=timing.get("echo_time"),
        inversion_time=timing.get("inversion_time"),
    )
    assert acquisition.weighting is weighting


@pytest.mark.parametrize(
    ("normal", "plane", "tilt"),
    [
        ((0.0, 0.0, 1.0), Plane.AXIAL, 0.0),
        ((-1.0, 0.0, 0.0), Plane.SAGITTAL, 0.0),
        ((0.0, 1.0, 0.0), Plane.CORONAL, 0.0),
        ((0.0, 0.5, 0.866), Plane.AXIAL, 30.0),  # an angled block through L5-S1
        ((0.0, 0.707, 0.707), Plane.OBLIQUE, 45.0),
        ((0.0, 0.0, 0.0), Plane.OBLIQUE, 90.0),
    ],
)
def test_the_plane_is_the_nearest_body_plane_unless_tilted_over_40_degrees(
    normal: tuple[float, float, float], plane: Plane, tilt: float
) -> None:
    found, degrees = plane_of(normal)
    assert found is plane
    assert degrees == pytest.approx(tilt, abs=0.1)


# Sequence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measured", "message"),
    [
        (
            series("AX T1 TSE", acquisition=facts("AX T1 TSE")),
            "AX T1 TSE: TR 4000 ms, TE 100 ms give a T2-weighted image, but the protocol "
            "expects T1-weighted; check the sequence chosen on the console.",
        ),
        (
            series(acquisition=facts("AX T2 TSE", contrast_agent="Gadolinium")),
            "AX T2 TSE: a contrast agent is recorded, but the protocol runs this series "
            "before contrast.",
        ),
        (
            series(acquisition=facts("t2_tse_tra", protocol_name="")),
            "t2_tse_tra: taken for the protocol's AX T2 TSE from its plane and weighting, "
            "but its description differs; name it AX T2 TSE so that reading and hanging "
            "protocols find it.",
        ),
        (
            series(acquisition=facts("COR T2 TSE")),
            "COR T2 TSE: not a series of protocol LSP-STD (LOC 3PL, SAG T1 TSE, SAG T2 TSE, "
            "SAG STIR, AX T2 TSE, AX T1 TSE).",
        ),
    ],
)
def test_a_series_that_is_not_what_the_protocol_expects_is_a_warning(
    std: Protocol, measured: SeriesMeasurements, message: str
) -> None:
    assert of(check_series(measured, std, LEVELS), Check.SEQUENCE) == [(Outcome.WARN, message)]


def test_a_post_contrast_series_without_a_recorded_agent_is_a_warning(
    catalogue: Catalogue,
) -> None:
    measured = series(acquisition=facts("AX T1 FS +C", scan_options=("FS",), **T1))
    assert of(check_series(measured, catalogue.protocol("LSP-INF")), Check.SEQUENCE) == [
        (
            Outcome.WARN,
            "AX T1 FS +C: no contrast agent is recorded in the images; check that gadolinium "
            "was given and entered on the console.",
        )
    ]


# A clean series ---------------------------------------------------------------------------


def test_a_clean_axial_series_passes_every_check_with_its_numbers(std: Protocol) -> None:
    results = check_series(series(), std, LEVELS)
    assert [(r.check, r.outcome, r.message) for r in results] == [
        (Check.SEQUENCE, Outcome.PASS, "AX T2 TSE: matches the protocol's AX T2 TSE, T2-weighted."),
        (Check.PLANE, Outcome.PASS, "AX T2 TSE: axial as described."),
        (
            Check.SLICES,
            Outcome.PASS,
            "AX T2 TSE: 20 slices 4 mm apart, no gap, duplicate or reversed slice.",
        ),
        (Check.GRID, Outcome.PASS, "AX T2 TSE: all 20 images 256×256 at 0.94×0.94 mm."),
        (Check.COVERAGE, Outcome.PASS, "AX T2 TSE: covers L3-L4, L4-L5, L5-S1."),
        (
            Check.INTEGRITY,
            Outcome.PASS,
            "AX T2 TSE: all 20 images decode; none is blank or saturated.",
        ),
        (Check.SNR, Outcome.PASS, "AX T2 TSE: signal-to-noise about 28."),
        (
            Check.GHOSTING,
            Outcome.PASS,
            "AX T2 TSE: ghosting along the phase-encoding direction is 0.2% of the body signal.",
        ),
    ]


def test_a_clean_sagittal_series_covers_the_junction_to_the_sacrum_and_both_foramina(
    std: Protocol,
) -> None:
    assert of(check_series(sagittal(), std, LEVELS), Check.COVERAGE) == [
        (Outcome.PASS, "SAG T2 TSE: covers T12-L1 to S1 (298.8 mm head to foot)."),
        (Outcome.PASS, "SAG T2 TSE: covers 58 mm left to right."),
    ]


def test_the_localizer_is_checked_for_integrity_but_not_as_a_stack(std: Protocol) -> None:
    localizer = series(
        acquisition=facts("LOC 3PL", scanning_sequence=("GR",), repetition_time=8.6),
        stacks=(stack(positions=[0.0]), sagittal_stack(positions=[0.0])),
        instances=instances(2),
    )
    results = check_series(localizer, std, LEVELS)
    assert problems(results) == []
    assert [r.check for r in results] == [Check.SEQUENCE, Check.GRID, Check.INTEGRITY]


# Slices -----------------------------------------------------------------------------------

EVERY_4_MM = [-90.5 + 4 * k for k in range(20)]


def _without(*indices: int) -> dict[str, list[float] | list[int]]:
    keep = [k for k in range(20) if k not in indices]
    return {"positions": [EVERY_4_MM[k] for k in keep], "numbers": [k + 1 for k in keep]}


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (_without(6), [(Outcome.FAIL, "AX T2 TSE: slice 7 of 20 missing (gap 8 mm).")]),
        (_without(6, 7), [(Outcome.FAIL, "AX T2 TSE: slices 7-8 of 20 missing (gap 12 mm).")]),
        (
            _without(3, 12),
            [
                (Outcome.FAIL, "AX T2 TSE: slice 4 of 20 missing (gap 8 mm)."),
                (Outcome.FAIL, "AX T2 TSE: slice 13 of 20 missing (gap 8 mm)."),
            ],
        ),
        (
            {
                "positions": [*EVERY_4_MM[:10], EVERY_4_MM[9], *EVERY_4_MM[10:]],
                "numbers": [*range(1, 11), 21, *range(11, 21)],
            },
            [
                (
                    Outcome.FAIL,
                    "AX T2 TSE: slices 10 and 11 of 21 are at the same position (duplicate slice).",
                ),
                (
                    Outcome.WARN,
                    "AX T2 TSE: image 21 is out of order: it lies between images 10 and 11; "
                    "viewers that sort by image number show it in the wrong place.",
                ),
            ],
        ),
        (
            {"positions": [*EVERY_4_MM[:10], *(p + 1.3 for p in EVERY_4_MM[10:])]},
            [
                (
                    Outcome.FAIL,
                    "AX T2 TSE: gap of 5.3 mm between slices 10 and 11 of 20 (the others are "
                    "4 mm apart).",
                )
            ],
        ),
        (
            {"positions": [*EVERY_4_MM[:10], *(p - 2 for p in EVERY_4_MM[10:])]},
            [
                (
                    Outcome.WARN,
                    "AX T2 TSE: slices 10 and 11 of 20 are only 2 mm apart (the others 4 mm): "
                    "uneven spacing.",
                )
            ],
        ),
        (
            {"numbers": [1, 2, 3, 4, 5, 6, 9, 7, 8, *range(10, 21)]},
            [
                (
                    Outcome.WARN,
                    "AX T2 TSE: image 9 is out of order: it lies between images 6 and 7; "
                    "viewers that sort by image number show it in the wrong place.",
                )
            ],
        ),
        ({"numbers": list(range(20, 0, -1))}, []),  # numbered head to foot: fine
        (
            {"positions": [0.0] * 20},
            [(Outcome.FAIL, "AX T2 TSE: all 20 slices are at the same position.")],
        ),
    ],
)
def test_gaps_duplicates_and_out_of_order_slices_are_named_by_slice_number(
    std: Protocol, layout: dict[str, list[float] | list[int]], expected: list[tuple[Outcome, str]]
) -> None:
    measured = series(stacks=(stack(**layout),))  # type: ignore[arg-type]
    slices = of(check_series(measured, std), Check.SLICES)
    assert [found for found in slices if found[0] is not Outcome.PASS] == expected


@pytest.mark.parametrize(
    ("orientation", "message"),
    [
        (
            ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
            "AX T2 TSE: image 7 is flipped (its orientation is reversed) compared with the "
            "other 19 slices.",
        ),
        (
            ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)),
            "AX T2 TSE: image 7 is rotated 90° in its plane compared with the other 19 slices.",
        ),
        (
            SAGITTAL,
            "AX T2 TSE: image 7 is tilted 90° compared with the other 19 slices.",
        ),
    ],
)
def test_a_stray_slice_of_another_orientation_fails(
    std: Protocol,
    orientation: tuple[tuple[float, float, float], tuple[float, float, float]],
    message: str,
) -> None:
    main = stack(**_without(6))  # type: ignore[arg-type]
    stray = stack(orientation, positions=[EVERY_4_MM[6]], numbers=[7])
    measured = series(stacks=(main, stray))
    results = check_series(measured, std, LEVELS)
    assert of(results, Check.SLICES)[0] == (Outcome.FAIL, message)
    assert of(results, Check.PLANE) == [(Outcome.PASS, "AX T2 TSE: axial as described.")]


def test_an_image_without_position_or_orientation_fails(std: Protocol) -> None:
    measured = series(stacks=(stack(**_without(6)),), without_geometry=(7,))  # type: ignore[arg-type]
    assert problems(check_series(measured, std, LEVELS)) == [
        (Outcome.FAIL, "AX T2 TSE: image 7 carries no position or orientation."),
        (Outcome.FAIL, "AX T2 TSE: slice 7 of 20 missing (gap 8 mm)."),
    ]


def test_angled_blocks_are_spaced_block_by_block(std: Protocol) -> None:
    tilted = ((1.0, 0.0, 0.0), (0.0, 0.866, 0.5))
    blocks = (
        stack(positions=[-90.0, -86.0, -82.0, -78.0], numbers=[1, 2, 3, 4]),
        stack(tilted, positions=[-50.0, -46.0, -38.0], numbers=[5, 6, 7]),
    )
    results = check_series(series(stacks=blocks, instances=instances(7)), std)
    assert of(results, Check.SLICES) == [
        (
            Outcome.PASS,
            "AX T2 TSE: block 1: 4 slices 4 mm apart, no gap, duplicate or reversed slice.",
        ),
        (Outcome.FAIL, "AX T2 TSE: block 2: slice 3 of 4 missing (gap 8 mm)."),
    ]


# Plane ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        (
            sagittal("AX T2 TSE"),
            (
                Outcome.FAIL,
                "AX T2 TSE: the images are sagittal, but the series is described as axial.",
            ),
        ),
        (
            series("SAG T2 TSE"),
            (
                Outcome.FAIL,
                "SAG T2 TSE: the images are axial, but the series is described as sagittal.",
            ),
        ),
        (
            series(stacks=(stack(((1.0, 0.0, 0.0), (0.0, 0.707, 0.707))),)),
            (
                Outcome.WARN,
                "AX T2 TSE: the slices are tilted 45° from the axial plane; check the planning.",
            ),
        ),
        (
            series(stacks=(stack(((1.0, 0.0, 0.0), (0.0, 0.966, 0.259))),)),
            (Outcome.PASS, "AX T2 TSE: axial as described, tilted 15°."),
        ),
        (
            series(stacks=(), without_geometry=tuple(range(1, 21))),
            (
                Outcome.FAIL,
                "AX T2 TSE: the images carry no position or orientation; the plane cannot be "
                "checked.",
            ),
        ),
    ],
)
def test_the_plane_must_be_the_one_the_description_names(
    std: Protocol, measured: SeriesMeasurements, expected: tuple[Outcome, str]
) -> None:
    results = check_series(measured, std, LEVELS)
    assert of(results, Check.PLANE) == [expected]
    if expected[0] is not Outcome.PASS:
        assert of(results, Check.COVERAGE) == []  # not judged in the wrong plane


# Grid -------------------------------------------------------------------------------------


def test_an_image_of_another_matrix_or_pixel_spacing_fails(std: Protocol) -> None:
    odd = InstanceMeasurement(7, ImageGrid(256, 240, (0.9375, 1.0)), PixelStats(35, 22, 0))
    bare = InstanceMeasurement(8, None, PixelStats(35, 22, 0))
    results = check_series(series(instances=instances(by_number={7: odd, 8: bare})), std)
    assert of(results, Check.GRID) == [
        (Outcome.FAIL, "AX T2 TSE: image 8 carries no matrix size."),
        (
            Outcome.FAIL,
            "AX T2 TSE: image 7 is 256×240 at 0.94×1.00 mm; the others are 256×256 at "
            "0.94×0.94 mm.",
        ),
    ]


# Coverage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measured", "levels", "expected"),
    [
        (
            sagittal(stacks=(sagittal_stack(z_range=(-80.0, 200.0)),)),
            LEVELS,
            [
                (
                    Outcome.FAIL,
                    "SAG T2 TSE: the images stop 24.5 mm above S1 (the sacrum); move the field of "
                    "view towards the feet.",
                ),
                (Outcome.PASS, "SAG T2 TSE: covers 58 mm left to right."),
            ],
        ),
        (
            sagittal(stacks=(sagittal_stack(z_range=(-200.0, 60.0)),)),
            LEVELS,
            [
                (
                    Outcome.FAIL,
                    "SAG T2 TSE: the images stop 24.5 mm below T12-L1 (the thoracolumbar "
                    "junction); move the field of view towards the head.",
                ),
                (Outcome.PASS, "SAG T2 TSE: covers 58 mm left to right."),
            ],
        ),
        (
            sagittal(stacks=(sagittal_stack(z_range=(-90.0, 90.0), x_range=(-20.0, 20.0)),)),
            None,
            [
                (
                    Outcome.FAIL,
                    "SAG T2 TSE: covers only 180 mm head to foot; at least 200 mm is needed to "
                    "reach from T12-L1 to the sacrum.",
                ),
                (
                    Outcome.WARN,
                    "SAG T2 TSE: covers only 40 mm left to right; at least 50 mm is needed to "
                    "include both neural foramina; add slices.",
                ),
            ],
        ),
        (
            sagittal(),
            {"L4-L5": -53.0},  # no position for the junction or the sacrum: by field length
            [
                (Outcome.PASS, "SAG T2 TSE: covers 298.8 mm head to foot (at least 200 mm)."),
                (Outcome.PASS, "SAG T2 TSE: covers 58 mm left to right."),
            ],
        ),
        (
            series(stacks=(stack(positions=[-90.5 + 4 * k for k in range(16)]),)),
            LEVELS,
            [
                (
                    Outcome.FAIL,
                    "AX T2 TSE: L3-L4 is not covered (11 mm above the highest slice); add slices "
                    "or move the stack towards the head.",
                )
            ],
        ),
        (
            series(stacks=(stack(positions=[-70.5 + 4 * k for k in range(20)]),)),
            LEVELS,
            [
                (
                    Outcome.FAIL,
                    "AX T2 TSE: L5-S1 is not covered (15 mm below the lowest slice); add slices "
                    "or move the stack towards the feet.",
                )
            ],
        ),
        (
            series(stacks=(stack(positions=[-90.5 + 4 * k for k in range(10)]),)),
            None,
            [
                (
                    Outcome.FAIL,
                    "AX T2 TSE: the stack is 40 mm long, too short for the 3 levels L3-L4, L4-L5, "
                    "L5-S1 (at least 56 mm).",
                )
            ],
        ),
        (
            series(),
            None,
            [
                (
                    Outcome.PASS,
                    "AX T2 TSE: the stack is 80 mm long, enough for L3-L4, L4-L5, L5-S1 (at least "
                    "56 mm).",
                )
            ],
        ),
    ],
)
def test_coverage_names_the_level_missed_and_which_way_to_move(
    std: Protocol,
    measured: SeriesMeasurements,
    levels: dict[str, float] | None,
    expected: list[tuple[Outcome, str]],
) -> None:
    assert of(check_series(measured, std, levels), Check.COVERAGE) == expected


def test_axial_coverage_is_not_judged_when_the_protocol_names_no_levels(
    catalogue: Catalogue,
) -> None:
    short = series(stacks=(stack(positions=[0.0, 4.0]),), instances=instances(2))
    assert of(check_series(short, catalogue.protocol("LSP-TRAUMA"), LEVELS), Check.COVERAGE) == []


# Integrity --------------------------------------------------------------------------------

BLANK = PixelStats(mean=0.0, sd=0.0, saturated_fraction=0.0)
NOISE_ONLY = PixelStats(mean=1.9, sd=1.0, saturated_fraction=0.0001)
CLIPPED = PixelStats(mean=900.0, sd=700.0, saturated_fraction=0.04)
GRID = ImageGrid(256, 256, (0.9375, 0.9375))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {7: InstanceMeasurement(7, GRID, None, "pixel data truncated (65536 of 131072 bytes)")},
            [
                "AX T2 TSE: image 7 cannot be displayed: pixel data truncated (65536 of 131072 "
                "bytes)."
            ],
        ),
        (
            {7: InstanceMeasurement(7, GRID, BLANK)},
            ["AX T2 TSE: image 7 of 20 is blank (no signal)."],
        ),
        (
            {7: InstanceMeasurement(7, GRID, NOISE_ONLY)},
            ["AX T2 TSE: image 7 of 20 is blank (no signal)."],
        ),
        (
            {7: InstanceMeasurement(7, GRID, CLIPPED)},
            [
                "AX T2 TSE: image 7 is saturated: 4.0% of its pixels sit at the top of the scale; "
                "check the receiver gain and repeat."
            ],
        ),
    ],
)
def test_an_undecodable_blank_or_saturated_image_fails(
    std: Protocol, changes: dict[int, InstanceMeasurement], expected: list[str]
) -> None:
    results = check_series(series(instances=instances(by_number=changes)), std)
    assert of(results, Check.INTEGRITY) == [(Outcome.FAIL, m) for m in expected]


def test_a_series_of_one_constant_value_is_blank_throughout(std: Protocol) -> None:
    constant = PixelStats(mean=1000.0, sd=0.0, saturated_fraction=1.0)
    flat = tuple(InstanceMeasurement(n, GRID, constant) for n in range(1, 21))
    results = check_series(series(instances=flat, noise_sigma=None, body_mean=None), std)
    assert of(results, Check.INTEGRITY) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: all 20 images are blank (every pixel 1000): no signal was recorded.",
        )
    ]
    assert of(results, Check.SNR)[0][0] is Outcome.PASS  # not measurable: integrity says why


def test_an_unreadable_file_fails_integrity(std: Protocol) -> None:
    measured = series(unreadable_files=("file 7 of 20: the file is incomplete (truncated)",))
    assert of(check_series(measured, std), Check.INTEGRITY) == [
        (
            Outcome.FAIL,
            "AX T2 TSE: a file could not be read (file 7 of 20: the file is incomplete "
            "(truncated)); send the series again.",
        )
    ]


# Signal-to-noise and ghosting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [
        (1.5, (Outcome.PASS, "AX T2 TSE: signal-to-noise about 28.")),
        (
            4.2,
            (
                Outcome.WARN,
                "AX T2 TSE: signal-to-noise about 10 (warning below 12): noisy images; check the "
                "coil and consider more averages.",
            ),
        ),
        (
            8.4,
            (
                Outcome.FAIL,
                "AX T2 TSE: signal-to-noise about 5 (fail below 6): the images are too noisy to "
                "report; check the coil connection and position, then repeat.",
            ),
        ),
        (
            None,
            (
                Outcome.PASS,
                "AX T2 TSE: signal-to-noise not measured (no background outside the body to "
                "measure the noise in).",
            ),
        ),
    ],
)
def test_signal_to_noise_warns_below_12_and_fails_below_6(
    std: Protocol, sigma: float | None, expected: tuple[Outcome, str]
) -> None:
    assert of(check_series(series(noise_sigma=sigma), std), Check.SNR) == [expected]


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (
            0.01,
            (
                Outcome.PASS,
                "AX T2 TSE: ghosting along the phase-encoding direction is 1.0% of the body "
                "signal.",
            ),
        ),
        (
            0.05,
            (
                Outcome.WARN,
                "AX T2 TSE: ghosting along the phase-encoding direction is 5.0% of the body "
                "signal (warning at 3%): some motion or pulsation ghosting; look at the images "
                "before the patient leaves.",
            ),
        ),
        (
            0.12,
            (
                Outcome.FAIL,
                "AX T2 TSE: ghosting along the phase-encoding direction is 12.0% of the body "
                "signal (fail at 8%): patient motion or pulsation ghosts; make the patient "
                "comfortable, then repeat.",
            ),
        ),
        (
            None,
            (
                Outcome.PASS,
                "AX T2 TSE: ghosting not measured (no background beside the body along the "
                "phase-encoding direction).",
            ),
        ),
    ],
)
def test_ghosting_warns_at_3_and_fails_at_8_percent_of_the_body_signal(
    std: Protocol, ratio: float | None, expected: tuple[Outcome, str]
) -> None:
    assert of(check_series(series(ghosting_ratio=ratio), std), Check.GHOSTING) == [expected]


# Thresholds per protocol ---------------------------------------------------------------------


def test_a_protocol_may_lower_the_snr_limits_and_keeps_the_other_defaults(
    catalogue: Catalogue,
) -> None:
    ces = catalogue.protocol("LSP-CES")
    assert ces.qc_thresholds == replace(QcThresholds(), snr_warn=10.0, snr_fail=5.0)
    assert catalogue.protocol("LSP-STD").qc_thresholds == QcThresholds()
    noisy = series(noise_sigma=3.8)  # signal-to-noise 11
    assert of(check_series(noisy, ces), Check.SNR)[0][0] is Outcome.PASS
    assert of(check_series(noisy, catalogue.protocol("LSP-STD")), Check.SNR)[0][0] is Outcome.WARN


def test_thresholds_passed_in_win_over_the_protocol(std: Protocol) -> None:
    strict = replace(QcThresholds(), ghosting_warn=0.001)
    assert of(check_series(series(), std, thresholds=strict), Check.GHOSTING)[0][0] is Outcome.WARN


@pytest.mark.parametrize(
    ("qc", "words"),
    [
        (
            "{snr_fail: 20}",
            "protocols[0].qc: snr_fail (20.0) must be above 0 and below snr_warn (12.0)",
        ),
        (
            "{ghosting_warn: 0.2}",
            "protocols[0].qc: ghosting_warn (0.2) must be above 0 and below ghosting_fail (0.08)",
        ),
        ("{snr_wran: 20}", "protocols[0].qc.snr_wran: Extra inputs are not permitted"),
        (
            "{sagittal_min_field_mm: 0}",
            "protocols[0].qc.sagittal_min_field_mm: Input should be greater than 0",
        ),
    ],
)
def test_bad_qc_limits_in_the_catalogue_are_refused_with_line_and_field(
    qc: str, words: str
) -> None:
    text = CATALOGUE_FILE.read_text(encoding="utf-8").replace(
        "    axial_levels: 'L3-L4\\L4-L5\\L5-S1'\n",
        f"    axial_levels: 'L3-L4\\L4-L5\\L5-S1'\n    qc: {qc}\n",
        1,
    )
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(text, "protocols.yaml")
    line = text.splitlines().index(f"    qc: {qc}") + 1
    assert f"protocols.yaml, line {line}: {words}" == str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [{"snr_warn": 5.0}, {"ghosting_fail": 0.01}, {"blank_sd": 0.0}, {"spacing_tolerance": 0.95}],
)
def test_inconsistent_thresholds_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        replace(QcThresholds(), **changes)  # type: ignore[arg-type]


# Missing series and the verdict ---------------------------------------------------------------


def test_a_missing_required_series_fails_and_an_optional_one_does_not(
    catalogue: Catalogue,
) -> None:
    rad = catalogue.protocol("LSP-RAD")
    received = ["LOC 3PL", "SAG T1 TSE", "sag t2 tse", "AX T2 TSE", "AX T1 TSE"]
    assert missing_series(rad, received) == [
        CheckResult(
            "SAG STIR",
            Check.COMPLETENESS,
            Outcome.FAIL,
            "SAG STIR is missing: protocol LSP-RAD requires it.",
        )
    ]  # COR T2 TSE is optional


def test_a_missing_contrast_series_says_it_comes_after_gadolinium(catalogue: Catalogue) -> None:
    inf = catalogue.protocol("LSP-INF")
    received = [s.description for s in inf.series if s.description != "AX T1 FS +C"]
    assert [r.message for r in missing_series(inf, received)] == [
        "AX T1 FS +C is missing: protocol LSP-INF requires it after gadolinium."
    ]


def _result(outcome: Outcome, message: str, series: str = "AX T2 TSE") -> CheckResult:
    return CheckResult(series, Check.SLICES, outcome, message)


def test_a_verdict_names_only_the_problems_that_fit_in_500_characters() -> None:
    long = [_result(Outcome.FAIL, f"AX T2 TSE: problem {n} " + "x" * 180 + ".") for n in range(3)]
    summary = examination_verdict(long).summary
    assert len(summary) <= 500
    assert summary.endswith("x; and 1 more.")
    assert "problem 1" in summary and "problem 2" not in summary
    huge = examination_verdict([_result(Outcome.WARN, "y" * 900)]).summary
    assert len(huge) == 500
    assert huge.startswith("QC passed with 1 warning: yyy") and huge.endswith("y….")


@pytest.mark.parametrize(
    ("results", "outcome", "summary"),
    [
        (
            [_result(Outcome.PASS, "ok"), _result(Outcome.PASS, "ok", "SAG STIR")],
            ExamOutcome.PASSED,
            "QC passed: 2 series checked, 2 checks passed.",
        ),
        (
            [_result(Outcome.PASS, "ok"), _result(Outcome.WARN, "AX T2 TSE: noisy.")],
            ExamOutcome.PASSED_WITH_WARNINGS,
            "QC passed with 1 warning: AX T2 TSE: noisy.",
        ),
        (
            [
                _result(Outcome.WARN, "AX T2 TSE: noisy."),
                _result(Outcome.FAIL, "SAG STIR is missing: protocol LSP-STD requires it."),
                _result(Outcome.FAIL, "AX T2 TSE: slice 7 of 20 missing (gap 8 mm)."),
            ],
            ExamOutcome.FAILED,
            "QC failed, 2 problems to resolve before the patient leaves: SAG STIR is missing: "
            "protocol LSP-STD requires it; AX T2 TSE: slice 7 of 20 missing (gap 8 mm). "
            "Also 1 warning.",
        ),
        (
            [_result(Outcome.FAIL, f"problem {n}.") for n in range(5)],
            ExamOutcome.FAILED,
            "QC failed, 5 problems to resolve before the patient leaves: problem 0; "
            "problem 1; problem 2; and 2 more.",
        ),
        ([], ExamOutcome.FAILED, "QC failed: no series was checked."),
    ],
)
def test_the_verdict_fails_on_any_failure_and_passes_with_warnings_otherwise(
    results: list[CheckResult], outcome: ExamOutcome, summary: str
) -> None:
    verdict = examination_verdict(results)
    assert (verdict.outcome, verdict.summary) == (outcome, summary)


def test_a_series_outcome_is_its_worst_check() -> None:
    def result(outcome: Outcome) -> CheckResult:
        return CheckResult("AX T2 TSE", Check.SNR, outcome, "x")

    assert worst([]) is Outcome.PASS
    assert worst([result(Outcome.PASS), result(Outcome.WARN)]) is Outcome.WARN
    assert worst([result(Outcome.FAIL), result(Outcome.WARN)]) is Outcome.FAIL
