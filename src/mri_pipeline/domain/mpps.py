"""Modality Performed Procedure Step validation rules (DOMAIN.md E.2–E.6).

Pure functions over pydicom Datasets. They answer with an ``MppsVerdict`` that the DICOM
edge turns into an N-CREATE or N-SET response; the checks that need the database (a
known or unknown SOP Instance UID: 0111, 0112) stay with the caller.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from mri_pipeline.domain.dicom_values import parse_da, parse_tm
from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.matching import is_empty

SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
NO_LONGER_UPDATABLE_ERROR_ID = 0xA710
NO_LONGER_UPDATABLE_COMMENT = "Performed Procedure Step Object may no longer be updated"


class PerformedStatus(StrEnum):
    """Performed Procedure Step Status (0040,0252), stored as its DICOM string."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"

    @property
    def is_final(self) -> bool:
        """COMPLETED and DISCONTINUED instances may no longer be updated."""
        return self is not PerformedStatus.IN_PROGRESS


@dataclass(frozen=True)
class MppsVerdict:
    """The DIMSE answer to one N-CREATE or N-SET.

    ``attributes`` go into the Attribute Identifier List (0000,1005); ``ignored`` are
    tags the lenient N-SET accepted without applying them (log them as a warning).
    """

    status: int
    error_comment: str | None = None
    error_id: int | None = None
    attributes: tuple[int, ...] = ()
    ignored: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:  # a typo in the tables below, not a runtime condition
        raise KeyError(keyword)
    return int(tag)


SPECIFIC_CHARACTER_SET = _tag("SpecificCharacterSet")
PERFORMED_PROCEDURE_STEP_STATUS = _tag("PerformedProcedureStepStatus")


@dataclass(frozen=True)
class _Required:
    """One Type 1/1 or 2/2 attribute of an N-CREATE; ``item`` lists a sequence's own."""

    keyword: str
    type: int
    item: tuple[_Required, ...] = ()


# Table E.2, Scheduled Step Attributes Sequence (0040,0270) item.
_SCHEDULED_STEP_ITEM = (
    _Required("StudyInstanceUID", 1),
    _Required("ReferencedStudySequence", 2),
    _Required("AccessionNumber", 2),
    _Required("RequestedProcedureID", 2),
    _Required("RequestedProcedureDescription", 2),
    _Required("ScheduledProcedureStepID", 2),
    _Required("ScheduledProcedureStepDescription", 2),
    _Required("ScheduledProtocolCodeSequence", 2),
)

_REFERENCED_INSTANCE_ITEM = (
    _Required("ReferencedSOPClassUID", 1),
    _Required("ReferencedSOPInstanceUID", 1),
)

# Table E.3, Performed Series Sequence (0040,0340) item.
_PERFORMED_SERIES_ITEM = (
    _Required("PerformingPhysicianName", 2),
    _Required("ProtocolName", 1),
    _Required("OperatorsName", 2),
    _Required("SeriesInstanceUID", 1),
    _Required("SeriesDescription", 2),
    _Required("RetrieveAETitle", 2),
    _Required("ReferencedImageSequence", 2, _REFERENCED_INSTANCE_ITEM),
    _Required("ReferencedNonImageCompositeSOPInstanceSequence", 2, _REFERENCED_INSTANCE_ITEM),
)

# Table E.2, top level (Specific Character Set is 1C: absent means the default repertoire).
_N_CREATE_REQUIRED = (
    _Required("ScheduledStepAttributesSequence", 1, _SCHEDULED_STEP_ITEM),
    _Required("PatientName", 2),
    _Required("PatientID", 2),
    _Required("PatientBirthDate", 2),
    _Required("PatientSex", 2),
    _Required("ReferencedPatientSequence", 2),
    _Required("PerformedProcedureStepID", 1),
    _Required("PerformedStationAETitle", 1),
    _Required("PerformedStationName", 2),
    _Required("PerformedLocation", 2),
    _Required("PerformedProcedureStepStartDate", 1),
    _Required("PerformedProcedureStepStartTime", 1),
    _Required("PerformedProcedureStepStatus", 1),
    _Required("PerformedProcedureStepDescription", 2),
    _Required("PerformedProcedureTypeDescription", 2),
    _Required("ProcedureCodeSequence", 2),
    _Required("PerformedProcedureStepEndDate", 2),
    _Required("PerformedProcedureStepEndTime", 2),
    _Required("Modality", 1),
    _Required("StudyID", 2),
    _Required("PerformedProtocolCodeSequence", 2),
    _Required("PerformedSeriesSequence", 2, _PERFORMED_SERIES_ITEM),
)

# Table E.2: attributes an N-SET may not carry.
NOT_ALLOWED_IN_N_SET = frozenset(
    _tag(keyword)
    for keyword in (
        "ScheduledStepAttributesSequence",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "ReferencedPatientSequence",
        "AdmissionID",
        "PerformedProcedureStepID",
        "PerformedStationAETitle",
        "PerformedStationName",
        "PerformedLocation",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "Modality",
        "StudyID",
    )
)

_DATE_TIME_CHECKS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("PerformedProcedureStepStartDate", parse_da),
    ("PerformedProcedureStepStartTime", parse_tm),
    ("PerformedProcedureStepEndDate", parse_da),
    ("PerformedProcedureStepEndTime", parse_tm),
)


def _element(dataset: Dataset, keyword: str) -> DataElement | None:
    element = dataset.get(_tag(keyword))  # by tag, get() answers the element itself
    return element if isinstance(element, DataElement) else None


def _has_value(dataset: Dataset, keyword: str) -> bool:
    element = _element(dataset, keyword)
    return element is not None and not is_empty(element)


def _text(dataset: Dataset, keyword: str) -> str | None:
    """The attribute's value as stripped text; None when absent or empty."""
    element = _element(dataset, keyword)
    if element is None or is_empty(element):
        return None
    return str(element.value).strip()


def _items(dataset: Dataset, keyword: str) -> list[Dataset]:
    element = _element(dataset, keyword)
    if element is None or element.VR != "SQ" or element.value is None:
        return []
    return list(element.value)


def _find_missing(
    dataset: Dataset,
    required: tuple[_Required, ...],
    missing: list[int],
    empty: list[int],
) -> None:
    for attribute in required:
        tag = _tag(attribute.keyword)
        element = _element(dataset, attribute.keyword)
        if element is None:
            missing.append(tag)
            continue
        if attribute.type == 1 and is_empty(element):
            empty.append(tag)
        if attribute.item:
            for item in _items(dataset, attribute.keyword):
                _find_missing(item, attribute.item, missing, empty)


def _malformed_dates(dataset: Dataset) -> list[int]:
    malformed = []
    for keyword, parse in _DATE_TIME_CHECKS:
        text = _text(dataset, keyword)
        if text is None:
            continue
        try:
            parse(text)
        except DomainError:
            malformed.append(_tag(keyword))
    return malformed


def _unique(tags: Iterable[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(tags))


def created_tags(dataset: Dataset) -> frozenset[int]:
    """Top-level tags of an N-CREATE: the attributes a later N-SET may update (E.2 note 5)."""
    return frozenset(int(element.tag) for element in dataset)


def check_n_create(dataset: Dataset) -> MppsVerdict:
    """Validate an N-CREATE data set (E.6 step 1, without the duplicate-UID check).

    Precedence: 0120 for absent Type 1/2 attributes, then 0121 for empty Type 1 values,
    then 0106 for a status other than IN PROGRESS or a malformed start/end date or time.
    Nested attributes are listed by their own tag.
    """
    missing: list[int] = []
    empty: list[int] = []
    _find_missing(dataset, _N_CREATE_REQUIRED, missing, empty)
    if missing:
        return MppsVerdict(
            MISSING_ATTRIBUTE, error_comment="Missing attribute", attributes=_unique(missing)
        )
    if empty:
        return MppsVerdict(
            MISSING_ATTRIBUTE_VALUE,
            error_comment="Missing attribute value",
            attributes=_unique(empty),
        )
    invalid: list[int] = []
    if _text(dataset, "PerformedProcedureStepStatus") != PerformedStatus.IN_PROGRESS:
        invalid.append(PERFORMED_PROCEDURE_STEP_STATUS)
    invalid.extend(_malformed_dates(dataset))
    if invalid:
        return MppsVerdict(
            INVALID_ATTRIBUTE_VALUE,
            error_comment="Invalid attribute value",
            attributes=_unique(invalid),
        )
    return MppsVerdict(SUCCESS)


def _performed_status(dataset: Dataset) -> PerformedStatus | None:
    text = _text(dataset, "PerformedProcedureStepStatus")
    if text is None:
        return None
    try:
        return PerformedStatus(text)
    except ValueError:
        return None


def _final_state_missing(merged: Dataset) -> list[int]:
    """Type 1 attributes a COMPLETED or DISCONTINUED instance must hold (E.3, E.6)."""
    missing = [
        _tag(keyword)
        for keyword in ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime")
        if not _has_value(merged, keyword)
    ]
    series = _items(merged, "PerformedSeriesSequence")
    if not series:
        missing.append(_tag("PerformedSeriesSequence"))
    for item in series:
        missing.extend(
            _tag(keyword)
            for keyword in ("ProtocolName", "SeriesInstanceUID")
            if not _has_value(item, keyword)
        )
    return missing


def check_n_set(
    stored: Dataset,
    created: frozenset[int],
    modification: Dataset,
    *,
    strict: bool = False,
) -> MppsVerdict:
    """Validate an N-SET against the stored instance (E.6 step 2, without the unknown-UID check).

    ``created`` holds the top-level tags of the N-CREATE. Attributes the N-SET may not
    carry, or that were not created, are ignored with a warning (``ignored``) unless
    ``strict``, which refuses them with 0106. A final resulting status runs the
    final-state checks on the merged data set and answers 0121 for what is missing.
    """
    stored_status = _performed_status(stored)
    if stored_status is not None and stored_status.is_final:
        return MppsVerdict(
            PROCESSING_FAILURE,
            error_comment=NO_LONGER_UPDATABLE_COMMENT,
            error_id=NO_LONGER_UPDATABLE_ERROR_ID,
        )
    invalid: list[int] = []
    if PERFORMED_PROCEDURE_STEP_STATUS in modification and _performed_status(modification) is None:
        invalid.append(PERFORMED_PROCEDURE_STEP_STATUS)
    invalid.extend(_malformed_dates(modification))
    refused = [
        int(element.tag)
        for element in modification
        if int(element.tag) != SPECIFIC_CHARACTER_SET
        and (int(element.tag) in NOT_ALLOWED_IN_N_SET or int(element.tag) not in created)
    ]
    if strict:
        invalid.extend(refused)
        ignored: tuple[int, ...] = ()
    else:
        ignored = _unique(refused)
    if invalid:
        return MppsVerdict(
            INVALID_ATTRIBUTE_VALUE,
            error_comment="Invalid attribute value",
            attributes=_unique(invalid),
            ignored=ignored,
        )
    merged = merge_n_set(stored, modification, ignored)
    status = _performed_status(merged)
    if status is not None and status.is_final:
        missing = _final_state_missing(merged)
        if missing:
            return MppsVerdict(
                MISSING_ATTRIBUTE_VALUE,
                error_comment=f"Missing attribute value for status {status.value}",
                attributes=_unique(missing),
                ignored=ignored,
            )
    return MppsVerdict(SUCCESS, ignored=ignored)


def merge_n_set(stored: Dataset, modification: Dataset, ignored: Iterable[int] = ()) -> Dataset:
    """The stored instance with the N-SET applied; sequences are replaced whole (E.2).

    The stored Specific Character Set stays: values are decoded Unicode already, so the
    N-SET's own character set describes nothing left to decode.
    """
    skipped = {int(tag) for tag in ignored} | {SPECIFIC_CHARACTER_SET}
    merged = copy.deepcopy(stored)
    for element in modification:
        if int(element.tag) in skipped:
            continue
        merged[element.tag] = copy.deepcopy(element)
    return merged


@dataclass(frozen=True)
class StepReference:
    """What one Scheduled Step Attributes Sequence item says about the step performed."""

    sps_id: str | None
    requested_procedure_id: str | None
    accession_number: str | None
    study_instance_uid: str | None


def step_references(dataset: Dataset) -> list[StepReference]:
    """One reference per (0040,0270) item; empty values (unscheduled case) become None."""
    return [
        StepReference(
            sps_id=_text(item, "ScheduledProcedureStepID"),
            requested_procedure_id=_text(item, "RequestedProcedureID"),
            accession_number=_text(item, "AccessionNumber"),
            study_instance_uid=_text(item, "StudyInstanceUID"),
        )
        for item in _items(dataset, "ScheduledStepAttributesSequence")
    ]


@dataclass(frozen=True)
class DiscontinuationReason:
    """A Performed Procedure Step Discontinuation Reason code (E.5); key on the value."""

    code_value: str | None
    coding_scheme_designator: str | None
    code_meaning: str | None


# Modality PPS discontinuation reasons a console offers (CID 9301, plus the two CID 9300
# rescheduling codes the order filler acts on); scheme DCM. Key on the code value.
DISCONTINUATION_REASONS: dict[str, str] = {
    "110500": "Doctor canceled procedure",
    "110501": "Equipment failure",
    "110502": "Incorrect procedure ordered",
    "110503": "Patient allergic to media/contrast",
    "110504": "Patient died",
    "110505": "Patient refused to continue procedure",
    "110506": "Patient taken for treatment or surgery",
    "110507": "Patient did not arrive",
    "110508": "Patient pregnant",
    "110509": "Change of procedure for correct charging",
    "110510": "Duplicate order",
    "110511": "Nursing unit cancel",
    "110512": "Incorrect side ordered",
    "110513": "Discontinued for unspecified reason",
    "110514": "Incorrect worklist entry selected",
    "110515": "Patient condition prevented continuing",
    "110516": "Equipment change",
    "110528": "Discontinued Procedure Step rescheduled",
    "110529": "Discontinued Procedure Step rescheduling recommended",
}


def discontinuation_reason(dataset: Dataset) -> DiscontinuationReason | None:
    """The first (0040,0281) item, or None when the sequence is absent or empty."""
    items = _items(dataset, "PerformedProcedureStepDiscontinuationReasonCodeSequence")
    if not items:
        return None
    item = items[0]
    code_value = (
        _text(item, "CodeValue") or _text(item, "LongCodeValue") or _text(item, "URNCodeValue")
    )
    return DiscontinuationReason(
        code_value=code_value,
        coding_scheme_designator=_text(item, "CodingSchemeDesignator"),
        code_meaning=_text(item, "CodeMeaning"),
    )


_REFERENCE_SEQUENCES = (
    "ReferencedImageSequence",
    "ReferencedNonImageCompositeSOPInstanceSequence",
)


def referenced_instances(dataset: Dataset) -> dict[str, set[str]]:
    """Series Instance UID → SOP Instance UIDs the MPPS says were created (E.3).

    A series without references maps to an empty set: the modality made none there.
    """
    instances: dict[str, set[str]] = {}
    for series in _items(dataset, "PerformedSeriesSequence"):
        series_uid = _text(series, "SeriesInstanceUID")
        if series_uid is None:
            continue
        uids = instances.setdefault(series_uid, set())
        for keyword in _REFERENCE_SEQUENCES:
            for reference in _items(series, keyword):
                sop_instance_uid = _text(reference, "ReferencedSOPInstanceUID")
                if sop_instance_uid is not None:
                    uids.add(sop_instance_uid)
    return instances
