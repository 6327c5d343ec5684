"""Typed ORM models. Worklist matching columns are copied onto the step for indexed look-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, always read back aware in UTC: PostgreSQL keeps the zone, SQLite does
    not, so values are stored in UTC and the zone put back on reading."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(324))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(1))
    weight_kg: Mapped[float | None] = mapped_column(Float)
    medical_alerts: Mapped[str | None] = mapped_column(String(640))
    allergies: Mapped[str | None] = mapped_column(String(640))

    procedures: Mapped[list[RequestedProcedure]] = relationship(back_populates="patient")


class RequestedProcedure(Base):
    """An order: one requested procedure, identified by its accession number."""

    __tablename__ = "requested_procedures"

    id: Mapped[int] = mapped_column(primary_key=True)
    accession_number: Mapped[str] = mapped_column(String(16), unique=True)
    requested_procedure_id: Mapped[str] = mapped_column(String(16), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    referring_physician: Mapped[str | None] = mapped_column(String(324))
    indication: Mapped[str | None] = mapped_column(String(64))
    red_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(String(1024))
    protocol_code: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    not_indicated: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(16), default="order")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    patient: Mapped[Patient] = relationship(back_populates="procedures")
    steps: Mapped[list[ScheduledStep]] = relationship(back_populates="procedure")


class ScheduledStep(Base):
    """A Scheduled Procedure Step: one Modality Worklist item.

    ``dataset_json`` is the whole worklist item in DICOM JSON and is what queries
    answer from; the columns beside it repeat the matching keys so SQL can narrow.
    ``start_at`` is the clinic's local wall-clock time, as DICOM DA/TM are.
    """

    __tablename__ = "scheduled_steps"
    __table_args__ = (
        Index("ix_scheduled_steps_station_start", "station_ae_title", "start_at"),
        Index("ix_scheduled_steps_start", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sps_id: Mapped[str] = mapped_column(String(16))
    procedure_pk: Mapped[int] = mapped_column(ForeignKey("requested_procedures.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    station_ae_title: Mapped[str | None] = mapped_column(String(16))
    station_multi: Mapped[bool] = mapped_column(Boolean, default=False)
    station_name: Mapped[str | None] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16))
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    patient_name_key: Mapped[str] = mapped_column(String(324), index=True, default="")
    accession_number: Mapped[str | None] = mapped_column(String(16), index=True)
    requested_procedure_id: Mapped[str | None] = mapped_column(String(16), index=True)
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    dataset_json: Mapped[str] = mapped_column(Text)
    safety_checklist: Mapped[dict[str, object] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    procedure: Mapped[RequestedProcedure] = relationship(back_populates="steps")


class Counter(Base):
    """Named counters for identifiers that must never repeat (accession numbers, SPS IDs)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class PerformedStep(Base):
    """A Modality Performed Procedure Step, as the console created and updated it."""

    __tablename__ = "performed_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    calling_ae_title: Mapped[str] = mapped_column(String(16))
    performed_station_ae_title: Mapped[str | None] = mapped_column(String(16))
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    dataset_json: Mapped[str] = mapped_column(Text)
    created_tags: Mapped[list[int]] = mapped_column(JSON, default=list)
    discontinuation_code: Mapped[str | None] = mapped_column(String(16))
    matched: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    images_flagged: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    links: Mapped[list[PerformedStepLink]] = relationship(back_populates="performed_step")
    history: Mapped[list[PerformedStepMessage]] = relationship(
        back_populates="performed_step", order_by="PerformedStepMessage.id"
    )


class PerformedStepLink(Base):
    """Which scheduled steps an MPPS performed (one MPPS may group several)."""

    __tablename__ = "performed_step_links"

    performed_step_pk: Mapped[int] = mapped_column(
        ForeignKey("performed_steps.id"), primary_key=True
    )
    scheduled_step_pk: Mapped[int] = mapped_column(
        ForeignKey("scheduled_steps.id"), primary_key=True, index=True
    )

    performed_step: Mapped[PerformedStep] = relationship(back_populates="links")
    scheduled_step: Mapped[ScheduledStep] = relationship()


class PerformedStepMessage(Base):
    """Every N-CREATE and N-SET received for an MPPS, in order, as DICOM JSON."""

    __tablename__ = "performed_step_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    performed_step_pk: Mapped[int] = mapped_column(ForeignKey("performed_steps.id"), index=True)
    operation: Mapped[str] = mapped_column(String(8))
    calling_ae_title: Mapped[str] = mapped_column(String(16))
    dataset_json: Mapped[str] = mapped_column(Text)
    ignored_tags: Mapped[list[int]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())

    performed_step: Mapped[PerformedStep] = relationship(back_populates="history")


class StepEvent(Base):
    """One state change of an examination: who or which AE, when, from, to, why."""

    __tablename__ = "step_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    scheduled_step_pk: Mapped[int | None] = mapped_column(
        ForeignKey("scheduled_steps.id"), index=True
    )
    performed_step_pk: Mapped[int | None] = mapped_column(
        ForeignKey("performed_steps.id"), index=True
    )
    accession_number: Mapped[str | None] = mapped_column(String(16), index=True)
    study_instance_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class IngestCursor(Base):
    """How far ingest has read Orthanc's change log, written with what it recorded."""

    __tablename__ = "ingest_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReceivedStudy(Base):
    """A study Orthanc holds, tied to its order (or flagged), and how complete it is."""

    __tablename__ = "received_studies"
    __table_args__ = (Index("ix_received_studies_waiting", "routed_at", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    orthanc_id: Mapped[str] = mapped_column(String(64), index=True)
    accession_number: Mapped[str | None] = mapped_column(String(16), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(324))
    procedure_pk: Mapped[int | None] = mapped_column(
        ForeignKey("requested_procedures.id"), index=True
    )
    reconciliation: Mapped[str] = mapped_column(String(16), index=True)
    reconciliation_note: Mapped[str | None] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(24), index=True)
    state_note: Mapped[str | None] = mapped_column(String(256))
    completion_basis: Mapped[str | None] = mapped_column(String(16))
    stable: Mapped[bool] = mapped_column(Boolean, default=False)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    qc_verdict: Mapped[str | None] = mapped_column(String(24), index=True)
    qc_summary: Mapped[str | None] = mapped_column(String(512))
    # When routing wrote its assignment: the routing pass reads only the studies without.
    routed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    procedure: Mapped[RequestedProcedure | None] = relationship()
    series: Mapped[list[ReceivedSeries]] = relationship(
        back_populates="study", order_by="ReceivedSeries.series_number"
    )


class ReceivedSeries(Base):
    __tablename__ = "received_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("received_studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    orthanc_id: Mapped[str] = mapped_column(String(64), index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str | None] = mapped_column(String(64))
    protocol_name: Mapped[str | None] = mapped_column(String(64))
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    qc_instance_count: Mapped[int | None] = mapped_column(Integer)  # checked at this count
    qc_outcome: Mapped[str | None] = mapped_column(String(8))
    thumbnail_png: Mapped[bytes | None] = mapped_column(LargeBinary)

    study: Mapped[ReceivedStudy] = relationship(back_populates="series")


class ReceivedInstance(Base):
    __tablename__ = "received_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("received_studies.id"), index=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("received_series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    orthanc_id: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class QcResult(Base):
    """One check of one series (or of the examination: a missing series), as last run."""

    __tablename__ = "qc_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("received_studies.id"), index=True)
    series_pk: Mapped[int | None] = mapped_column(ForeignKey("received_series.id"), index=True)
    series_description: Mapped[str | None] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(String(512))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Assignment(Base):
    """Who reports a study, and why: one open assignment per study."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_queue", "state", "priority_rank", "deadline"),
        Index("ix_assignments_holder", "radiologist_key", "state"),
        Index("ix_assignments_in_hand", "state", "radiologist_key", "units"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("received_studies.id"), unique=True)
    radiologist_key: Mapped[str | None] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(512))
    priority: Mapped[str] = mapped_column(String(16))
    units: Mapped[float] = mapped_column(Float)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    escalate_at: Mapped[datetime] = mapped_column(UtcDateTime())
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Added in 0006: the priority's rank (STAT highest) so SQL can order the queue; the
    # first time anyone got the study (turnaround), claims, escalation and release.
    priority_rank: Mapped[int] = mapped_column(Integer, default=0)
    first_assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    released_by: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    study: Mapped[ReceivedStudy] = relationship()


class RadiologistRow(Base):
    """A reporting radiologist, seeded from ``worklist/radiologists.yaml``.

    The YAML's own shape is kept in ``entry`` so the domain model reads it back whole;
    ``active`` is false for someone no longer in the file (their history stays)."""

    __tablename__ = "radiologists"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    workstation: Mapped[str | None] = mapped_column(String(16))
    entry: Mapped[dict[str, object]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Report(Base):
    """The report of a study: preliminary, then final. The impression is free text for
    now; a structured report would add its content beside it, not replace the row."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("received_studies.id"), unique=True)
    radiologist_key: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16))
    impression: Mapped[str] = mapped_column(Text)
    preliminary_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    final_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Delivery(Base):
    """A study sent to a workstation by Orthanc (a C-STORE job) and how far it got."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("received_studies.id"), index=True)
    radiologist_key: Mapped[str | None] = mapped_column(String(32))
    ae_title: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(256))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class User(Base):
    """Someone who logs in, or a script or console that holds a token."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    radiologist_key: Mapped[str | None] = mapped_column(String(32))  # radiologists only
    password_hash: Mapped[str | None] = mapped_column(String(256))  # None: token only
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[User] = relationship()


class WebSession(Base):
    """A browser's login: the cookie's SHA-256, its CSRF token, and when it ends."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)

    user: Mapped[User] = relationship()


class AuditEntry(Base):
    """One look at patient data: who, what (the resource read), when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    resource: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(Integer)
