"""Ingest: follow what Orthanc receives, tie each study to its order, know when it is complete.

Orthanc's change log is read from a cursor kept in the database. Everything one page of
changes teaches us (studies, series, instances, stable events) is written in the same
transaction as the new cursor, so a worker killed at any moment resumes from the last
committed page and records nothing twice (SOP, series and study UIDs are unique).

Completeness is judged separately, on every pass, for studies still receiving: a study
whose MPPS is COMPLETED and whose referenced instances are all stored becomes ready for
reading at once; Orthanc's stable-study event is the fallback for consoles without MPPS.
The ``on_ready`` hooks are the seam where QC and routing plug in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from sqlalchemy import func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from mri_pipeline.db.models import (
    IngestCursor,
    Patient,
    PerformedStep,
    PerformedStepLink,
    PerformedStepMessage,
    ReceivedInstance,
    ReceivedSeries,
    ReceivedStudy,
    RequestedProcedure,
    ScheduledStep,
)
from mri_pipeline.domain.mpps import PerformedStatus, referenced_instances
from mri_pipeline.domain.reconciliation import (
    OrderFacts,
    PerformedFacts,
    Readiness,
    Reconciliation,
    StudyHeader,
    judge_completeness,
    reconcile,
)
from mri_pipeline.orthanc.client import (
    NEW_INSTANCE,
    STABLE_STUDY,
    Change,
    OrthancClient,
    Resource,
)
from mri_pipeline.services.events import latest_step, record_event, record_study_event
from mri_pipeline.services.polling import poll_until_stopped

log = logging.getLogger(__name__)

# MPPS messages whose transactions may commit after a newer one's: more than the DICOM
# server's associations at once.
MPPS_LOOKBACK = 256

Clock = Callable[[], datetime]
ReadyHook = Callable[[Session, ReceivedStudy], None]

CURSOR_NAME = "orthanc-changes"
ACTOR = "ingest"


class StudyState(StrEnum):
    RECEIVING = "receiving"
    READY_FOR_READING = "ready_for_reading"
    DISCONTINUED = "discontinued"


@dataclass
class PassReport:
    """What one pass over the change log did."""

    changes: int = 0
    new_instances: int = 0
    new_studies: int = 0
    ready: list[str] = field(default_factory=list)
    more: bool = False  # Orthanc has more changes waiting


def _clip(value: str | None, length: int) -> str | None:
    """Values from the images go into bounded columns: a hostile header must not stop ingest."""
    if value is None:
        return None
    value = value.strip()
    return value[:length] or None


def _integer(value: str | None) -> int | None:
    try:
        return int((value or "").strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class _Page:
    """One page of changes and what Orthanc told us about the resources it names."""

    changes: list[Change]
    instances: list[Resource]
    series: dict[str, Resource]  # the series not recorded yet
    studies: dict[str, Resource]  # the studies not recorded yet
    stable_studies: set[str]
    next_cursor: int
    more: bool


class Ingest:
    """One ingest worker. ``run_pass`` is one step; ``run`` loops until stopped."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        orthanc: OrthancClient,
        *,
        clock: Clock,
        batch_size: int = 500,
        on_ready: Sequence[ReadyHook] = (),
    ) -> None:
        self.sessions = sessions
        self.orthanc = orthanc
        self.clock = clock
        self.batch_size = batch_size
        self.on_ready = list(on_ready)
        self._mpps_mark: int | None = None  # newest MPPS message seen; None: none yet
        self._mpps_seen: set[int] = set()  # message ids seen within MPPS_LOOKBACK of the mark

    # -- the change log -----------------------------------------------------------------

    def cursor(self) -> int:
        with self.sessions() as session:
            return read_cursor(session)

    def _fetch(self, since: int) -> _Page:
        page = self.orthanc.changes(since, self.batch_size)
        if not page.changes and page.last < since:
            # Orthanc's index was replaced (a new database): its log starts again at 1.
            log.warning(
                "Orthanc change log restarted (last=%s, cursor=%s): reading it from the start",
                page.last,
                since,
            )
            return _Page([], [], {}, {}, set(), 0, True)
        new_instances = [c.orthanc_id for c in page.changes if c.change_type == NEW_INSTANCE]
        stable = {c.orthanc_id for c in page.changes if c.change_type == STABLE_STUDY}
        instances = [r for r in self.orthanc.describe(new_instances) if r.level == "Instance"]
        # Only what we have not recorded yet is described: Orthanc IDs never change.
        parents = {i.parent for i in instances if i.parent}
        with self.sessions() as session:
            known_series = _known(session, ReceivedSeries.orthanc_id, parents)
            series = {
                r.orthanc_id: r for r in self.orthanc.describe(sorted(parents - known_series))
            }
            study_ids = {s.parent for s in series.values() if s.parent} | stable
            known_studies = _known(session, ReceivedStudy.orthanc_id, study_ids)
        studies = {
            r.orthanc_id: r for r in self.orthanc.describe(sorted(study_ids - known_studies))
        }
        next_cursor = page.changes[-1].seq if page.changes else since
        return _Page(
            page.changes,
            instances,
            series,
            studies,
            stable,
            next_cursor,
            more=not page.done,
        )

    def run_pass(self) -> PassReport:
        """Read one page of changes, record it, then judge the studies still receiving."""
        since = self.cursor()
        page = self._fetch(since)
        report = PassReport(changes=len(page.changes), more=page.more)
        touched: set[int] = set()
        changed = bool(page.changes) or page.next_cursor != since
        if changed and not self._commit_page(page, since, report, touched):
            return report
        report.ready = self.judge(touched | self._mpps_changed())
        return report

    def _commit_page(self, page: _Page, since: int, report: PassReport, touched: set[int]) -> bool:
        """Record the page and move the cursor in one transaction; False if another worker
        recorded it first."""
        with self.sessions.begin() as session:
            lock = select(IngestCursor).where(IngestCursor.name == CURSOR_NAME).with_for_update()
            cursor = session.execute(lock).scalar_one_or_none()
            if cursor is None:
                # The first page ever: workers starting together must not both insert it.
                _insert_ignoring_conflict(
                    session, IngestCursor, name=CURSOR_NAME, last_seq=0, updated_at=self.clock()
                )
                cursor = session.execute(lock).scalar_one()
            if cursor.last_seq != since:
                report.more = True  # another worker took this page; read again
                return False
            touched |= self._record(session, page, report)
            cursor.last_seq = page.next_cursor
            cursor.updated_at = self.clock()
        return True

    # -- recording ------------------------------------------------------------------------

    def _record(self, session: Session, page: _Page, report: PassReport) -> set[int]:
        """Write what the page taught us; returns the studies it touched."""
        now = self.clock()
        series = self._series(session, page, self._studies(session, page, now, report), now)
        studies = _rows_by_orthanc_id(session, ReceivedStudy, page.stable_studies)
        touched: set[int] = set()
        uids = [i.tag("SOPInstanceUID") for i in page.instances]
        known = set(
            session.execute(
                select(ReceivedInstance.sop_instance_uid).where(
                    ReceivedInstance.sop_instance_uid.in_([u for u in uids if u])
                )
            ).scalars()
        )
        rows: list[dict[str, Any]] = []
        for instance in page.instances:
            sop_uid = _clip(instance.tag("SOPInstanceUID"), 64)
            parent = series.get(instance.parent or "")
            if sop_uid is None or sop_uid in known or parent is None:
                continue
            known.add(sop_uid)
            rows.append(
                {
                    "study_pk": parent.study_pk,
                    "series_pk": parent.id,
                    "sop_instance_uid": sop_uid,
                    "orthanc_id": instance.orthanc_id,
                    "instance_number": _integer(instance.tag("InstanceNumber")),
                    "received_at": now,
                }
            )
            parent.instance_count += 1
            parent.last_received_at = now
            parent.study.instance_count += 1
            parent.study.last_received_at = now
            touched.add(parent.study_pk)
            report.new_instances += 1
        if rows:  # one multi-row INSERT: instances are many, and need no ORM identity
            session.execute(insert(ReceivedInstance), rows)
        for study in studies.values():
            if not study.stable:
                study.stable = True
                touched.add(study.id)
                log.info("study stable in Orthanc study_uid=%s", study.study_instance_uid)
        return touched

    def _studies(
        self, session: Session, page: _Page, now: datetime, report: PassReport
    ) -> dict[str, ReceivedStudy]:
        """Orthanc study ID → our row for the page's studies, creating (and reconciling)
        the new ones."""
        wanted = {
            r.orthanc_id: r for r in page.studies.values() if r.tag("StudyInstanceUID") is not None
        }
        uids = [str(r.tag("StudyInstanceUID")) for r in wanted.values()]
        rows = {
            row.study_instance_uid: row
            for row in session.execute(
                select(ReceivedStudy).where(ReceivedStudy.study_instance_uid.in_(uids))
            ).scalars()
        }
        parents = {r.parent for r in page.series.values() if r.parent}
        by_orthanc_id = _rows_by_orthanc_id(session, ReceivedStudy, parents - wanted.keys())
        for orthanc_id, resource in wanted.items():
            uid = str(_clip(resource.tag("StudyInstanceUID"), 64))
            row = rows.get(uid)
            if row is None:
                row = self._new_study(session, resource, uid, now)
                rows[uid] = row
                report.new_studies += 1
            by_orthanc_id[orthanc_id] = row
        return by_orthanc_id

    def _new_study(
        self, session: Session, resource: Resource, uid: str, now: datetime
    ) -> ReceivedStudy:
        header = StudyHeader(
            study_instance_uid=uid,
            accession_number=_clip(resource.tag("AccessionNumber"), 16),
            patient_id=_clip(resource.patient_tags.get("PatientID"), 64),
            patient_name=_clip(resource.patient_tags.get("PatientName"), 324),
        )
        verdict = reconcile(
            header,
            _order_by(session, RequestedProcedure.accession_number, header.accession_number),
            _order_by(session, RequestedProcedure.study_instance_uid, uid),
        )
        study = ReceivedStudy(
            study_instance_uid=uid,
            orthanc_id=resource.orthanc_id,
            accession_number=header.accession_number,
            patient_id=header.patient_id,
            patient_name=header.patient_name,
            procedure_pk=verdict.procedure_pk,
            reconciliation=verdict.outcome.value,
            reconciliation_note=_clip(verdict.note, 512),
            state=StudyState.RECEIVING.value,
            stable=False,
            instance_count=0,
            first_received_at=now,
            last_received_at=now,
        )
        session.add(study)
        session.flush()
        step = latest_step(session, verdict.procedure_pk)
        kind = {
            Reconciliation.MATCHED: "STUDY_RECEIVING",
            Reconciliation.MISMATCH: "STUDY_MISMATCH",
            Reconciliation.UNMATCHED: "STUDY_UNMATCHED",
        }[verdict.outcome]
        record_event(
            session,
            kind=kind,
            actor=ACTOR,
            at=now,
            step=step,
            study_instance_uid=uid,
            reason=_clip(verdict.note, 256),
            details={"accession_number": header.accession_number, "orthanc_id": study.orthanc_id},
        )
        level = logging.INFO if verdict.outcome is Reconciliation.MATCHED else logging.WARNING
        log.log(
            level,
            "study %s study_uid=%s accession=%s patient_id=%s",
            verdict.outcome.value,
            uid,
            header.accession_number,
            header.patient_id,
        )
        return study

    def _series(
        self,
        session: Session,
        page: _Page,
        studies: dict[str, ReceivedStudy],
        now: datetime,
    ) -> dict[str, ReceivedSeries]:
        """Orthanc series ID → our row, creating the new ones."""
        uids = [r.tag("SeriesInstanceUID") for r in page.series.values()]
        rows = {
            row.series_instance_uid: row
            for row in session.execute(
                select(ReceivedSeries).where(
                    ReceivedSeries.series_instance_uid.in_([u for u in uids if u])
                )
            ).scalars()
        }
        parents = {i.parent for i in page.instances if i.parent}
        by_orthanc_id = _rows_by_orthanc_id(session, ReceivedSeries, parents - page.series.keys())
        for orthanc_id, resource in page.series.items():
            uid = _clip(resource.tag("SeriesInstanceUID"), 64)
            study = studies.get(resource.parent or "")
            if uid is None or study is None:
                continue
            row = rows.get(uid)
            if row is None:
                row = ReceivedSeries(
                    study=study,
                    series_instance_uid=uid,
                    orthanc_id=orthanc_id,
                    modality=_clip(resource.tag("Modality"), 16),
                    series_number=_integer(resource.tag("SeriesNumber")),
                    series_description=_clip(resource.tag("SeriesDescription"), 64),
                    protocol_name=_clip(resource.tag("ProtocolName"), 64),
                    instance_count=0,
                    last_received_at=now,
                )
                session.add(row)
                session.flush()
                rows[uid] = row
            by_orthanc_id[orthanc_id] = row
        return by_orthanc_id

    # -- completeness ---------------------------------------------------------------------

    def _mpps_changed(self) -> set[int]:
        """Studies whose MPPS changed since the last pass (every study on the first pass).

        Every N-CREATE and N-SET adds a ``performed_step_messages`` row, so MPPS traffic
        from another process is seen without polling studies. Ids are handed out before
        their transactions commit, and on PostgreSQL two consoles' messages can commit out
        of order: a message numbered below the newest seen may appear later. So the ids of
        the last ``MPPS_LOOKBACK`` are read again each pass and only unseen ones count.
        """
        with self.sessions() as session:
            newest = session.scalar(select(func.max(PerformedStepMessage.id))) or 0
            low = max(0, max(self._mpps_mark or 0, newest) - MPPS_LOOKBACK)
            recent = set(
                session.execute(
                    select(PerformedStepMessage.id).where(PerformedStepMessage.id > low)
                ).scalars()
            )
            fresh = sorted(recent - self._mpps_seen)
            open_studies = select(ReceivedStudy.id).where(
                ReceivedStudy.reconciliation == Reconciliation.MATCHED.value,
                ReceivedStudy.state.in_(
                    [StudyState.RECEIVING.value, StudyState.DISCONTINUED.value]
                ),
            )
            if self._mpps_mark is None:
                candidates = set(session.execute(open_studies).scalars())
            elif fresh:
                changed = select(PerformedStepMessage.performed_step_pk).where(
                    PerformedStepMessage.id.in_(fresh)
                )
                procedures = (
                    select(ScheduledStep.procedure_pk)
                    .join(
                        PerformedStepLink, PerformedStepLink.scheduled_step_pk == ScheduledStep.id
                    )
                    .where(PerformedStepLink.performed_step_pk.in_(changed))
                )
                study_uids = select(PerformedStep.study_instance_uid).where(
                    PerformedStep.id.in_(changed)
                )
                candidates = set(
                    session.execute(
                        open_studies.where(
                            or_(
                                ReceivedStudy.procedure_pk.in_(procedures),
                                ReceivedStudy.study_instance_uid.in_(study_uids),
                            )
                        )
                    ).scalars()
                )
            else:
                candidates = set()
        self._mpps_mark = newest
        self._mpps_seen = {i for i in self._mpps_seen | recent if i > low}
        return candidates

    def judge(self, study_pks: Iterable[int]) -> list[str]:
        """Judge the completeness of these studies; returns the UIDs that became ready."""
        ready: list[str] = []
        for study_pk in sorted(study_pks):
            with self.sessions.begin() as session:
                study = session.execute(
                    select(ReceivedStudy)
                    .where(
                        ReceivedStudy.id == study_pk,
                        ReceivedStudy.reconciliation == Reconciliation.MATCHED.value,
                        ReceivedStudy.state.in_(
                            [StudyState.RECEIVING.value, StudyState.DISCONTINUED.value]
                        ),
                    )
                    .with_for_update(skip_locked=True)
                ).scalar_one_or_none()
                if study is not None and self._judge(session, study):
                    ready.append(study.study_instance_uid)
        return ready

    def _judge(self, session: Session, study: ReceivedStudy) -> bool:
        performed = _performed_facts(session, study)
        received: set[str] = set()
        if performed and all(p.status is not PerformedStatus.IN_PROGRESS for p in performed):
            received = set(
                session.execute(
                    select(ReceivedInstance.sop_instance_uid).where(
                        ReceivedInstance.study_pk == study.id
                    )
                ).scalars()
            )
        verdict = judge_completeness(performed, received, stable=study.stable)
        now = self.clock()
        if verdict.readiness is Readiness.DISCONTINUED:
            if study.state != StudyState.DISCONTINUED.value:
                study.state = StudyState.DISCONTINUED.value
                study.state_note = _clip(verdict.explanation, 256)
                self._event(session, study, "STUDY_DISCONTINUED", verdict.explanation, now)
            return False
        if verdict.readiness is Readiness.WAITING:
            study.state = StudyState.RECEIVING.value
            study.state_note = _clip(verdict.explanation, 256)
            return False
        study.state = StudyState.READY_FOR_READING.value
        study.state_note = _clip(verdict.explanation, 256)
        study.completion_basis = verdict.basis.value if verdict.basis is not None else None
        study.completed_at = now
        self._event(
            session,
            study,
            "STUDY_READY_FOR_READING",
            verdict.explanation,
            now,
            {"basis": study.completion_basis, "instances": study.instance_count},
        )
        log.info(
            "study ready for reading study_uid=%s accession=%s basis=%s instances=%s",
            study.study_instance_uid,
            study.accession_number,
            study.completion_basis,
            study.instance_count,
        )
        for hook in self.on_ready:
            hook(session, study)
        return True

    def _event(
        self,
        session: Session,
        study: ReceivedStudy,
        kind: str,
        reason: str,
        at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        record_study_event(
            session, study, kind=kind, actor=ACTOR, at=at, reason=reason, details=details
        )

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, interval: float = 0.25) -> None:
        """Pass after pass until ``stop`` is set; a page left over is read at once."""
        poll_until_stopped(stop, lambda: self.run_pass().more, interval=interval, name="ingest")


def _order_by(session: Session, column: Any, value: str | None) -> OrderFacts | None:
    if not value:
        return None
    row = session.execute(
        select(RequestedProcedure, Patient)
        .join(Patient, Patient.id == RequestedProcedure.patient_pk)
        .where(column == value)
        .order_by(RequestedProcedure.id)
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    procedure, patient = row
    return OrderFacts(
        procedure_pk=procedure.id,
        accession_number=procedure.accession_number,
        study_instance_uid=procedure.study_instance_uid,
        patient_id=patient.patient_id,
        patient_name=patient.name,
    )


def _performed_facts(session: Session, study: ReceivedStudy) -> list[PerformedFacts]:
    """The MPPS of the study's order, plus any naming its Study Instance UID.

    Referenced instances are parsed only once no MPPS is in progress.
    """
    linked = (
        select(PerformedStepLink.performed_step_pk)
        .join(ScheduledStep, ScheduledStep.id == PerformedStepLink.scheduled_step_pk)
        .where(ScheduledStep.procedure_pk == study.procedure_pk)
    )
    rows = list(
        session.execute(
            select(PerformedStep.status, PerformedStep.dataset_json).where(
                or_(
                    PerformedStep.id.in_(linked),
                    PerformedStep.study_instance_uid == study.study_instance_uid,
                )
            )
        ).all()
    )
    statuses = [PerformedStatus(status) for status, _ in rows]
    if PerformedStatus.IN_PROGRESS in statuses:
        return [PerformedFacts(status, {}) for status in statuses]
    return [
        PerformedFacts(PerformedStatus(status), referenced_instances(Dataset.from_json(text)))
        for status, text in rows
    ]


def _known(session: Session, column: Any, orthanc_ids: set[str]) -> set[str]:
    """Which of these Orthanc IDs are recorded already."""
    if not orthanc_ids:
        return set()
    return set(session.execute(select(column).where(column.in_(orthanc_ids))).scalars())


RowT = TypeVar("RowT", ReceivedStudy, ReceivedSeries)


def _rows_by_orthanc_id(
    session: Session, model: type[RowT], orthanc_ids: set[str]
) -> dict[str, RowT]:
    if not orthanc_ids:
        return {}
    rows = session.execute(select(model).where(model.orthanc_id.in_(orthanc_ids))).scalars()
    return {row.orthanc_id: row for row in rows}


def _insert_ignoring_conflict(session: Session, model: type[IngestCursor], **values: Any) -> None:
    """INSERT … ON CONFLICT DO NOTHING, in the database's own dialect."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


def read_cursor(session: Session) -> int:
    """The last Orthanc change recorded (0: none yet)."""
    row = session.get(IngestCursor, CURSOR_NAME)
    return row.last_seq if row is not None else 0


def study_counts(session: Session) -> dict[str, int]:
    """Studies by state and reconciliation outcome, for status lines and tests."""
    counts: dict[str, int] = {}
    for column in (ReceivedStudy.state, ReceivedStudy.reconciliation):
        for value, count in session.execute(select(column, func.count()).group_by(column)).all():
            counts[str(value)] = int(count)
    return counts
