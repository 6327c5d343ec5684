"""Reading rules: who may take which study, what a report may become, and escalation. Pure.

No cherry-picking: a radiologist takes the first study of their own list that nobody
is reading yet, or the top of the unassigned list among the studies they may report.
A report goes preliminary → final (or straight to final); a final report is not
changed here (amendments are a later workflow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.routing import (
    Decision,
    InHand,
    Radiologist,
    StudyToRoute,
    choose,
    qualified,
    queue_order,
)


class AssignmentState(StrEnum):
    UNASSIGNED = "unassigned"  # nobody eligible, or given back: the pool
    ASSIGNED = "assigned"  # in a radiologist's list, not opened yet
    CLAIMED = "claimed"  # being read
    FINAL = "final"  # reported; closed

    @property
    def in_hand(self) -> bool:
        return self in (AssignmentState.ASSIGNED, AssignmentState.CLAIMED)


IN_HAND = tuple(s.value for s in AssignmentState if s.in_hand)


class ReportStatus(StrEnum):
    PRELIMINARY = "preliminary"
    FINAL = "final"


class ReadingRefused(DomainError):
    """The action is not allowed now; the message says why and what to do instead."""


@dataclass(frozen=True)
class QueueEntry:
    """A study in a reading list, as the rules need it."""

    study: StudyToRoute
    accession_number: str | None
    state: AssignmentState
    holder: str | None


def _label(entry: QueueEntry) -> str:
    name = entry.accession_number or entry.study.study_instance_uid
    due = entry.study.deadline.strftime("%Y-%m-%d %H:%M %Z").strip()
    return f"{name} ({entry.study.priority.value}, due {due})"


def check_claim(
    radiologist: Radiologist,
    wanted: QueueEntry,
    own: Sequence[QueueEntry],
    top: QueueEntry | None,
) -> None:
    """Raise ``ReadingRefused`` unless ``radiologist`` may start reading ``wanted``.

    ``own``: the radiologist's assigned and claimed studies; ``top``: the first study of
    the unassigned list (in queue order) that they may report."""
    if wanted.state is AssignmentState.FINAL:
        raise ReadingRefused(f"{_label(wanted)} is already reported")
    if wanted.state is AssignmentState.CLAIMED:
        if wanted.holder == radiologist.key:
            return  # claiming twice is harmless
        raise ReadingRefused(f"{_label(wanted)} is being read by {wanted.holder}")
    if wanted.state is AssignmentState.ASSIGNED:
        if wanted.holder != radiologist.key:
            raise ReadingRefused(f"{_label(wanted)} is in {wanted.holder}'s list, not yours")
        waiting = [e for e in own if e.state is AssignmentState.ASSIGNED]
        first = queue_order(e.study for e in waiting)[0] if waiting else None
        if first is not None and first.study_instance_uid != wanted.study.study_instance_uid:
            ahead = next(e for e in waiting if e.study is first)
            raise ReadingRefused(f"take {_label(ahead)} first: it is ahead in your list")
        return
    problem = qualified(radiologist, wanted.study)
    if problem is not None:
        raise ReadingRefused(f"{radiologist.name} may not report {_label(wanted)}: {problem}")
    if top is not None and top.study.study_instance_uid != wanted.study.study_instance_uid:
        raise ReadingRefused(
            f"take {_label(top)} first: it is the top of the unassigned list for you"
        )


def check_report(current: ReportStatus | None, wanted: ReportStatus, impression: str) -> None:
    """Raise ``ReadingRefused`` unless a report may become ``wanted``."""
    if not impression.strip():
        raise ReadingRefused("a report needs an impression")
    if current is ReportStatus.FINAL:
        raise ReadingRefused("the report is final; an amendment is a separate workflow")


def time_left(deadline: datetime, now: datetime) -> timedelta:
    """Negative when the deadline has passed."""
    return deadline - now


def describe_time_left(left: timedelta) -> str:
    """ "45 min left", "3 h 10 min left", "20 min overdue"."""
    minutes = int(abs(left).total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    text = f"{hours} h {rest} min" if hours else f"{rest} min"
    return f"{text} overdue" if left < timedelta(0) else f"{text} left"


def countdown(deadline: datetime, escalate_at: datetime, now: datetime) -> dict[str, object]:
    """How a list shows a study's deadline: the deadline, the seconds and words left
    (negative and "overdue" once passed), and whether it is at risk."""
    left = time_left(deadline, now)
    return {
        "deadline": deadline,
        "time_left_s": int(left.total_seconds()),
        "time_left": describe_time_left(left),
        "at_risk": now >= escalate_at,
    }


def escalate(
    study: StudyToRoute,
    holder: str | None,
    radiologists: Sequence[Radiologist],
    in_hand: Mapping[str, InHand],
    now: datetime,
) -> Decision:
    """Where a study at risk goes: the next eligible radiologist other than ``holder``,
    else an on-call radiologist who may report it (their limit waived), else nobody."""
    left = describe_time_left(time_left(study.deadline, now))
    away = f" from {holder}" if holder else ""
    decision = choose(study, radiologists, in_hand, now, exclude=[holder] if holder else [])
    if decision.radiologist is not None:
        return Decision(
            decision.radiologist, f"at risk ({left}): escalated{away}; {decision.reason}"
        )
    on_call = [
        r
        for r in radiologists
        if r.key != holder
        and (shift := r.shift_at(now)) is not None
        and shift.on_call
        and qualified(r, study) is None
    ]
    if on_call:
        chosen = min(on_call, key=lambda r: (in_hand.get(r.key, InHand()).units, r.name))
        return Decision(
            chosen.key,
            f"at risk ({left}): escalated{away} to on-call {chosen.name} "
            f"(over their limit: nobody else eligible)",
        )
    return Decision(None, f"at risk ({left}): nobody to escalate to; {decision.reason}")
