"""Recording what happens to an examination: one row per event, in the change's transaction."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import PerformedStep, ReceivedStudy, ScheduledStep, StepEvent
from mri_pipeline.domain.lifecycle import StepEvent as LifecycleEvent
from mri_pipeline.domain.lifecycle import next_status
from mri_pipeline.domain.steps import StepStatus
from mri_pipeline.services.worklist import record_status

log = logging.getLogger(__name__)


def record_event(
    session: Session,
    *,
    kind: str,
    actor: str,
    at: datetime,
    step: ScheduledStep | None = None,
    performed: PerformedStep | None = None,
    study_instance_uid: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> StepEvent:
    event = StepEvent(
        scheduled_step_pk=step.id if step is not None else None,
        performed_step_pk=performed.id if performed is not None else None,
        accession_number=step.accession_number if step is not None else None,
        study_instance_uid=study_instance_uid,
        kind=kind,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        details=details or {},
        at=at,
    )
    session.add(event)
    return event


def latest_step(session: Session, procedure_pk: int | None) -> ScheduledStep | None:
    """The order's newest scheduled step (a replacement step supersedes the first)."""
    if procedure_pk is None:
        return None
    return session.execute(
        select(ScheduledStep)
        .where(ScheduledStep.procedure_pk == procedure_pk)
        .order_by(ScheduledStep.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def record_study_event(
    session: Session,
    study: ReceivedStudy,
    *,
    kind: str,
    actor: str,
    at: datetime,
    reason: str | None,
    details: dict[str, Any] | None = None,
) -> StepEvent:
    """An event of a received study, on its examination's timeline too; the reason is
    clipped to its column."""
    return record_event(
        session,
        kind=kind,
        actor=actor,
        at=at,
        step=latest_step(session, study.procedure_pk),
        study_instance_uid=study.study_instance_uid,
        reason=reason[:256] if reason else None,
        details=details,
    )


def apply_step_event(
    session: Session,
    step: ScheduledStep,
    event: LifecycleEvent,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    discontinuation_code: str | None = None,
    performed: PerformedStep | None = None,
    details: dict[str, Any] | None = None,
) -> StepStatus:
    """Move ``step`` by ``event`` (raises ``IllegalTransition``) and record the event."""
    current = StepStatus(step.status)
    new = next_status(current, event, discontinuation_code=discontinuation_code)
    if new is not current:
        record_status(session, step, new.value, at=at)
    record_event(
        session,
        kind=event.value,
        actor=actor,
        at=at,
        step=step,
        performed=performed,
        from_status=current.value,
        to_status=new.value,
        reason=reason,
        details=details,
    )
    log.info(
        "step %s accession=%s sps_id=%s %s -> %s actor=%s",
        event.value,
        step.accession_number,
        step.sps_id,
        current.value,
        new.value,
        actor,
    )
    return new


def newest_event_id(session: Session) -> int:
    """The newest event's id: a screen drawn now follows the events after it, so nothing
    that happens between drawing and listening is missed."""
    return int(session.scalar(select(func.max(StepEvent.id))) or 0)
