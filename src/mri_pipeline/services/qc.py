"""QC while the patient is still on the table.

Each series of a matched study is checked against the scheduled protocol once its images
stop arriving (``quiet_seconds`` without a new one) or as soon as the study is complete;
a series that grows afterwards is checked again. When every series of a study that is
ready for reading has been checked, the examination gets its verdict: passed, passed
with warnings, or failed (a missing required series or a failed check).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from mri_pipeline.db.models import QcResult, ReceivedSeries, ReceivedStudy, RequestedProcedure
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.protocols import Catalogue, Protocol
from mri_pipeline.domain.qc import (
    Check,
    CheckResult,
    ExamOutcome,
    Outcome,
    check_series,
    examination_verdict,
    missing_series,
)
from mri_pipeline.domain.qc_results import worst
from mri_pipeline.domain.reconciliation import Reconciliation
from mri_pipeline.imaging.qc_measures import measure, thumbnail_png
from mri_pipeline.imaging.series_images import load_series_bytes
from mri_pipeline.orthanc.client import OrthancClient
from mri_pipeline.services.events import record_study_event
from mri_pipeline.services.ingest import StudyState
from mri_pipeline.services.polling import poll_until_stopped

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ACTOR = "qc"
ACCEPTED = "ACCEPTED"  # a failed examination a radiographer let through
ROUTABLE = (
    ExamOutcome.PASSED.value,
    ExamOutcome.PASSED_WITH_WARNINGS.value,
    ACCEPTED,
)


class QcWorker:
    """Checks series and gives examinations their verdict; ``run_pass`` is one step."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        orthanc: OrthancClient,
        catalogue: Catalogue,
        *,
        clock: Clock,
        quiet_seconds: float = 3.0,
    ) -> None:
        self.sessions = sessions
        self.orthanc = orthanc
        self.catalogue = catalogue
        self.clock = clock
        self.quiet = timedelta(seconds=quiet_seconds)

    def _protocol(self, code: str | None) -> Protocol | None:
        return self.catalogue.find_protocol(code)

    def due_series(self) -> list[int]:
        """Series of matched studies not checked at their current image count, whose
        images have stopped arriving or whose study is complete."""
        with self.sessions() as session:
            return list(
                session.execute(
                    select(ReceivedSeries.id)
                    .join(ReceivedStudy, ReceivedStudy.id == ReceivedSeries.study_pk)
                    .where(
                        ReceivedStudy.reconciliation == Reconciliation.MATCHED.value,
                        or_(
                            ReceivedSeries.qc_instance_count.is_(None),
                            ReceivedSeries.qc_instance_count != ReceivedSeries.instance_count,
                        ),
                        or_(
                            ReceivedSeries.last_received_at <= self.clock() - self.quiet,
                            # complete with this series in it: no need to wait
                            and_(
                                ReceivedStudy.state != StudyState.RECEIVING.value,
                                ReceivedSeries.last_received_at <= ReceivedStudy.completed_at,
                            ),
                        ),
                    )
                    .order_by(ReceivedSeries.id)
                ).scalars()
            )

    def check(self, series_pk: int) -> Outcome | None:
        """Fetch the series from Orthanc, measure it and store its results."""
        with self.sessions() as session:
            row = session.execute(
                select(
                    ReceivedSeries.orthanc_id,
                    ReceivedSeries.instance_count,
                    RequestedProcedure.protocol_code,
                )
                .join(ReceivedStudy, ReceivedStudy.id == ReceivedSeries.study_pk)
                .join(RequestedProcedure, RequestedProcedure.id == ReceivedStudy.procedure_pk)
                .where(ReceivedSeries.id == series_pk)
            ).one_or_none()
        if row is None:
            return None
        orthanc_id, counted, code = row
        protocol = self._protocol(code)
        if protocol is None:
            return None
        images = load_series_bytes(self.orthanc.series_files(orthanc_id))
        results = check_series(measure(images), protocol, thresholds=protocol.qc_thresholds)
        thumbnail = thumbnail_png(images)
        outcome = worst(results)
        now = self.clock()
        with self.sessions.begin() as session:
            series = session.execute(
                select(ReceivedSeries).where(ReceivedSeries.id == series_pk).with_for_update()
            ).scalar_one()
            session.execute(delete(QcResult).where(QcResult.series_pk == series_pk))
            session.add_all(_rows(results, series.study_pk, series_pk, now))
            description = series.series_description
            if series.study.qc_verdict is not None:
                series.study.qc_verdict = None  # a repeat or late images: judge again
            series.qc_instance_count = counted
            series.qc_outcome = outcome.value
            series.thumbnail_png = thumbnail
            problems = [r.message for r in results if r.outcome is not Outcome.PASS]
            record_study_event(
                session,
                series.study,
                kind=f"QC_SERIES_{outcome.value}",
                actor=ACTOR,
                at=now,
                reason="; ".join(problems) or None,
                details={"series": series.series_description, "images": counted},
            )
        log.info(
            "qc series=%s description=%s images=%s outcome=%s",
            series_pk,
            description,
            counted,
            outcome.value,
        )
        return outcome

    def judge(self) -> list[str]:
        """Verdicts for complete studies whose series are all checked; returns their UIDs."""
        judged: list[str] = []
        with self.sessions() as session:
            candidates = list(
                session.execute(
                    select(ReceivedStudy.id).where(
                        ReceivedStudy.state == StudyState.READY_FOR_READING.value,
                        ReceivedStudy.qc_verdict.is_(None),
                    )
                ).scalars()
            )
        for study_pk in candidates:
            with self.sessions.begin() as session:
                study = session.get(ReceivedStudy, study_pk, with_for_update=True)
                if study is None or study.qc_verdict is not None:
                    continue
                if any(s.qc_instance_count != s.instance_count for s in study.series):
                    continue  # a series still waits for its check
                self._verdict(session, study)
                judged.append(study.study_instance_uid)
        return judged

    def _verdict(self, session: Session, study: ReceivedStudy) -> None:
        protocol = self._protocol(study.procedure.protocol_code if study.procedure else None)
        now = self.clock()
        missing = (
            missing_series(protocol, [s.series_description or "" for s in study.series])
            if protocol is not None
            else []
        )
        session.execute(
            delete(QcResult).where(QcResult.study_pk == study.id, QcResult.series_pk.is_(None))
        )
        session.add_all(_rows(missing, study.id, None, now))
        counted = {s.id for s in current_series(study.series)}
        stored = session.execute(select(QcResult).where(QcResult.study_pk == study.id)).scalars()
        results = [  # the missing ones are flushed in; superseded series do not count
            _as_result(row) for row in stored if row.series_pk is None or row.series_pk in counted
        ]
        verdict = examination_verdict(results)
        study.qc_verdict = verdict.outcome.value
        study.qc_summary = verdict.summary[:512]
        record_study_event(
            session,
            study,
            kind=f"QC_{verdict.outcome.value}",
            actor=ACTOR,
            at=now,
            reason=verdict.summary,
        )
        log.info("qc verdict study_uid=%s %s", study.study_instance_uid, verdict.outcome.value)

    def run_pass(self) -> dict[str, Any]:
        checked = [self.check(series_pk) for series_pk in self.due_series()]
        return {"series": len(checked), "verdicts": self.judge()}

    def run(self, stop: threading.Event, *, interval: float = 0.5) -> None:
        def step() -> bool:
            self.run_pass()
            return False

        poll_until_stopped(stop, step, interval=interval, name="qc")


def current_series(series: Iterable[ReceivedSeries]) -> list[ReceivedSeries]:
    """The series that count: for each description, the last one acquired. A repeat
    replaces the series it repeats (a radiographer re-runs a failed sequence)."""
    latest: dict[str, ReceivedSeries] = {}
    for one in sorted(series, key=lambda s: s.id):  # rows are made in order of arrival
        latest[(one.series_description or "").strip().upper() or f"#{one.id}"] = one
    return sorted(latest.values(), key=lambda s: (s.series_number or 0, s.id))


class QcNotFailed(DomainError):
    """Only a failed examination needs accepting."""


def accept(session: Session, study: ReceivedStudy, *, by: str, reason: str, at: datetime) -> None:
    """A radiographer accepts a failed examination: it may go to reporting as it is."""
    if study.qc_verdict != ExamOutcome.FAILED.value:
        raise QcNotFailed(
            f"QC verdict of study {study.study_instance_uid} is {study.qc_verdict or 'pending'}, "
            "not FAILED: nothing to accept"
        )
    study.qc_verdict = ACCEPTED
    record_study_event(
        session,
        study,
        kind="QC_ACCEPTED",
        actor=by,
        at=at,
        reason=reason,
        details={"summary": study.qc_summary},
    )
    log.info("qc failure accepted study_uid=%s by=%s", study.study_instance_uid, by)


def ready_for_routing(session: Session) -> list[ReceivedStudy]:
    """Complete studies QC lets through: passed, passed with warnings, or accepted.
    A failed examination is held until a radiographer accepts it or a repeat passes."""
    return list(
        session.execute(
            select(ReceivedStudy)
            .where(
                ReceivedStudy.state == StudyState.READY_FOR_READING.value,
                ReceivedStudy.qc_verdict.in_(ROUTABLE),
            )
            .order_by(ReceivedStudy.completed_at, ReceivedStudy.id)
        ).scalars()
    )


def _rows(
    results: Iterable[CheckResult], study_pk: int, series_pk: int | None, at: datetime
) -> list[QcResult]:
    return [
        QcResult(
            study_pk=study_pk,
            series_pk=series_pk,
            series_description=result.series_description[:64],
            check=result.check.value,
            outcome=result.outcome.value,
            message=result.message[:512],
            checked_at=at,
        )
        for result in results
    ]


def _as_result(row: QcResult) -> CheckResult:
    return CheckResult(
        series_description=row.series_description or "",
        check=Check(row.check),
        outcome=Outcome(row.outcome),
        message=row.message,
    )


def study_qc(session: Session, study: ReceivedStudy) -> dict[str, Any]:
    """What QC found in a study, series by series, and its verdict."""
    rows = list(
        session.execute(
            select(QcResult).where(QcResult.study_pk == study.id).order_by(QcResult.id)
        ).scalars()
    )
    counted = {s.id for s in current_series(study.series)}
    return {
        "study_instance_uid": study.study_instance_uid,
        "verdict": study.qc_verdict,
        "summary": study.qc_summary,
        "series": [
            {
                "series_instance_uid": series.series_instance_uid,
                "series_description": series.series_description,
                "images": series.instance_count,
                "checked_images": series.qc_instance_count,
                "outcome": series.qc_outcome,
                "counts": series.id in counted,
                "results": [
                    {"check": r.check, "outcome": r.outcome, "message": r.message}
                    for r in rows
                    if r.series_pk == series.id
                ],
            }
            for series in study.series
        ],
        "examination": [
            {"check": r.check, "outcome": r.outcome, "message": r.message}
            for r in rows
            if r.series_pk is None
        ],
    }
