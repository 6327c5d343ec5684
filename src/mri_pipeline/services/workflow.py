"""The life of an examination: MPPS from the console, radiographers' actions, and events.

Every state change is written to ``step_events`` in the same transaction as the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mri_pipeline.db.models import (
    PerformedStep,
    PerformedStepLink,
    PerformedStepMessage,
    ScheduledStep,
)
from mri_pipeline.domain.lifecycle import (
    WRONG_WORKLIST_ENTRY,
    IllegalTransition,
    offers_new_step,
    step_event_from_performed,
)
from mri_pipeline.domain.lifecycle import StepEvent as LifecycleEvent
from mri_pipeline.domain.mpps import (
    DUPLICATE_SOP_INSTANCE,
    NO_SUCH_SOP_INSTANCE,
    MppsVerdict,
    PerformedStatus,
    StepReference,
    check_n_create,
    check_n_set,
    created_tags,
    discontinuation_reason,
    merge_n_set,
    step_references,
)
from mri_pipeline.domain.steps import StepStatus
from mri_pipeline.domain.worklist_item import text_of
from mri_pipeline.services.events import apply_step_event, record_event

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _one_or_none(session: Session, statement: Any) -> ScheduledStep | None:
    rows = list(session.execute(statement.with_for_update()).scalars().all())
    return rows[0] if len(rows) == 1 else None


def match_steps(session: Session, references: Sequence[StepReference]) -> list[ScheduledStep]:
    """The scheduled steps an MPPS names: SPS ID with requested procedure ID first,
    then accession number, then Study Instance UID (DOMAIN.md F.2)."""
    found: list[ScheduledStep] = []
    for ref in references:
        step = None
        if ref.sps_id and ref.requested_procedure_id:
            step = _one_or_none(
                session,
                select(ScheduledStep).where(
                    ScheduledStep.sps_id == ref.sps_id,
                    ScheduledStep.requested_procedure_id == ref.requested_procedure_id,
                ),
            )
        if step is None and ref.sps_id:
            step = _one_or_none(
                session, select(ScheduledStep).where(ScheduledStep.sps_id == ref.sps_id)
            )
        if step is None and ref.accession_number:
            step = _one_or_none(
                session,
                select(ScheduledStep).where(ScheduledStep.accession_number == ref.accession_number),
            )
        if step is None and ref.study_instance_uid:
            step = _one_or_none(
                session,
                select(ScheduledStep).where(
                    ScheduledStep.study_instance_uid == ref.study_instance_uid
                ),
            )
        if step is not None and step not in found:
            found.append(step)
    return found


@dataclass(frozen=True)
class MppsResult:
    verdict: MppsVerdict
    performed: PerformedStep | None = None


def receive_n_create(
    session: Session,
    sop_instance_uid: str,
    dataset: Dataset,
    *,
    calling_ae: str,
    at: datetime,
) -> MppsResult:
    """Validate and store a new MPPS; the steps it names become STARTED."""
    existing = session.execute(
        select(PerformedStep.id).where(PerformedStep.sop_instance_uid == sop_instance_uid)
    ).first()
    if existing is not None:
        return MppsResult(MppsVerdict(status=DUPLICATE_SOP_INSTANCE))
    verdict = check_n_create(dataset)
    if not verdict.ok:
        return MppsResult(verdict)
    references = step_references(dataset)
    performed = PerformedStep(
        sop_instance_uid=sop_instance_uid,
        status=PerformedStatus.IN_PROGRESS.value,
        calling_ae_title=calling_ae,
        performed_station_ae_title=text_of(dataset, "PerformedStationAETitle"),
        study_instance_uid=next(
            (r.study_instance_uid for r in references if r.study_instance_uid), None
        ),
        dataset_json=dataset.to_json(),
        created_tags=sorted(created_tags(dataset)),
        matched=False,
        created_at=at,
        updated_at=at,
    )
    session.add(performed)
    session.flush()
    session.add(
        PerformedStepMessage(
            performed_step=performed,
            operation="N-CREATE",
            calling_ae_title=calling_ae,
            dataset_json=dataset.to_json(),
            ignored_tags=[],
            received_at=at,
        )
    )
    steps = match_steps(session, references)
    closed = []
    for step in steps:
        session.add(PerformedStepLink(performed_step_pk=performed.id, scheduled_step_pk=step.id))
        try:
            apply_step_event(
                session,
                step,
                LifecycleEvent.MPPS_STARTED,
                actor=calling_ae,
                at=at,
                performed=performed,
                details={"mpps": sop_instance_uid},
            )
        except IllegalTransition as exc:
            # The console scanned a step we consider closed: keep the MPPS, ask a person.
            closed.append(step)
            record_event(
                session,
                kind="MPPS_ON_CLOSED_STEP",
                actor=calling_ae,
                at=at,
                step=step,
                performed=performed,
                from_status=step.status,
                to_status=step.status,
                reason=str(exc),
            )
            log.warning(
                "MPPS on a closed step mpps=%s accession=%s status=%s",
                sop_instance_uid,
                step.accession_number,
                step.status,
            )
    performed.matched = bool(steps) and not closed
    if not steps:
        record_event(
            session,
            kind="MPPS_UNMATCHED",
            actor=calling_ae,
            at=at,
            performed=performed,
            to_status=PerformedStatus.IN_PROGRESS.value,
            reason="no scheduled step matches; held for reconciliation",
            details={"mpps": sop_instance_uid, "references": [r.__dict__ for r in references]},
        )
        log.warning(
            "MPPS without scheduled step mpps=%s calling_ae=%s", sop_instance_uid, calling_ae
        )
    return MppsResult(verdict, performed)


def receive_n_set(
    session: Session,
    sop_instance_uid: str,
    modification: Dataset,
    *,
    calling_ae: str,
    at: datetime,
    strict: bool = False,
    offer_new_step: Callable[[Session, ScheduledStep], ScheduledStep] | None = None,
) -> MppsResult:
    """Validate and merge an N-SET; a final status moves the linked steps."""
    # Take the write lock on the row before reading it, so two N-SETs racing on one
    # instance run one after the other (a row lock on PostgreSQL, the write lock on SQLite).
    session.execute(
        update(PerformedStep)
        .where(PerformedStep.sop_instance_uid == sop_instance_uid)
        .values(updated_at=PerformedStep.updated_at)
    )
    performed = session.execute(
        select(PerformedStep)
        .where(PerformedStep.sop_instance_uid == sop_instance_uid)
        .with_for_update()
    ).scalar_one_or_none()
    if performed is None:
        return MppsResult(MppsVerdict(status=NO_SUCH_SOP_INSTANCE))
    stored = Dataset.from_json(performed.dataset_json)
    verdict = check_n_set(stored, frozenset(performed.created_tags), modification, strict=strict)
    if not verdict.ok:
        return MppsResult(verdict, performed)
    if verdict.ignored:
        log.warning(
            "MPPS N-SET attributes ignored mpps=%s calling_ae=%s tags=%s",
            sop_instance_uid,
            calling_ae,
            ",".join(f"{tag:08X}" for tag in verdict.ignored),
        )
    merged = merge_n_set(stored, modification, verdict.ignored)
    before = performed.status
    performed.dataset_json = merged.to_json()
    performed.status = text_of(merged, "PerformedProcedureStepStatus") or before
    performed.updated_at = at
    reason = discontinuation_reason(merged)
    performed.discontinuation_code = reason.code_value if reason is not None else None
    session.add(
        PerformedStepMessage(
            performed_step=performed,
            operation="N-SET",
            calling_ae_title=calling_ae,
            dataset_json=modification.to_json(),
            ignored_tags=list(verdict.ignored),
            received_at=at,
        )
    )
    if performed.status == before:
        return MppsResult(verdict, performed)
    record_event(
        session,
        kind=f"PERFORMED_{performed.status.replace(' ', '_')}",
        actor=calling_ae,
        at=at,
        performed=performed,
        from_status=before,
        to_status=performed.status,
        reason=reason.code_meaning if reason is not None else None,
    )
    if (
        performed.status == PerformedStatus.DISCONTINUED.value
        and reason is not None
        and reason.code_value == WRONG_WORKLIST_ENTRY
    ):
        performed.images_flagged = "incorrect worklist entry selected: correct or reject images"
    for link in performed.links:
        _settle_step(session, link.scheduled_step, performed, calling_ae, at, offer_new_step)
    return MppsResult(verdict, performed)


def _settle_step(
    session: Session,
    step: ScheduledStep,
    performed: PerformedStep,
    actor: str,
    at: datetime,
    offer_new_step: Callable[[Session, ScheduledStep], ScheduledStep] | None,
) -> None:
    """After an MPPS reached a final state, move the step as all its MPPS together say."""
    statuses = [
        PerformedStatus(value)
        for value in session.execute(
            select(PerformedStep.status)
            .join(PerformedStepLink, PerformedStepLink.performed_step_pk == PerformedStep.id)
            .where(PerformedStepLink.scheduled_step_pk == step.id)
        ).scalars()
    ]
    event = step_event_from_performed(statuses)
    if step.status != StepStatus.STARTED.value or event is LifecycleEvent.MPPS_STARTED:
        return  # another MPPS still runs on this step (resumed scanning), or nothing to do
    if event is LifecycleEvent.MPPS_COMPLETED:
        apply_step_event(session, step, event, actor=actor, at=at, performed=performed)
        return
    code = performed.discontinuation_code
    apply_step_event(
        session,
        step,
        LifecycleEvent.MPPS_DISCONTINUED,
        actor=actor,
        at=at,
        performed=performed,
        discontinuation_code=code,
        reason=f"DCM {code}" if code else None,
        details={"images_flagged": performed.images_flagged} if performed.images_flagged else None,
    )
    if offers_new_step(code) and offer_new_step is not None:
        new_step = offer_new_step(session, step)
        record_event(
            session,
            kind="STEP_OFFERED",
            actor=actor,
            at=at,
            step=new_step,
            to_status=new_step.status,
            reason=f"replaces discontinued step {step.sps_id}",
        )
