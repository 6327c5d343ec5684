"""What the fuzzing found, each pinned by the smallest input that showed it."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from mri_pipeline.db.models import PerformedStep
from mri_pipeline.dicom.console_messages import PerformedSeries, mpps_final, mpps_in_progress
from mri_pipeline.runtime import Runtime
from tests.hostile.dicom_wire import (
    Peer,
    assert_still_serving,
    encode_dataset,
    watching_for_crashes,
)
from tests.integration.api_tools import api_client

pytestmark = [pytest.mark.db, pytest.mark.filterwarnings("ignore::UserWarning")]

STARTED = datetime(2026, 3, 2, 8, 10)


def test_a_query_keyed_only_on_timezone_offset_gets_a900_not_an_empty_answer(
    dicom_port: int,
) -> None:
    # Timezone Offset From UTC is never matched and returned only when stored, so every
    # answer would have been empty, which pynetdicom cannot send (it answered 0xC312).
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.TimezoneOffsetFromUTC = ""
    with watching_for_crashes() as crashes:
        answer = Peer(dicom_port).find(query)
        assert answer.statuses == [0xA900]
        assert crashes.take() == []


@pytest.mark.parametrize(
    ("keyword", "raw", "implicit"),
    [
        ("ProcedureCodeSequence", b"\0\0", True),  # an item that is not an item
        ("PatientName", b"Smith^John\\ ", True),  # a PN with an empty second value
        ("PixelData", b"\0\0\0\0", False),  # sent as UN: its VR cannot be resolved
    ],
    ids=["broken sequence", "empty second name", "pixel data"],
)
def test_an_n_create_with_undecodable_values_gets_0106_and_nothing_is_stored(
    module_runtime: Runtime, dicom_port: int, keyword: str, raw: bytes, implicit: bool
) -> None:
    # Before: pydicom raised deep in the workflow, pynetdicom answered 0110 with a traceback.
    dataset = mpps_in_progress([], station="MRI1", started=STARTED)
    tag = tag_for_keyword(keyword)
    assert tag is not None
    dataset[tag] = DataElement(tag, "OB", raw)  # OB: the bytes go out as they are
    uid = str(generate_uid())
    with watching_for_crashes() as crashes:
        outcome = Peer(dicom_port, "MRI1").n_create(
            uid, encode_dataset(dataset, implicit=implicit), implicit=implicit
        )
        assert outcome.statuses == [0x0106]
        assert outcome.last_status is not None
        assert "decoded" in outcome.last_status.ErrorComment
        assert crashes.take() == []
    with module_runtime.sessions() as session:
        stored = session.execute(
            select(PerformedStep.id).where(PerformedStep.sop_instance_uid == uid)
        ).first()
    assert stored is None


def test_an_n_set_with_an_undecodable_series_gets_0106_and_the_step_stays_in_progress(
    module_runtime: Runtime, dicom_port: int
) -> None:
    peer = Peer(dicom_port, "MRI1")
    uid = str(generate_uid())
    created = mpps_in_progress([], station="MRI1", started=STARTED)
    assert peer.n_create(uid, encode_dataset(created, implicit=True), implicit=True).statuses == [
        0x0000
    ]
    final = mpps_final([PerformedSeries.made("SAG T2", 1)], ended=datetime(2026, 3, 2, 8, 30))
    final[0x00400340] = DataElement(0x00400340, "OB", b"\xfe\xff\x00\xe0\xff")
    with watching_for_crashes() as crashes:
        outcome = peer.n_set(uid, encode_dataset(final, implicit=True), implicit=True)
        assert outcome.statuses == [0x0106]
        assert crashes.take() == []
    with module_runtime.sessions() as session:
        status = session.execute(
            select(PerformedStep.status).where(PerformedStep.sop_instance_uid == uid)
        ).scalar_one()
    assert status == "IN PROGRESS"
    assert_still_serving(dicom_port)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"patient": "\ud800"}).encode(), "application/json"),  # lone surrogate
        (b"\x80", "text/plain"),  # not JSON, not UTF-8: FastAPI echoes the bytes
        (b'{"patient": {"weight_kg": Infinity}}', "application/json"),  # Python reads it
        (b'{"patient": {"weight_kg": NaN}}', "application/json"),
    ],
    ids=["lone surrogate", "not UTF-8", "Infinity", "NaN"],
)
@pytest.mark.parametrize(
    "path",
    [
        "/api/orders",
        "/api/procedures/X/reschedule",
        "/api/procedures/X/cancel",
        "/api/procedures/X/safety",
    ],
)
def test_a_body_the_422_cannot_echo_still_gets_a_422_on_every_route(
    module_runtime: Runtime, body: bytes, content_type: str, path: str
) -> None:
    # Before: FastAPI's 422 handler failed to encode the input it echoes: a 500.
    with api_client(module_runtime) as client:
        response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
