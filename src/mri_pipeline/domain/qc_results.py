"""What one QC check found: pass, warn or fail, in a sentence naming the series."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


class Check(StrEnum):
    """What was checked."""

    COMPLETENESS = "completeness"  # a required series of the protocol is there
    SEQUENCE = "sequence"  # the series is one of the protocol's, with its weighting
    PLANE = "plane"  # the images lie in the plane the description names
    SLICES = "slices"  # evenly spaced, no gap, duplicate, reversed or stray slice
    GRID = "grid"  # one matrix and pixel spacing for every image
    COVERAGE = "coverage"  # the field reaches the levels the protocol needs
    INTEGRITY = "integrity"  # every image decodes; none blank, saturated or truncated
    SNR = "snr"  # signal-to-noise from the background
    GHOSTING = "ghosting"  # signal outside the body along the phase-encoding direction


@dataclass(frozen=True)
class CheckResult:
    """One finding; ``message`` is for the radiographer and starts with the series name."""

    series_description: str
    check: Check
    outcome: Outcome
    message: str


def mm(value: float) -> str:
    """A length for a sentence: one decimal, none when whole (``8``, ``4.5``)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


_SEVERITY = {Outcome.PASS: 0, Outcome.WARN: 1, Outcome.FAIL: 2}


def worst(results: Iterable[CheckResult]) -> Outcome:
    """A series' outcome: its worst check (PASS when it has none)."""
    return max((r.outcome for r in results), key=_SEVERITY.__getitem__, default=Outcome.PASS)
