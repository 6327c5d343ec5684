"""Reconciling received studies to orders, and judging their completeness (pure rules)."""

from __future__ import annotations

import pytest

from mri_pipeline.domain.mpps import PerformedStatus
from mri_pipeline.domain.reconciliation import (
    CompletionBasis,
    OrderFacts,
    PerformedFacts,
    Readiness,
    Reconciliation,
    StudyHeader,
    judge_completeness,
    reconcile,
    same_person_name,
)

ORDER = OrderFacts(
    procedure_pk=1,
    accession_number="LSP0000001",
    study_instance_uid="2.25.1",
    patient_id="PID1",
    patient_name="Müller^Hans",
)
OTHER = OrderFacts(
    procedure_pk=2,
    accession_number="LSP0000002",
    study_instance_uid="2.25.2",
    patient_id="PID2",
    patient_name="Smith^John",
)


def header(**changes: str | None) -> StudyHeader:
    values: dict[str, str | None] = {
        "study_instance_uid": "2.25.1",
        "accession_number": "LSP0000001",
        "patient_id": "PID1",
        "patient_name": "Müller^Hans",
    }
    values.update(changes)
    return StudyHeader(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("Müller^Hans", "MULLER^HANS", True),
        ("Müller^Hans^^^", "Müller^Hans", True),
        ("Müller^Hans=ミュラー^ハンス", "Müller^Hans", True),
        ("Müller^Hans", "Müller^Hanna", False),
        ("Müller^Hans", "Hans^Müller", False),
        ("", "Müller^Hans", False),
    ],
)
def test_person_names_compare_by_alphabetic_components(left: str, right: str, same: bool) -> None:
    assert same_person_name(left, right) is same


def test_accession_and_patient_agree_matched_without_a_note() -> None:
    verdict = reconcile(header(), ORDER, ORDER)
    assert verdict.outcome is Reconciliation.MATCHED
    assert verdict.procedure_pk == 1
    assert verdict.note is None


def test_console_made_its_own_study_uid_still_matched_by_accession_with_a_note() -> None:
    verdict = reconcile(header(study_instance_uid="1.2.3"), ORDER, None)
    assert verdict.outcome is Reconciliation.MATCHED
    assert verdict.note == "the console made its own Study Instance UID; matched by accession"


def test_matched_by_study_uid_when_the_accession_is_missing() -> None:
    verdict = reconcile(header(accession_number=None), None, ORDER)
    assert verdict.outcome is Reconciliation.MATCHED
    assert verdict.note == "matched by Study Instance UID; the images carry accession (empty)"


def test_no_order_is_unmatched() -> None:
    verdict = reconcile(header(accession_number="X", study_instance_uid="9.9"), None, None)
    assert verdict.outcome is Reconciliation.UNMATCHED
    assert verdict.procedure_pk is None


def test_wrong_patient_id_for_the_accession_is_a_mismatch() -> None:
    verdict = reconcile(header(patient_id="PID9"), ORDER, ORDER)
    assert verdict.outcome is Reconciliation.MISMATCH
    assert verdict.procedure_pk == 1
    assert verdict.note == "accession LSP0000001: patient ID PID9 in the images, PID1 on the order"


def test_wrong_patient_name_for_the_accession_is_a_mismatch() -> None:
    verdict = reconcile(header(patient_name="Smith^John"), ORDER, ORDER)
    assert verdict.outcome is Reconciliation.MISMATCH
    assert verdict.note == (
        "accession LSP0000001: the patient name in the images differs from the order's"
    )


def test_accession_and_study_uid_of_two_different_orders_is_a_mismatch() -> None:
    verdict = reconcile(header(study_instance_uid="2.25.2"), ORDER, OTHER)
    assert verdict.outcome is Reconciliation.MISMATCH
    assert verdict.note is not None and "LSP0000002" in verdict.note


def completed(*uids: str, status: PerformedStatus = PerformedStatus.COMPLETED) -> PerformedFacts:
    return PerformedFacts(status, {"2.25.10": set(uids)})


def test_no_mpps_and_not_stable_waits() -> None:
    verdict = judge_completeness([], {"a"}, stable=False)
    assert verdict.readiness is Readiness.WAITING


def test_no_mpps_but_stable_is_complete_by_the_fallback() -> None:
    verdict = judge_completeness([], {"a", "b"}, stable=True)
    assert verdict.readiness is Readiness.COMPLETE
    assert verdict.basis is CompletionBasis.STABLE


def test_mpps_in_progress_waits_even_when_stable() -> None:
    verdict = judge_completeness(
        [completed("a"), PerformedFacts(PerformedStatus.IN_PROGRESS, {})], {"a"}, stable=True
    )
    assert verdict.readiness is Readiness.WAITING
    assert verdict.explanation == "MPPS in progress: still scanning"


def test_completed_with_every_referenced_instance_is_complete_at_once() -> None:
    verdict = judge_completeness([completed("a", "b")], {"a", "b", "extra"}, stable=False)
    assert verdict.readiness is Readiness.COMPLETE
    assert verdict.basis is CompletionBasis.MPPS


def test_completed_with_missing_instances_waits_and_names_how_many() -> None:
    verdict = judge_completeness([completed("a", "b", "c")], {"a"}, stable=True)
    assert verdict.readiness is Readiness.WAITING
    assert verdict.missing == frozenset({"b", "c"})
    assert verdict.explanation == "MPPS completed; 2 of 3 referenced instances not yet stored"


def test_resumed_scanning_needs_the_images_of_both_performed_steps() -> None:
    first = completed("a", status=PerformedStatus.DISCONTINUED)
    second = completed("b")
    assert judge_completeness([first, second], {"b"}, stable=False).readiness is Readiness.WAITING
    assert judge_completeness([first, second], {"a", "b"}, stable=False).basis is (
        CompletionBasis.MPPS
    )


def test_only_discontinued_mpps_is_for_a_person() -> None:
    verdict = judge_completeness(
        [completed("a", status=PerformedStatus.DISCONTINUED)], {"a"}, stable=True
    )
    assert verdict.readiness is Readiness.DISCONTINUED


def test_completed_without_references_falls_back_to_stable() -> None:
    bare = PerformedFacts(PerformedStatus.COMPLETED, {})
    assert judge_completeness([bare], {"a"}, stable=False).readiness is Readiness.WAITING
    verdict = judge_completeness([bare], {"a"}, stable=True)
    assert verdict.readiness is Readiness.COMPLETE
    assert verdict.basis is CompletionBasis.STABLE
