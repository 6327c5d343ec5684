"""Routing policy: which radiologist reports a study, and why (DOMAIN.md B.3, F.4). Pure.

Eligibility first: on shift (on call for STAT), credentialed for the site, the
subspecialty the protocol calls for, reports contrast studies when the study has
contrast, and room under their limit of studies in hand. Among the eligible: the least
work in hand (weighted units per protocol), then continuity with the radiologist who
reported the patient's prior, then name. Every decision carries its reason in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mri_pipeline.domain.protocols import Priority

# B.3 report targets (images complete → final report); MEDIUM is treated as ROUTINE.
REPORT_TARGET = {
    Priority.STAT: timedelta(hours=1),
    Priority.HIGH: timedelta(hours=8),
    Priority.ROUTINE: timedelta(hours=48),
    Priority.MEDIUM: timedelta(hours=48),
    Priority.LOW: timedelta(days=5),
}
# F.4: escalate at 50 % of the target for STAT, 80 % for the others.
ESCALATE_AT = {Priority.STAT: 0.5}
DEFAULT_ESCALATE_AT = 0.8
# Work a study brings, in units of a standard non-contrast lumbar spine.
DEFAULT_UNITS = 1.0
PROTOCOL_UNITS = {
    "LSP-INF": 1.5,
    "LSP-TUM": 1.5,
    "LSP-POSTOP": 1.5,
    "LSP-SPA": 2.0,  # lumbar spine and SI joints: two requested procedures
    "LSP-CES": 0.75,
    "LSP-SCREEN": 0.75,
}
_PRIORITY_WORDS = {
    Priority.STAT: "STAT",
    Priority.HIGH: "urgent",
    Priority.ROUTINE: "routine",
    Priority.MEDIUM: "routine",
    Priority.LOW: "low-priority",
}


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime
    on_call: bool = False

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Radiologist:
    key: str
    name: str
    subspecialties: frozenset[str]
    sites: frozenset[str]
    reports_contrast: bool
    shifts: tuple[Shift, ...]
    max_in_hand: int

    def shift_at(self, moment: datetime) -> Shift | None:
        return next((s for s in self.shifts if s.covers(moment)), None)


@dataclass(frozen=True)
class StudyToRoute:
    study_instance_uid: str
    priority: Priority
    protocol_code: str
    protocol_meaning: str
    subspecialties: tuple[str, ...]  # empty: any radiologist
    contrast: bool
    site: str
    completed_at: datetime
    prior_reporter: str | None = None

    @property
    def deadline(self) -> datetime:
        return self.completed_at + REPORT_TARGET[self.priority]

    @property
    def units(self) -> float:
        return PROTOCOL_UNITS.get(self.protocol_code, DEFAULT_UNITS)


@dataclass(frozen=True)
class InHand:
    """A radiologist's open assignments."""

    studies: int = 0
    units: float = 0.0


@dataclass(frozen=True)
class Decision:
    radiologist: str | None  # None: nobody eligible, raise an alert
    reason: str
    considered: tuple[str, ...] = field(default=())


def escalation_due(study: StudyToRoute) -> datetime:
    """When a study still unreported is at risk and must be escalated."""
    share = ESCALATE_AT.get(study.priority, DEFAULT_ESCALATE_AT)
    return study.completed_at + REPORT_TARGET[study.priority] * share


def at_risk(study: StudyToRoute, now: datetime) -> bool:
    return now >= escalation_due(study)


def queue_order(studies: Iterable[StudyToRoute]) -> list[StudyToRoute]:
    """The unassigned list in order: most urgent first, then the earliest deadline."""
    return sorted(
        studies, key=lambda s: (-s.priority.rank, s.deadline, s.completed_at, s.study_instance_uid)
    )


def qualified(radiologist: Radiologist, study: StudyToRoute) -> str | None:
    """Why ``radiologist`` may never report ``study`` (site, subspecialty, contrast); None
    when they may. Shifts and limits are not part of it."""
    return qualified_for(radiologist, study.site, study.subspecialties, study.contrast)


def qualified_for(
    radiologist: Radiologist, site: str, subspecialties: Sequence[str], contrast: bool
) -> str | None:
    """``qualified`` for any study of that site, subspecialty and contrast."""
    if site not in radiologist.sites:
        return f"not credentialed for {site}"
    if subspecialties and not radiologist.subspecialties & set(subspecialties):
        return f"not {' or '.join(subspecialties)}"
    if contrast and not radiologist.reports_contrast:
        return "does not report contrast studies"
    return None


def why_not(
    radiologist: Radiologist, study: StudyToRoute, in_hand: InHand, now: datetime
) -> str | None:
    """Why ``radiologist`` may not take ``study`` now; None when they may."""
    shift = radiologist.shift_at(now)
    if shift is None:
        return "not on shift"
    if study.priority is Priority.STAT and not shift.on_call:
        return "not on call for STAT"
    problem = qualified(radiologist, study)
    if problem is not None:
        return problem
    if in_hand.studies >= radiologist.max_in_hand:
        return f"has {in_hand.studies} studies in hand (limit {radiologist.max_in_hand})"
    return None


def _studies(count: int) -> str:
    return f"{count} study in hand" if count == 1 else f"{count} studies in hand"


def choose(
    study: StudyToRoute,
    radiologists: Sequence[Radiologist],
    in_hand: Mapping[str, InHand],
    now: datetime,
    *,
    exclude: Iterable[str] = (),
) -> Decision:
    """The radiologist for ``study``, or none with the reason (an alert for a person).

    ``exclude`` names radiologists to pass over (an escalation away from the current one).
    """
    excluded = set(exclude)
    eligible: list[Radiologist] = []
    refused: list[str] = []
    for radiologist in radiologists:
        if radiologist.key in excluded:
            continue
        problem = why_not(radiologist, study, in_hand.get(radiologist.key, InHand()), now)
        if problem is None:
            eligible.append(radiologist)
        else:
            refused.append(f"{radiologist.name}: {problem}")
    what = f"{_PRIORITY_WORDS[study.priority]} {study.protocol_meaning}"
    if not eligible:
        return Decision(
            None,
            f"{what}: nobody eligible ({'; '.join(refused) or 'no radiologists'})",
        )

    def rank(radiologist: Radiologist) -> tuple[float, int, str]:
        load = in_hand.get(radiologist.key, InHand())
        continuity = 0 if radiologist.key == study.prior_reporter else 1
        return (load.units, continuity, radiologist.name)

    chosen = min(eligible, key=rank)
    load = in_hand.get(chosen.key, InHand())
    role = "on-call" if study.priority is Priority.STAT else "on shift"
    speciality = "/".join(s for s in study.subspecialties if s in chosen.subspecialties)
    parts = [f"{what} → {role} {speciality + ' ' if speciality else ''}{chosen.name}"]
    parts.append(_studies(load.studies))
    if chosen.key == study.prior_reporter:
        parts.append("reported the prior")
    if len(eligible) > 1:
        parts.append(f"least work of {len(eligible)} eligible")
    return Decision(chosen.key, ", ".join(parts), tuple(r.key for r in eligible))
