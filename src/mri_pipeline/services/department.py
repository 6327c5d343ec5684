"""What the department view reads: the waits behind the turnaround figures, and the
queues a person must work through (unassigned studies, studies at risk, and the
reconciliation queues of studies and MPPS that matched no order)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import (
    Assignment,
    PerformedStep,
    PerformedStepLink,
    ReceivedStudy,
    Report,
    RequestedProcedure,
    ScheduledStep,
)
from mri_pipeline.domain.protocols import Priority
from mri_pipeline.domain.reading import IN_HAND, AssignmentState, countdown
from mri_pipeline.domain.steps import StepStatus
from mri_pipeline.domain.turnaround import Interval
from mri_pipeline.services.examinations import reconciliation_queue
from mri_pipeline.services.reading_board import Board, OpenStudy
from mri_pipeline.services.studies import studies_for_a_person

# An order still waits for its scan while one of its steps can still be performed.
WAITING_STEP = (StepStatus.SCHEDULED.value, StepStatus.ARRIVED.value, StepStatus.READY.value)
OPEN_ASSIGNMENT = (AssignmentState.UNASSIGNED.value, *IN_HAND)


def _priority(value: str | None) -> Priority:
    try:
        return Priority(value or Priority.ROUTINE.value)
    except ValueError:
        return Priority.ROUTINE


def scan_waits(session: Session, since: datetime) -> list[Interval]:
    """Referral → scan of each order scanned since ``since``, and of each order still
    waiting (``end`` None). The scan starts with the console's MPPS N-CREATE, else (a
    console without MPPS) with the first image Orthanc received."""
    mpps = (
        select(
            ScheduledStep.procedure_pk.label("procedure_pk"),
            func.min(PerformedStep.created_at).label("at"),
        )
        .join(PerformedStepLink, PerformedStepLink.scheduled_step_pk == ScheduledStep.id)
        .join(PerformedStep, PerformedStep.id == PerformedStepLink.performed_step_pk)
        .group_by(ScheduledStep.procedure_pk)
        .subquery()
    )
    images = (
        select(
            ReceivedStudy.procedure_pk.label("procedure_pk"),
            func.min(ReceivedStudy.first_received_at).label("at"),
        )
        .where(ReceivedStudy.procedure_pk.is_not(None))
        .group_by(ReceivedStudy.procedure_pk)
        .subquery()
    )
    scanned = func.coalesce(mpps.c.at, images.c.at)
    waiting = exists().where(
        ScheduledStep.procedure_pk == RequestedProcedure.id,
        ScheduledStep.status.in_(WAITING_STEP),
    )
    rows = session.execute(
        select(RequestedProcedure.priority, RequestedProcedure.created_at, mpps.c.at, images.c.at)
        .outerjoin(mpps, mpps.c.procedure_pk == RequestedProcedure.id)
        .outerjoin(images, images.c.procedure_pk == RequestedProcedure.id)
        .where(or_(scanned >= since, and_(scanned.is_(None), waiting)))
    ).all()
    return [
        Interval(_priority(priority), referred, _earliest(by_mpps, by_images))
        for priority, referred, by_mpps, by_images in rows
    ]


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    """MPPS first; the images only when no MPPS came (they follow the MPPS anyway)."""
    return first if first is not None else second


def report_turnarounds(session: Session, since: datetime) -> list[Interval]:
    """Images complete → final report of each study reported since ``since``, and of each
    routed study still waiting for its final report (``end`` None)."""
    rows = session.execute(
        select(Assignment.priority, ReceivedStudy.completed_at, Report.final_at)
        .join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
        .outerjoin(Report, Report.study_pk == ReceivedStudy.id)
        .where(
            ReceivedStudy.completed_at.is_not(None),
            or_(Report.final_at >= since, Assignment.state.in_(OPEN_ASSIGNMENT)),
        )
    ).all()
    return [
        Interval(_priority(priority), completed, final)
        for priority, completed, final in rows
        if completed is not None
    ]


def _listed(rows: Iterable[OpenStudy], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "study_instance_uid": row.study_instance_uid,
            "accession_number": row.accession_number,
            "patient_id": row.patient_id,
            "protocol_code": row.protocol_code,
            "priority": row.priority,
            "state": row.state,
            "radiologist": row.radiologist_key,
            "reason": row.reason,
            "completed_at": row.completed_at,
            "escalate_at": row.escalate_at,
            **countdown(row.deadline, row.escalate_at, now),
            "overdue": row.deadline < now,
        }
        for row in rows
    ]


def unassigned(board: Board, now: datetime) -> list[dict[str, Any]]:
    """Routed studies nobody holds: the unassigned list, most urgent first."""
    return _listed(board.pool, now)


def at_risk(board: Board, now: datetime) -> list[dict[str, Any]]:
    """Studies not yet reported whose escalation point has passed, most urgent first."""
    return _listed((row for row in board.everything() if row.escalate_at <= now), now)


def reconciliation(session: Session) -> dict[str, list[dict[str, Any]]]:
    """The reconciliation queues, as ``/api/reconciliation`` answers them."""
    return {
        "performed_steps": reconciliation_queue(session),
        "studies": studies_for_a_person(session),
    }
