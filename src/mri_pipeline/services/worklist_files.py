"""DICOM worklist files (``.wl``, as DCMTK's wlmscpfs and Orthanc's worklist plugin read them)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
from mri_pipeline.domain.dicom_values import parse_da, parse_tm
from mri_pipeline.domain.errors import InvalidQuery
from mri_pipeline.domain.matching import name_search_key
from mri_pipeline.domain.steps import StepStatus

log = logging.getLogger(__name__)

MWL_FIND = "1.2.840.10008.5.1.4.31"


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class UnusableWorklistFile(ValueError):
    pass


def stations_of(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def _text(dataset: Dataset, keyword: str) -> str | None:
    value = dataset.get(keyword)
    if value is None:
        return None
    values = stations_of(value)
    text = str(values[0]).strip() if values else ""
    return text or None


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
    if not _text(dataset, "PatientID"):
        raise UnusableWorklistFile("no Patient ID")
    dataset.file_meta = FileMetaDataset()
    return dataset


def _start_of(step: Dataset) -> datetime | None:
    day = _text(step, "ScheduledProcedureStepStartDate")
    if day is None:
        return None
    try:
        moment = parse_tm(_text(step, "ScheduledProcedureStepStartTime") or "000000")
        return datetime.combine(parse_da(day), moment)
    except InvalidQuery:
        return None


def store_item(session: Session, item: Dataset, *, source: str) -> tuple[str, bool]:
    """Insert or replace one worklist item, keeping every attribute; returns (key, is_new)."""
    step_ds = item.ScheduledProcedureStepSequence[0]
    accession = _text(item, "AccessionNumber")
    sps_id = _text(step_ds, "ScheduledProcedureStepID") or ""
    patient_id = _text(item, "PatientID") or ""
    now = datetime.now(UTC)

    existing = None
    if accession:
        existing = session.execute(
            select(ScheduledStep).where(
                ScheduledStep.accession_number == accession, ScheduledStep.sps_id == sps_id
            )
        ).scalar_one_or_none()
    patient = session.execute(
        select(Patient).where(Patient.patient_id == patient_id)
    ).scalar_one_or_none()
    if patient is None:
        patient = Patient(patient_id=patient_id, name=str(item.get("PatientName", "")))
        session.add(patient)

    stations = step_ds.get("ScheduledStationAETitle")
    station_values = [str(v).strip() for v in stations_of(stations) if str(v).strip()]
    start = _start_of(step_ds)
    status = _text(step_ds, "ScheduledProcedureStepStatus") or StepStatus.SCHEDULED.value
    columns = {
        "sps_id": sps_id,
        "status": status,
        "station_ae_title": station_values[0] if station_values else None,
        "station_multi": len(station_values) > 1,
        "station_name": _text(step_ds, "ScheduledStationName"),
        "modality": _text(step_ds, "Modality"),
        "start_at": start,
        "end_at": start + timedelta(minutes=30) if start else None,
        "patient_id": patient_id,
        "patient_name_key": name_search_key(str(item.get("PatientName", ""))),
        "accession_number": accession,
        "requested_procedure_id": _text(item, "RequestedProcedureID"),
        "study_instance_uid": _text(item, "StudyInstanceUID"),
        "dataset_json": item.to_json(),
        "updated_at": now,
    }
    if existing is not None:
        for name, value in columns.items():
            setattr(existing, name, value)
        existing.revision += 1
        return f"{accession}/{sps_id}", False

    procedure = None
    if accession:
        procedure = session.execute(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == accession)
        ).scalar_one_or_none()
    if procedure is None:
        procedure = RequestedProcedure(
            accession_number=accession or f"IMP{generate_uid()[-12:]}",
            requested_procedure_id=_text(item, "RequestedProcedureID") or "",
            study_instance_uid=_text(item, "StudyInstanceUID") or str(generate_uid()),
            patient=patient,
            referring_physician=_text(item, "ReferringPhysicianName"),
            priority=_text(item, "RequestedProcedurePriority") or "ROUTINE",
            reason=_text(item, "ReasonForTheRequestedProcedure"),
            red_flags=[],
            source=source,
            created_at=now,
        )
        session.add(procedure)
    session.add(ScheduledStep(procedure=procedure, revision=1, **columns))
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
            ScheduledStep.status.not_in(
                [
                    StepStatus.CANCELED.value,
                    StepStatus.DISCONTINUED.value,
                    StepStatus.COMPLETED.value,
                ]
            )
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
