"""The reading board: every reading list is drawn from the open assignments each process
keeps in memory, brought up to date from the event log on each use; and the roster,
asked whether it changed at most once a second."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from mri_pipeline.db.models import Patient, RadiologistRow
from mri_pipeline.domain.reading import ReportStatus
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.radiologists import Roster
from mri_pipeline.services.reading_board import Board, ReadingBoard
from tests.integration.test_reading_room import MONDAY, Clock, at, desks, uid_of
from tests.integration.test_routing_assignment import ready_study


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read_in_full(runtime: Runtime) -> Board:
    """What a process starting now would draw: a new board, read from the database."""
    with runtime.sessions() as session:
        return ReadingBoard().current(session)


def kept(runtime: Runtime, board: ReadingBoard) -> Board:
    with runtime.sessions() as session:
        return board.current(session)


def test_the_board_kept_up_to_date_equals_one_read_in_full_after_every_change(
    runtime: Runtime,
) -> None:
    """A board that has only caught up on events, never read in full again, holds after
    each change what a fresh read holds: routing, claims, a release, a reassignment,
    reports and escalation all reach it."""
    clock = Clock(at(MONDAY, "10:00"))
    desk, room = desks(runtime, clock)
    board = ReadingBoard(full_every=1e9)  # never read in full after the first time
    kept(runtime, board)
    accessions = [
        ready_study(runtime, f"B{n}", indication, at(MONDAY, "09:00") + timedelta(minutes=n))
        for n, indication in enumerate(
            ["radiculopathy", "infection", "suspected-ces", "radiculopathy", "motor-deficit"]
        )
    ]
    uids = [uid_of(runtime, accession) for accession in accessions]

    def same() -> Board:
        ours, fresh = kept(runtime, board), read_in_full(runtime)
        assert ours == fresh
        return ours

    assert desk.route_pass()
    routed = same()
    assert sum(len(rows) for rows in routed.holding.values()) + len(routed.pool) == 5

    holder, rows = next((key, rows) for key, rows in routed.holding.items() if rows)
    first = rows[0].study_instance_uid
    with runtime.sessions() as session, session.begin():
        room.claim(session, first, holder)
    assert next(r for r in same().in_hand(holder) if r.study_instance_uid == first).state == (
        "claimed"
    )

    with runtime.sessions() as session, session.begin():
        room.release(session, first, holder, "conflict of interest")
    assert first not in {r.study_instance_uid for r in same().in_hand(holder)}

    other = next(uid for uid in uids if uid != first)
    with runtime.sessions() as session, session.begin():
        room.reassign(session, other, "rad.okafor", "admin", "she knows the patient")
    assert other in {r.study_instance_uid for r in same().in_hand("rad.okafor")}

    with runtime.sessions() as session, session.begin():
        room.report(session, other, "rad.okafor", ReportStatus.FINAL, "No compression.")
    assert other not in {r.study_instance_uid for r in same().in_hand("rad.okafor")}

    clock.now = at(MONDAY, "23:00")  # every deadline at risk: escalation moves studies
    desk.route_pass()
    desk.escalate_pass()
    same()


def test_a_change_committed_after_a_newer_one_still_reaches_the_board(runtime: Runtime) -> None:
    """On PostgreSQL the claim that took the lower event id may commit last; the board
    must not step over it for having seen a higher id already."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite commits one writer at a time: ids always commit in order")
    clock = Clock(at(MONDAY, "10:00"))
    desk, room = desks(runtime, clock)
    for n in (1, 2):
        ready_study(runtime, f"O{n}", "radiculopathy", at(MONDAY, "09:00"))
    desk.route_pass()
    board = ReadingBoard(full_every=1e9)
    listed = kept(runtime, board)
    (early, reader), (late, other) = (
        (row.study_instance_uid, key) for key, rows in listed.holding.items() for row in rows
    )

    slow = runtime.sessions()
    slow.begin()
    room.claim(slow, early, reader)
    slow.flush()  # its CLAIMED event has taken the lower id
    with runtime.sessions() as session, session.begin():
        room.release(session, late, other, "not my field")  # a higher id, committed
    seen = kept(runtime, board)
    assert late not in {r.study_instance_uid for r in seen.in_hand(other)}
    assert seen.in_hand(reader)[0].state == "assigned"  # the claim is not committed yet
    slow.commit()
    slow.close()
    assert kept(runtime, board).in_hand(reader)[0].state == "claimed"
    assert kept(runtime, board) == read_in_full(runtime)


def test_callers_who_arrive_while_a_check_runs_are_served_by_it_not_by_one_each(
    runtime: Runtime,
) -> None:
    ticks = Ticks()
    board = ReadingBoard(monotonic=ticks)
    checks = [0]

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        checks[0] += "max(step_events.id)" in statement

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        kept(runtime, board)  # read in full
        ticks.now += 1
        kept(runtime, board)
        assert checks[0] == 2  # the full read and one check
        # The clock has not moved: these arrived no later than that check began.
        for _ in range(5):
            kept(runtime, board)
        assert checks[0] == 2
        ticks.now += 0.001
        kept(runtime, board)
        assert checks[0] == 3
        # A session already in a transaction may see an older snapshot: its check
        # answers its own caller only.
        ticks.now += 1
        with runtime.sessions() as session:
            session.connection()
            board.current(session)
        kept(runtime, board)
        assert checks[0] == 5
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)


def test_the_board_is_read_in_full_again_after_full_every(runtime: Runtime) -> None:
    """A change no event announces (a patient's name corrected) shows within
    ``full_every``."""
    clock = Clock(at(MONDAY, "10:00"))
    desk, _room = desks(runtime, clock)
    ready_study(runtime, "N1", "radiculopathy", at(MONDAY, "09:00"))
    desk.route_pass()
    ticks = Ticks()
    board = ReadingBoard(full_every=600, monotonic=ticks)
    before = kept(runtime, board)
    with runtime.sessions.begin() as session:
        session.execute(
            update(Patient).where(Patient.patient_id == "N1").values(name="Corrected^Name")
        )
    ticks.now += 599
    names = {r.patient_name for rows in kept(runtime, board).holding.values() for r in rows}
    assert names == {r.patient_name for rows in before.holding.values() for r in rows}
    ticks.now += 1
    names = {r.patient_name for rows in kept(runtime, board).holding.values() for r in rows}
    assert "Corrected^Name" in names


def test_the_roster_is_asked_whether_it_changed_at_most_once_a_recheck(runtime: Runtime) -> None:
    ticks = Ticks()
    roster = Roster(recheck=1.0, monotonic=ticks)
    with runtime.sessions() as session:
        keys = [e.key for e in roster.table(session).radiologists]  # type: ignore[union-attr]
    with runtime.sessions.begin() as session:
        session.execute(
            update(RadiologistRow)
            .where(RadiologistRow.key == keys[0])
            .values(active=False, updated_at=at(MONDAY, "10:00"))
        )
    with runtime.sessions() as session:
        ticks.now += 0.9
        assert roster.in_memory()
        assert [e.key for e in roster.table(session).radiologists] == keys  # type: ignore[union-attr]
        ticks.now += 0.1
        assert not roster.in_memory()
        # Without a session (the event loop): what is in memory, however old.
        assert [e.key for e in roster.table(None).radiologists] == keys  # type: ignore[union-attr]
        assert [e.key for e in roster.table(session).radiologists] == keys[1:]  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        Roster().table(None)


def test_a_burst_of_requests_on_the_event_loop_shares_one_check(runtime: Runtime) -> None:
    """The API asks the board from the event loop: twenty requests that arrive together
    wait for one check, run in a worker thread, and see a change committed before."""
    clock = Clock(at(MONDAY, "10:00"))
    desk, _room = desks(runtime, clock)
    board = ReadingBoard()
    kept(runtime, board)  # read in full
    ready_study(runtime, "S1", "radiculopathy", at(MONDAY, "09:00"))
    desk.route_pass()
    checks = [0]

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        checks[0] += "max(step_events.id)" in statement

    async def burst() -> list[Board]:
        return await asyncio.gather(*(board.current_soon(runtime.sessions) for _ in range(20)))

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        boards = asyncio.run(burst())
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert checks[0] == 1
    assert all(b is boards[0] for b in boards)
    assert sum(len(rows) for rows in boards[0].holding.values()) == 1  # the new study
    assert boards[0] == read_in_full(runtime)
