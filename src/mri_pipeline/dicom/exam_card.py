"""The simulated console's exam cards: which sample images make each series of a protocol.

The sample studies hold the series of the standard protocol for a few cases; a protocol
asking for a series the samples lack gets the closest one (same plane, same weighting,
same contrast and fat suppression when possible, in that order), re-labelled with the
description the protocol asks for. The plane comes first because image QC fails images
in another plane than described, but only warns about another weighting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from mri_pipeline.dicom.scanner import PlannedSeries
from mri_pipeline.domain.protocols import Protocol

DEFAULT_CASE = "normal"
# The sample case whose anatomy fits the protocol's indication best.
CASE_BY_PROTOCOL = {
    "LSP-RAD": "herniation_l4_l5",
    "LSP-STEN": "stenosis_l3_l5",
    "LSP-TRAUMA": "fracture_l1",
}

_PLANES = {"SAG": "SAG", "AX": "AX", "AX-OBL": "AX", "COR": "COR", "COR-OBL": "COR"}
_WEIGHTINGS = ("STIR", "DWI", "T1", "T2", "3PL")


@dataclass(frozen=True)
class _Traits:
    plane: str | None
    weighting: str | None
    fat_suppressed: bool
    contrast: bool


def _traits(description: str) -> _Traits:
    tokens = description.upper().split()
    plane = _PLANES.get(tokens[0]) if tokens else None
    weighting = next((w for w in _WEIGHTINGS if w in tokens), None)
    return _Traits(
        plane=plane,
        weighting=weighting,
        fat_suppressed="FS" in tokens or weighting == "STIR",
        contrast="+C" in tokens,
    )


def closest_sample(wanted: str, available: Iterable[str]) -> str | None:
    """The available series description that best stands in for ``wanted``."""
    choices = list(available)
    if wanted in choices:
        return wanted
    target = _traits(wanted)

    def score(description: str) -> int:
        traits = _traits(description)
        return (
            4 * (traits.plane == target.plane)
            + 3 * (traits.weighting == target.weighting)
            + 2 * (traits.contrast == target.contrast)
            + (traits.fat_suppressed == target.fat_suppressed)
        )

    return max(choices, key=score, default=None)


SampleSeries = Mapping[str, Sequence[Path]]  # series description → image files


def exam_card(
    protocol: Protocol,
    case_series: SampleSeries,
    fallback_series: SampleSeries,
    *,
    include_optional: bool = False,
) -> list[PlannedSeries]:
    """The series the console runs for ``protocol``, each with its template images.

    ``case_series`` are the samples of the case chosen for the protocol,
    ``fallback_series`` those of the normal case (for series the case lacks, such as
    post-contrast ones).
    """
    specs = protocol.series if include_optional else protocol.required_series
    cache: dict[Path, Dataset] = {}
    plan: list[PlannedSeries] = []
    for spec in specs:
        if spec.description in case_series:
            paths = case_series[spec.description]
        elif spec.description in fallback_series:
            paths = fallback_series[spec.description]
        else:
            pool = {**fallback_series, **case_series}
            source = closest_sample(spec.description, pool)
            if source is None:
                raise ValueError("no sample series to make the examination from")
            paths = pool[source]
        templates = []
        for path in paths:
            if path not in cache:
                cache[path] = dcmread(path)
            templates.append(cache[path])
        plan.append(PlannedSeries(spec.description, templates))
    return plan
