"""What a scanner console sends: its worklist query and its MPPS messages (DOMAIN.md E.2/E.3).

Used by the scanner simulator, the tests and the benchmarks, so they all speak as one console.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from mri_pipeline.domain.mpps import DISCONTINUATION_REASONS

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def worklist_query(*, station: str = "", accession: str = "", modality: str = "") -> Dataset:
    """The usual console query: patient, order and step keys, narrowed as given."""
    query = Dataset()
    query.PatientName = ""
    query.PatientID = ""
    query.PatientBirthDate = ""
    query.PatientSex = ""
    query.AccessionNumber = accession
    query.StudyInstanceUID = ""
    query.RequestedProcedureID = ""
    query.RequestedProcedureDescription = ""
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = ""
    step.ScheduledProcedureStepStartTime = ""
    step.Modality = modality
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepStatus = ""
    step.ScheduledProcedureStepDescription = ""
    step.ScheduledProtocolCodeSequence = Sequence()
    query.ScheduledProcedureStepSequence = Sequence([step])
    return query


def _scheduled_step_attributes(item: Dataset | None) -> Dataset:
    ref = Dataset()
    if item is None:  # unscheduled: the console makes up the study
        ref.StudyInstanceUID = generate_uid()
        ref.ReferencedStudySequence = Sequence()
        for keyword in (
            "AccessionNumber",
            "RequestedProcedureID",
            "RequestedProcedureDescription",
            "ScheduledProcedureStepID",
            "ScheduledProcedureStepDescription",
        ):
            setattr(ref, keyword, "")
        ref.ScheduledProtocolCodeSequence = Sequence()
        return ref
    step = item.ScheduledProcedureStepSequence[0]
    ref.StudyInstanceUID = item.StudyInstanceUID
    ref.ReferencedStudySequence = Sequence()
    ref.AccessionNumber = item.AccessionNumber
    ref.RequestedProcedureID = item.RequestedProcedureID
    ref.RequestedProcedureDescription = item.get("RequestedProcedureDescription", "")
    ref.ScheduledProcedureStepID = step.ScheduledProcedureStepID
    ref.ScheduledProcedureStepDescription = step.get("ScheduledProcedureStepDescription", "")
    ref.ScheduledProtocolCodeSequence = step.get("ScheduledProtocolCodeSequence", Sequence())
    return ref


def mpps_in_progress(
    items: Seq[Dataset], *, station: str, started: datetime, pps_id: str = "PPS1"
) -> Dataset:
    """The N-CREATE for the worklist items chosen (none: an unscheduled examination)."""
    first = items[0] if items else None
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ScheduledStepAttributesSequence = Sequence(
        [_scheduled_step_attributes(item) for item in items] or [_scheduled_step_attributes(None)]
    )
    ds.PatientName = first.PatientName if first is not None else "Unknown^Patient"
    ds.PatientID = first.PatientID if first is not None else f"UNSCHEDULED{pps_id}"
    ds.PatientBirthDate = first.get("PatientBirthDate", "") if first is not None else ""
    ds.PatientSex = first.get("PatientSex", "") if first is not None else ""
    ds.ReferencedPatientSequence = Sequence()
    ds.PerformedProcedureStepID = pps_id
    ds.PerformedStationAETitle = station
    ds.PerformedStationName = station
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = started.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = started.strftime("%H%M%S")
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "Lumbar spine MRI"
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = Sequence()
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "MR"
    ds.StudyID = "1"
    ds.PerformedProtocolCodeSequence = Sequence()
    ds.PerformedSeriesSequence = Sequence()
    return ds


@dataclass(frozen=True)
class PerformedSeries:
    """One series the console made, and the instances in it."""

    protocol_name: str
    series_instance_uid: str = field(default_factory=lambda: str(generate_uid()))
    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uid: str = MR_IMAGE_STORAGE

    @classmethod
    def made(cls, protocol_name: str, images: int) -> PerformedSeries:
        uids = tuple(str(generate_uid()) for _ in range(images))
        return cls(protocol_name, sop_instance_uids=uids)


def mpps_final(
    series: Seq[PerformedSeries],
    *,
    ended: datetime,
    status: str = "COMPLETED",
    reason: str | None = None,
) -> Dataset:
    """The N-SET that closes the step, listing every series and instance made."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = ended.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = ended.strftime("%H%M%S")
    items = []
    for made in series:
        item = Dataset()
        item.PerformingPhysicianName = ""
        item.ProtocolName = made.protocol_name
        item.OperatorsName = ""
        item.SeriesInstanceUID = made.series_instance_uid
        item.SeriesDescription = made.protocol_name
        item.RetrieveAETitle = ""
        references = []
        for uid in made.sop_instance_uids:
            reference = Dataset()
            reference.ReferencedSOPClassUID = made.sop_class_uid
            reference.ReferencedSOPInstanceUID = uid
            references.append(reference)
        item.ReferencedImageSequence = Sequence(references)
        item.ReferencedNonImageCompositeSOPInstanceSequence = Sequence()
        items.append(item)
    ds.PerformedSeriesSequence = Sequence(items)
    if reason is not None:
        code = Dataset()
        code.CodeValue = reason
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = DISCONTINUATION_REASONS.get(reason, reason)
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = Sequence([code])
    return ds
