"""Assigning complete, QC-cleared studies to radiologists: one study, one radiologist.

Each pass takes unassigned studies with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL),
so several workers never decide the same study; the unique study key of
``assignments`` is the last guard (and the guard on SQLite, whose writes are serial).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mri_pipeline.db.models import Assignment, ReceivedStudy, RequestedProcedure
from mri_pipeline.domain.protocols import Catalogue, Priority
from mri_pipeline.domain.radiologists import RadiologistTable
from mri_pipeline.domain.routing import InHand, StudyToRoute, choose, escalation_due, queue_order
from mri_pipeline.services.events import record_event
from mri_pipeline.services.ingest import StudyState, latest_step
from mri_pipeline.services.qc import ROUTABLE

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ACTOR = "routing"
OPEN_STATES = ("assigned", "claimed")


class RoutingDesk:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalogue: Catalogue,
        radiologists: RadiologistTable,
        *,
        clock: Clock,
        zone: ZoneInfo,
        site: str = "MAIN",
        batch: int = 50,
    ) -> None:
        self.sessions = sessions
        self.catalogue = catalogue
        self.radiologists = radiologists
        self.clock = clock
        self.zone = zone
        self.site = site
        self.batch = batch

    def _to_route(self, session: Session, study: ReceivedStudy) -> StudyToRoute | None:
        procedure = study.procedure
        if procedure is None or study.completed_at is None:
            return None
        protocol = (
            self.catalogue.protocol(procedure.protocol_code)
            if procedure.protocol_code in self.catalogue.protocol_codes
            else None
        )
        prior = session.scalar(
            select(Assignment.radiologist_key)
            .join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
            .join(RequestedProcedure, RequestedProcedure.id == ReceivedStudy.procedure_pk)
            .where(
                RequestedProcedure.patient_pk == procedure.patient_pk,
                ReceivedStudy.id != study.id,
                Assignment.radiologist_key.is_not(None),
            )
            .order_by(Assignment.assigned_at.desc())
            .limit(1)
        )
        return StudyToRoute(
            study_instance_uid=study.study_instance_uid,
            priority=Priority(procedure.priority),
            protocol_code=procedure.protocol_code or "",
            protocol_meaning=(protocol.meaning if protocol else procedure.protocol_code or "MRI"),
            subspecialties=protocol.subspecialty if protocol else (),
            contrast=protocol.contrast if protocol else False,
            site=self.site,
            completed_at=study.completed_at,
            prior_reporter=prior,
        )

    @staticmethod
    def in_hand(session: Session) -> dict[str, InHand]:
        rows = session.execute(
            select(Assignment.radiologist_key, func.count(), func.sum(Assignment.units))
            .where(Assignment.state.in_(OPEN_STATES), Assignment.radiologist_key.is_not(None))
            .group_by(Assignment.radiologist_key)
        ).all()
        return {str(key): InHand(int(count), float(units or 0)) for key, count, units in rows}

    def route_pass(self) -> list[Assignment]:
        """Assign what is waiting; a study nobody may take gets an unassigned row and an
        alert event. Returns the rows written."""
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                waiting = list(
                    session.execute(
                        select(ReceivedStudy)
                        .where(
                            ReceivedStudy.state == StudyState.READY_FOR_READING.value,
                            ReceivedStudy.qc_verdict.in_(ROUTABLE),
                            ~exists().where(Assignment.study_pk == ReceivedStudy.id),
                        )
                        .order_by(ReceivedStudy.completed_at, ReceivedStudy.id)
                        .limit(self.batch)
                        .with_for_update(skip_locked=True, of=ReceivedStudy)
                    ).scalars()
                )
                facts = {s.study_instance_uid: s for s in waiting}
                routes = [r for s in waiting if (r := self._to_route(session, s)) is not None]
                team = self.radiologists.on(now.astimezone(self.zone).date(), self.zone)
                loads = self.in_hand(session)
                written: list[Assignment] = []
                for route in queue_order(routes):
                    decision = choose(route, team, loads, now)
                    study = facts[route.study_instance_uid]
                    row = Assignment(
                        study_pk=study.id,
                        radiologist_key=decision.radiologist,
                        state="assigned" if decision.radiologist else "unassigned",
                        reason=decision.reason[:512],
                        priority=route.priority.value,
                        units=route.units,
                        deadline=route.deadline,
                        escalate_at=escalation_due(route),
                        assigned_at=now,
                    )
                    session.add(row)
                    if decision.radiologist is not None:
                        held = loads.get(decision.radiologist, InHand())
                        loads[decision.radiologist] = InHand(
                            held.studies + 1, held.units + route.units
                        )
                    record_event(
                        session,
                        kind="ROUTED" if decision.radiologist else "ROUTING_ALERT",
                        actor=ACTOR,
                        at=now,
                        step=latest_step(session, study.procedure_pk),
                        study_instance_uid=study.study_instance_uid,
                        reason=decision.reason[:256],
                        details={"radiologist": decision.radiologist},
                    )
                    log.info(
                        "routed study_uid=%s to=%s", study.study_instance_uid, decision.radiologist
                    )
                    written.append(row)
                return written
        except IntegrityError:
            # Another worker assigned one of these studies first (SQLite has no SKIP LOCKED).
            log.info("routing pass lost a race; the next pass takes what is left")
            return []
