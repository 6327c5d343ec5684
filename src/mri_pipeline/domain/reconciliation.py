"""Tying a received study to its order, and deciding when it is complete (pure rules).

Reconciliation (DOMAIN.md F.2): the images name their order by Accession Number, then
Study Instance UID; the patient in the images must be the order's patient. Anything
that does not agree is flagged for a person and never merged silently.

Completeness: a study is complete when its MPPS is COMPLETED and every instance the
MPPS references is stored, or, for a console without MPPS, when Orthanc reports the
study stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from enum import StrEnum

from mri_pipeline.domain.matching import normalize_name
from mri_pipeline.domain.mpps import PerformedStatus


class Reconciliation(StrEnum):
    MATCHED = "matched"
    MISMATCH = "mismatch"  # an order was found but the images disagree with it
    UNMATCHED = "unmatched"  # no order at all


@dataclass(frozen=True)
class StudyHeader:
    """What the images say about themselves (Orthanc's main DICOM tags)."""

    study_instance_uid: str
    accession_number: str | None
    patient_id: str | None
    patient_name: str | None


@dataclass(frozen=True)
class OrderFacts:
    """What the order says: the requested procedure and its patient."""

    procedure_pk: int
    accession_number: str
    study_instance_uid: str
    patient_id: str
    patient_name: str


@dataclass(frozen=True)
class ReconciliationVerdict:
    outcome: Reconciliation
    procedure_pk: int | None
    note: str | None = None


def same_person_name(left: str, right: str) -> bool:
    """Names agree when their alphabetic groups agree, ignoring case, accents, trailing
    empty components and the ideographic and phonetic groups."""

    def key(name: str) -> tuple[str, ...]:
        components = name.split("=")[0].split("^")
        return tuple(normalize_name(part.strip()) for part in components if part.strip())

    return key(left) == key(right)


def reconcile(
    header: StudyHeader,
    by_accession: OrderFacts | None,
    by_study_uid: OrderFacts | None,
) -> ReconciliationVerdict:
    """Which order the study belongs to, or why a person must look at it.

    ``by_accession`` is the order whose accession number is the study's, ``by_study_uid``
    the order whose Study Instance UID is the study's (the caller looks both up).
    """
    order = by_accession or by_study_uid
    if order is None:
        return ReconciliationVerdict(
            Reconciliation.UNMATCHED,
            None,
            "no order has this accession number or Study Instance UID",
        )
    if (
        by_accession is not None
        and by_study_uid is not None
        and by_accession.procedure_pk != by_study_uid.procedure_pk
    ):
        return ReconciliationVerdict(
            Reconciliation.MISMATCH,
            by_accession.procedure_pk,
            f"accession {by_accession.accession_number} and the Study Instance UID "
            f"belong to different orders ({by_study_uid.accession_number})",
        )
    problems: list[str] = []
    if (header.patient_id or "") != order.patient_id:
        problems.append(
            f"patient ID {header.patient_id or '(empty)'} in the images, "
            f"{order.patient_id} on the order"
        )
    elif not same_person_name(header.patient_name or "", order.patient_name):
        problems.append("the patient name in the images differs from the order's")
    if problems:
        return ReconciliationVerdict(
            Reconciliation.MISMATCH,
            order.procedure_pk,
            f"accession {order.accession_number}: " + "; ".join(problems),
        )
    notes: list[str] = []
    if by_accession is None:
        notes.append(
            f"matched by Study Instance UID; the images carry accession "
            f"{header.accession_number or '(empty)'}"
        )
    elif header.study_instance_uid != order.study_instance_uid:
        notes.append("the console made its own Study Instance UID; matched by accession")
    return ReconciliationVerdict(
        Reconciliation.MATCHED, order.procedure_pk, "; ".join(notes) or None
    )


class Readiness(StrEnum):
    WAITING = "waiting"
    COMPLETE = "complete"
    DISCONTINUED = "discontinued"


class CompletionBasis(StrEnum):
    MPPS = "mpps"
    STABLE = "stable"


@dataclass(frozen=True)
class PerformedFacts:
    """One MPPS of the study: its status and the instances it says it made."""

    status: PerformedStatus
    referenced: Mapping[str, Set[str]]  # series UID → SOP instance UIDs


@dataclass(frozen=True)
class CompletenessVerdict:
    readiness: Readiness
    basis: CompletionBasis | None
    explanation: str
    missing: frozenset[str] = frozenset()


def _referenced_uids(performed: Iterable[PerformedFacts]) -> set[str]:
    uids: set[str] = set()
    for step in performed:
        for instances in step.referenced.values():
            uids |= instances
    return uids


def judge_completeness(
    performed: Iterable[PerformedFacts],
    received: Set[str],
    *,
    stable: bool,
) -> CompletenessVerdict:
    """Is the study complete, given its MPPS, the SOP Instance UIDs received and
    whether Orthanc called it stable?"""
    steps = list(performed)
    if not steps:
        if stable:
            return CompletenessVerdict(
                Readiness.COMPLETE,
                CompletionBasis.STABLE,
                f"no MPPS; Orthanc reports the study stable with {len(received)} instances",
            )
        return CompletenessVerdict(
            Readiness.WAITING, None, "no MPPS yet; waiting for it or for Orthanc's stable event"
        )
    statuses = [step.status for step in steps]
    if PerformedStatus.IN_PROGRESS in statuses:
        return CompletenessVerdict(Readiness.WAITING, None, "MPPS in progress: still scanning")
    if PerformedStatus.COMPLETED not in statuses:
        return CompletenessVerdict(
            Readiness.DISCONTINUED,
            None,
            "every MPPS of the study was discontinued: a person decides what to read",
        )
    referenced = _referenced_uids(steps)
    missing = frozenset(referenced - received)
    if missing:
        return CompletenessVerdict(
            Readiness.WAITING,
            None,
            f"MPPS completed; {len(missing)} of {len(referenced)} referenced instances "
            "not yet stored",
            missing,
        )
    if referenced:
        return CompletenessVerdict(
            Readiness.COMPLETE,
            CompletionBasis.MPPS,
            f"MPPS completed and all {len(referenced)} referenced instances are stored",
        )
    if stable:
        return CompletenessVerdict(
            Readiness.COMPLETE,
            CompletionBasis.STABLE,
            "MPPS completed without instance references; Orthanc reports the study stable",
        )
    return CompletenessVerdict(
        Readiness.WAITING,
        None,
        "MPPS completed without instance references; waiting for Orthanc's stable event",
    )
