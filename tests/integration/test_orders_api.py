"""Order intake over HTTP, on every database backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset

from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.runtime import Runtime
from tests.integration.api_tools import api_client


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with api_client(runtime) as test_client:
        yield test_client


def referral(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {
            "patient_id": "PID0001",
            "name": "Müller^Hans",
            "birth_date": "1970-01-01",
            "sex": "M",
            "weight_kg": 82,
            "medical_alerts": ["Pacemaker: none"],
            "allergies": ["Gadolinium: none known"],
        },
        "referring_physician": "Referrer^Anna",
        "indication": "radiculopathy",
    }
    body.update(changes)
    return body


def stored_item(runtime: Runtime, accession: str) -> Dataset:
    with runtime.sessions() as session:
        step = session.query(ScheduledStep).filter_by(accession_number=accession).one()
        return Dataset.from_json(step.dataset_json)


def test_an_order_becomes_a_scheduled_worklist_item_with_its_protocol(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.post("/api/orders", json=referral())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["protocol_code"] == "LSP-RAD"
    assert created["priority"] == "ROUTINE"
    assert created["station_ae_title"] in ("MRI1", "MRI2")
    assert created["study_instance_uid"].startswith("2.25.")

    item = stored_item(runtime, created["accession_number"])
    step = item.ScheduledProcedureStepSequence[0]
    assert str(item.PatientName) == "Müller^Hans"
    assert item.RequestedProcedureCodeSequence[0].CodeValue == "30679-5"
    assert item.RequestedProcedureCodeSequence[0].CodingSchemeDesignator == "LN"
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "LSP-RAD"
    assert step.ScheduledProtocolCodeSequence[0].CodingSchemeDesignator == "99LSPINE"
    assert step.ScheduledProcedureStepID == created["sps_id"]
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"
    assert step.Modality == "MR"
    assert item.RequestedProcedurePriority == "ROUTINE"
    assert (
        list(item.MedicalAlerts) == ["Pacemaker: none"] or item.MedicalAlerts == "Pacemaker: none"
    )
    assert step.RequestedContrastAgent == ""


def test_gadolinium_protocol_carries_the_requested_contrast_agent(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.post("/api/orders", json=referral(indication="infection"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["protocol_code"] == "LSP-INF"
    assert created["priority"] == "HIGH"
    item = stored_item(runtime, created["accession_number"])
    assert item.ScheduledProcedureStepSequence[0].RequestedContrastAgent
    assert item.RequestedProcedureCodeSequence[0].CodeValue == "24967-2"


def test_the_highest_priority_red_flag_wins(client: TestClient) -> None:
    response = client.post(
        "/api/orders", json=referral(indication="radiculopathy", red_flags=["suspected-ces"])
    )
    assert response.status_code == 201, response.text
    assert response.json()["protocol_code"] == "LSP-CES"
    assert response.json()["priority"] == "STAT"


def test_screening_without_red_flags_is_flagged_not_indicated(client: TestClient) -> None:
    response = client.post("/api/orders", json=referral(indication="screening"))
    assert response.status_code == 201
    assert response.json()["priority"] == "LOW"
    assert "not appropriate" in response.json()["not_indicated"]


def test_accession_numbers_and_study_uids_are_unique(client: TestClient) -> None:
    created = [
        client.post(
            "/api/orders",
            json=referral(patient={"patient_id": f"P{n}", "name": f"Patient^{n}"}),
        ).json()
        for n in range(6)
    ]
    assert len({c["accession_number"] for c in created}) == 6
    assert len({c["study_instance_uid"] for c in created}) == 6
    assert len({c["sps_id"] for c in created}) == 6


def test_next_free_slots_do_not_overlap_on_a_station(client: TestClient) -> None:
    starts = []
    for n in range(4):
        body = referral(patient={"patient_id": f"S{n}", "name": f"Slot^{n}"}, station="MRI1")
        response = client.post("/api/orders", json=body)
        assert response.status_code == 201, response.text
        starts.append(response.json()["scheduled_start"])
    assert starts == sorted(starts)
    assert len(set(starts)) == 4
    # The fixed clock is 08:00 GMT; LSP-RAD books 30-minute slots.
    assert starts[0].startswith("2026-03-02T08:00")
    assert starts[1].startswith("2026-03-02T08:30")


def test_an_explicit_double_booking_is_refused(client: TestClient) -> None:
    first = referral(station="MRI1", scheduled_date="2026-03-03", scheduled_time="09:00")
    assert client.post("/api/orders", json=first).status_code == 201
    second = referral(
        patient={"patient_id": "P2", "name": "Other^Person"},
        station="MRI1",
        scheduled_date="2026-03-03",
        scheduled_time="09:15",
    )
    response = client.post("/api/orders", json=second)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "scheduled_time"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (referral(indication="back-ache"), "indication", "back-ache"),
        (referral(red_flags=["dragons"]), "red_flags", "dragons"),
        (referral(station="CT1"), "station", "CT1"),
        (referral(scheduled_date="2026-02-30"), "scheduled_date", "date"),
        (referral(scheduled_date="2020-01-01"), "scheduled_date", "past"),
    ],
)
def test_bad_orders_get_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    response = client.post("/api/orders", json=body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(d["loc"][-1] == field or field in d["loc"] for d in details), details
    assert any(words.lower() in d["msg"].lower() for d in details), details


def test_missing_patient_id_and_overlong_name_get_422(client: TestClient) -> None:
    body = referral()
    body["patient"] = {"name": "A" * 70}
    response = client.post("/api/orders", json=body)
    assert response.status_code == 422
    locs = {tuple(d["loc"]) for d in response.json()["detail"]}
    assert ("body", "patient", "patient_id") in locs
    assert ("body", "patient", "name") in locs
    messages = " ".join(d["msg"] for d in response.json()["detail"])
    assert "PN allows 64" in messages


def test_same_patient_id_with_another_name_is_refused(client: TestClient) -> None:
    assert client.post("/api/orders", json=referral()).status_code == 201
    other = referral()
    other["patient"] = {"patient_id": "PID0001", "name": "Someone^Else"}
    response = client.post("/api/orders", json=other)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "patient", "patient_id"]


def test_worklist_lists_the_day_filtered_by_station_and_status(client: TestClient) -> None:
    for n, station in enumerate(["MRI1", "MRI2", "MRI1"]):
        body = referral(patient={"patient_id": f"W{n}", "name": f"List^{n}"}, station=station)
        assert client.post("/api/orders", json=body).status_code == 201
    everything = client.get("/api/worklist", params={"date": "2026-03-02"}).json()
    assert len(everything) == 3
    mri1 = client.get("/api/worklist", params={"date": "2026-03-02", "station": "MRI1"}).json()
    assert [e["station_ae_title"] for e in mri1] == ["MRI1", "MRI1"]
    assert client.get("/api/worklist", params={"status": "COMPLETED"}).json() == []
    assert client.get("/api/worklist", params={"status": "BOGUS"}).status_code == 422
    assert client.get("/api/worklist", params={"station": "NOPE"}).status_code == 422
    assert client.get("/api/worklist", params={"date": "yesterday"}).status_code == 422
