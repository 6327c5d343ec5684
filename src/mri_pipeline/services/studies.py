"""Received studies as the API and the screens show them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import ReceivedSeries, ReceivedStudy, StepEvent
from mri_pipeline.domain.reconciliation import Reconciliation
from mri_pipeline.services.examinations import UnknownExamination, event_summary


class UnknownStudy(UnknownExamination):
    """No study with that Study Instance UID has been received."""


def study_summary(study: ReceivedStudy) -> dict[str, Any]:
    return {
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "patient_id": study.patient_id,
        "reconciliation": study.reconciliation,
        "reconciliation_note": study.reconciliation_note,
        "state": study.state,
        "state_note": study.state_note,
        "completion_basis": study.completion_basis,
        "stable": study.stable,
        "instances": study.instance_count,
        "first_received_at": study.first_received_at,
        "last_received_at": study.last_received_at,
        "completed_at": study.completed_at,
        "qc_verdict": study.qc_verdict,
        "qc_summary": study.qc_summary,
        "orthanc_id": study.orthanc_id,
    }


def series_summary(series: ReceivedSeries) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "series_number": series.series_number,
        "series_description": series.series_description,
        "protocol_name": series.protocol_name,
        "modality": series.modality,
        "instances": series.instance_count,
        "last_received_at": series.last_received_at,
        "qc_outcome": series.qc_outcome,
    }


def find_study(session: Session, study_instance_uid: str) -> ReceivedStudy:
    study = session.execute(
        select(ReceivedStudy).where(ReceivedStudy.study_instance_uid == study_instance_uid)
    ).scalar_one_or_none()
    if study is None:
        raise UnknownStudy(f"no study received with Study Instance UID {study_instance_uid}")
    return study


def thumbnail(session: Session, study_instance_uid: str, series_instance_uid: str) -> bytes:
    """The mid-slice PNG QC made of a series."""
    study = find_study(session, study_instance_uid)
    for series in study.series:
        if series.series_instance_uid == series_instance_uid and series.thumbnail_png:
            return series.thumbnail_png
    raise UnknownStudy(f"no thumbnail yet for series {series_instance_uid}")


def study_detail(session: Session, study_instance_uid: str) -> dict[str, Any]:
    """One study: where it stands, its series and what happened to it."""
    study = find_study(session, study_instance_uid)
    events = session.execute(
        select(StepEvent)
        .where(StepEvent.study_instance_uid == study_instance_uid)
        .order_by(StepEvent.at, StepEvent.id)
    ).scalars()
    return {
        **study_summary(study),
        "series": [series_summary(s) for s in study.series],
        "events": [event_summary(e) for e in events],
    }


def list_studies(
    session: Session,
    *,
    state: str | None = None,
    reconciliation: str | None = None,
    accession_number: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Studies, newest first, narrowed by state, reconciliation outcome or accession."""
    statement = select(ReceivedStudy)
    if state is not None:
        statement = statement.where(ReceivedStudy.state == state)
    if reconciliation is not None:
        statement = statement.where(ReceivedStudy.reconciliation == reconciliation)
    if accession_number is not None:
        statement = statement.where(ReceivedStudy.accession_number == accession_number)
    statement = statement.order_by(ReceivedStudy.last_received_at.desc(), ReceivedStudy.id.desc())
    return [study_summary(s) for s in session.execute(statement.limit(limit)).scalars()]


def studies_for_a_person(session: Session) -> list[dict[str, Any]]:
    """Studies with no order, or that disagree with their order: never merged silently."""
    flagged = session.execute(
        select(ReceivedStudy)
        .where(ReceivedStudy.reconciliation != Reconciliation.MATCHED.value)
        .order_by(ReceivedStudy.first_received_at, ReceivedStudy.id)
    ).scalars()
    return [study_summary(s) for s in flagged]
