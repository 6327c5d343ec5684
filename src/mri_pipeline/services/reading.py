"""The reading room: each radiologist's list, claim and release, reassignment by an
administrator, the report's status and the turnaround it closes.

Every change locks the assignment row (``FOR UPDATE``) so two people acting on the
same study at once are served one after the other, the second seeing the first's
result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, contains_eager, sessionmaker
from starlette.concurrency import run_in_threadpool

from mri_pipeline.db.models import (
    Assignment,
    Patient,
    ReceivedStudy,
    Report,
    RequestedProcedure,
    StepEvent,
)
from mri_pipeline.domain.protocols import Catalogue, Priority
from mri_pipeline.domain.reading import (
    IN_HAND,
    AssignmentState,
    QueueEntry,
    ReadingRefused,
    ReportStatus,
    check_claim,
    check_report,
    countdown,
    describe_time_left,
    time_left,
)
from mri_pipeline.domain.routing import (
    REPORT_TARGET,
    InHand,
    Radiologist,
    qualified,
    qualified_for,
    why_not,
)
from mri_pipeline.services.events import record_study_event
from mri_pipeline.services.radiologists import Roster, UnknownRadiologist
from mri_pipeline.services.reading_board import Board, OpenStudy, ReadingBoard
from mri_pipeline.services.routing import give, in_hand, route_facts
from mri_pipeline.services.studies import find_study

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ROUTING_EVENTS = (
    "ROUTED",
    "ROUTING_ALERT",
    "CLAIMED",
    "RELEASED",
    "REASSIGNED",
    "ESCALATED",
    "ESCALATION_ALERT",
    "AT_RISK",
    "REPORT_PRELIMINARY",
    "REPORT_FINAL",
    "SENT_TO_WORKSTATION",
)


class NotAssigned(ReadingRefused):
    """The study has not been routed (not ready, QC not cleared, or not yet reached)."""


class ReadingRoom:
    def __init__(
        self,
        catalogue: Catalogue,
        roster: Roster,
        *,
        clock: Clock,
        site: str,
        team: Callable[[Session | None, datetime], list[Radiologist]],
        board: ReadingBoard,
    ) -> None:
        self.catalogue = catalogue
        self.roster = roster
        self.clock = clock
        self.site = site
        self.team = team
        self.board = board

    # -- reading --------------------------------------------------------------------

    def radiologist(self, session: Session | None, key: str, now: datetime) -> Radiologist:
        """``key`` with their shifts; with no ``session``, from the roster in memory."""
        found = next((r for r in self.team(session, now) if r.key == key), None)
        if found is None:
            raise UnknownRadiologist(f"no active radiologist {key!r}")
        return found

    def _entry(self, row: Assignment) -> QueueEntry:
        study = row.study
        procedure = study.procedure
        assert procedure is not None and study.completed_at is not None  # routed studies have both
        return QueueEntry(
            route_facts(self.catalogue, self.site, study, procedure, study.completed_at),
            study.accession_number,
            AssignmentState(row.state),
            row.radiologist_key,
        )

    @staticmethod
    def _rows(session: Session, *conditions: Any, limit: int | None = None) -> list[Assignment]:
        query = (
            select(Assignment)
            .join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
            .join(RequestedProcedure, RequestedProcedure.id == ReceivedStudy.procedure_pk)
            .where(*conditions)
            .options(contains_eager(Assignment.study).contains_eager(ReceivedStudy.procedure))
            .order_by(Assignment.priority_rank.desc(), Assignment.deadline, Assignment.id)
        )
        if limit is not None:
            query = query.limit(limit)
        return list(session.execute(query).scalars().unique())

    def _own(self, session: Session, key: str) -> list[Assignment]:
        return self._rows(session, Assignment.radiologist_key == key, Assignment.state.in_(IN_HAND))

    def _reportable_codes(self, radiologist: Radiologist) -> frozenset[str] | None:
        """The catalogue's protocols ``radiologist`` may report here; None when they do
        not work at this site."""
        if self.site not in radiologist.sites:
            return None
        return frozenset(
            p.code
            for p in self.catalogue.protocols
            if qualified_for(radiologist, self.site, p.subspecialty, p.contrast) is None
        )

    def _top_unassigned(self, session: Session, radiologist: Radiologist) -> QueueEntry | None:
        """The first study of the unassigned list, in queue order, that ``radiologist``
        may report, chosen in SQL under the caller's locks (a code outside the catalogue
        asks for no subspecialty and no contrast)."""
        allowed = self._reportable_codes(radiologist)
        if allowed is None:
            return None
        code = RequestedProcedure.protocol_code
        rows = self._rows(
            session,
            Assignment.state == AssignmentState.UNASSIGNED,
            or_(code.in_(allowed), code.is_(None), code.not_in(self.catalogue.protocol_codes)),
            limit=1,
        )
        return self._entry(rows[0]) if rows else None

    def reading_list(self, session: Session, key: str) -> dict[str, Any]:
        """``key``'s studies in hand, most urgent and earliest deadline first, with the
        time left, and the study they would take next from the unassigned list (drawn
        from the board of open assignments, brought up to date first)."""
        now = self.clock()
        board = self.board.current(session)  # first: a fresh snapshot serves others too
        return self._listing(board, self.radiologist(session, key, now), now)

    async def reading_list_soon(self, sessions: sessionmaker[Session], key: str) -> dict[str, Any]:
        """``reading_list`` for the event loop (the API): the database is asked in a
        worker thread, and only when the board or the roster needs it."""
        now = self.clock()
        board = await self.board.current_soon(sessions)
        if self.roster.in_memory():
            radiologist = self.radiologist(None, key, now)
        else:
            radiologist = await run_in_threadpool(self._radiologist_alone, sessions, key, now)
        return self._listing(board, radiologist, now)

    def _radiologist_alone(
        self, sessions: sessionmaker[Session], key: str, now: datetime
    ) -> Radiologist:
        with sessions() as session:
            return self.radiologist(session, key, now)

    def _listing(self, board: Board, radiologist: Radiologist, now: datetime) -> dict[str, Any]:
        key = radiologist.key
        items = [
            {
                "study_instance_uid": row.study_instance_uid,
                "accession_number": row.accession_number,
                "patient_id": row.patient_id,
                "patient_name": row.patient_name,
                "priority": row.priority,
                "protocol_code": row.protocol_code,
                "protocol": self._protocol_meaning(row.protocol_code),
                "indication": row.indication,
                "red_flags": self._red_flags(row.indication, list(row.red_flags)),
                **countdown(row.deadline, row.escalate_at, now),
                "state": row.state,
                "reason": row.reason,
                "completed_at": row.completed_at,
                "assigned_at": row.assigned_at,
                "claimed_at": row.claimed_at,
            }
            for row in board.in_hand(key)
        ]
        top = self._first_they_may_report(board.pool, radiologist)
        return {
            "radiologist": key,
            "name": radiologist.name,
            "now": now,
            "in_hand": len(items),
            "limit": radiologist.max_in_hand,
            "studies": items,
            "next_unassigned": (
                {
                    "study_instance_uid": top.study_instance_uid,
                    "accession_number": top.accession_number,
                    "priority": top.priority,
                    "protocol": self._protocol_meaning(top.protocol_code)
                    or top.protocol_code
                    or "MRI",
                    "deadline": top.deadline,
                    "time_left": describe_time_left(time_left(top.deadline, now)),
                }
                if top is not None
                else None
            ),
        }

    def _first_they_may_report(
        self, pool: Sequence[OpenStudy], radiologist: Radiologist
    ) -> OpenStudy | None:
        """The board's answer to ``_top_unassigned``, by the same rule."""
        allowed = self._reportable_codes(radiologist)
        if allowed is None:
            return None
        codes = self.catalogue.protocol_codes
        return next(
            (
                row
                for row in pool
                if row.protocol_code is None
                or row.protocol_code in allowed
                or row.protocol_code not in codes
            ),
            None,
        )

    def _red_flags(self, indication: str | None, ticked: list[str] | None) -> list[str]:
        return [flag.code for flag in self.catalogue.red_flags(indication, ticked or [])]

    def _protocol_meaning(self, code: str | None) -> str | None:
        protocol = self.catalogue.find_protocol(code)
        return protocol.meaning if protocol is not None else code

    # -- acting ---------------------------------------------------------------------

    @staticmethod
    def _locked(session: Session, study: ReceivedStudy) -> Assignment:
        row = session.execute(
            select(Assignment).where(Assignment.study_pk == study.id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise NotAssigned(
                f"{study.accession_number or study.study_instance_uid} has not been routed "
                f"(state {study.state}, QC {study.qc_verdict or 'not judged'})"
            )
        return row

    def _event(
        self,
        session: Session,
        kind: str,
        row: Assignment,
        actor: str,
        at: datetime,
        reason: str,
        **details: object,
    ) -> None:
        record_study_event(
            session, row.study, kind=kind, actor=actor, at=at, reason=reason, details=dict(details)
        )

    def claim(self, session: Session, study_instance_uid: str, by: str) -> Assignment:
        """``by`` starts reading the study: the first waiting in their list, or the top
        of the unassigned list among what they may report (``ReadingRefused`` otherwise)."""
        now = self.clock()
        radiologist = self.radiologist(session, by, now)
        row = self._locked(session, find_study(session, study_instance_uid))
        if row.state == AssignmentState.CLAIMED and row.radiologist_key == by:
            return row
        wanted = self._entry(row)
        own = [self._entry(r) for r in self._own(session, by)]
        top = self._top_unassigned(session, radiologist) if not row.radiologist_key else None
        check_claim(radiologist, wanted, own, top)
        if row.state == AssignmentState.UNASSIGNED:
            give(row, by, f"taken from the unassigned list by {radiologist.name}", now)
        row.state = AssignmentState.CLAIMED
        row.claimed_at = now
        self._event(session, "CLAIMED", row, by, now, f"{radiologist.name} is reading it")
        log.info("claimed study_uid=%s by=%s", study_instance_uid, by)
        return row

    def release(
        self, session: Session, study_instance_uid: str, by: str, reason: str
    ) -> Assignment:
        """``by`` gives a study in their hands back to the unassigned list; routing offers
        it to someone else."""
        now = self.clock()
        self.radiologist(session, by, now)
        row = self._locked(session, find_study(session, study_instance_uid))
        if row.radiologist_key != by or row.state not in IN_HAND:
            raise ReadingRefused(f"{study_instance_uid} is not in {by}'s hands")
        text = f"given back by {by}: {reason}"
        give(row, None, text, now)
        row.released_by = by
        self._event(session, "RELEASED", row, by, now, text)
        return row

    def reassign(
        self, session: Session, study_instance_uid: str, to: str, by: str, reason: str
    ) -> Assignment:
        """An administrator moves a study to ``to``: they must be able to report it; shift
        and limit may be overridden, and the reason says so."""
        now = self.clock()
        target = self.radiologist(session, to, now)
        row = self._locked(session, find_study(session, study_instance_uid))
        if row.state == AssignmentState.FINAL:
            raise ReadingRefused(f"{study_instance_uid} is already reported")
        route = self._entry(row).study
        problem = qualified(target, route)
        if problem is not None:
            raise ReadingRefused(f"{target.name} may not report it: {problem}")
        waived = why_not(target, route, in_hand(session).get(to, InHand()), now)
        previous = row.radiologist_key
        source = previous or "the unassigned list"
        text = f"reassigned by {by} from {source} to {target.name}: {reason}"
        if waived and previous != to:
            text += f" (waived: {waived})"
        give(row, to, text, now)
        self._event(session, "REASSIGNED", row, by, now, text, radiologist=to, previous=previous)
        return row

    def report(
        self,
        session: Session,
        study_instance_uid: str,
        by: str,
        status: ReportStatus,
        impression: str,
    ) -> Report:
        """Record a preliminary or final report by the radiologist reading the study (a
        study waiting in their list is claimed first). Final closes the assignment."""
        now = self.clock()
        study = find_study(session, study_instance_uid)
        row = self._locked(session, study)
        if row.state == AssignmentState.FINAL:
            raise ReadingRefused(f"{study_instance_uid} is already reported final")
        if row.radiologist_key != by or row.state not in IN_HAND:
            raise ReadingRefused(
                f"{study_instance_uid} is not in {by}'s hands; claim it before reporting"
            )
        if row.state == AssignmentState.ASSIGNED:
            self.claim(session, study_instance_uid, by)
        report = session.execute(
            select(Report).where(Report.study_pk == study.id)
        ).scalar_one_or_none()
        check_report(ReportStatus(report.status) if report else None, status, impression)
        if report is None:
            report = Report(study_pk=study.id, radiologist_key=by, status=status.value)
            session.add(report)
        report.radiologist_key, report.status = by, status.value
        report.impression, report.updated_at = impression.strip(), now
        if status is ReportStatus.PRELIMINARY:
            report.preliminary_at = report.preliminary_at or now
        else:
            report.final_at = now
            row.state = AssignmentState.FINAL
            row.closed_at = now
        kind = "REPORT_FINAL" if status is ReportStatus.FINAL else "REPORT_PRELIMINARY"
        self._event(session, kind, row, by, now, f"{status.value} report by {by}")
        log.info("report study_uid=%s status=%s by=%s", study_instance_uid, status.value, by)
        return report

    # -- the study view ----------------------------------------------------------------

    def study_view(self, session: Session, study_instance_uid: str) -> dict[str, Any]:
        """Order, indication and red flags, protocol, QC, the assignment and its reason,
        the report and the turnaround. Priors and viewer links come from Orthanc."""
        from mri_pipeline.services.qc import study_qc

        now = self.clock()
        study = find_study(session, study_instance_uid)
        procedure = study.procedure
        row = session.execute(
            select(Assignment).where(Assignment.study_pk == study.id)
        ).scalar_one_or_none()
        report = session.execute(
            select(Report).where(Report.study_pk == study.id)
        ).scalar_one_or_none()
        events = session.execute(
            select(StepEvent)
            .where(
                StepEvent.study_instance_uid == study.study_instance_uid,
                StepEvent.kind.in_(ROUTING_EVENTS),
            )
            .order_by(StepEvent.at, StepEvent.id)
        ).scalars()
        return {
            "study_instance_uid": study.study_instance_uid,
            "accession_number": study.accession_number,
            "state": study.state,
            "completed_at": study.completed_at,
            "patient": self._patient(procedure.patient if procedure else None, study),
            "order": self._order(procedure),
            "protocol": self._protocol(procedure),
            "series": [
                {
                    "series_instance_uid": s.series_instance_uid,
                    "series_number": s.series_number,
                    "series_description": s.series_description,
                    "instances": s.instance_count,
                    "qc_outcome": s.qc_outcome,
                    "orthanc_id": s.orthanc_id,
                }
                for s in study.series
            ],
            "qc": study_qc(session, study),
            "assignment": self._assignment(row, now),
            "report": _report(report),
            "turnaround": turnaround(study, row, report),
            "events": [
                {"kind": e.kind, "actor": e.actor, "at": e.at, "reason": e.reason} for e in events
            ],
        }

    @staticmethod
    def _patient(patient: Patient | None, study: ReceivedStudy) -> dict[str, Any]:
        if patient is None:
            return {"patient_id": study.patient_id, "name": study.patient_name}
        return {
            "patient_id": patient.patient_id,
            "name": patient.name,
            "birth_date": patient.birth_date,
            "sex": patient.sex,
            "medical_alerts": patient.medical_alerts,
            "allergies": patient.allergies,
        }

    def _order(self, procedure: RequestedProcedure | None) -> dict[str, Any] | None:
        if procedure is None:
            return None
        indication = (
            self.catalogue.indication_label(procedure.indication) if procedure.indication else None
        )
        return {
            "accession_number": procedure.accession_number,
            "requested_procedure_id": procedure.requested_procedure_id,
            "priority": procedure.priority,
            "referring_physician": procedure.referring_physician,
            "indication": procedure.indication,
            "indication_label": indication,
            "red_flags": [
                {"code": flag.code, "label": flag.label}
                for flag in self.catalogue.red_flags(
                    procedure.indication, procedure.red_flags or []
                )
            ],
            "reason": procedure.reason,
            "ordered_at": procedure.created_at,
        }

    def _protocol(self, procedure: RequestedProcedure | None) -> dict[str, Any] | None:
        code = procedure.protocol_code if procedure else None
        protocol = self.catalogue.find_protocol(code)
        if protocol is None:
            return {"code": code} if code else None
        return {
            "code": protocol.code,
            "meaning": protocol.meaning,
            "contrast": protocol.contrast,
            "subspecialty": list(protocol.subspecialty),
            "series": [s.description for s in protocol.series],
        }

    def _assignment(self, row: Assignment | None, now: datetime) -> dict[str, Any] | None:
        if row is None:
            return None
        view: dict[str, Any] = {
            "radiologist": row.radiologist_key,
            "state": row.state,
            "reason": row.reason,
            "priority": row.priority,
            "assigned_at": row.assigned_at,
            "first_assigned_at": row.first_assigned_at,
            "claimed_at": row.claimed_at,
            "escalate_at": row.escalate_at,
            "escalated_at": row.escalated_at,
        }
        if row.state != AssignmentState.FINAL:
            view.update(countdown(row.deadline, row.escalate_at, now))
        else:
            view["deadline"] = row.deadline
        return view


def _report(report: Report | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "status": report.status,
        "radiologist": report.radiologist_key,
        "impression": report.impression,
        "preliminary_at": report.preliminary_at,
        "final_at": report.final_at,
    }


def turnaround(
    study: ReceivedStudy, row: Assignment | None, report: Report | None
) -> dict[str, Any]:
    """Images complete → first assigned → final, in seconds, against the B.3 target."""
    completed = study.completed_at
    assigned = row.first_assigned_at if row else None
    final = report.final_at if report else None
    target = REPORT_TARGET[Priority(row.priority)] if row else None

    def seconds(start: datetime | None, end: datetime | None) -> int | None:
        return int((end - start).total_seconds()) if start and end else None

    total = seconds(completed, final)
    return {
        "completed_at": completed,
        "first_assigned_at": assigned,
        "final_at": final,
        "complete_to_assigned_s": seconds(completed, assigned),
        "assigned_to_final_s": seconds(assigned, final),
        "complete_to_final_s": total,
        "target_s": int(target.total_seconds()) if target else None,
        "met": (total <= target.total_seconds()) if total is not None and target else None,
    }
