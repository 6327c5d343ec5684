"""Fuzzed Modality Worklist C-FIND identifiers from a real SCU: an answer every time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset

from tests.hostile.conftest import fuzz_settings
from tests.hostile.dicom_wire import (
    FIND_FAILURES,
    HANDLER_CRASH_STATUSES,
    Element,
    Peer,
    assert_still_serving,
    encode_elements,
    watching_for_crashes,
)

# pydicom warns about every bad value it reads: here that is the point.
pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]

ALL_VRS = [
    *("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF"),
    *("OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN"),
    *("UR", "US", "UT", "UV"),
]

# The keys consoles send (PS3.4 K.6), with their dictionary VRs.
TOP_KEYS = {
    0x00080005: "CS",  # SpecificCharacterSet
    0x00080050: "SH",  # AccessionNumber
    0x00080090: "PN",  # ReferringPhysicianName
    0x00080201: "SH",  # TimezoneOffsetFromUTC
    0x00081110: "SQ",  # ReferencedStudySequence
    0x00081120: "SQ",  # ReferencedPatientSequence
    0x00100010: "PN",  # PatientName
    0x00100020: "LO",  # PatientID
    0x00100030: "DA",  # PatientBirthDate
    0x00100040: "CS",  # PatientSex
    0x00101030: "DS",  # PatientWeight
    0x00102000: "LO",  # MedicalAlerts
    0x00102110: "LO",  # Allergies
    0x0020000D: "UI",  # StudyInstanceUID
    0x00321060: "LO",  # RequestedProcedureDescription
    0x00321064: "SQ",  # RequestedProcedureCodeSequence
    0x00400100: "SQ",  # ScheduledProcedureStepSequence
    0x00401001: "SH",  # RequestedProcedureID
    0x00401003: "SH",  # RequestedProcedurePriority
}
STEP_KEYS = {
    0x00080060: "CS",  # Modality
    0x00400001: "AE",  # ScheduledStationAETitle
    0x00400002: "DA",  # ScheduledProcedureStepStartDate
    0x00400003: "TM",  # ScheduledProcedureStepStartTime
    0x00400006: "PN",  # ScheduledPerformingPhysicianName
    0x00400007: "LO",  # ScheduledProcedureStepDescription
    0x00400008: "SQ",  # ScheduledProtocolCodeSequence
    0x00400009: "SH",  # ScheduledProcedureStepID
    0x00400010: "SH",  # ScheduledStationName
    0x00400011: "SH",  # ScheduledProcedureStepLocation
    0x00400020: "CS",  # ScheduledProcedureStepStatus
    0x00400440: "SQ",  # ProtocolContextSequence
}
CODE_KEYS = {0x00080100: "SH", 0x00080102: "SH", 0x00080104: "LO", 0x00400100: "SQ"}
ODD_TAGS = {
    0x00000000: "UL",  # command group length inside a data set
    0x00020010: "UI",  # file meta information inside a data set
    0x00100000: "UL",  # a group length
    0x00091010: "LO",  # private data element
    0x00090010: "LO",  # private creator
    0x7FE00010: "OB",  # pixel data
    0xFFFEE000: "UN",  # an item tag where an element belongs
}

CHARACTER_SETS = [
    "ISO_IR 192",
    "ISO_IR 100",
    "ISO_IR 144",
    "ISO 2022 IR 87",
    "\\ISO 2022 IR 87",
    "ISO 2022 IR 149\\ISO 2022 IR 13",
    "GB18030",
    "ISO_IR 999",
    "utf-8",
    "",
]
SAMPLE_TEXT = {
    "PN": ["Müller^Hans", "SMITH*", "*", "?mith", "Dvořák^*", "=^", "^^^^^", "a\\b", "山田^太郎"],
    "DA": [
        "20260302",
        "20260302-",
        "-20260302",
        "20260301-20260303",
        "20260303-20260301",
        "2026-03-02",
        "20261345",
        "00000000",
        "2026030",
        "-",
        "*",
    ],
    "TM": ["080000", "0800-0900", "-", "2500", "08:00", "080000.123456", "0800-", "-0830", "??"],
    "UI": ["1.2.3", "1.2.3\\4.5.6", "*", "0." + "9" * 70, "x.y"],
    "DS": ["82", "abc", "1e400", "-", "NaN", "82\\83"],
    "CS": ["MR", "M", "SCHEDULED", "COMPLETED", "*", "M?", "mr", "MR\\CT", "IN PROGRESS"],
    "AE": ["MRI1", "MRI*", "*", "", " MRI1 ", "MRI1\\MRI2"],
}
WILDCARD_TEXT = st.text(alphabet="*?\\^=-. 0123456789ABCZazüř", max_size=24)


def _ascii(text: str) -> bytes:
    return text.encode("utf-8")


def _pad(value: bytes, keep_odd: bool) -> bytes:
    return value if keep_odd or len(value) % 2 == 0 else value + b" "


def text_values(vr: str) -> st.SearchStrategy[bytes]:
    """Mostly values a console could send for ``vr``, sometimes none a console should."""
    plausible = [st.sampled_from(SAMPLE_TEXT.get(vr, ["", "X", "*"])).map(_ascii), WILDCARD_TEXT]
    hostile = [
        st.text(max_size=40).map(_ascii),
        st.binary(max_size=48),
        st.integers(65, 3000).map(lambda n: b"A" * n),  # far past any VR's length
        st.just(b"\0" * 8),
    ]
    value = st.one_of(*plausible, *plausible, *hostile)
    as_bytes = value.map(lambda v: v if isinstance(v, bytes) else _ascii(v))
    return st.tuples(as_bytes, st.booleans()).map(lambda pair: _pad(*pair))


def wrong_vr_sometimes(vr: str) -> st.SearchStrategy[str]:
    """The dictionary VR nine times in ten, any VR otherwise."""
    return st.integers(0, 9).flatmap(lambda n: st.just(vr) if n else st.sampled_from(ALL_VRS))


def elements_of(
    keys: dict[int, str], depth: int, min_size: int = 0
) -> st.SearchStrategy[tuple[Element, ...]]:
    def one(tag: int) -> st.SearchStrategy[Element]:
        vr = keys.get(tag) or TOP_KEYS.get(tag) or ODD_TAGS.get(tag, "LO")
        if tag == 0x00080005:
            value: st.SearchStrategy[bytes | tuple[tuple[Element, ...], ...]] = st.one_of(
                st.sampled_from(CHARACTER_SETS).map(lambda s: _pad(_ascii(s), False)),
                text_values("CS"),
            )
        elif vr == "SQ" and depth < 3:
            sub_keys = STEP_KEYS if tag == 0x00400100 else CODE_KEYS
            value = st.one_of(
                st.lists(elements_of(sub_keys, depth + 1), max_size=3).map(tuple),
                st.lists(elements_of(sub_keys, depth + 1), min_size=1, max_size=1).map(tuple),
                text_values("LO"),  # bytes where items belong
            )
        else:
            value = text_values(vr)
        return st.builds(Element, st.just(tag), wrong_vr_sometimes(vr), value, st.booleans())

    known = st.sampled_from(sorted(keys)).flatmap(one)
    odd = st.one_of(
        st.sampled_from(sorted(ODD_TAGS)),
        st.integers(0x00080000, 0x7FDFFFFF).map(lambda t: t & ~0xFF),  # unknown, maybe private
    ).flatmap(one)
    element = st.one_of(known, known, known, odd)
    return st.tuples(st.lists(element, min_size=min_size, max_size=8), st.booleans()).map(
        lambda pair: tuple(pair[0]) if pair[1] else tuple(sorted(pair[0], key=lambda e: e.tag))
    )


def decoded(payload: bytes, implicit: bool) -> Dataset | None:
    """The identifier as pydicom reads it, if it does: what the server saw as keys."""
    try:
        dataset = read_dataset(DicomBytesIO(payload), implicit, True)
        for _element in dataset.iterall():
            pass
        return dataset
    except Exception:
        return None


def well_formed(identifier: Dataset) -> bool:
    """Every value of the answer decodes (pydicom raises on the first that does not)."""
    for element in identifier.iterall():
        str(element.value)
    return True


def test_fuzzed_identifiers_get_answers_and_the_server_keeps_serving(
    dicom_port: int, booked: list[str]
) -> None:
    peer = Peer(dicom_port)
    with watching_for_crashes() as crashes:

        @fuzz_settings(max_examples=100)
        # At least one element: an empty Identifier would go out as no data set at all, and
        # the server rightly waits for the data set the command announced.
        @given(elements=elements_of(TOP_KEYS, 0, min_size=1), implicit=st.booleans())
        def one_query(elements: tuple[Element, ...], implicit: bool) -> None:
            payload = encode_elements(elements, implicit=implicit)
            outcome = peer.find_raw(payload, implicit=implicit)
            assert not outcome.aborted, "the server aborted the association"
            *pending, final = outcome.statuses
            assert final not in HANDLER_CRASH_STATUSES, crashes.take()
            assert final == 0x0000 or final in FIND_FAILURES, hex(final)
            assert all(status in (0xFF00, 0xFF01) for status in pending), outcome.statuses
            requested = decoded(payload, implicit)
            for identifier in outcome.identifiers[:-1]:
                assert identifier is not None and well_formed(identifier)
                if requested is not None:
                    keys = {e.tag for e in requested} | {0x00080005}
                    assert {e.tag for e in identifier} <= keys
            assert crashes.take() == []

        one_query()
    assert_still_serving(dicom_port, expected_items=len(booked))
