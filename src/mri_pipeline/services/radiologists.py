"""The radiologists in the database: seeded from ``worklist/radiologists.yaml`` at start,
read back as the domain's table by routing and the reading list."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import RadiologistRow
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.radiologists import RadiologistEntry, RadiologistTable
from mri_pipeline.domain.routing import Radiologist


class UnknownRadiologist(DomainError):
    """No active radiologist has this key."""


def sync_radiologists(session: Session, table: RadiologistTable, at: datetime) -> None:
    """Make the rows match the file: new and changed entries written, entries no longer
    in the file marked inactive (their assignments and reports keep their key)."""
    rows = {row.key: row for row in session.scalars(select(RadiologistRow))}
    for entry in table.radiologists:
        stored = entry.model_dump(mode="json")
        row = rows.pop(entry.key, None)
        if row is None:
            session.add(
                RadiologistRow(
                    key=entry.key,
                    name=entry.name,
                    workstation=entry.workstation,
                    entry=stored,
                    active=True,
                    updated_at=at,
                )
            )
        elif row.entry != stored or not row.active:
            row.name, row.workstation, row.entry = entry.name, entry.workstation, stored
            row.active, row.updated_at = True, at
    for row in rows.values():
        if row.active:
            row.active, row.updated_at = False, at


class Roster:
    """The active radiologists, read again only when a row has changed. Whether one has
    is asked at most every ``recheck`` seconds: the roster changes when a process starts
    with a new radiologists file, not from one request to the next."""

    def __init__(
        self, recheck: float = 1.0, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.recheck = recheck
        self.monotonic = monotonic
        # (version, table, when asked) replaced as one value: threads share a roster.
        self._cached: tuple[tuple[int, datetime | None], RadiologistTable | None, float] | None = (
            None
        )
        self._team: tuple[RadiologistTable, tuple[date, str], list[Radiologist]] | None = None
        self._asking = threading.Lock()  # held by the one caller asking the database

    def in_memory(self) -> bool:
        """Whether the roster may be read without a session: asked within ``recheck``,
        or being asked now by another caller (whose answer it is until then)."""
        cached = self._cached
        return cached is not None and (
            self.monotonic() - cached[2] < self.recheck or self._asking.locked()
        )

    def table(self, session: Session | None) -> RadiologistTable | None:
        """None when there are no active radiologists. Without a ``session``, what is in
        memory, however old (check ``in_memory`` first)."""
        cached = self._cached
        asked = self.monotonic()
        if cached is not None and (session is None or asked - cached[2] < self.recheck):
            return cached[1]
        if session is None:
            raise LookupError("the roster has not been read yet")
        if cached is not None and not self._asking.acquire(blocking=False):
            return cached[1]  # another caller is asking: its answer is a moment away
        if cached is None:
            self._asking.acquire()
        try:
            return self._asked(session, cached, asked)
        finally:
            self._asking.release()

    def _asked(
        self,
        session: Session,
        cached: tuple[tuple[int, datetime | None], RadiologistTable | None, float] | None,
        asked: float,
    ) -> RadiologistTable | None:
        version_row = session.execute(
            select(func.count(), func.max(RadiologistRow.updated_at)).where(
                RadiologistRow.active.is_(True)
            )
        ).one()
        version = (int(version_row[0]), version_row[1])
        if cached is None or cached[0] != version:
            entries = [
                RadiologistEntry.model_validate(row.entry)
                for row in session.scalars(
                    select(RadiologistRow)
                    .where(RadiologistRow.active.is_(True))
                    .order_by(RadiologistRow.key)
                )
            ]
            table = RadiologistTable(radiologists=tuple(entries)) if entries else None
            self._cached = (version, table, asked)
            return table
        self._cached = (version, cached[1], asked)
        return cached[1]

    def team(self, session: Session | None, day: date, zone: ZoneInfo) -> list[Radiologist]:
        """The radiologists with their concrete shifts around ``day`` (see
        ``RadiologistTable.on``), worked out once per roster version and day."""
        table = self.table(session)
        if table is None:
            return []
        cached = self._team
        if cached is not None and cached[0] is table and cached[1] == (day, zone.key):
            return cached[2]
        team = table.on(day, zone)
        self._team = (table, (day, zone.key), team)
        return team

    def entry(self, session: Session, key: str) -> RadiologistEntry:
        table = self.table(session)
        found = next((e for e in table.radiologists if e.key == key), None) if table else None
        if found is None:
            raise UnknownRadiologist(f"no active radiologist {key!r}")
        return found
