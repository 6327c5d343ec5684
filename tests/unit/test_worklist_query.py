"""Reading a query for SQL narrowing, visibility by status, and building the answer."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mri_pipeline.dicom.charset import set_response_charset, transliterate
from mri_pipeline.domain.errors import InvalidQuery
from mri_pipeline.domain.mwl_response import build_response
from mri_pipeline.domain.worklist_query import read_query, visible


def with_step(**keys: str) -> Dataset:
    query = Dataset()
    step = Dataset()
    for keyword, value in keys.items():
        setattr(step, keyword, value)
    query.ScheduledProcedureStepSequence = Sequence([step])
    return query


def test_typical_console_query_narrows_by_station_modality_and_whole_days() -> None:
    read = read_query(
        with_step(
            ScheduledStationAETitle="MRI1",
            Modality="MR",
            ScheduledProcedureStepStartDate="20260302",
            ScheduledProcedureStepStartTime="0800-1200",
        )
    )
    assert read.station_ae_title == "MRI1"
    assert read.modality == "MR"
    assert read.start_from == datetime(2026, 3, 2, 0, 0)
    assert read.start_until == datetime(2026, 3, 2, 23, 59, 59, 999999)


def test_wildcards_are_not_used_for_equality() -> None:
    read = read_query(with_step(ScheduledStationAETitle="MRI*"))
    assert read.station_ae_title is None


def test_broad_queries_hide_departed_but_patient_queries_show_it() -> None:
    broad = read_query(with_step(ScheduledStationAETitle="MRI1"))
    assert not visible("DEPARTED", broad)
    assert not visible("COMPLETED", broad)
    assert visible("STARTED", broad)
    patient = Dataset()
    patient.PatientID = "PID1"
    assert visible("DEPARTED", read_query(patient))
    assert not visible("CANCELED", read_query(patient))


def test_a_status_key_shows_every_status() -> None:
    read = read_query(with_step(ScheduledProcedureStepStatus="COMPLETED"))
    assert visible("COMPLETED", read)
    assert read.status == "COMPLETED"


def test_two_step_items_are_an_invalid_query() -> None:
    query = Dataset()
    query.ScheduledProcedureStepSequence = Sequence([Dataset(), Dataset()])
    with pytest.raises(InvalidQuery):
        read_query(query)


def stored() -> Dataset:
    item = Dataset()
    item.PatientName = "Müller^Hans"
    item.PatientID = "PID1"
    item.OtherPatientIDs = "X"
    step = Dataset()
    step.Modality = "MR"
    step.ScheduledStationAETitle = "MRI1"
    code = Dataset()
    code.CodeValue = "LSP-RAD"
    code.CodingSchemeDesignator = "99LSPINE"
    code.CodeMeaning = "Radiculopathy"
    step.ScheduledProtocolCodeSequence = Sequence([code])
    item.ScheduledProcedureStepSequence = Sequence([step])
    return item


def test_the_answer_holds_exactly_the_requested_keys_with_unknown_ones_empty() -> None:
    query = Dataset()
    query.PatientName = ""
    query.PatientWeight = ""
    query.ScheduledProcedureStepSequence = Sequence([Dataset()])
    query.ScheduledProcedureStepSequence[0].Modality = ""
    answer = build_response(query, stored())
    assert set(answer.dir()) == {"PatientName", "PatientWeight", "ScheduledProcedureStepSequence"}
    assert answer.PatientWeight is None or answer.PatientWeight == ""
    assert answer.ScheduledProcedureStepSequence[0].dir() == ["Modality"]


def test_an_empty_sequence_key_returns_the_whole_stored_sequence() -> None:
    query = Dataset()
    query.ScheduledProcedureStepSequence = Sequence()
    answer = build_response(query, stored())
    step = answer.ScheduledProcedureStepSequence[0]
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "LSP-RAD"


def test_charset_is_declared_only_when_needed_and_in_the_peers_repertoire() -> None:
    ascii_only = Dataset()
    ascii_only.PatientName = "Smith^John"
    assert "SpecificCharacterSet" not in set_response_charset(ascii_only, "ISO_IR 192")
    utf8 = Dataset()
    utf8.PatientName = "Dvořák^Antonín"
    assert set_response_charset(utf8, "ISO_IR 192").SpecificCharacterSet == "ISO_IR 192"
    latin = Dataset()
    latin.PatientName = "Dvořák^Antonín"
    answered = set_response_charset(latin, "ISO_IR 100")
    assert str(answered.PatientName) == "Dvorák^Antonín"
    assert answered.SpecificCharacterSet == "ISO_IR 100"


def test_transliteration_keeps_what_the_charset_holds() -> None:
    assert transliterate("Øystein Dvořák 山田", "latin_1") == "Øystein Dvorák ??"
    assert transliterate("Müller", "ascii") == "Muller"
