"""``/api/procedures/{accession_number}``: the timeline and the radiographers' actions."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from mri_pipeline.api.deps import PrincipalDep, RuntimeDep, SessionDep
from mri_pipeline.domain.safety import SafetyChecklist
from mri_pipeline.services import examinations
from mri_pipeline.services.studies import studies_for_a_person

router = APIRouter(prefix="/api/procedures", tags=["procedures"])
reconciliation_router = APIRouter(prefix="/api/reconciliation", tags=["reconciliation"])


class ActionIn(BaseModel):
    """An action's body; who acts is the logged-in user."""

    model_config = ConfigDict(extra="forbid")


class CancelIn(ActionIn):
    reason: str = Field(min_length=1, max_length=256)


class SafetyIn(ActionIn):
    checklist: SafetyChecklist


class RescheduleIn(ActionIn):
    scheduled_date: date
    scheduled_time: time
    station: str | None = Field(default=None, max_length=16)


class StepStatusOut(BaseModel):
    accession_number: str
    status: str
    missing: list[str] = []


@router.get("/{accession_number}")
def get_timeline(accession_number: str, session: SessionDep) -> dict[str, Any]:
    """The examination: order, scheduled steps, performed steps and every event in order."""
    return examinations.timeline(session, accession_number)


@router.post("/{accession_number}/check-in", response_model=StepStatusOut)
def post_check_in(
    accession_number: str,
    body: ActionIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> StepStatusOut:
    """The patient has arrived: SCHEDULED → ARRIVED."""
    with session.begin():
        status = examinations.check_in(
            session, accession_number, by=principal.username, at=runtime.desk.clock()
        )
    return StepStatusOut(accession_number=accession_number, status=status.value)


@router.post("/{accession_number}/safety", response_model=StepStatusOut)
def post_safety(
    accession_number: str,
    body: SafetyIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> StepStatusOut:
    """MR safety screening; the step becomes READY only when the checklist is complete."""
    with session.begin():
        procedure = examinations.current_step(session, accession_number).procedure
        contrast = (
            runtime.catalogue.protocol(procedure.protocol_code).contrast
            if procedure.protocol_code
            else False
        )
        outcome = examinations.record_safety(
            session,
            accession_number,
            body.checklist,
            contrast=contrast,
            by=principal.username,
            at=runtime.desk.clock(),
        )
    return StepStatusOut(
        accession_number=accession_number, status=outcome.status.value, missing=outcome.missing
    )


@router.post("/{accession_number}/cancel", response_model=StepStatusOut)
def post_cancel(
    accession_number: str,
    body: CancelIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> StepStatusOut:
    """Cancel before any MPPS: the item leaves the worklist."""
    with session.begin():
        status = examinations.cancel(
            session,
            accession_number,
            reason=body.reason,
            by=principal.username,
            at=runtime.desk.clock(),
        )
    return StepStatusOut(accession_number=accession_number, status=status.value)


@router.post("/{accession_number}/no-show", response_model=StepStatusOut)
def post_no_show(
    accession_number: str,
    body: ActionIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> StepStatusOut:
    """The patient did not come: DEPARTED."""
    with session.begin():
        status = examinations.no_show(
            session, accession_number, by=principal.username, at=runtime.desk.clock()
        )
    return StepStatusOut(accession_number=accession_number, status=status.value)


@router.post("/{accession_number}/reschedule", response_model=StepStatusOut)
def post_reschedule(
    accession_number: str,
    body: RescheduleIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> StepStatusOut:
    """Book another slot (and station); the step is SCHEDULED again."""
    with session.begin():
        status = examinations.reschedule(
            session,
            runtime.desk,
            accession_number,
            day=body.scheduled_date,
            start=body.scheduled_time,
            station=body.station,
            by=principal.username,
            at=runtime.desk.clock(),
        )
    return StepStatusOut(accession_number=accession_number, status=status.value)


@reconciliation_router.get("")
def get_reconciliation(session: SessionDep) -> dict[str, list[dict[str, Any]]]:
    """What a person must sort out: MPPS that matched no scheduled step, and studies with
    no order or that disagree with theirs. Neither is routed for reporting by itself."""
    return {
        "performed_steps": examinations.reconciliation_queue(session),
        "studies": studies_for_a_person(session),
    }
