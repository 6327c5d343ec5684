"""MPPS N-CREATE and N-SET validation rules of DOMAIN.md E.2–E.6."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from mri_pipeline.domain.mpps import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    NO_LONGER_UPDATABLE_ERROR_ID,
    NO_SUCH_SOP_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    DiscontinuationReason,
    MppsVerdict,
    PerformedStatus,
    StepReference,
    check_n_create,
    check_n_set,
    created_tags,
    discontinuation_reason,
    merge_n_set,
    referenced_instances,
    step_references,
)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SERIES_UID = "1.2.826.0.1.3680043.8.498.2"
DISCONTINUATION_REASON = Tag(0x0040, 0x0281)
# Malformed values are what these tests feed in on purpose; pydicom warns on assignment.
accepts_malformed_values = pytest.mark.filterwarnings("ignore:Invalid value for VR")


def scheduled_step_item(
    *, sps_id: str = "SPS0001", study_uid: str = "1.2.826.0.1.3680043.8.498.1"
) -> Dataset:
    item = Dataset()
    item.StudyInstanceUID = study_uid
    item.ReferencedStudySequence = Sequence()
    item.AccessionNumber = "ACC0001"
    item.RequestedProcedureID = "RP0001"
    item.RequestedProcedureDescription = "MRI lumbar spine"
    item.ScheduledProcedureStepID = sps_id
    item.ScheduledProcedureStepDescription = "LSP-RAD"
    item.ScheduledProtocolCodeSequence = Sequence()
    return item


def n_create(**overrides: object) -> Dataset:
    """A complete, valid N-CREATE data set (Table E.2) with one scheduled step."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ScheduledStepAttributesSequence = Sequence([scheduled_step_item()])
    ds.PatientName = "Müller^Hans"
    ds.PatientID = "PID0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.ReferencedPatientSequence = Sequence()
    ds.PerformedProcedureStepID = "PPS0001"
    ds.PerformedStationAETitle = "MRI1"
    ds.PerformedStationName = "MR Scanner 1"
    ds.PerformedLocation = "Radiology"
    ds.PerformedProcedureStepStartDate = "20250105"
    ds.PerformedProcedureStepStartTime = "083000"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "MRI lumbar spine"
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = Sequence()
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "MR"
    ds.StudyID = "1"
    ds.PerformedProtocolCodeSequence = Sequence()
    ds.PerformedSeriesSequence = Sequence()
    ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = Sequence()
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return ds


def image_reference(sop_instance_uid: str) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = MR_IMAGE_STORAGE
    reference.ReferencedSOPInstanceUID = sop_instance_uid
    return reference


def performed_series(
    *,
    series_uid: str = SERIES_UID,
    protocol: str = "T2 SAG",
    images: tuple[str, ...] = ("1.2.3.1", "1.2.3.2"),
) -> Dataset:
    item = Dataset()
    item.PerformingPhysicianName = ""
    item.ProtocolName = protocol
    item.OperatorsName = "Tech^Anna"
    item.SeriesInstanceUID = series_uid
    item.SeriesDescription = "T2 TSE SAG"
    item.RetrieveAETitle = "ORTHANC"
    item.ReferencedImageSequence = Sequence([image_reference(uid) for uid in images])
    item.ReferencedNonImageCompositeSOPInstanceSequence = Sequence()
    return item


def n_set_completed(**overrides: object) -> Dataset:
    """A valid N-SET that completes the step with one performed series."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = "20250105"
    ds.PerformedProcedureStepEndTime = "091500"
    ds.PerformedSeriesSequence = Sequence([performed_series()])
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return ds


def discontinuation_item(code: str = "110505", meaning: str = "Patient refused") -> Dataset:
    item = Dataset()
    item.CodeValue = code
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def tag(keyword: str) -> int:
    return int(Tag(keyword))


# --- constants and small types ---------------------------------------------------------


def test_status_constants_are_the_dimse_codes() -> None:
    assert (SUCCESS, INVALID_ATTRIBUTE_VALUE, PROCESSING_FAILURE) == (0x0000, 0x0106, 0x0110)
    assert (DUPLICATE_SOP_INSTANCE, NO_SUCH_SOP_INSTANCE) == (0x0111, 0x0112)
    assert (MISSING_ATTRIBUTE, MISSING_ATTRIBUTE_VALUE) == (0x0120, 0x0121)
    assert NO_LONGER_UPDATABLE_ERROR_ID == 0xA710


def test_performed_status_stores_the_dicom_string_and_knows_final_states() -> None:
    assert PerformedStatus("IN PROGRESS") is PerformedStatus.IN_PROGRESS
    assert not PerformedStatus.IN_PROGRESS.is_final
    assert PerformedStatus.COMPLETED.is_final
    assert PerformedStatus.DISCONTINUED.is_final


def test_verdict_is_ok_only_on_success() -> None:
    assert MppsVerdict(SUCCESS).ok
    assert not MppsVerdict(MISSING_ATTRIBUTE).ok


# --- N-CREATE --------------------------------------------------------------------------


def test_valid_n_create_is_accepted() -> None:
    assert check_n_create(n_create()) == MppsVerdict(SUCCESS)


def test_n_create_with_a_performed_series_item_is_accepted() -> None:
    ds = n_create(PerformedSeriesSequence=Sequence([performed_series()]))
    assert check_n_create(ds).ok


@pytest.mark.parametrize(
    "keyword",
    ["ScheduledStepAttributesSequence", "PerformedStationAETitle", "PatientID", "StudyID"],
)
def test_n_create_without_a_type_1_or_2_attribute_is_refused_with_0120(keyword: str) -> None:
    ds = n_create()
    delattr(ds, keyword)

    verdict = check_n_create(ds)

    assert verdict.status == MISSING_ATTRIBUTE
    assert verdict.attributes == (tag(keyword),)


def test_n_create_missing_attributes_are_all_listed() -> None:
    ds = n_create()
    del ds.Modality
    del ds.PerformedProcedureStepEndTime

    assert set(check_n_create(ds).attributes) == {
        tag("Modality"),
        tag("PerformedProcedureStepEndTime"),
    }


def test_n_create_missing_attribute_in_scheduled_step_item_lists_the_nested_tag() -> None:
    ds = n_create()
    del ds.ScheduledStepAttributesSequence[0].AccessionNumber

    verdict = check_n_create(ds)

    assert verdict.status == MISSING_ATTRIBUTE
    assert verdict.attributes == (tag("AccessionNumber"),)


def test_n_create_missing_attribute_in_performed_series_item_lists_the_nested_tag() -> None:
    series = performed_series()
    del series.RetrieveAETitle
    ds = n_create(PerformedSeriesSequence=Sequence([series]))

    verdict = check_n_create(ds)

    assert verdict.status == MISSING_ATTRIBUTE
    assert verdict.attributes == (tag("RetrieveAETitle"),)


def test_n_create_missing_attribute_takes_precedence_over_empty_and_invalid_values() -> None:
    ds = n_create(PerformedProcedureStepID="", PerformedProcedureStepStatus="COMPLETED")
    del ds.PatientName

    assert check_n_create(ds).status == MISSING_ATTRIBUTE


@pytest.mark.parametrize(
    "keyword",
    [
        "PerformedProcedureStepID",
        "PerformedStationAETitle",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "Modality",
    ],
)
def test_n_create_with_an_empty_type_1_value_is_refused_with_0121(keyword: str) -> None:
    verdict = check_n_create(n_create(**{keyword: ""}))

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag(keyword),)


def test_n_create_with_empty_scheduled_step_sequence_is_refused_with_0121() -> None:
    verdict = check_n_create(n_create(ScheduledStepAttributesSequence=Sequence()))

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("ScheduledStepAttributesSequence"),)


def test_n_create_with_empty_study_uid_in_scheduled_step_item_is_refused_with_0121() -> None:
    ds = n_create()
    ds.ScheduledStepAttributesSequence[0].StudyInstanceUID = ""

    verdict = check_n_create(ds)

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("StudyInstanceUID"),)


def test_n_create_empty_type_2_values_are_accepted() -> None:
    ds = n_create(PatientName="", PatientBirthDate="", PerformedLocation="")
    ds.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = ""

    assert check_n_create(ds).ok


def test_n_create_empty_value_takes_precedence_over_invalid_status() -> None:
    ds = n_create(Modality="", PerformedProcedureStepStatus="COMPLETED")

    assert check_n_create(ds).status == MISSING_ATTRIBUTE_VALUE


@pytest.mark.parametrize("status", ["COMPLETED", "DISCONTINUED", "DONE"])
def test_n_create_with_status_other_than_in_progress_is_refused_with_0106(status: str) -> None:
    verdict = check_n_create(n_create(PerformedProcedureStepStatus=status))

    assert verdict.status == INVALID_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedProcedureStepStatus"),)


@accepts_malformed_values
@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PerformedProcedureStepStartDate", "20251305"),
        ("PerformedProcedureStepStartDate", "5.1.2025"),
        ("PerformedProcedureStepStartTime", "256000"),
        ("PerformedProcedureStepStartTime", "8h30"),
        ("PerformedProcedureStepEndDate", "2025-01-0"),
        ("PerformedProcedureStepEndTime", "0915xx"),
    ],
)
def test_n_create_with_malformed_date_or_time_is_refused_with_0106(
    keyword: str, value: str
) -> None:
    verdict = check_n_create(n_create(**{keyword: value}))

    assert verdict.status == INVALID_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag(keyword),)


@accepts_malformed_values
def test_n_create_lists_invalid_status_and_malformed_time_together() -> None:
    ds = n_create(PerformedProcedureStepStatus="DONE", PerformedProcedureStepStartTime="99")

    assert check_n_create(ds).attributes == (
        tag("PerformedProcedureStepStatus"),
        tag("PerformedProcedureStepStartTime"),
    )


def test_created_tags_are_the_top_level_tags_of_the_n_create() -> None:
    ds = n_create()

    created = created_tags(ds)

    assert tag("PerformedProcedureStepEndDate") in created
    assert tag("AccessionNumber") not in created  # nested in (0040,0270)


# --- N-SET -----------------------------------------------------------------------------


def stored_in_progress() -> tuple[Dataset, frozenset[int]]:
    ds = n_create()
    return ds, created_tags(ds)


def test_completing_n_set_is_accepted() -> None:
    stored, created = stored_in_progress()

    assert check_n_set(stored, created, n_set_completed()) == MppsVerdict(SUCCESS)


def test_n_set_without_status_keeps_the_step_in_progress_and_is_accepted() -> None:
    stored, created = stored_in_progress()
    modification = Dataset()
    modification.PerformedProcedureStepDescription = "MRI lumbar spine with contrast"

    assert check_n_set(stored, created, modification).ok


@pytest.mark.parametrize("final", ["COMPLETED", "DISCONTINUED"])
def test_n_set_after_completed_is_refused_with_a710(final: str) -> None:
    stored, created = stored_in_progress()
    stored.PerformedProcedureStepStatus = final

    verdict = check_n_set(stored, created, n_set_completed())

    assert verdict.status == PROCESSING_FAILURE
    assert verdict.error_id == NO_LONGER_UPDATABLE_ERROR_ID
    assert verdict.error_comment == "Performed Procedure Step Object may no longer be updated"


@accepts_malformed_values
@pytest.mark.parametrize("status", ["DONE", "completed", ""])
def test_n_set_with_a_status_outside_the_enumerated_values_is_refused_with_0106(
    status: str,
) -> None:
    stored, created = stored_in_progress()

    verdict = check_n_set(stored, created, n_set_completed(PerformedProcedureStepStatus=status))

    assert verdict.status == INVALID_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedProcedureStepStatus"),)


@accepts_malformed_values
def test_n_set_with_malformed_end_time_is_refused_with_0106() -> None:
    stored, created = stored_in_progress()

    verdict = check_n_set(stored, created, n_set_completed(PerformedProcedureStepEndTime="25:00"))

    assert verdict.status == INVALID_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedProcedureStepEndTime"),)


def test_lenient_n_set_ignores_an_attribute_not_created_at_n_create() -> None:
    stored, created = stored_in_progress()
    del stored.PerformedProcedureStepDiscontinuationReasonCodeSequence
    created = created_tags(stored)
    modification = n_set_completed(
        PerformedProcedureStepStatus="DISCONTINUED",
        PerformedProcedureStepDiscontinuationReasonCodeSequence=Sequence([discontinuation_item()]),
    )

    verdict = check_n_set(stored, created, modification)

    assert verdict.status == SUCCESS
    assert verdict.ignored == (int(DISCONTINUATION_REASON),)


def test_strict_n_set_refuses_an_attribute_not_created_at_n_create_with_0106() -> None:
    stored, _ = stored_in_progress()
    del stored.PerformedProcedureStepDiscontinuationReasonCodeSequence
    modification = n_set_completed(
        PerformedProcedureStepStatus="DISCONTINUED",
        PerformedProcedureStepDiscontinuationReasonCodeSequence=Sequence([discontinuation_item()]),
    )

    verdict = check_n_set(stored, created_tags(stored), modification, strict=True)

    assert verdict.status == INVALID_ATTRIBUTE_VALUE
    assert verdict.attributes == (int(DISCONTINUATION_REASON),)
    assert verdict.ignored == ()


def test_lenient_n_set_ignores_attributes_not_allowed_in_n_set() -> None:
    stored, created = stored_in_progress()
    modification = n_set_completed(PatientID="OTHER", Modality="CT")

    verdict = check_n_set(stored, created, modification)

    assert verdict.ok
    assert set(verdict.ignored) == {tag("PatientID"), tag("Modality")}


def test_strict_n_set_refuses_attributes_not_allowed_in_n_set_with_0106() -> None:
    stored, created = stored_in_progress()
    modification = n_set_completed(PerformedStationAETitle="MRI2")

    verdict = check_n_set(stored, created, modification, strict=True)

    assert verdict.status == INVALID_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedStationAETitle"),)


def test_n_set_specific_character_set_is_neither_ignored_nor_refused() -> None:
    stored, created = stored_in_progress()
    modification = n_set_completed(SpecificCharacterSet="ISO_IR 100")

    verdict = check_n_set(stored, created, modification, strict=True)

    assert verdict == MppsVerdict(SUCCESS)


@pytest.mark.parametrize(
    "keyword", ["PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"]
)
def test_completing_without_end_date_or_time_is_refused_with_0121(keyword: str) -> None:
    stored, created = stored_in_progress()
    modification = n_set_completed()
    delattr(modification, keyword)  # the stored value is the empty one of the N-CREATE

    verdict = check_n_set(stored, created, modification)

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag(keyword),)


def test_completing_with_empty_end_time_is_refused_with_0121() -> None:
    stored, created = stored_in_progress()

    verdict = check_n_set(stored, created, n_set_completed(PerformedProcedureStepEndTime=""))

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedProcedureStepEndTime"),)


def test_completing_with_empty_performed_series_is_refused_with_0121() -> None:
    stored, created = stored_in_progress()

    verdict = check_n_set(stored, created, n_set_completed(PerformedSeriesSequence=Sequence()))

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedSeriesSequence"),)


def test_discontinuing_without_performed_series_is_refused_with_0121() -> None:
    stored, created = stored_in_progress()
    modification = Dataset()
    modification.PerformedProcedureStepStatus = "DISCONTINUED"
    modification.PerformedProcedureStepEndDate = "20250105"
    modification.PerformedProcedureStepEndTime = "084000"

    verdict = check_n_set(stored, created, modification)

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("PerformedSeriesSequence"),)


def test_completing_with_a_series_without_protocol_name_is_refused_with_0121() -> None:
    stored, created = stored_in_progress()
    without_protocol = performed_series(series_uid="1.2.3.9", protocol="")
    modification = n_set_completed(
        PerformedSeriesSequence=Sequence([performed_series(), without_protocol])
    )

    verdict = check_n_set(stored, created, modification)

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("ProtocolName"),)


def test_completing_with_a_series_without_series_uid_is_refused_with_0121() -> None:
    stored, created = stored_in_progress()
    series = performed_series()
    del series.SeriesInstanceUID

    verdict = check_n_set(
        stored, created, n_set_completed(PerformedSeriesSequence=Sequence([series]))
    )

    assert verdict.status == MISSING_ATTRIBUTE_VALUE
    assert verdict.attributes == (tag("SeriesInstanceUID"),)


def test_final_state_checks_use_values_set_by_an_earlier_n_set() -> None:
    stored, created = stored_in_progress()
    stored.PerformedProcedureStepEndDate = "20250105"
    stored.PerformedProcedureStepEndTime = "091500"
    stored.PerformedSeriesSequence = Sequence([performed_series()])
    modification = Dataset()
    modification.PerformedProcedureStepStatus = "COMPLETED"

    assert check_n_set(stored, created, modification).ok


def test_in_progress_n_set_skips_the_final_state_checks() -> None:
    stored, created = stored_in_progress()
    modification = Dataset()
    modification.PerformedProcedureStepStatus = "IN PROGRESS"
    modification.PerformedSeriesSequence = Sequence()

    assert check_n_set(stored, created, modification).ok


# --- merge -----------------------------------------------------------------------------


def test_merge_replaces_whole_sequences() -> None:
    stored, _ = stored_in_progress()
    stored.PerformedSeriesSequence = Sequence(
        [performed_series(series_uid="1.2.3.7"), performed_series(series_uid="1.2.3.8")]
    )

    merged = merge_n_set(stored, n_set_completed())

    assert [item.SeriesInstanceUID for item in merged.PerformedSeriesSequence] == [SERIES_UID]


def test_merge_keeps_the_original_character_set_and_applies_values() -> None:
    stored, _ = stored_in_progress()
    modification = n_set_completed(
        SpecificCharacterSet="ISO_IR 100", PerformedProcedureStepDescription="Lendenwirbelsäule"
    )

    merged = merge_n_set(stored, modification)

    assert merged.SpecificCharacterSet == "ISO_IR 192"
    assert merged.PerformedProcedureStepDescription == "Lendenwirbelsäule"
    assert merged.PerformedProcedureStepStatus == "COMPLETED"
    assert merged.PerformedProcedureStepEndTime == "091500"


def test_merge_skips_ignored_tags_and_leaves_the_stored_dataset_untouched() -> None:
    stored, _ = stored_in_progress()

    merged = merge_n_set(stored, n_set_completed(PatientID="OTHER"), [tag("PatientID")])

    assert merged.PatientID == "PID0001"
    assert stored.PerformedProcedureStepStatus == "IN PROGRESS"
    assert len(stored.PerformedSeriesSequence) == 0


def test_merge_does_not_share_sequence_items_with_the_modification() -> None:
    stored, _ = stored_in_progress()
    modification = n_set_completed()

    merged = merge_n_set(stored, modification)
    modification.PerformedSeriesSequence[0].ProtocolName = "changed"

    assert merged.PerformedSeriesSequence[0].ProtocolName == "T2 SAG"


# --- reading an MPPS ---------------------------------------------------------------------


def test_step_references_read_each_scheduled_step_item() -> None:
    ds = n_create()
    unscheduled = scheduled_step_item(sps_id="", study_uid="1.2.3.5")
    unscheduled.AccessionNumber = ""
    unscheduled.RequestedProcedureID = ""
    ds.ScheduledStepAttributesSequence.append(unscheduled)

    assert step_references(ds) == [
        StepReference(
            sps_id="SPS0001",
            requested_procedure_id="RP0001",
            accession_number="ACC0001",
            study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        ),
        StepReference(
            sps_id=None,
            requested_procedure_id=None,
            accession_number=None,
            study_instance_uid="1.2.3.5",
        ),
    ]


def test_step_references_are_empty_without_the_sequence() -> None:
    assert step_references(Dataset()) == []


def test_discontinuation_reason_reads_the_first_item() -> None:
    ds = n_create(
        PerformedProcedureStepDiscontinuationReasonCodeSequence=Sequence(
            [
                discontinuation_item("110514", "Incorrect worklist entry selected"),
                discontinuation_item("110501", "Equipment failure"),
            ]
        )
    )

    assert discontinuation_reason(ds) == DiscontinuationReason(
        code_value="110514",
        coding_scheme_designator="DCM",
        code_meaning="Incorrect worklist entry selected",
    )


@pytest.mark.parametrize("present", [True, False])
def test_discontinuation_reason_is_none_without_an_item(present: bool) -> None:
    ds = n_create()
    if not present:
        del ds.PerformedProcedureStepDiscontinuationReasonCodeSequence

    assert discontinuation_reason(ds) is None


def test_referenced_instances_group_image_and_non_image_references_by_series() -> None:
    first = performed_series(images=("1.2.3.1", "1.2.3.2"))
    first.ReferencedNonImageCompositeSOPInstanceSequence = Sequence([image_reference("1.2.3.3")])
    empty = performed_series(series_uid="1.2.3.9", images=())
    ds = n_set_completed(PerformedSeriesSequence=Sequence([first, empty]))

    assert referenced_instances(ds) == {
        SERIES_UID: {"1.2.3.1", "1.2.3.2", "1.2.3.3"},
        "1.2.3.9": set(),
    }
