"""The reading room on the real database: lists in order, no cherry-picking, release and
reassignment, reports and turnaround, escalation and shift changes by a controlled clock.

Clinic time is London, GMT in early March: the times below are UTC and local alike.
Sunday 1 March: only rad.okafor (neuro) is on (on call). Monday 2 March: okafor (neuro)
and lindqvist (MSK) 08–18, brennan (general, no contrast) 09–17, moreau (neuro/MSK)
on call 00–08 and 18–24.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mri_pipeline.db.models import Assignment, StepEvent
from mri_pipeline.domain.reading import ReadingRefused, ReportStatus
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.reading import ReadingRoom
from mri_pipeline.services.routing import RoutingDesk
from mri_pipeline.services.studies import find_study
from tests.integration.test_routing_assignment import ready_study

SUNDAY = datetime(2026, 3, 1, tzinfo=UTC)
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
SATURDAY = datetime(2026, 3, 7, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(day: datetime, hh_mm: str) -> datetime:
    hours, minutes = hh_mm.split(":")
    return day + timedelta(hours=int(hours), minutes=int(minutes))


def desks(runtime: Runtime, clock: Clock) -> tuple[RoutingDesk, ReadingRoom]:
    runtime.clock = clock
    return runtime.routing_desk(), runtime.reading_room()


def uid_of(runtime: Runtime, accession: str) -> str:
    with runtime.sessions() as session:
        from mri_pipeline.db.models import ReceivedStudy

        return session.execute(
            select(ReceivedStudy.study_instance_uid).where(
                ReceivedStudy.accession_number == accession
            )
        ).scalar_one()


def events(runtime: Runtime, kind: str) -> list[StepEvent]:
    with runtime.sessions() as session:
        return list(
            session.execute(
                select(StepEvent).where(StepEvent.kind == kind).order_by(StepEvent.id)
            ).scalars()
        )


def assignment(runtime: Runtime, accession: str) -> Assignment:
    with runtime.sessions() as session:
        study = find_study(session, uid_of(runtime, accession))
        return session.execute(
            select(Assignment).where(Assignment.study_pk == study.id)
        ).scalar_one()


def test_a_list_is_in_priority_and_deadline_order_and_taken_in_order(runtime: Runtime) -> None:
    clock = Clock(at(SUNDAY, "10:00"))
    routine = ready_study(runtime, "L1", "radiculopathy", at(SUNDAY, "08:00"))
    urgent = ready_study(runtime, "L2", "infection", at(SUNDAY, "09:00"))
    stat = ready_study(runtime, "L3", "suspected-ces", at(SUNDAY, "09:50"))
    desk, room = desks(runtime, clock)
    assert len(desk.route_pass()) == 3

    with runtime.sessions() as session:
        listed = room.reading_list(session, "rad.okafor")
    assert [s["accession_number"] for s in listed["studies"]] == [stat, urgent, routine]
    first = listed["studies"][0]
    assert first["priority"] == "STAT"
    assert first["time_left"] == "50 min left"
    assert first["time_left_s"] == 50 * 60
    assert first["at_risk"] is False
    assert first["red_flags"] == ["suspected-ces"]
    assert "on-call neuro Okafor^Ngozi" in first["reason"]
    assert listed["studies"][1]["time_left"] == "7 h 0 min left"
    assert listed["in_hand"] == 3 and listed["limit"] == 8

    # No cherry-picking: the STAT comes first; someone else's list is not yours.
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match=f"take {stat} .* first"),
    ):
        room.claim(session, uid_of(runtime, urgent), "rad.okafor")
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match=r"in rad\.okafor's list"),
    ):
        room.claim(session, uid_of(runtime, stat), "rad.lindqvist")
    with runtime.sessions() as session, session.begin():
        room.claim(session, uid_of(runtime, stat), "rad.okafor")
        room.claim(session, uid_of(runtime, stat), "rad.okafor")  # twice is harmless
    with runtime.sessions() as session, session.begin():
        room.claim(session, uid_of(runtime, urgent), "rad.okafor")  # now next in order
    with runtime.sessions() as session:
        states = [s["state"] for s in room.reading_list(session, "rad.okafor")["studies"]]
    assert states == ["claimed", "claimed", "assigned"]
    assert len(events(runtime, "CLAIMED")) == 2


def test_the_unassigned_list_is_taken_from_the_top_of_what_you_may_report(
    runtime: Runtime,
) -> None:
    # Monday 08:00: the night on-call has ended, the day has no on-call: nobody takes STAT.
    clock = Clock(at(MONDAY, "08:00"))
    ces = ready_study(runtime, "P1", "suspected-ces", at(MONDAY, "07:40"))
    motor = ready_study(runtime, "P2", "motor-deficit", at(MONDAY, "07:45"))
    desk, room = desks(runtime, clock)
    desk.route_pass()
    assert assignment(runtime, ces).radiologist_key is None
    assert len(events(runtime, "ROUTING_ALERT")) == 2

    with runtime.sessions() as session:
        assert (
            room.reading_list(session, "rad.okafor")["next_unassigned"]["accession_number"] == ces
        )
        # Brennan may not report a cauda equina study (neuro or MSK): his top is the other.
        assert (
            room.reading_list(session, "rad.brennan")["next_unassigned"]["accession_number"]
            == motor
        )
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match=f"take {ces} .* first"),
    ):
        room.claim(session, uid_of(runtime, motor), "rad.okafor")
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match="not neuro or MSK"),
    ):
        room.claim(session, uid_of(runtime, ces), "rad.brennan")
    with runtime.sessions() as session, session.begin():
        room.claim(session, uid_of(runtime, motor), "rad.brennan")
    with runtime.sessions() as session, session.begin():
        room.claim(session, uid_of(runtime, ces), "rad.okafor")
    taken = assignment(runtime, ces)
    assert (taken.radiologist_key, taken.state) == ("rad.okafor", "claimed")
    assert taken.first_assigned_at == clock.now

    # Given back: the pool again; routing does not hand it back to who released it, and
    # raises no second alert for it.
    with runtime.sessions() as session, session.begin():
        room.release(session, uid_of(runtime, ces), "rad.okafor", "conflict of interest")
    desk.route_pass()
    released = assignment(runtime, ces)
    assert (released.radiologist_key, released.state) == (None, "unassigned")
    assert released.released_by == "rad.okafor"
    assert len(events(runtime, "ROUTING_ALERT")) == 2
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match=r"not in rad\.okafor's hands"),
    ):
        room.release(session, uid_of(runtime, ces), "rad.okafor", "again")

    # An administrator reassigns: only to someone who may report it; waivers are said.
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match="not neuro or MSK"),
    ):
        room.reassign(session, uid_of(runtime, ces), "rad.brennan", "admin", "cover")
    with runtime.sessions() as session, session.begin():
        room.reassign(session, uid_of(runtime, ces), "rad.lindqvist", "admin", "MSK cover")
    moved = assignment(runtime, ces)
    assert moved.radiologist_key == "rad.lindqvist"
    assert "waived: not on call for STAT" in moved.reason
    assert [e.actor for e in events(runtime, "REASSIGNED")] == ["admin"]


def test_a_report_goes_preliminary_then_final_and_records_the_turnaround(
    runtime: Runtime,
) -> None:
    clock = Clock(at(SUNDAY, "10:00"))
    stat = ready_study(runtime, "F1", "suspected-ces", at(SUNDAY, "09:50"))
    desk, room = desks(runtime, clock)
    desk.route_pass()
    uid = uid_of(runtime, stat)
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match=r"not in rad\.lindqvist's hands"),
    ):
        room.report(session, uid, "rad.lindqvist", ReportStatus.FINAL, "Normal.")
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match="needs an impression"),
    ):
        room.report(session, uid, "rad.okafor", ReportStatus.PRELIMINARY, "  ")
    clock.now = at(SUNDAY, "10:20")
    with runtime.sessions() as session, session.begin():
        room.report(session, uid, "rad.okafor", ReportStatus.PRELIMINARY, "No compression.")
    assert assignment(runtime, stat).state == "claimed"  # reporting claims it
    clock.now = at(SUNDAY, "10:30")
    with runtime.sessions() as session, session.begin():
        room.report(session, uid, "rad.okafor", ReportStatus.FINAL, "No cauda compression.")
    with (
        runtime.sessions() as session,
        session.begin(),
        pytest.raises(ReadingRefused, match="already reported final"),
    ):
        room.report(session, uid, "rad.okafor", ReportStatus.FINAL, "Changed my mind.")

    with runtime.sessions() as session:
        view = room.study_view(session, uid)
        listed = room.reading_list(session, "rad.okafor")
    assert view["report"]["status"] == "final"
    assert view["report"]["impression"] == "No cauda compression."
    assert view["turnaround"] == {
        "completed_at": at(SUNDAY, "09:50"),
        "first_assigned_at": at(SUNDAY, "10:00"),
        "final_at": at(SUNDAY, "10:30"),
        "complete_to_assigned_s": 600,
        "assigned_to_final_s": 1800,
        "complete_to_final_s": 2400,
        "target_s": 3600,
        "met": True,
    }
    assert [e["kind"] for e in view["events"]] == [
        "ROUTED",
        "CLAIMED",
        "REPORT_PRELIMINARY",
        "REPORT_FINAL",
    ]
    assert view["order"]["red_flags"][0]["code"] == "suspected-ces"
    assert view["protocol"]["code"] == "LSP-CES"
    assert view["assignment"]["state"] == "final"
    assert listed["studies"] == []  # a final study is out of the list


def test_a_study_at_risk_is_escalated_once_by_the_clock(runtime: Runtime) -> None:
    clock = Clock(at(MONDAY, "10:00"))
    routine = ready_study(runtime, "E1", "radiculopathy", at(MONDAY, "10:00"))
    desk, _room = desks(runtime, clock)
    desk.route_pass()
    first = assignment(runtime, routine)
    # Least work, then name: Brennan, Lindqvist and Okafor all hold nothing.
    assert first.radiologist_key == "rad.brennan"
    # 80 % of the 48 h routine target: Wednesday 00:24, in Moreau's night on-call.
    assert first.escalate_at == at(MONDAY, "48:24")
    clock.now = at(MONDAY, "48:23")
    assert desk.escalate_pass() == []
    clock.now = at(MONDAY, "48:24")
    assert len(desk.escalate_pass()) == 1
    moved = assignment(runtime, routine)
    assert moved.radiologist_key == "rad.moreau"
    assert moved.escalated_at == clock.now
    assert moved.first_assigned_at == at(MONDAY, "10:00")  # turnaround counts from the first
    (event,) = events(runtime, "ESCALATED")
    assert event.reason is not None
    assert event.reason.startswith("at risk (9 h 36 min left): escalated from rad.brennan")
    assert event.details == {"radiologist": "rad.moreau", "previous": "rad.brennan"}
    clock.now = at(MONDAY, "50:00")
    assert desk.escalate_pass() == []  # once


def test_at_risk_with_nobody_else_alerts_and_a_study_being_read_stays(
    runtime: Runtime,
) -> None:
    clock = Clock(at(SATURDAY, "10:00"))
    waiting = ready_study(runtime, "S1", "suspected-ces", at(SATURDAY, "10:00"))
    reading = ready_study(runtime, "S2", "motor-deficit", at(SATURDAY, "09:55"))
    desk, room = desks(runtime, clock)
    desk.route_pass()
    with runtime.sessions() as session, session.begin():
        room.claim(session, uid_of(runtime, reading), "rad.okafor")
    clock.now = at(SATURDAY, "10:30")  # 50 % of the STAT hour for both
    assert len(desk.escalate_pass()) == 2
    (alert,) = events(runtime, "ESCALATION_ALERT")
    assert alert.reason is not None and "nobody to escalate to" in alert.reason
    assert alert.study_instance_uid == uid_of(runtime, waiting)
    (risk,) = events(runtime, "AT_RISK")
    assert risk.study_instance_uid == uid_of(runtime, reading)
    assert risk.reason == "at risk (25 min left): rad.okafor is reading it"
    assert assignment(runtime, waiting).radiologist_key == "rad.okafor"
    assert assignment(runtime, reading).state == "claimed"


def test_a_shift_change_moves_new_work_and_empties_the_pool(runtime: Runtime) -> None:
    clock = Clock(at(MONDAY, "08:00"))
    stat = ready_study(runtime, "H1", "suspected-ces", at(MONDAY, "07:58"))
    desk, _room = desks(runtime, clock)
    desk.route_pass()
    assert assignment(runtime, stat).radiologist_key is None  # no on-call by day

    clock.now = at(MONDAY, "17:59")
    day = ready_study(runtime, "H2", "stenosis", at(MONDAY, "17:59"))
    desk.route_pass()
    assert assignment(runtime, day).radiologist_key in ("rad.okafor", "rad.lindqvist")
    assert assignment(runtime, stat).radiologist_key is None

    clock.now = at(MONDAY, "18:01")
    night = ready_study(runtime, "H3", "stenosis", at(MONDAY, "18:01"))
    desk.route_pass()
    assert assignment(runtime, night).radiologist_key == "rad.moreau"
    pooled = assignment(runtime, stat)
    assert pooled.radiologist_key == "rad.moreau"  # the pool is offered again
    assert pooled.first_assigned_at == at(MONDAY, "18:01")
    with runtime.sessions() as session:
        routed = session.scalar(
            select(func.count()).select_from(StepEvent).where(StepEvent.kind == "ROUTED")
        )
    assert routed == 3


def test_the_radiologist_who_reported_the_prior_gets_the_follow_up(runtime: Runtime) -> None:
    clock = Clock(at(MONDAY, "10:00"))
    prior = ready_study(runtime, "C1", "radiculopathy", at(MONDAY, "09:00"))
    desk, room = desks(runtime, clock)
    desk.route_pass()
    with runtime.sessions() as session, session.begin():
        room.reassign(session, uid_of(runtime, prior), "rad.lindqvist", "admin", "MSK review")
    with runtime.sessions() as session, session.begin():
        room.report(session, uid_of(runtime, prior), "rad.lindqvist", ReportStatus.FINAL, "L4-5.")
    clock.now = at(MONDAY, "11:00")
    follow_up = ready_study(runtime, "C1", "radiculopathy", at(MONDAY, "11:00"))
    other = ready_study(runtime, "C2", "radiculopathy", at(MONDAY, "11:00"))
    desk.route_pass()
    # Nobody has work in hand: continuity decides the follow-up, the name the other.
    chosen = assignment(runtime, follow_up)
    assert chosen.radiologist_key == "rad.lindqvist"
    assert "reported the prior" in chosen.reason
    assert assignment(runtime, other).radiologist_key == "rad.brennan"
