"""``/api/worklist``: the scheduled steps, as the radiographers' list shows them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from mri_pipeline.api.deps import RuntimeDep, SessionDep
from mri_pipeline.domain.steps import StepStatus
from mri_pipeline.services.worklist import steps_of_day

router = APIRouter(prefix="/api/worklist", tags=["worklist"])


class WorklistEntry(BaseModel):
    accession_number: str | None
    sps_id: str
    requested_procedure_id: str | None
    study_instance_uid: str | None
    patient_id: str | None
    patient_name: str
    station_ae_title: str | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    status: str
    protocol_code: str | None
    priority: str
    indication: str | None
    red_flags: list[str]
    not_indicated: str | None


@router.get("", response_model=list[WorklistEntry])
def list_worklist(
    session: SessionDep,
    runtime: RuntimeDep,
    day: Annotated[date | None, Query(alias="date", description="clinic-local day")] = None,
    station: Annotated[str | None, Query(max_length=16)] = None,
    status: StepStatus | None = None,
) -> list[WorklistEntry]:
    """Steps of one day (default today), optionally for one station and one status."""
    if station is not None and runtime.nodes.get(station) is None:
        raise HTTPException(422, detail=f"unknown station {station!r}")
    zone = runtime.desk.clinic_timezone
    day = day or runtime.desk.local_now().date()
    steps = steps_of_day(
        session, day, station=station, status=status.value if status is not None else None
    )
    return [
        WorklistEntry(
            accession_number=step.accession_number,
            sps_id=step.sps_id,
            requested_procedure_id=step.requested_procedure_id,
            study_instance_uid=step.study_instance_uid,
            patient_id=step.patient_id,
            patient_name=step.procedure.patient.name,
            station_ae_title=step.station_ae_title,
            scheduled_start=step.start_at.replace(tzinfo=zone) if step.start_at else None,
            scheduled_end=step.end_at.replace(tzinfo=zone) if step.end_at else None,
            status=step.status,
            protocol_code=step.procedure.protocol_code,
            priority=step.procedure.priority,
            indication=step.procedure.indication,
            red_flags=list(step.procedure.red_flags or []),
            not_indicated=step.procedure.not_indicated,
        )
        for step in steps
    ]
