"""Image QC while the patient is on the table (issue 5): which series is which, what is
wrong with it, and the examination's verdict when the MPPS completes.

Every rule judges :class:`SeriesMeasurements` (numbers the imaging adapter measured)
against the scheduled :class:`Protocol` and its :class:`QcThresholds`, and says what it
found in a sentence the radiographer can act on, naming the series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mri_pipeline.domain.protocols import Protocol, SeriesSpec
from mri_pipeline.domain.qc_coverage import check_coverage
from mri_pipeline.domain.qc_description import SeriesExpectation, expectation_of
from mri_pipeline.domain.qc_geometry import check_grid, check_plane, check_slices
from mri_pipeline.domain.qc_measurements import (
    AcquisitionFacts,
    ImageGrid,
    InstanceMeasurement,
    PixelStats,
    Plane,
    SeriesMeasurements,
    Stack,
    Weighting,
    plane_of,
)
from mri_pipeline.domain.qc_pixels import check_ghosting, check_integrity, check_snr
from mri_pipeline.domain.qc_results import Check, CheckResult, Outcome, mm
from mri_pipeline.domain.qc_thresholds import QcThresholds

__all__ = [
    "AcquisitionFacts",
    "Check",
    "CheckResult",
    "ExamOutcome",
    "ImageGrid",
    "InstanceMeasurement",
    "Outcome",
    "PixelStats",
    "Plane",
    "QcThresholds",
    "SeriesExpectation",
    "SeriesMeasurements",
    "Stack",
    "Verdict",
    "Weighting",
    "check_series",
    "examination_verdict",
    "expectation_of",
    "identify_series",
    "missing_series",
    "plane_of",
]

_LISTED = 3  # problems a verdict names before "and N more"
SUMMARY_MAX = 500  # characters of a verdict's summary
_WORDS = {
    Weighting.T1: "T1-weighted",
    Weighting.T2: "T2-weighted",
    Weighting.PD: "proton-density-weighted",
    Weighting.STIR: "STIR (fat-suppressed inversion recovery)",
    Weighting.FLAIR: "FLAIR",
    Weighting.GRE: "gradient echo",
    Weighting.DWI: "diffusion-weighted",
    Weighting.UNKNOWN: "unknown",
}


def _normal(text: str) -> str:
    return " ".join(text.upper().split())


def _by_name(name: str, protocol: Protocol) -> SeriesSpec | None:
    wanted = _normal(name)
    if not wanted:
        return None
    return next((spec for spec in protocol.series if _normal(spec.description) == wanted), None)


def _fits(expected: SeriesExpectation, series: SeriesMeasurements) -> bool:
    """Whether the measured plane and the acquisition agree with a description's terms."""
    facts = series.acquisition
    if expected.localizer:
        return series.localizer_like
    plane = series.plane
    if expected.plane is None or plane is None:
        return False
    if plane is not expected.plane and not (expected.oblique and plane is Plane.OBLIQUE):
        return False
    if expected.weighting is None or facts.weighting is not expected.weighting:
        return False
    if facts.fat_suppressed != expected.fat_suppressed:
        return False
    if facts.contrast_given != expected.contrast:
        return False
    return facts.three_d is None or facts.three_d == expected.three_d


def identify_series(series: SeriesMeasurements, protocol: Protocol) -> SeriesSpec | None:
    """Which of the protocol's sequences ``series`` is.

    By Series Description first, then Protocol Name (both compared without regard to
    case or spacing), else by plane, weighting, fat suppression, contrast and 2D/3D
    against each description's terms; the first sequence that fits, in protocol order.
    A description that names another plane or weighting (``AX DWI``) is not overruled.
    """
    facts = series.acquisition
    for name in (facts.series_description, facts.protocol_name):
        spec = _by_name(name, protocol)
        if spec is not None:
            return spec
    own = expectation_of(facts.series_description)
    for spec in protocol.series:
        expected = expectation_of(spec.description)
        if _names_another(own, expected):
            continue
        if _fits(expected, series):
            return spec
    return None


def _names_another(own: SeriesExpectation, expected: SeriesExpectation) -> bool:
    """Whether a description that names its plane and weighting names other ones."""
    if own.plane is None or own.weighting is None:
        return False
    return (own.plane, own.weighting, own.contrast) != (
        expected.plane,
        expected.weighting,
        expected.contrast,
    )


def _sequence(
    name: str, series: SeriesMeasurements, spec: SeriesSpec | None, protocol: Protocol
) -> list[CheckResult]:
    facts = series.acquisition
    if spec is None:
        return [
            CheckResult(
                name,
                Check.SEQUENCE,
                Outcome.WARN,
                f"{name}: not a series of protocol {protocol.code} "
                f"({', '.join(s.description for s in protocol.series)}).",
            )
        ]
    results = []
    described = _normal(spec.description) in (
        _normal(facts.series_description),
        _normal(facts.protocol_name),
    )
    if not described:
        results.append(
            CheckResult(
                name,
                Check.SEQUENCE,
                Outcome.WARN,
                f"{name}: taken for the protocol's {spec.description} from its plane and "
                f"weighting, but its description differs; name it {spec.description} so "
                "that reading and hanging protocols find it.",
            )
        )
    expected = expectation_of(spec.description)
    measured = facts.weighting
    if (
        not expected.localizer
        and expected.weighting is not None
        and measured is not Weighting.UNKNOWN
        and measured is not expected.weighting
    ):
        results.append(
            CheckResult(
                name,
                Check.SEQUENCE,
                Outcome.WARN,
                f"{name}: {_timing(facts)} give a {_WORDS[measured]} image, but the protocol "
                f"expects {_WORDS[expected.weighting]}; check the sequence chosen on the console.",
            )
        )
    if spec.post_contrast and not facts.contrast_given:
        results.append(
            CheckResult(
                name,
                Check.SEQUENCE,
                Outcome.WARN,
                f"{name}: no contrast agent is recorded in the images; check that "
                "gadolinium was given and entered on the console.",
            )
        )
    if not spec.post_contrast and facts.contrast_given:
        results.append(
            CheckResult(
                name,
                Check.SEQUENCE,
                Outcome.WARN,
                f"{name}: a contrast agent is recorded, but the protocol runs this series "
                "before contrast.",
            )
        )
    if not results:
        weighting = "" if measured is Weighting.UNKNOWN else f", {_WORDS[measured]}"
        results.append(
            CheckResult(
                name,
                Check.SEQUENCE,
                Outcome.PASS,
                f"{name}: matches the protocol's {spec.description}{weighting}.",
            )
        )
    return results


def _timing(facts: AcquisitionFacts) -> str:
    parts = [f"TR {mm(facts.repetition_time or 0)} ms", f"TE {mm(facts.echo_time or 0)} ms"]
    if facts.inversion_time:
        parts.append(f"TI {mm(facts.inversion_time)} ms")
    return ", ".join(parts)


def check_series(
    series: SeriesMeasurements,
    protocol: Protocol,
    levels: Mapping[str, float] | None = None,
    thresholds: QcThresholds | None = None,
) -> list[CheckResult]:
    """Every check of one series against ``protocol``.

    ``levels`` maps level names (``"T12-L1"``, ``"L4-L5"``, ``"S1"``) to their LPS z in
    millimetres, when a model or atlas has found them; without it coverage is judged by
    the length of the field. ``thresholds`` defaults to the protocol's.
    """
    limits = thresholds if thresholds is not None else protocol.qc_thresholds
    spec = identify_series(series, protocol)
    name = series.description or (spec.description if spec else "") or _unnamed(series)
    expected = expectation_of(spec.description if spec else name)
    results = _sequence(name, series, spec, protocol)
    results += check_plane(name, series, expected)
    results += check_slices(name, series, expected, limits)
    results += check_grid(name, series, limits)
    if spec is not None:
        results += check_coverage(name, series, expected, protocol, levels, limits)
    results += check_integrity(name, series, limits)
    if not expected.localizer and not series.localizer_like:
        results.append(check_snr(name, series, limits))
        results.append(check_ghosting(name, series, limits))
    return results


def _unnamed(series: SeriesMeasurements) -> str:
    number = series.acquisition.series_number
    return "Series without a description" if number is None else f"Series {number}"


def missing_series(protocol: Protocol, received: Iterable[str]) -> list[CheckResult]:
    """A FAIL for each required series of ``protocol`` not among ``received``.

    ``received`` holds the protocol descriptions the received series were identified as
    (:func:`identify_series`), or their own descriptions; case and spacing are ignored.
    """
    have = {_normal(description) for description in received}
    results = []
    for spec in protocol.required_series:
        if _normal(spec.description) in have:
            continue
        when = " after gadolinium" if spec.post_contrast else ""
        results.append(
            CheckResult(
                spec.description,
                Check.COMPLETENESS,
                Outcome.FAIL,
                f"{spec.description} is missing: protocol {protocol.code} requires it{when}.",
            )
        )
    return results


class ExamOutcome(StrEnum):
    """The examination's QC verdict."""

    PASSED = "PASSED"
    PASSED_WITH_WARNINGS = "PASSED_WITH_WARNINGS"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Verdict:
    outcome: ExamOutcome
    summary: str


def _summary(head: str, results: Sequence[CheckResult], tail: str = "") -> str:
    """``head``, the first findings (as many of ``_LISTED`` as fit in ``SUMMARY_MAX``
    characters), "and N more", ``tail``."""
    for count in range(min(len(results), _LISTED), 0, -1):
        named = "; ".join(result.message.rstrip(".") for result in results[:count])
        more = len(results) - count
        text = f"{head}{named}{f'; and {more} more' if more else ''}.{tail}"
        if len(text) <= SUMMARY_MAX:
            return text
    rest = f"; and {len(results) - 1} more" if len(results) > 1 else ""
    room = SUMMARY_MAX - len(head) - len(rest) - len(tail) - 2
    return f"{head}{results[0].message[:room].rstrip()}…{rest}.{tail}"


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def examination_verdict(results: Iterable[CheckResult]) -> Verdict:
    """QC passed, passed with warnings, or failed (any FAIL: a missing required series or
    a failed check), with a summary of at most ``SUMMARY_MAX`` characters naming the
    first problems."""
    results = list(results)
    failed = [r for r in results if r.outcome is Outcome.FAIL]
    warned = [r for r in results if r.outcome is Outcome.WARN]
    series = len({r.series_description for r in results})
    if not results:
        return Verdict(ExamOutcome.FAILED, "QC failed: no series was checked.")
    if failed:
        also = f" Also {_count(len(warned), 'warning')}." if warned else ""
        head = f"QC failed, {_count(len(failed), 'problem')} to resolve before the patient leaves: "
        return Verdict(ExamOutcome.FAILED, _summary(head, failed, also))
    if warned:
        head = f"QC passed with {_count(len(warned), 'warning')}: "
        return Verdict(ExamOutcome.PASSED_WITH_WARNINGS, _summary(head, warned))
    return Verdict(
        ExamOutcome.PASSED,
        f"QC passed: {series} series checked, {_count(len(results), 'check')} passed.",
    )
