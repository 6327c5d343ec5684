"""Assigning complete, QC-cleared studies to radiologists: one study, one radiologist.

Each pass takes unassigned studies with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL),
so several workers never decide the same study; the unique study key of
``assignments`` is the last guard (and the guard on SQLite, whose writes are serial).
A pass also offers the pool (studies nobody could take, or given back) again, and
escalates studies whose deadline is at risk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mri_pipeline.db.models import (
    Assignment,
    RadiologistRow,
    ReceivedStudy,
    Report,
    RequestedProcedure,
)
from mri_pipeline.domain.protocols import Catalogue, Priority
from mri_pipeline.domain.reading import (
    IN_HAND,
    AssignmentState,
    describe_time_left,
    escalate,
    time_left,
)
from mri_pipeline.domain.routing import (
    InHand,
    Radiologist,
    StudyToRoute,
    choose,
    escalation_due,
    queue_order,
)
from mri_pipeline.services.events import record_study_event
from mri_pipeline.services.ingest import StudyState
from mri_pipeline.services.polling import poll_until_stopped
from mri_pipeline.services.qc import ROUTABLE
from mri_pipeline.services.radiologists import Roster

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ACTOR = "routing"


def route_facts(
    catalogue: Catalogue,
    site: str,
    study: ReceivedStudy,
    procedure: RequestedProcedure,
    completed_at: datetime,
    prior_reporter: str | None = None,
) -> StudyToRoute:
    """What the routing rules need to know about a study, from its order and protocol."""
    code = procedure.protocol_code or ""
    protocol = catalogue.find_protocol(code)
    return StudyToRoute(
        study_instance_uid=study.study_instance_uid,
        priority=Priority(procedure.priority),
        protocol_code=code,
        protocol_meaning=protocol.meaning if protocol else code or "MRI",
        subspecialties=protocol.subspecialty if protocol else (),
        contrast=protocol.contrast if protocol else False,
        site=site,
        completed_at=completed_at,
        prior_reporter=prior_reporter,
    )


def in_hand(session: Session) -> dict[str, InHand]:
    """Each radiologist's open work: studies assigned or being read, and their units."""
    rows = session.execute(
        select(Assignment.radiologist_key, func.count(), func.sum(Assignment.units))
        .where(Assignment.state.in_(IN_HAND), Assignment.radiologist_key.is_not(None))
        .group_by(Assignment.radiologist_key)
    ).all()
    return {str(key): InHand(int(count), float(units or 0)) for key, count, units in rows}


def give(row: Assignment, radiologist: str | None, reason: str, at: datetime) -> None:
    """Put ``row`` in ``radiologist``'s list (None: the pool) with the reason."""
    row.radiologist_key = radiologist
    row.state = AssignmentState.ASSIGNED if radiologist else AssignmentState.UNASSIGNED
    row.reason = reason[:512]
    row.assigned_at = at
    row.claimed_at = None
    if radiologist is not None and row.first_assigned_at is None:
        row.first_assigned_at = at


def _took(loads: dict[str, InHand], radiologist: str | None, units: float) -> None:
    if radiologist is not None:
        held = loads.get(radiologist, InHand())
        loads[radiologist] = InHand(held.studies + 1, held.units + units)


class RoutingDesk:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalogue: Catalogue,
        roster: Roster,
        *,
        clock: Clock,
        zone: ZoneInfo,
        site: str = "MAIN",
        batch: int = 50,
    ) -> None:
        self.sessions = sessions
        self.catalogue = catalogue
        self.roster = roster
        self.clock = clock
        self.zone = zone
        self.site = site
        self.batch = batch

    def team(self, session: Session | None, now: datetime) -> list[Radiologist]:
        return self.roster.team(session, now.astimezone(self.zone).date(), self.zone)

    def facts(self, session: Session, study: ReceivedStudy) -> StudyToRoute | None:
        procedure = study.procedure
        if procedure is None or study.completed_at is None:
            return None
        # Continuity: who reported the patient's latest prior with us.
        prior = session.scalar(
            select(Report.radiologist_key)
            .join(ReceivedStudy, ReceivedStudy.id == Report.study_pk)
            .join(RequestedProcedure, RequestedProcedure.id == ReceivedStudy.procedure_pk)
            .where(
                RequestedProcedure.patient_pk == procedure.patient_pk,
                ReceivedStudy.id != study.id,
            )
            .order_by(Report.updated_at.desc())
            .limit(1)
        )
        return route_facts(self.catalogue, self.site, study, procedure, study.completed_at, prior)

    @staticmethod
    def _serialise(session: Session) -> None:
        """Decisions that count work in hand take turns: the radiologists' rows are
        locked, so two workers cannot both give someone the last place under their limit.
        (SKIP LOCKED keeps them from deciding the same study; SQLite writes are serial.)"""
        session.execute(select(RadiologistRow.key).with_for_update()).all()

    def _event(
        self,
        session: Session,
        kind: str,
        study: ReceivedStudy,
        reason: str,
        at: datetime,
        **details: object,
    ) -> None:
        record_study_event(
            session, study, kind=kind, actor=ACTOR, at=at, reason=reason, details=dict(details)
        )

    def route_pass(self) -> list[Assignment]:
        """Assign what is waiting; a study nobody may take gets an unassigned row and an
        alert event (once). Studies in the pool are offered again. Returns the rows
        written."""
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                self._serialise(session)
                team = self.team(session, now)
                loads = in_hand(session)
                written = self._route_new(session, team, loads, now)
                written += self._route_pool(session, team, loads, now)
                return written
        except IntegrityError:
            # Another worker assigned one of these studies first (SQLite has no SKIP LOCKED).
            log.info("routing pass lost a race; the next pass takes what is left")
            return []

    def _route_new(
        self, session: Session, team: Sequence[Radiologist], loads: dict[str, InHand], now: datetime
    ) -> list[Assignment]:
        waiting = list(
            session.execute(
                select(ReceivedStudy)
                .where(
                    ReceivedStudy.routed_at.is_(None),
                    ReceivedStudy.state == StudyState.READY_FOR_READING.value,
                    ReceivedStudy.qc_verdict.in_(ROUTABLE),
                    ~exists().where(Assignment.study_pk == ReceivedStudy.id),
                )
                .order_by(ReceivedStudy.completed_at, ReceivedStudy.id)
                .limit(self.batch)
                .options(selectinload(ReceivedStudy.procedure))
                .with_for_update(skip_locked=True, of=ReceivedStudy)
            ).scalars()
        )
        by_uid = {s.study_instance_uid: s for s in waiting}
        routes = [r for s in waiting if (r := self.facts(session, s)) is not None]
        written: list[Assignment] = []
        with session.no_autoflush:  # one INSERT per table at the end, not one per study
            for route in queue_order(routes):
                decision = choose(route, team, loads, now)
                study = by_uid[route.study_instance_uid]
                row = Assignment(
                    study_pk=study.id,
                    priority=route.priority.value,
                    priority_rank=route.priority.rank,
                    units=route.units,
                    deadline=route.deadline,
                    escalate_at=escalation_due(route),
                )
                give(row, decision.radiologist, decision.reason, now)
                session.add(row)
                study.routed_at = now
                _took(loads, decision.radiologist, route.units)
                kind = "ROUTED" if decision.radiologist else "ROUTING_ALERT"
                self._event(
                    session, kind, study, decision.reason, now, radiologist=decision.radiologist
                )
                log.info(
                    "routed study_uid=%s to=%s", study.study_instance_uid, decision.radiologist
                )
                written.append(row)
        session.flush()
        return written

    def _locked(self, session: Session, *conditions: ColumnElement[bool]) -> list[Assignment]:
        return list(
            session.execute(
                select(Assignment)
                .where(*conditions)
                .order_by(Assignment.priority_rank.desc(), Assignment.deadline, Assignment.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).scalars()
        )

    def _route_pool(
        self, session: Session, team: Sequence[Radiologist], loads: dict[str, InHand], now: datetime
    ) -> list[Assignment]:
        written: list[Assignment] = []
        for row in self._locked(session, Assignment.state == AssignmentState.UNASSIGNED):
            route = self.facts(session, row.study)
            if route is None:
                continue
            exclude = [row.released_by] if row.released_by else []
            decision = choose(route, team, loads, now, exclude=exclude)
            if decision.radiologist is None:
                continue  # still nobody: the alert was raised when it came to the pool
            give(row, decision.radiologist, decision.reason, now)
            _took(loads, decision.radiologist, row.units)
            self._event(
                session, "ROUTED", row.study, decision.reason, now, radiologist=decision.radiologist
            )
            written.append(row)
        return written

    def escalate_pass(self) -> list[Assignment]:
        """Studies at risk of missing their deadline, each handled once: one not being
        read goes to the next eligible radiologist or the on-call (an ESCALATED event,
        or ESCALATION_ALERT when there is nobody); one being read stays with its reader
        and raises AT_RISK."""
        now = self.clock()
        with self.sessions.begin() as session:
            rows = self._locked(
                session,
                Assignment.state.in_(
                    [AssignmentState.UNASSIGNED, AssignmentState.ASSIGNED, AssignmentState.CLAIMED]
                ),
                Assignment.escalate_at <= now,
                Assignment.escalated_at.is_(None),
            )
            if not rows:
                return []
            self._serialise(session)
            team = self.team(session, now)
            loads = in_hand(session)
            for row in rows:
                row.escalated_at = now
                route = self.facts(session, row.study)
                if route is None:
                    continue
                if row.state == AssignmentState.CLAIMED:
                    left = describe_time_left(time_left(row.deadline, now))
                    reason = f"at risk ({left}): {row.radiologist_key} is reading it"
                    self._event(
                        session, "AT_RISK", row.study, reason, now, radiologist=row.radiologist_key
                    )
                    continue
                holder = row.radiologist_key
                decision = escalate(route, holder, team, loads, now)
                if decision.radiologist is None:
                    self._event(
                        session,
                        "ESCALATION_ALERT",
                        row.study,
                        decision.reason,
                        now,
                        radiologist=holder,
                    )
                    continue
                if holder is not None:
                    held = loads.get(holder, InHand())
                    loads[holder] = InHand(held.studies - 1, held.units - row.units)
                give(row, decision.radiologist, decision.reason, now)
                _took(loads, decision.radiologist, row.units)
                self._event(
                    session,
                    "ESCALATED",
                    row.study,
                    decision.reason,
                    now,
                    radiologist=decision.radiologist,
                    previous=holder,
                )
                log.info(
                    "escalated study_uid=%s from=%s to=%s",
                    row.study.study_instance_uid,
                    holder,
                    decision.radiologist,
                )
            return rows

    def run_pass(self) -> bool:
        """One pass of both; True when a full batch was written (more may be waiting)."""
        routed = self.route_pass()
        escalated = self.escalate_pass()
        return len(routed) >= self.batch or len(escalated) >= self.batch

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        poll_until_stopped(stop, self.run_pass, interval=interval, name="routing")
