"""Typed ORM models. Worklist matching columns are copied onto the step for indexed look-ups."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

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
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    procedure: Mapped[RequestedProcedure] = relationship(back_populates="steps")


class Counter(Base):
    """Named counters for identifiers that must never repeat (accession numbers, SPS IDs)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
