"""The audit trail: every look at patient data, by a person over HTTP or by a DICOM peer,
written to ``audit_log`` by one background writer so that no answer waits for it."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mri_pipeline.db.models import AuditEntry

log = logging.getLogger(__name__)

RESOURCE_LENGTH = 512  # the column's size
BATCH = 200
RETRY_PAUSE = 1.0  # seconds between attempts while the database is away


@dataclass(frozen=True)
class Look:
    """One look at patient data, as the audit log keeps it."""

    at: datetime
    username: str  # a user name, or a DICOM peer's AE title
    role: str
    action: str
    resource: str
    status: int

    def row(self) -> dict[str, object]:
        return {
            "at": self.at,
            "username": self.username[:64],
            "role": self.role[:16],
            "action": self.action[:16],
            "resource": self.resource[:RESOURCE_LENGTH],
            "status": self.status,
        }


class AuditTrail:
    """Queues looks and writes them in batches from its own thread.

    ``record`` never blocks and never touches the database. Looks wait in memory while
    the database is away and are written when it is back; what is still queued when the
    process is killed is lost, so the writer empties the queue as fast as the database
    takes it. ``flush`` waits until everything recorded so far is written.
    """

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock
        self._queue: queue.Queue[Look | None] = queue.Queue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._closing = threading.Event()

    def record(self, username: str, role: str, action: str, resource: str, status: int) -> None:
        """``username`` (in ``role``) did ``action`` to ``resource`` and got ``status``."""
        self._start_writer()
        self._queue.put(Look(self._clock(), username, role, action, resource, status))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every look recorded so far is written; False on timeout."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(
                lambda: self._queue.unfinished_tasks == 0, timeout
            )

    def close(self) -> None:
        """Write what is queued (one last try if the database is away), then stop."""
        self._closing.set()
        with self._lock:
            writer = self._writer
        if writer is None:
            return
        self._queue.put(None)
        writer.join(timeout=30)

    def _start_writer(self) -> None:
        if self._writer is not None:
            return
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            looks: list[Look] = []
            taken = 1
            item = self._queue.get()
            while item is not None:
                looks.append(item)
                if len(looks) == BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
            stopping = item is None
            self._write(looks)
            for _ in range(taken):
                self._queue.task_done()

    def _write(self, looks: list[Look]) -> None:
        while looks:
            try:
                with self._sessions.begin() as session:
                    session.execute(insert(AuditEntry), [look.row() for look in looks])
                return
            except SQLAlchemyError as exc:
                if self._closing.is_set():
                    log.error("audit entries lost at shutdown entries=%d", len(looks))
                    return
                log.warning(
                    "audit entries not written yet, retrying entries=%d error=%s",
                    len(looks),
                    type(exc).__name__,
                )
                self._closing.wait(RETRY_PAUSE)


def audit_entries(
    session: Session, *, username: str | None = None, contains: str | None = None, limit: int
) -> list[dict[str, Any]]:
    """The newest entries first, of one user (or AE title), or whose resource holds
    ``contains``."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if username is not None:
        query = query.where(AuditEntry.username == username)
    if contains is not None:
        query = query.where(AuditEntry.resource.contains(contains, autoescape=True))
    return [
        {
            "at": e.at,
            "username": e.username,
            "role": e.role,
            "action": e.action,
            "resource": e.resource,
            "status": e.status,
        }
        for e in session.execute(query).scalars()
    ]
