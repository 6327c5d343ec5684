"""QC rules on the pixels: every image decodes and carries signal, none is clipped;
signal-to-noise and ghosting against their warning and failure levels (issue 5)."""

from __future__ import annotations

from mri_pipeline.domain.qc_measurements import PixelStats, SeriesMeasurements
from mri_pipeline.domain.qc_results import Check, CheckResult, Outcome
from mri_pipeline.domain.qc_thresholds import QcThresholds


def check_integrity(
    name: str, series: SeriesMeasurements, thresholds: QcThresholds
) -> list[CheckResult]:
    """Every image decodes (and every file reads); none is blank or saturated."""
    results = []

    def fail(message: str) -> None:
        results.append(CheckResult(name, Check.INTEGRITY, Outcome.FAIL, f"{name}: {message}"))

    for problem in series.unreadable_files:
        fail(f"a file could not be read ({problem}); send the series again.")
    decoded: list[tuple[int | None, PixelStats]] = []
    for instance in series.instances:
        if instance.pixels is None:
            reason = instance.problem or "no pixel data"
            fail(f"{_image(instance.instance_number)} cannot be displayed: {reason}.")
        else:
            decoded.append((instance.instance_number, instance.pixels))
    if not series.instances and not series.unreadable_files:
        fail("no images were received.")
    sds = sorted(stats.sd for _, stats in decoded)
    typical = sds[len(sds) // 2] if sds else 0.0
    blank = [
        (number, stats)
        for number, stats in decoded
        if stats.sd <= thresholds.blank_sd or stats.sd < thresholds.blank_relative_sd * typical
    ]
    if decoded and len(blank) == len(decoded):
        values = sorted({round(stats.mean) for _, stats in blank})
        value = f" (every pixel {values[0]})" if len(values) == 1 and sds[-1] == 0 else ""
        fail(f"all {len(decoded)} images are blank{value}: no signal was recorded.")
    else:
        for number, _ in blank:
            fail(f"{_image(number)} of {len(series.instances)} is blank (no signal).")
    for number, stats in decoded:
        clipped = stats.saturated_fraction >= thresholds.saturation_fraction
        if clipped and (number, stats) not in blank:
            fail(
                f"{_image(number)} is saturated: {stats.saturated_fraction:.1%} of its pixels "
                "sit at the top of the scale; check the receiver gain and repeat."
            )
    if not results:
        results.append(
            CheckResult(
                name,
                Check.INTEGRITY,
                Outcome.PASS,
                f"{name}: all {len(decoded)} images decode; none is blank or saturated.",
            )
        )
    return results


def _image(number: int | None) -> str:
    return "an image without a number" if number is None else f"image {number}"


def check_snr(name: str, series: SeriesMeasurements, thresholds: QcThresholds) -> CheckResult:
    """Mean body signal over the background noise σ, against ``snr_warn`` and ``snr_fail``."""
    snr = series.snr
    if snr is None:
        return CheckResult(
            name,
            Check.SNR,
            Outcome.PASS,
            f"{name}: signal-to-noise not measured (no background outside the body to "
            "measure the noise in).",
        )
    value = f"signal-to-noise about {snr:.0f}"
    if snr < thresholds.snr_fail:
        return CheckResult(
            name,
            Check.SNR,
            Outcome.FAIL,
            f"{name}: {value} (fail below {thresholds.snr_fail:g}): the images are too noisy "
            "to report; check the coil connection and position, then repeat.",
        )
    if snr < thresholds.snr_warn:
        return CheckResult(
            name,
            Check.SNR,
            Outcome.WARN,
            f"{name}: {value} (warning below {thresholds.snr_warn:g}): noisy images; check "
            "the coil and consider more averages.",
        )
    return CheckResult(name, Check.SNR, Outcome.PASS, f"{name}: {value}.")


def check_ghosting(name: str, series: SeriesMeasurements, thresholds: QcThresholds) -> CheckResult:
    """Background signal along the phase-encoding direction over the body signal."""
    ratio = series.ghosting_ratio
    if ratio is None:
        return CheckResult(
            name,
            Check.GHOSTING,
            Outcome.PASS,
            f"{name}: ghosting not measured (no background beside the body along the "
            "phase-encoding direction).",
        )
    value = f"ghosting along the phase-encoding direction is {ratio:.1%} of the body signal"
    if ratio >= thresholds.ghosting_fail:
        return CheckResult(
            name,
            Check.GHOSTING,
            Outcome.FAIL,
            f"{name}: {value} (fail at {thresholds.ghosting_fail:.0%}): patient motion or "
            "pulsation ghosts; make the patient comfortable, then repeat.",
        )
    if ratio >= thresholds.ghosting_warn:
        return CheckResult(
            name,
            Check.GHOSTING,
            Outcome.WARN,
            f"{name}: {value} (warning at {thresholds.ghosting_warn:.0%}): some motion or "
            "pulsation ghosting; look at the images before the patient leaves.",
        )
    return CheckResult(name, Check.GHOSTING, Outcome.PASS, f"{name}: {value}.")
