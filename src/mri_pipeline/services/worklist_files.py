"""DICOM worklist files (``.wl``, as DCMTK's wlmscpfs and Orthanc's worklist plugin read them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mri_pipeline.db.models import Patient, RequestedProcedure, ScheduledStep
from mri_pipeline.domain.steps import HIDDEN_FROM_EVERY_QUERY
from mri_pipeline.domain.worklist_item import item_index, text_of
from mri_pipeline.services.worklist import write_item

log = logging.getLogger(__name__)

MWL_FIND = "1.2.840.10008.5.1.4.31"


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class UnusableWorklistFile(ValueError):
    pass


def read_worklist_file(path: Path) -> Dataset:
    """A worklist item from a file; ``UnusableWorklistFile`` says why it cannot be used."""
    try:
        dataset = dcmread(path, force=True)
        dataset.decode()
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise UnusableWorklistFile(f"not a readable DICOM file ({exc})") from exc
    sequence = dataset.get("ScheduledProcedureStepSequence")
    if not sequence:
        raise UnusableWorklistFile("no Scheduled Procedure Step Sequence")
    if len(sequence) != 1:
        raise UnusableWorklistFile("Scheduled Procedure Step Sequence must hold one item")
    if not text_of(dataset, "PatientID"):
        raise UnusableWorklistFile("no Patient ID")
    dataset.file_meta = FileMetaDataset()
    return dataset


def store_item(session: Session, item: Dataset, *, source: str) -> tuple[str, bool]:
    """Insert or replace one worklist item, keeping every attribute; returns (key, is_new)."""
    columns = item_index(item)
    accession = columns["accession_number"]
    sps_id = columns["sps_id"]
    patient_id = columns["patient_id"]
    now = datetime.now(UTC)

    existing = None
    if accession:
        existing = session.execute(
            select(ScheduledStep).where(
                ScheduledStep.accession_number == accession, ScheduledStep.sps_id == sps_id
            )
        ).scalar_one_or_none()
    if existing is not None:
        write_item(existing, item, at=now)
        return f"{accession}/{sps_id}", False

    patient = session.execute(
        select(Patient).where(Patient.patient_id == patient_id)
    ).scalar_one_or_none()
    if patient is None:
        patient = Patient(patient_id=patient_id, name=str(item.get("PatientName", "")))
        session.add(patient)
    procedure = None
    if accession:
        procedure = session.execute(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == accession)
        ).scalar_one_or_none()
    if procedure is None:
        procedure = RequestedProcedure(
            accession_number=accession or f"IMP{generate_uid()[-12:]}",
            requested_procedure_id=text_of(item, "RequestedProcedureID") or "",
            study_instance_uid=text_of(item, "StudyInstanceUID") or str(generate_uid()),
            patient=patient,
            referring_physician=text_of(item, "ReferringPhysicianName"),
            priority=text_of(item, "RequestedProcedurePriority") or "ROUTINE",
            reason=text_of(item, "ReasonForTheRequestedProcedure"),
            red_flags=[],
            source=source,
            created_at=now,
        )
        session.add(procedure)
    start = columns["start_at"]
    session.add(
        ScheduledStep(
            procedure=procedure,
            end_at=start + timedelta(minutes=30) if start else None,
            revision=1,
            updated_at=now,
            **columns,
        )
    )
    return f"{accession}/{sps_id}", True


def import_worklist_files(session: Session, paths: list[Path]) -> ImportReport:
    """Import every readable file (directories are searched for ``*.wl``); the rest are reported."""
    report = ImportReport()
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.wl")) if path.is_dir() else [path])
    for path in files:
        try:
            item = read_worklist_file(path)
            with session.begin_nested():
                key, is_new = store_item(session, item, source="import")
                session.flush()
        except UnusableWorklistFile as exc:
            log.warning("worklist file refused file=%s reason=%s", path, exc)
            report.failed.append((str(path), str(exc)))
            continue
        except IntegrityError as exc:
            log.warning("worklist file conflicts file=%s error=%s", path, exc.orig)
            report.failed.append((str(path), "conflicts with an item already stored"))
            continue
        (report.imported if is_new else report.updated).append(key)
        log.info("worklist file imported file=%s item=%s new=%s", path, key, is_new)
    return report


def export_worklist_files(
    session: Session, directory: Path, *, include_hidden: bool = False
) -> list[Path]:
    """Write each item as a ``.wl`` file (with File Meta Information) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    statement = select(
        ScheduledStep.id,
        ScheduledStep.accession_number,
        ScheduledStep.sps_id,
        ScheduledStep.dataset_json,
    )
    if not include_hidden:
        statement = statement.where(
            ScheduledStep.status.not_in([status.value for status in HIDDEN_FROM_EVERY_QUERY])
        )
    written = []
    for step_id, accession, sps_id, text in session.execute(statement):
        item = Dataset.from_json(text)
        item.file_meta = FileMetaDataset()
        item.file_meta.MediaStorageSOPClassUID = UID(MWL_FIND)
        item.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        item.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = f"{accession or 'item'}_{sps_id or step_id}.wl".replace("/", "_")
        path = directory / name
        item.save_as(path, enforce_file_format=True)
        written.append(path)
    return written
