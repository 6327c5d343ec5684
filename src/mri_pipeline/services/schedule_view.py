"""The scanners' day as the radiographers' screen shows it: each station's steps in time
order with their order, patient and received images, and the day's failed QC."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer, joinedload

from mri_pipeline.db.models import (
    ReceivedSeries,
    ReceivedStudy,
    RequestedProcedure,
    ScheduledStep,
)
from mri_pipeline.domain.nodes import DicomNode
from mri_pipeline.domain.protocols import Catalogue
from mri_pipeline.domain.qc import ExamOutcome
from mri_pipeline.services.qc import current_series
from mri_pipeline.services.worklist import steps_of_day

NO_STATION = ""


@dataclass(frozen=True)
class SeriesView:
    """One received series: what QC made of it, and whether it has a thumbnail."""

    series_instance_uid: str
    series_number: int | None
    description: str | None
    images: int
    qc_outcome: str | None
    has_thumbnail: bool
    counts: bool  # False: a later repeat of the same series replaces it


@dataclass(frozen=True)
class ImagesView:
    """The examination's received study and its QC verdict."""

    study_instance_uid: str
    state: str
    qc_verdict: str | None
    qc_summary: str | None
    series: tuple[SeriesView, ...]


@dataclass(frozen=True)
class RedFlag:
    code: str
    label: str


@dataclass(frozen=True)
class ScheduleRow:
    """One scheduled step of the day, with what the radiographer needs to act on it."""

    step_id: int
    accession_number: str | None
    sps_id: str
    station_ae_title: str | None
    start: datetime | None  # the clinic's wall-clock time
    patient_name: str
    patient_id: str | None
    protocol_code: str | None
    protocol_meaning: str | None
    contrast: bool
    priority: str
    indication: str | None  # the request form's label
    red_flags: tuple[RedFlag, ...]
    not_indicated: str | None
    status: str
    safety_checklist: dict[str, Any] | None
    images: ImagesView | None


@dataclass(frozen=True)
class StationDay:
    ae_title: str
    description: str | None
    rows: tuple[ScheduleRow, ...]


@dataclass(frozen=True)
class QcFailure:
    """An examination of the day that QC failed and nobody has accepted yet."""

    study_instance_uid: str
    accession_number: str | None
    patient_name: str | None
    patient_id: str | None
    summary: str | None


def day_schedule(
    session: Session, day: date, catalogue: Catalogue, scanners: Sequence[DicomNode]
) -> list[StationDay]:
    """One section per scanner (in the node table's order, empty ones too), then any
    other station that has steps that day."""
    rows = _rows(session, steps_of_day(session, day), catalogue)
    by_station: dict[str, list[ScheduleRow]] = {node.ae_title: [] for node in scanners}
    for row in rows:
        by_station.setdefault(row.station_ae_title or NO_STATION, []).append(row)
    descriptions = {node.ae_title: node.description for node in scanners}
    return [
        StationDay(ae_title, descriptions.get(ae_title), tuple(station_rows))
        for ae_title, station_rows in by_station.items()
    ]


def rows_of_accession(
    session: Session, day: date, catalogue: Catalogue, accession_number: str
) -> list[ScheduleRow]:
    """The day's steps of one examination (usually one; two after a replacement step)."""
    steps = session.execute(
        select(ScheduledStep)
        .options(joinedload(ScheduledStep.procedure).joinedload(RequestedProcedure.patient))
        .where(
            ScheduledStep.accession_number == accession_number,
            ScheduledStep.start_at >= datetime.combine(day, time.min),
            ScheduledStep.start_at < datetime.combine(day + timedelta(days=1), time.min),
        )
        .order_by(ScheduledStep.start_at, ScheduledStep.id)
    ).scalars()
    return _rows(session, steps, catalogue)


def qc_failures(session: Session, day: date, zone: ZoneInfo) -> list[QcFailure]:
    """Examinations QC failed, received that day or booked for it, not yet accepted."""
    begin = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    booked_that_day = select(ScheduledStep.procedure_pk).where(
        ScheduledStep.start_at >= datetime.combine(day, time.min),
        ScheduledStep.start_at < datetime.combine(day + timedelta(days=1), time.min),
    )
    studies = session.execute(
        select(ReceivedStudy)
        .options(joinedload(ReceivedStudy.procedure).joinedload(RequestedProcedure.patient))
        .where(
            ReceivedStudy.qc_verdict == ExamOutcome.FAILED.value,
            or_(
                (ReceivedStudy.first_received_at >= begin)
                & (ReceivedStudy.first_received_at < end),
                ReceivedStudy.procedure_pk.in_(booked_that_day),
            ),
        )
        .order_by(ReceivedStudy.first_received_at, ReceivedStudy.id)
    ).scalars()
    return [
        QcFailure(
            study_instance_uid=study.study_instance_uid,
            accession_number=study.accession_number,
            patient_name=(
                study.procedure.patient.name if study.procedure is not None else study.patient_name
            ),
            patient_id=study.patient_id,
            summary=study.qc_summary,
        )
        for study in studies
    ]


def _red_flags(catalogue: Catalogue, procedure: RequestedProcedure) -> tuple[RedFlag, ...]:
    flags = catalogue.red_flags(procedure.indication, procedure.red_flags or [])
    return tuple(RedFlag(flag.code, flag.label) for flag in flags)


def _rows(
    session: Session, steps: Iterable[ScheduledStep], catalogue: Catalogue
) -> list[ScheduleRow]:
    steps = list(steps)
    images = _images(session, {step.procedure_pk for step in steps})
    rows = []
    for step in steps:
        procedure = step.procedure
        protocol = catalogue.find_protocol(procedure.protocol_code)
        rows.append(
            ScheduleRow(
                step_id=step.id,
                accession_number=step.accession_number,
                sps_id=step.sps_id,
                station_ae_title=step.station_ae_title,
                start=step.start_at,
                patient_name=procedure.patient.name,
                patient_id=step.patient_id,
                protocol_code=procedure.protocol_code,
                protocol_meaning=protocol.meaning if protocol is not None else None,
                contrast=protocol.contrast if protocol is not None else False,
                priority=procedure.priority,
                indication=catalogue.indication_label(procedure.indication),
                red_flags=_red_flags(catalogue, procedure),
                not_indicated=procedure.not_indicated,
                status=step.status,
                safety_checklist=dict(step.safety_checklist) if step.safety_checklist else None,
                images=images.get(step.procedure_pk),
            )
        )
    return rows


def _images(session: Session, procedure_pks: set[int]) -> dict[int, ImagesView]:
    """Each order's newest received study with its series (thumbnails not loaded)."""
    if not procedure_pks:
        return {}
    studies = list(
        session.execute(
            select(ReceivedStudy)
            .where(ReceivedStudy.procedure_pk.in_(procedure_pks))
            .order_by(ReceivedStudy.last_received_at, ReceivedStudy.id)
        ).scalars()
    )
    if not studies:
        return {}
    series_rows = session.execute(
        select(ReceivedSeries, ReceivedSeries.thumbnail_png.is_not(None))
        .options(defer(ReceivedSeries.thumbnail_png))
        .where(ReceivedSeries.study_pk.in_([s.id for s in studies]))
        .order_by(ReceivedSeries.series_number, ReceivedSeries.id)
    ).all()
    series_of: dict[int, list[tuple[ReceivedSeries, bool]]] = {}
    for series, has_thumbnail in series_rows:
        series_of.setdefault(series.study_pk, []).append((series, bool(has_thumbnail)))
    found: dict[int, ImagesView] = {}
    for study in studies:  # oldest first: the newest study of an order wins
        if study.procedure_pk is None:
            continue
        members = series_of.get(study.id, [])
        counted = {s.id for s in current_series(s for s, _ in members)}
        found[study.procedure_pk] = ImagesView(
            study_instance_uid=study.study_instance_uid,
            state=study.state,
            qc_verdict=study.qc_verdict,
            qc_summary=study.qc_summary,
            series=tuple(
                SeriesView(
                    series_instance_uid=series.series_instance_uid,
                    series_number=series.series_number,
                    description=series.series_description,
                    images=series.instance_count,
                    qc_outcome=series.qc_outcome,
                    has_thumbnail=has_thumbnail,
                    counts=series.id in counted,
                )
                for series, has_thumbnail in members
            ),
        )
    return found
