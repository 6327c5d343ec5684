"""The open part of the reading room, kept in memory by each process that shows reading
lists: every study assigned, being read or waiting unassigned, with what a list shows.

Every reading list is drawn from it, so a list costs one small query (has anything
changed?) instead of joining the assignments, studies, orders and patients again; when
an event announces that routing put 50 studies into lists and every radiologist's
screen asks for its list at once, the 50 answers come from memory.

It is kept current by the event log. Every change to an assignment writes an event of
its study (routing, escalation, claim, release, reassignment, report), in the same
transaction, so the studies of events not seen yet are read again. As in ingest, the
last ``lookback`` event ids are counted on each check, because on PostgreSQL a
transaction can commit after a later id is already visible. An assignment inserted
without an event is caught by the assignments' highest id, and everything is read
again every ``full_every`` seconds (a patient's corrected name, say, changes no
assignment).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from mri_pipeline.db.models import (
    Assignment,
    Patient,
    ReceivedStudy,
    RequestedProcedure,
    StepEvent,
)
from mri_pipeline.domain.reading import IN_HAND, AssignmentState

OPEN = (*IN_HAND, AssignmentState.UNASSIGNED.value)
LOOKBACK = 256  # event ids read again on each check (commits out of id order)
FULL_EVERY = 600.0  # seconds between complete re-reads
UIDS_PER_QUERY = 500

# Built once: a statement made anew on each check would cost more than running it.
MARKER = select(
    select(func.count()).where(StepEvent.id > bindparam("floor")).scalar_subquery(),
    select(func.max(StepEvent.id)).scalar_subquery(),
    select(func.max(Assignment.id)).scalar_subquery(),
)


@dataclass(frozen=True)
class OpenStudy:
    """One open assignment with what a reading list shows of it."""

    assignment_id: int
    study_instance_uid: str
    accession_number: str | None
    patient_id: str | None
    patient_name: str | None
    radiologist_key: str | None
    state: str
    priority: str
    priority_rank: int
    deadline: datetime
    escalate_at: datetime
    reason: str
    completed_at: datetime | None
    assigned_at: datetime
    claimed_at: datetime | None
    protocol_code: str | None
    indication: str | None
    red_flags: tuple[str, ...]

    @property
    def queue_order(self) -> tuple[int, datetime, int]:
        """Most urgent first, then the earliest deadline (as the SQL orders it)."""
        return (-self.priority_rank, self.deadline, self.assignment_id)


@dataclass(frozen=True)
class Board:
    """One consistent picture: each radiologist's studies in hand and the unassigned
    list, both in queue order."""

    holding: Mapping[str, tuple[OpenStudy, ...]]
    pool: tuple[OpenStudy, ...]

    def in_hand(self, key: str) -> tuple[OpenStudy, ...]:
        return self.holding.get(key, ())

    def everything(self) -> tuple[OpenStudy, ...]:
        """Every open study, in queue order."""
        return _queue([*(row for rows in self.holding.values() for row in rows), *self.pool])


EMPTY = Board({}, ())


def _open_studies(session: Session, condition: ColumnElement[bool]) -> list[OpenStudy]:
    rows = session.execute(
        select(
            Assignment.id.label("assignment_id"),
            ReceivedStudy.study_instance_uid,
            ReceivedStudy.accession_number,
            Patient.patient_id,
            Patient.name.label("patient_name"),
            Assignment.radiologist_key,
            Assignment.state,
            Assignment.priority,
            Assignment.priority_rank,
            Assignment.deadline,
            Assignment.escalate_at,
            Assignment.reason,
            ReceivedStudy.completed_at,
            Assignment.assigned_at,
            Assignment.claimed_at,
            RequestedProcedure.protocol_code,
            RequestedProcedure.indication,
            RequestedProcedure.red_flags,
        )
        .join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
        .join(RequestedProcedure, RequestedProcedure.id == ReceivedStudy.procedure_pk)
        .join(Patient, Patient.id == RequestedProcedure.patient_pk)
        .where(condition)
    )
    return [
        OpenStudy(**(row._asdict() | {"red_flags": tuple(row.red_flags or ())})) for row in rows
    ]


def _queue(rows: Iterable[OpenStudy]) -> tuple[OpenStudy, ...]:
    return tuple(sorted(rows, key=lambda row: row.queue_order))


class ReadingBoard:
    """The open assignments of one process, checked against the database on each use;
    threads share it."""

    def __init__(
        self,
        *,
        lookback: int = LOOKBACK,
        full_every: float = FULL_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookback = lookback
        self.full_every = full_every
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._studies: dict[str, OpenStudy] = {}
        self._board = EMPTY
        self._loaded_at: float | None = None
        self._checked_from = -math.inf  # when the last check against the database began
        self._pending: asyncio.Task[None] | None = None  # the event loop's next check
        self._events_high = 0  # highest event id seen
        self._seen: set[int] = set()  # event ids seen above _events_high - lookback
        self._assignments_high = 0  # highest assignment id seen

    def forget(self) -> None:
        """Read everything again at the next use."""
        with self._lock:
            self._loaded_at = None
            self._checked_from = -math.inf

    async def current_soon(self, sessions: sessionmaker[Session]) -> Board:
        """``current`` for the event loop: the request waits for a check that begins after
        it arrived, run in a worker thread on a session of its own; the requests of a
        burst share one or two checks, and none of them holds a thread meanwhile."""
        arrived = self.monotonic()
        while self._checked_from < arrived:
            loop = asyncio.get_running_loop()
            pending = self._pending
            if pending is None or pending.done() or pending.get_loop() is not loop:
                pending = loop.create_task(run_in_threadpool(self._check_alone, sessions))
                self._pending = pending
            await asyncio.shield(pending)  # a request that goes away leaves the check
        return self._board

    def _check_alone(self, sessions: sessionmaker[Session]) -> None:
        with sessions() as session:
            self.current(session)

    def current(self, session: Session) -> Board:
        """The board with every change committed before this call, checked on the
        caller's ``session`` (a request holds one connection, never two): what changed
        since the last check is read first. Callers that arrive while a check runs are
        served by the next one, so a burst of requests makes two checks, not one each."""
        arrived = self.monotonic()
        with self._lock:
            if self._checked_from >= arrived:
                return self._board  # a check that began after we arrived
            # A session already inside a transaction may read an older snapshot (SQLite):
            # its check serves its own caller, not the others waiting.
            fresh = not session.in_transaction()
            started = self.monotonic()
            loaded_at = self._loaded_at
            if loaded_at is None or started - loaded_at >= self.full_every:
                self._load_all(session)
                self._loaded_at = started
            else:
                self._catch_up(session)
            if fresh:
                self._checked_from = started
            return self._board

    # -- keeping up -----------------------------------------------------------------

    def _floor(self) -> int:
        return self._events_high - self.lookback

    def _marker(self, session: Session) -> tuple[int, int, int]:
        """In one round trip: events in the look-back window, the highest event id, the
        highest assignment id."""
        row = session.execute(MARKER, {"floor": self._floor()}).one()
        return int(row[0]), int(row[1] or 0), int(row[2] or 0)

    def _up_to_date(self, marker: tuple[int, int, int]) -> bool:
        return marker == (len(self._seen), self._events_high, self._assignments_high)

    def _remember_events(self, session: Session) -> list[str]:
        """Event ids in the look-back window not seen before are remembered; the uids of
        their studies are returned."""
        fresh = [
            (event_id, uid)
            for event_id, uid in session.execute(
                select(StepEvent.id, StepEvent.study_instance_uid).where(
                    StepEvent.id > self._floor()
                )
            )
            if event_id not in self._seen
        ]
        self._seen.update(event_id for event_id, _ in fresh)
        self._events_high = max(self._seen, default=self._events_high)
        floor = self._floor()
        self._seen = {event_id for event_id in self._seen if event_id > floor}
        return sorted({uid for _, uid in fresh if uid})

    def _load_all(self, session: Session) -> None:
        self._events_high = session.scalar(select(func.max(StepEvent.id))) or 0
        self._seen = set()
        self._remember_events(session)
        self._assignments_high = session.scalar(select(func.max(Assignment.id))) or 0
        rows = _open_studies(session, Assignment.state.in_(OPEN))
        self._studies = {row.study_instance_uid: row for row in rows}
        self._publish(None)

    def _catch_up(self, session: Session) -> None:
        marker = self._marker(session)
        if self._up_to_date(marker):
            return
        assignments_before = self._assignments_high
        uids = self._remember_events(session)
        self._assignments_high = marker[2]
        changed: dict[str, OpenStudy | None] = dict.fromkeys(uids)
        for start in range(0, len(uids), UIDS_PER_QUERY):
            chunk = uids[start : start + UIDS_PER_QUERY]
            for row in _open_studies(session, ReceivedStudy.study_instance_uid.in_(chunk)):
                changed[row.study_instance_uid] = row
        if marker[2] > assignments_before:
            for row in _open_studies(session, Assignment.id > assignments_before):
                changed[row.study_instance_uid] = row
        touched: set[str | None] = set()
        for uid, now_open in changed.items():
            before = self._studies.pop(uid, None)
            if before is not None:
                touched.add(_holder(before))
            if now_open is not None and now_open.state in OPEN:
                self._studies[uid] = now_open
                touched.add(_holder(now_open))
        if touched:
            self._publish(touched)

    def _publish(self, touched: set[str | None] | None) -> None:
        """A new board: the lists of the ``touched`` holders (None: the unassigned list)
        sorted again from the studies, or every list when ``touched`` is None."""
        grouped: dict[str | None, list[OpenStudy]] = {}
        for row in self._studies.values():
            holder = _holder(row)
            if touched is None or holder in touched:
                grouped.setdefault(holder, []).append(row)
        old = self._board
        holding = {} if touched is None else dict(old.holding)
        for holder in touched or ():
            if holder is not None:
                holding.pop(holder, None)
        for holder, rows in grouped.items():
            if holder is not None:
                holding[holder] = _queue(rows)
        refresh_pool = touched is None or None in touched
        self._board = Board(holding, _queue(grouped.get(None, ())) if refresh_pool else old.pool)


def _holder(row: OpenStudy) -> str | None:
    """Whose list the study is in; None for the unassigned list."""
    return row.radiologist_key if row.state in IN_HAND else None
