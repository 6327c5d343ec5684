"""Worklist queries: narrowed in SQL on indexed columns, decided by the pure matching rules."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, joinedload, sessionmaker

from mri_pipeline.db.models import RequestedProcedure, ScheduledStep
from mri_pipeline.domain.matching import matches, unsupported_keys
from mri_pipeline.domain.worklist_item import item_index
from mri_pipeline.domain.worklist_query import WorklistQuery, read_query, visible
from mri_pipeline.services.audit import AuditTrail

log = logging.getLogger(__name__)


class TooManyMatches(Exception):
    """The query matches more items than the configured limit."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"query matches {count} worklist items, more than the limit of {limit}; "
            "narrow it by date or station"
        )
        self.count = count
        self.limit = limit


@dataclass(frozen=True)
class WorklistAnswer:
    items: list[Dataset]
    unsupported: list[BaseTag]


class ItemCache:
    """Decoded worklist items by step id and revision, so repeated queries skip JSON parsing."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._items: OrderedDict[int, tuple[int, Dataset]] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def get(self, step_id: int, revision: int) -> Dataset | None:
        with self._lock:
            entry = self._items.get(step_id)
            if entry is None or entry[0] != revision:
                return None
            self._items.move_to_end(step_id)
            return entry[1]

    def put(self, step_id: int, revision: int, item: Dataset) -> None:
        with self._lock:
            self._items[step_id] = (revision, item)
            self._items.move_to_end(step_id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)


def describe(query: WorklistQuery) -> str:
    """The query's keys for the audit log: identifiers, never a name (only that one was
    asked for)."""
    keys = {
        "station": query.station_ae_title,
        "modality": query.modality,
        "from": query.start_from.isoformat() if query.start_from else None,
        "until": query.start_until.isoformat() if query.start_until else None,
        "patient_id": query.patient_id,
        "accession": query.accession_number,
        "requested_procedure": query.requested_procedure_id,
        "step": query.sps_id,
        "status": query.status,
        "study": ",".join(query.study_instance_uids) or None,
        "name": "(given)" if query.name_prefix else None,
    }
    return " ".join(f"{key}={value}" for key, value in keys.items() if value is not None)


def narrow(statement: Select[int, int, str], query: WorklistQuery) -> Select[int, int, str]:
    """Add the indexed conditions a query allows; never excludes a true match."""
    step = ScheduledStep
    if query.station_ae_title is not None:
        statement = statement.where(
            or_(step.station_ae_title == query.station_ae_title, step.station_multi.is_(True))
        )
    if query.modality is not None:
        statement = statement.where(step.modality == query.modality)
    if query.start_from is not None:
        statement = statement.where(step.start_at >= query.start_from)
    if query.start_until is not None:
        statement = statement.where(step.start_at <= query.start_until)
    if query.patient_id is not None:
        statement = statement.where(step.patient_id == query.patient_id)
    if query.accession_number is not None:
        statement = statement.where(step.accession_number == query.accession_number)
    if query.requested_procedure_id is not None:
        statement = statement.where(step.requested_procedure_id == query.requested_procedure_id)
    if query.sps_id is not None:
        statement = statement.where(step.sps_id == query.sps_id)
    if query.status is not None:
        statement = statement.where(step.status == query.status)
    if query.study_instance_uids:
        statement = statement.where(step.study_instance_uid.in_(query.study_instance_uids))
    if query.name_prefix:
        escaped = query.name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(step.patient_name_key.like(f"{escaped}%", escape="\\"))
    if query.hidden_statuses:
        statement = statement.where(step.status.not_in(sorted(query.hidden_statuses)))
    return statement


class WorklistFinder:
    """Answers Modality Worklist queries from the database."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditTrail | None = None,
        *,
        max_results: int = 2000,
        cache_size: int = 50_000,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._cache = ItemCache(cache_size)
        self._max_results = max_results

    def find(self, identifier: Dataset, calling_ae: str | None = None) -> WorklistAnswer:
        """Items matching ``identifier`` (raises ``InvalidQuery``, ``TooManyMatches``).

        With the peer's ``calling_ae``, the answer goes to the audit trail: which items
        (by accession number) that AE was shown for which keys.
        """
        query = read_query(identifier)
        statement = narrow(
            select(ScheduledStep.id, ScheduledStep.revision, ScheduledStep.status), query
        ).order_by(ScheduledStep.start_at, ScheduledStep.id)
        with self._sessions() as session:
            rows = session.execute(statement).all()
            items = self._load(session, [(row[0], row[1]) for row in rows])
        answer = [
            items[step_id]
            for (step_id, _rev, status) in rows
            if visible(status, query) and matches(identifier, items[step_id])
        ]
        if len(answer) > self._max_results:
            raise TooManyMatches(len(answer), self._max_results)
        if calling_ae is not None and self._audit is not None:
            shown = " ".join(str(item.get("AccessionNumber", "")) for item in answer)
            self._audit.record(
                calling_ae,
                "dicom",
                "mwl-find",
                f"MWL C-FIND {describe(query)} -> {len(answer)} items: {shown}",
                0,
            )
        return WorklistAnswer(answer, unsupported_keys(identifier))

    def find_by_scanning(self, identifier: Dataset) -> list[Dataset]:
        """The same answer without SQL narrowing: every item through the matching rules.

        Slow; it exists so tests can prove that narrowing never changes an answer.
        """
        query = read_query(identifier)
        statement = select(ScheduledStep.id, ScheduledStep.revision, ScheduledStep.status).order_by(
            ScheduledStep.start_at, ScheduledStep.id
        )
        with self._sessions() as session:
            rows = session.execute(statement).all()
            items = self._load(session, [(row[0], row[1]) for row in rows])
        return [
            items[step_id]
            for (step_id, _rev, status) in rows
            if visible(status, query) and matches(identifier, items[step_id])
        ]

    def _load(self, session: Session, keys: Iterable[tuple[int, int]]) -> dict[int, Dataset]:
        found: dict[int, Dataset] = {}
        missing: list[int] = []
        for step_id, revision in keys:
            cached = self._cache.get(step_id, revision)
            if cached is None:
                missing.append(step_id)
            else:
                found[step_id] = cached
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = session.execute(
                select(ScheduledStep.id, ScheduledStep.revision, ScheduledStep.dataset_json).where(
                    ScheduledStep.id.in_(chunk)
                )
            ).all()
            for step_id, revision, text in rows:
                item = Dataset.from_json(text)
                self._cache.put(step_id, revision, item)
                found[step_id] = item
        return found


def write_item(step: ScheduledStep, item: Dataset, *, at: datetime) -> None:
    """Store a changed worklist item and refresh the step's columns from it (new revision)."""
    for column, value in item_index(item).items():
        setattr(step, column, value)
    step.revision += 1
    step.updated_at = at


def record_status(session: Session, step: ScheduledStep, status: str, *, at: datetime) -> None:
    """Set a step's status in its stored worklist item and so in its row."""
    item = Dataset.from_json(step.dataset_json)
    for sps in item.ScheduledProcedureStepSequence:
        sps.ScheduledProcedureStepStatus = status
    write_item(step, item, at=at)


def steps_of_day(
    session: Session, day: date, *, station: str | None = None, status: str | None = None
) -> list[ScheduledStep]:
    """The steps starting on ``day`` (clinic-local), with order and patient loaded."""
    statement = (
        select(ScheduledStep)
        .options(joinedload(ScheduledStep.procedure).joinedload(RequestedProcedure.patient))
        .where(ScheduledStep.start_at >= datetime.combine(day, time.min))
        .where(ScheduledStep.start_at < datetime.combine(day + timedelta(days=1), time.min))
        .order_by(ScheduledStep.start_at, ScheduledStep.id)
    )
    if station is not None:
        statement = statement.where(ScheduledStep.station_ae_title == station)
    if status is not None:
        statement = statement.where(ScheduledStep.status == status)
    return list(session.execute(statement).scalars().all())
