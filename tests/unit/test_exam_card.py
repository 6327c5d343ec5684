"""The simulated console picks a sample series for every series a protocol asks for."""

from __future__ import annotations

import pytest

from mri_pipeline.dicom.exam_card import closest_sample

SAMPLES = [
    "LOC 3PL",
    "SAG T1 TSE",
    "SAG T2 TSE",
    "SAG STIR",
    "AX T2 TSE",
    "AX T1 TSE",
    "SAG T1 FS +C",
    "AX T1 FS +C",
]


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [
        ("SAG T2 TSE", "SAG T2 TSE"),
        ("COR STIR", "SAG STIR"),
        ("COR T2 TSE", "SAG T2 TSE"),
        ("SAG 3D T2", "SAG T2 TSE"),
        ("COR T1 FS +C", "SAG T1 FS +C"),
        ("COR-OBL T1 TSE SIJ", "SAG T1 TSE"),
        ("COR-OBL STIR SIJ", "SAG STIR"),
        ("AX-OBL T2 FS SIJ", "AX T2 TSE"),
        ("SAG T2 DIXON", "SAG T2 TSE"),
    ],
)
def test_closest_sample_keeps_weighting_then_plane_then_contrast(wanted: str, chosen: str) -> None:
    assert closest_sample(wanted, SAMPLES) == chosen


def test_no_samples_no_choice() -> None:
    assert closest_sample("SAG T2 TSE", []) is None
