"""Bookings on a station's day: what is taken, and copies of a step for a new slot."""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.domain.steps import HIDDEN_FROM_EVERY_QUERY, StepStatus


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
        sps_id=sps_id,
        procedure_pk=step.procedure_pk,
        status=StepStatus.SCHEDULED.value,
        station_ae_title=step.station_ae_title,
        station_multi=step.station_multi,
        station_name=step.station_name,
        modality=step.modality,
        start_at=start,
        end_at=start + length,
        patient_id=step.patient_id,
        patient_name_key=step.patient_name_key,
        accession_number=step.accession_number,
        requested_procedure_id=step.requested_procedure_id,
        study_instance_uid=step.study_instance_uid,
        revision=1,
        dataset_json=copy.deepcopy(item).to_json(),
        updated_at=at,
    )
    session.add(new_step)
    session.flush()
    return new_step
