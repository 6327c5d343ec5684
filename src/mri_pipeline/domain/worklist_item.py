"""The Modality Worklist item of one scheduled step, as DOMAIN.md C.4 lays it out."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from mri_pipeline.domain.dicom_values import parse_da, parse_tm
from mri_pipeline.domain.errors import InvalidQuery
from mri_pipeline.domain.matching import name_search_key, values_of
from mri_pipeline.domain.protocols import CodedConcept, Protocol
from mri_pipeline.domain.steps import StepStatus

LOCAL_SCHEME = "99LSPINE"


@dataclass(frozen=True)
class WorklistItemFacts:
    """Everything an order knows that the scanner console should see."""

    accession_number: str
    requested_procedure_id: str
    sps_id: str
    study_instance_uid: str
    patient_id: str
    patient_name: str
    birth_date: date | None
    sex: str | None
    weight_kg: float | None
    medical_alerts: Seq[str]
    allergies: Seq[str]
    referring_physician: str | None
    station_ae_title: str
    station_name: str | None
    location: str | None
    modality: str
    start: datetime
    priority: str
    protocol: Protocol
    reason: str
    comments: str | None
    contrast_agent: str | None
    status: str


def code_item(concept: CodedConcept) -> Dataset:
    item = Dataset()
    item.CodeValue = concept.code_value
    item.CodingSchemeDesignator = concept.coding_scheme_designator
    item.CodeMeaning = concept.code_meaning
    return item


def _protocol_context(protocol: Protocol) -> Sequence:
    items = []
    if protocol.axial_levels:
        context = Dataset()
        context.ValueType = "TEXT"
        context.ConceptNameCodeSequence = Sequence(
            [
                code_item(
                    CodedConcept(
                        code_value="LSP-CTX-LEVELS",
                        coding_scheme_designator=LOCAL_SCHEME,
                        code_meaning="Axial levels",
                    )
                )
            ]
        )
        context.TextValue = protocol.axial_levels
        items.append(context)
    return Sequence(items)


def build_worklist_item(facts: WorklistItemFacts) -> Dataset:
    """The whole stored worklist item; queries return parts of it."""
    protocol = facts.protocol
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = facts.accession_number
    ds.ReferringPhysicianName = facts.referring_physician or ""
    ds.PatientName = facts.patient_name
    ds.PatientID = facts.patient_id
    ds.PatientBirthDate = facts.birth_date.strftime("%Y%m%d") if facts.birth_date else ""
    ds.PatientSex = facts.sex or ""
    ds.PatientWeight = f"{facts.weight_kg:g}" if facts.weight_kg is not None else ""
    ds.MedicalAlerts = list(facts.medical_alerts) if facts.medical_alerts else ""
    ds.Allergies = list(facts.allergies) if facts.allergies else ""
    ds.PregnancyStatus = None
    ds.StudyInstanceUID = facts.study_instance_uid
    ds.RequestingPhysician = facts.referring_physician or ""
    ds.RequestedProcedureDescription = protocol.meaning[:64]
    ds.RequestedProcedureCodeSequence = Sequence([code_item(protocol.requested_procedure_codes[0])])
    ds.RequestedProcedureID = facts.requested_procedure_id
    ds.RequestedProcedurePriority = facts.priority
    ds.ReasonForTheRequestedProcedure = facts.reason[:64]
    ds.PatientTransportArrangements = ""
    ds.AdmissionID = ""
    ds.CurrentPatientLocation = ""
    ds.ReferencedStudySequence = Sequence()
    ds.ReferencedPatientSequence = Sequence()
    ds.ConfidentialityConstraintOnPatientDataDescription = ""
    ds.PatientState = ""
    ds.SpecialNeeds = ""

    step = Dataset()
    step.Modality = facts.modality
    step.ScheduledStationAETitle = facts.station_ae_title
    step.ScheduledProcedureStepStartDate = facts.start.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = facts.start.strftime("%H%M%S")
    step.ScheduledPerformingPhysicianName = ""
    step.ScheduledProcedureStepDescription = f"{protocol.code} {protocol.meaning}"[:64]
    protocol_code = code_item(protocol.scheduled_protocol_code)
    context = _protocol_context(protocol)
    if len(context):
        protocol_code.ProtocolContextSequence = context
    step.ScheduledProtocolCodeSequence = Sequence([protocol_code])
    step.ScheduledProcedureStepID = facts.sps_id
    step.ScheduledStationName = facts.station_name or ""
    step.ScheduledProcedureStepLocation = facts.location or ""
    step.PreMedication = ""
    step.RequestedContrastAgent = facts.contrast_agent or ""
    step.ScheduledProcedureStepStatus = facts.status
    if facts.comments:
        step.CommentsOnTheScheduledProcedureStep = facts.comments[:10240]
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def text_of(dataset: Dataset, keyword: str) -> str | None:
    """The first value of an attribute as stripped text; None when absent or empty."""
    element = dataset.get(Tag(keyword))  # by tag, get() answers the element itself
    if element is None:
        return None
    values = values_of(element)
    text = str(values[0]).strip() if values else ""
    return text or None


def start_of(step: Dataset) -> datetime | None:
    """The step's start as a clinic-local datetime; None when unknown or unreadable."""
    day = text_of(step, "ScheduledProcedureStepStartDate")
    if day is None:
        return None
    try:
        moment = parse_tm(text_of(step, "ScheduledProcedureStepStartTime") or "000000")
        return datetime.combine(parse_da(day), moment)
    except InvalidQuery:
        return None


def item_index(item: Dataset) -> dict[str, Any]:
    """The indexed columns of a scheduled step, read from its worklist item.

    Every writer of a step derives them here, so the columns the SQL narrows on
    can never disagree with the item the matching rules decide on.
    """
    step = item.ScheduledProcedureStepSequence[0]
    station_element = step.get(Tag("ScheduledStationAETitle"))
    stations = [
        str(v).strip()
        for v in (values_of(station_element) if station_element is not None else [])
        if str(v).strip()
    ]
    return {
        "sps_id": text_of(step, "ScheduledProcedureStepID") or "",
        "status": text_of(step, "ScheduledProcedureStepStatus") or StepStatus.SCHEDULED.value,
        "station_ae_title": stations[0] if stations else None,
        "station_multi": len(stations) > 1,
        "station_name": text_of(step, "ScheduledStationName"),
        "modality": text_of(step, "Modality"),
        "start_at": start_of(step),
        "patient_id": text_of(item, "PatientID") or "",
        "patient_name_key": name_search_key(str(item.get("PatientName", ""))),
        "accession_number": text_of(item, "AccessionNumber"),
        "requested_procedure_id": text_of(item, "RequestedProcedureID"),
        "study_instance_uid": text_of(item, "StudyInstanceUID"),
        "dataset_json": item.to_json(),
    }
