"""Bookings on a station's day: what is taken, and copies of a step for a new slot."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.domain.steps import HIDDEN_FROM_EVERY_QUERY, StepStatus
from mri_pipeline.domain.worklist_item import item_index


def station_bookings(
    session: Session, station: str, around: date
) -> list[tuple[datetime, datetime]]:
    """Start and end of every open step on ``station`` from the day before ``around`` on."""
    rows = session.execute(
        select(ScheduledStep.start_at, ScheduledStep.end_at).where(
            ScheduledStep.station_ae_title == station,
            ScheduledStep.start_at >= datetime.combine(around - timedelta(days=1), time.min),
            ScheduledStep.status.not_in([s.value for s in HIDDEN_FROM_EVERY_QUERY]),
        )
    ).all()
    return [(start, end) for start, end in rows if start is not None and end is not None]


def steps_of_accession(session: Session, accession_number: str) -> list[ScheduledStep]:
    return list(
        session.execute(
            select(ScheduledStep)
            .where(ScheduledStep.accession_number == accession_number)
            .order_by(ScheduledStep.id)
            .with_for_update()
        ).scalars()
    )


def copy_step_for_rescheduling(
    session: Session, step: ScheduledStep, *, sps_id: str, start: datetime, at: datetime
) -> ScheduledStep:
    """A new SCHEDULED step of the same procedure (new SPS ID, new start)."""
    item = Dataset.from_json(step.dataset_json)
    sps = item.ScheduledProcedureStepSequence[0]
    sps.ScheduledProcedureStepID = sps_id
    sps.ScheduledProcedureStepStartDate = start.strftime("%Y%m%d")
    sps.ScheduledProcedureStepStartTime = start.strftime("%H%M%S")
    sps.ScheduledProcedureStepStatus = StepStatus.SCHEDULED.value
    length = (
        (step.end_at - step.start_at) if step.end_at and step.start_at else timedelta(minutes=30)
    )
    new_step = ScheduledStep(
        procedure_pk=step.procedure_pk,
        end_at=start + length,
        revision=1,
        updated_at=at,
        **item_index(item),
    )
    session.add(new_step)
    session.flush()
    return new_step
