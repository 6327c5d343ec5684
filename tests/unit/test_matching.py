"""Every C-FIND matching rule of DOMAIN.md D.3 and its edges."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mri_pipeline.domain.errors import InvalidQuery
from mri_pipeline.domain.matching import (
    matches,
    name_literal_prefix,
    person_name_match,
    unsupported_keys,
    wildcard_match,
)


def item(
    *,
    name: str = "Müller^Hans",
    patient_id: str = "PID0001",
    station: str | list[str] = "MRI1",
    start_date: str = "20250105",
    start_time: str = "083000",
    modality: str = "MR",
    status: str = "SCHEDULED",
    accession: str = "ACC0001",
    study_uid: str = "1.2.3.4",
    code: str = "LSP-RAD",
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.AccessionNumber = accession
    ds.StudyInstanceUID = study_uid
    ds.ReferringPhysicianName = ""
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = start_date
    step.ScheduledProcedureStepStartTime = start_time
    step.Modality = modality
    step.ScheduledProcedureStepStatus = status
    step.ScheduledPerformingPhysicianName = ""
    protocol = Dataset()
    protocol.CodeValue = code
    protocol.CodingSchemeDesignator = "99LSPINE"
    protocol.CodeMeaning = "Lumbar spine"
    step.ScheduledProtocolCodeSequence = Sequence([protocol])
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def query(**top: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    for keyword, value in top.items():
        setattr(ds, keyword, value)
    return ds


def sps_query(**keys: str) -> Dataset:
    ds = query()
    step = Dataset()
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    step.ScheduledProcedureStepStartTime = ""
    step.Modality = ""
    for keyword, value in keys.items():
        setattr(step, keyword, value)
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


def test_empty_keys_are_universal_and_match_everything() -> None:
    assert matches(sps_query(), item())


def test_a_sequence_key_with_no_item_is_universal() -> None:
    q = query()
    q.ScheduledProcedureStepSequence = Sequence()
    assert matches(q, item())


def test_single_value_is_exact_and_case_sensitive_for_non_pn() -> None:
    assert matches(query(PatientID="PID0001"), item())
    assert not matches(query(PatientID="pid0001"), item())
    assert not matches(query(PatientID="PID000"), item())


def test_wildcards_star_and_question_mark() -> None:
    assert matches(query(AccessionNumber="ACC*"), item())
    assert matches(query(AccessionNumber="ACC000?"), item())
    assert not matches(query(AccessionNumber="ACC00?"), item())
    assert matches(query(AccessionNumber="*"), item())
    assert matches(query(AccessionNumber="*0*1"), item())


def test_star_alone_is_universal_even_for_an_empty_stored_value() -> None:
    assert matches(query(ReferringPhysicianName="*"), item())


def test_empty_stored_value_never_matches_a_non_universal_key() -> None:
    assert not matches(query(ReferringPhysicianName="A*"), item())
    assert not matches(query(ReferringPhysicianName="?*"), item())


def test_missing_stored_attribute_never_matches_a_non_universal_key() -> None:
    assert not matches(query(AdmissionID="X1"), item())


def test_question_mark_matches_one_unicode_character_not_one_byte() -> None:
    assert matches(query(PatientName="M?ller^Hans"), item())
    assert not matches(query(PatientName="M??ller^Hans"), item())


def test_person_name_is_case_and_accent_insensitive() -> None:
    assert matches(query(PatientName="müller*"), item())
    assert matches(query(PatientName="MÜLLER*"), item())
    assert matches(query(PatientName="MULLER^HANS"), item())
    assert not matches(query(PatientName="Mueller^Hans"), item())


def test_person_name_family_name_alone_matches_by_component() -> None:
    assert matches(query(PatientName="Müller"), item())
    assert matches(query(PatientName="^Hans"), item())
    assert not matches(query(PatientName="Hans"), item())


def test_person_name_wildcard_may_span_components_as_dcmtk_does() -> None:
    assert matches(query(PatientName="*Hans"), item())
    assert matches(query(PatientName="M*s"), item())


def test_person_name_trailing_carets_do_not_matter() -> None:
    assert person_name_match("Müller^Hans^^^", "Müller^Hans")
    assert person_name_match("Müller^Hans", "Müller^Hans^^^")


def test_person_name_groups_compare_group_for_group() -> None:
    stored = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert person_name_match("Yamada^Tarou", stored)
    assert person_name_match("=山田*", stored)
    assert not person_name_match("=田中*", stored)


def test_name_literal_prefix_is_normalised_and_stops_at_first_wildcard() -> None:
    assert name_literal_prefix("Mül*er") == "mul"
    assert name_literal_prefix("?ller") == ""
    assert name_literal_prefix("ÉCOLE^Jean") == "ecole^jean"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("20250105", True),
        ("20250104", False),
        ("20250101-20250105", True),
        ("20250105-20250110", True),
        ("20250106-20250110", False),
        ("-20250105", True),
        ("-20250104", False),
        ("20250105-", True),
        ("20250106-", False),
    ],
)
def test_date_single_value_and_ranges_including_open_ends(key: str, expected: bool) -> None:
    assert matches(sps_query(ScheduledProcedureStepStartDate=key), item()) is expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("083000", True),
        ("0830", True),  # TM 0830 means 08:30:00
        ("08", False),  # 08:00:00 exactly
        ("0800-0900", True),
        ("0831-0900", False),
        ("-0830", True),
        ("0830-", True),
        ("083000.000001-", False),
    ],
)
def test_time_single_value_and_ranges(key: str, expected: bool) -> None:
    assert matches(sps_query(ScheduledProcedureStepStartTime=key), item()) is expected


def test_a_time_range_cannot_cross_midnight() -> None:
    late = item(start_time="233000")
    assert not matches(sps_query(ScheduledProcedureStepStartTime="2200-0200"), late)


def test_date_and_time_ranges_combine_into_one_interval() -> None:
    # 5 Jan-7 Jan with 10:00-18:00 means 5 Jan 10:00 -> 7 Jan 18:00.
    q = sps_query(
        ScheduledProcedureStepStartDate="20250105-20250107",
        ScheduledProcedureStepStartTime="1000-1800",
    )
    assert matches(q, item(start_date="20250106", start_time="070000"))
    assert matches(q, item(start_date="20250105", start_time="230000"))
    assert not matches(q, item(start_date="20250105", start_time="090000"))
    assert not matches(q, item(start_date="20250107", start_time="190000"))


def test_combined_interval_allows_a_night_shift_across_midnight() -> None:
    q = sps_query(
        ScheduledProcedureStepStartDate="20250105-20250106",
        ScheduledProcedureStepStartTime="2200-0200",
    )
    assert matches(q, item(start_date="20250106", start_time="013000"))
    assert matches(q, item(start_date="20250105", start_time="233000"))
    assert not matches(q, item(start_date="20250105", start_time="120000"))


def test_single_date_with_time_range_limits_that_day() -> None:
    q = sps_query(
        ScheduledProcedureStepStartDate="20250105", ScheduledProcedureStepStartTime="0800-"
    )
    assert matches(q, item())
    assert not matches(q, item(start_time="075959"))


def test_a_malformed_date_key_is_an_invalid_query() -> None:
    with pytest.raises(InvalidQuery):
        matches(sps_query(ScheduledProcedureStepStartDate="2025-01-05"), item())
    with pytest.raises(InvalidQuery):
        matches(sps_query(ScheduledProcedureStepStartTime="25"), item())


def test_uid_list_matches_any_listed_uid() -> None:
    assert matches(query(StudyInstanceUID="9.9\\1.2.3.4"), item())
    assert not matches(query(StudyInstanceUID="9.9\\1.2.3"), item())


def test_multi_valued_stored_ae_matches_if_any_value_matches() -> None:
    shared = item(station=["MRI1", "MRI2"])
    assert matches(sps_query(ScheduledStationAETitle="MRI2"), shared)
    assert not matches(sps_query(ScheduledStationAETitle="MRI3"), shared)


def test_sequence_matching_is_recursive() -> None:
    q = sps_query()
    code = Dataset()
    code.CodeValue = "LSP-RAD"
    code.CodingSchemeDesignator = ""
    q.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence = Sequence([code])
    assert matches(q, item())
    assert not matches(q, item(code="LSP-STD"))


def test_station_and_modality_keys_inside_the_step_item() -> None:
    assert matches(sps_query(ScheduledStationAETitle="MRI1", Modality="MR"), item())
    assert not matches(sps_query(ScheduledStationAETitle="MRI2"), item())
    assert not matches(sps_query(Modality="CT"), item())


def test_wildcard_match_treats_regex_characters_literally() -> None:
    assert wildcard_match("a.b*", "a.bc")
    assert not wildcard_match("a.b*", "axbc")
    assert wildcard_match("[x]*", "[x]y")


def test_values_in_return_only_or_private_keys_are_reported_unsupported() -> None:
    q = query()
    q.add_new(0x00091010, "LO", "private")
    assert unsupported_keys(q) and matches(q, item())
    assert unsupported_keys(query(PatientID="X")) == []
