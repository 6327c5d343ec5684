"""Radiographers' actions on an examination, and its timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import (
    PerformedStep,
    PerformedStepLink,
    RequestedProcedure,
    ScheduledStep,
    StepEvent,
)
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.lifecycle import StepEvent as LifecycleEvent
from mri_pipeline.domain.safety import SafetyChecklist, missing_items
from mri_pipeline.domain.scheduling import overlapping
from mri_pipeline.domain.steps import HIDDEN_FROM_EVERY_QUERY, StepStatus
from mri_pipeline.services.booking import station_bookings, steps_of_accession
from mri_pipeline.services.events import apply_step_event, record_event
from mri_pipeline.services.orders import OrderDesk
from mri_pipeline.services.worklist import write_item


class UnknownExamination(DomainError):
    """No order with that accession number."""


class ScheduleConflict(DomainError):
    """The requested slot is taken or not bookable."""


def current_step(session: Session, accession_number: str) -> ScheduledStep:
    """The step radiographers act on: the newest one still open, else the newest."""
    steps = steps_of_accession(session, accession_number)
    if not steps:
        raise UnknownExamination(f"no examination with accession number {accession_number}")
    open_steps = [s for s in steps if s.status not in HIDDEN_FROM_EVERY_QUERY]
    return (open_steps or steps)[-1]


def check_in(session: Session, accession_number: str, *, by: str, at: datetime) -> StepStatus:
    step = current_step(session, accession_number)
    return apply_step_event(session, step, LifecycleEvent.CHECK_IN, actor=by, at=at)


@dataclass(frozen=True)
class SafetyOutcome:
    status: StepStatus
    missing: list[str]


def record_safety(
    session: Session,
    accession_number: str,
    checklist: SafetyChecklist,
    *,
    contrast: bool,
    by: str,
    at: datetime,
) -> SafetyOutcome:
    """Store the answers; the step becomes READY only when nothing is missing."""
    step = current_step(session, accession_number)
    step.safety_checklist = checklist.model_dump(mode="json")
    missing = missing_items(checklist, contrast=contrast)
    if missing:
        record_event(
            session,
            kind="SAFETY_INCOMPLETE",
            actor=by,
            at=at,
            step=step,
            from_status=step.status,
            to_status=step.status,
            reason="; ".join(missing),
        )
        return SafetyOutcome(StepStatus(step.status), missing)
    status = apply_step_event(session, step, LifecycleEvent.SAFETY_CLEARED, actor=by, at=at)
    return SafetyOutcome(status, [])


def cancel(
    session: Session, accession_number: str, *, reason: str, by: str, at: datetime
) -> StepStatus:
    step = current_step(session, accession_number)
    return apply_step_event(session, step, LifecycleEvent.CANCEL, actor=by, at=at, reason=reason)


def no_show(session: Session, accession_number: str, *, by: str, at: datetime) -> StepStatus:
    step = current_step(session, accession_number)
    return apply_step_event(
        session, step, LifecycleEvent.NO_SHOW, actor=by, at=at, reason="patient did not attend"
    )


def reschedule(
    session: Session,
    desk: OrderDesk,
    accession_number: str,
    *,
    day: date,
    start: time,
    station: str | None,
    by: str,
    at: datetime,
) -> StepStatus:
    """Move the step to another slot (and station); it is SCHEDULED again."""
    step = current_step(session, accession_number)
    station = station or step.station_ae_title
    node = desk.nodes.get(station or "")
    if node is None or node not in desk.nodes.scanners("MR"):
        raise ScheduleConflict(f"unknown MR station {station!r}")
    if day < desk.local_now().date():
        raise ScheduleConflict("the new date is in the past")
    length = step.end_at - step.start_at if step.end_at and step.start_at else timedelta(minutes=30)
    new_start = datetime.combine(day, start)
    others = [
        booking
        for booking in station_bookings(session, node.ae_title, day)
        if booking != (step.start_at, step.end_at)
    ]
    clash = overlapping(others, new_start, int(length.total_seconds() // 60))
    if clash is not None:
        raise ScheduleConflict(f"{node.ae_title} is booked {clash[0]:%H:%M}-{clash[1]:%H:%M}")
    before = (step.station_ae_title, step.start_at)
    status = apply_step_event(
        session,
        step,
        LifecycleEvent.RESCHEDULE,
        actor=by,
        at=at,
        details={
            "from": f"{before[0]} {before[1]:%Y-%m-%d %H:%M}" if before[1] else before[0],
            "to": f"{node.ae_title} {new_start:%Y-%m-%d %H:%M}",
        },
    )
    item = Dataset.from_json(step.dataset_json)
    sps = item.ScheduledProcedureStepSequence[0]
    sps.ScheduledStationAETitle = node.ae_title
    sps.ScheduledStationName = node.station_name or ""
    sps.ScheduledProcedureStepLocation = node.location or ""
    sps.ScheduledProcedureStepStartDate = new_start.strftime("%Y%m%d")
    sps.ScheduledProcedureStepStartTime = new_start.strftime("%H%M%S")
    write_item(step, item, at=at)
    step.end_at = new_start + length
    return status


def timeline(session: Session, accession_number: str) -> dict[str, Any]:
    """The examination as the API shows it: order, steps, performed steps, events."""
    procedure = session.execute(
        select(RequestedProcedure).where(RequestedProcedure.accession_number == accession_number)
    ).scalar_one_or_none()
    if procedure is None:
        raise UnknownExamination(f"no examination with accession number {accession_number}")
    steps = list(procedure.steps)
    step_ids = [s.id for s in steps]
    performed = list(
        session.execute(
            select(PerformedStep)
            .where(
                PerformedStep.id.in_(
                    select(PerformedStepLink.performed_step_pk).where(
                        PerformedStepLink.scheduled_step_pk.in_(step_ids)
                    )
                )
            )
            .order_by(PerformedStep.id)
        ).scalars()
    )
    performed_ids = [p.id for p in performed]
    events = list(
        session.execute(
            select(StepEvent)
            .where(
                (StepEvent.scheduled_step_pk.in_(step_ids))
                | (StepEvent.performed_step_pk.in_(performed_ids))
            )
            .order_by(StepEvent.at, StepEvent.id)
        ).scalars()
    )
    return {
        "accession_number": procedure.accession_number,
        "requested_procedure_id": procedure.requested_procedure_id,
        "study_instance_uid": procedure.study_instance_uid,
        "patient_id": procedure.patient.patient_id,
        "protocol_code": procedure.protocol_code,
        "priority": procedure.priority,
        "indication": procedure.indication,
        "red_flags": list(procedure.red_flags or []),
        "steps": [
            {
                "sps_id": s.sps_id,
                "status": s.status,
                "station_ae_title": s.station_ae_title,
                "scheduled_start": s.start_at,
                "safety_checklist": s.safety_checklist,
            }
            for s in steps
        ],
        "performed_steps": [performed_summary(p) for p in performed],
        "events": [event_summary(e) for e in events],
    }


def performed_summary(performed: PerformedStep) -> dict[str, Any]:
    return {
        "sop_instance_uid": performed.sop_instance_uid,
        "status": performed.status,
        "calling_ae_title": performed.calling_ae_title,
        "performed_station_ae_title": performed.performed_station_ae_title,
        "study_instance_uid": performed.study_instance_uid,
        "discontinuation_code": performed.discontinuation_code,
        "images_flagged": performed.images_flagged,
        "matched": performed.matched,
        "messages": len(performed.history),
        "created_at": performed.created_at,
        "updated_at": performed.updated_at,
    }


def event_summary(event: StepEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "kind": event.kind,
        "actor": event.actor,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "reason": event.reason,
        "details": event.details,
    }


def reconciliation_queue(session: Session) -> list[dict[str, Any]]:
    """MPPS that match no scheduled step: a person must link or reject them."""
    unmatched = session.execute(
        select(PerformedStep).where(PerformedStep.matched.is_(False)).order_by(PerformedStep.id)
    ).scalars()
    return [performed_summary(p) for p in unmatched]
