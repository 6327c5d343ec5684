"""Assignment on the real database: one study, one radiologist, even with several workers."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import Assignment, ReceivedStudy, RequestedProcedure, StepEvent
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.routing import RoutingDesk
from tests.conftest import FIXED_NOW
from tests.factories import received_study
from tests.integration.test_mwl_scp import book


def ready_study(
    runtime: Runtime, patient_id: str, indication: str, completed_at: datetime = FIXED_NOW
) -> str:
    """An order whose images are complete and passed QC (as ingest and QC leave them)."""
    accession = book(runtime, patient_id, f"Route^{patient_id}", "MRI1", indication=indication)
    with runtime.sessions.begin() as session:
        procedure = session.execute(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == accession)
        ).scalar_one()
        session.add(received_study(procedure, completed_at))
    return accession


def claimed_by(session: Session, *where: ColumnElement[bool]) -> dict[str, str | None]:
    """Each claimed study among ``where``'s and the radiologist reading it."""
    return dict(
        session.execute(
            select(ReceivedStudy.study_instance_uid, Assignment.radiologist_key)
            .join(Assignment, Assignment.study_pk == ReceivedStudy.id)
            .where(*where, Assignment.state == "claimed")
        ).all()
    )


def desk(runtime: Runtime) -> RoutingDesk:
    return runtime.routing_desk()


def test_each_study_is_routed_once_with_its_reason(runtime: Runtime) -> None:
    routine = ready_study(runtime, "R1", "radiculopathy")
    infection = ready_study(runtime, "R2", "infection")
    stat = ready_study(runtime, "R3", "suspected-ces")

    written = desk(runtime).route_pass()
    assert len(written) == 3
    assert desk(runtime).route_pass() == []  # nothing twice

    with runtime.sessions() as session:
        rows = {
            accession: (key, reason)
            for accession, key, reason in session.execute(
                select(
                    ReceivedStudy.accession_number,
                    Assignment.radiologist_key,
                    Assignment.reason,
                ).join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
            ).all()
        }
        alerts = session.execute(
            select(StepEvent.reason).where(StepEvent.kind == "ROUTING_ALERT")
        ).scalars()
        alert_reasons = list(alerts)
    # Monday 08:00 in London: the day shift has just begun, nobody is on call.
    assert rows[stat][0] is None
    assert rows[stat][1].startswith("STAT Lumbar spine MRI - suspected cauda equina")
    assert "nobody eligible" in rows[stat][1]
    assert len(alert_reasons) == 1
    assert rows[infection][0] in ("rad.okafor", "rad.lindqvist")  # neuro or MSK, not general
    assert rows[routine][0] is not None
    assert " → on shift " in rows[routine][1]


def test_several_workers_at_once_never_assign_a_study_twice(runtime: Runtime) -> None:
    for n in range(24):
        ready_study(runtime, f"C{n:02d}", "radiculopathy")
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def worker() -> None:
        mine = desk(runtime)
        start.wait()
        try:
            for _ in range(10):
                mine.route_pass()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with runtime.sessions() as session:
        assigned = session.scalar(select(func.count()).select_from(Assignment))
        distinct = session.scalar(select(func.count(func.distinct(Assignment.study_pk))))
        events = session.scalar(
            select(func.count())
            .select_from(StepEvent)
            .where(StepEvent.kind.in_(["ROUTED", "ROUTING_ALERT"]))
        )
        per_radiologist = dict(
            session.execute(
                select(Assignment.radiologist_key, func.count())
                .where(Assignment.radiologist_key.is_not(None))
                .group_by(Assignment.radiologist_key)
            ).all()
        )
    assert assigned == distinct == 24
    assert events == 24  # one decision each: routed, or an alert when nobody may take it
    # At 08:00 on a Monday only the two day radiologists are on; their limits hold.
    assert per_radiologist == {"rad.okafor": 8, "rad.lindqvist": 10}
