"""MPPS against a pynetdicom console: a whole examination, and every status code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind

from mri_pipeline.dicom.console_messages import (
    PerformedSeries,
    mpps_final,
    mpps_in_progress,
    worklist_query,
)
from mri_pipeline.dicom.mpps import MppsHandlers
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import Runtime
from tests.conftest import fixed_clock, free_port
from tests.integration.api_tools import api_client
from tests.integration.dbtools import restart_postgresql
from tests.integration.test_mwl_scp import book


@pytest.fixture
def server(runtime: Runtime) -> Iterator[int]:
    config = DicomServerConfig("LSP_RIS", "127.0.0.1", runtime.settings.dicom_port, False, 16)
    started = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
    try:
        yield runtime.settings.dicom_port
    finally:
        started.shutdown()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    with api_client(runtime) as client:
        yield client


class Console:
    """A scanner console as an SCU: worklist query and MPPS, one association per call."""

    def __init__(self, port: int, ae_title: str = "MRI1") -> None:
        self.port = port
        self.ae = AE(ae_title=ae_title)
        self.ae.add_requested_context(ModalityWorklistInformationFind)
        self.ae.add_requested_context(ModalityPerformedProcedureStep)

    def _assoc(self) -> Any:
        assoc = self.ae.associate("127.0.0.1", self.port, ae_title="LSP_RIS")
        assert assoc.is_established
        return assoc

    def worklist(self, *, station: str = "", accession: str = "") -> list[Dataset]:
        query = worklist_query(station=station, accession=accession)
        assoc = self._assoc()
        try:
            return [
                identifier
                for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
                if status and status.Status in (0xFF00, 0xFF01)
            ]
        finally:
            assoc.release()

    def n_create(self, uid: str, dataset: Dataset) -> Dataset:
        assoc = self._assoc()
        try:
            status, _ = assoc.send_n_create(dataset, ModalityPerformedProcedureStep, uid)
            return status
        finally:
            assoc.release()

    def n_set(self, uid: str, modification: Dataset) -> Dataset:
        assoc = self._assoc()
        try:
            status, _ = assoc.send_n_set(modification, ModalityPerformedProcedureStep, uid)
            return status
        finally:
            assoc.release()


STARTED = datetime(2026, 3, 2, 8, 10)
ENDED = datetime(2026, 3, 2, 8, 35)
PROTOCOL_NAMES = ["SAG T1 TSE", "SAG T2 TSE", "AX T2 TSE"]


def in_progress(*items: Dataset, station: str = "MRI1") -> Dataset:
    return mpps_in_progress(items, station=station, started=STARTED)


def final(status: str = "COMPLETED", *, series: int = 2, reason: str | None = None) -> Dataset:
    made = [PerformedSeries.made(PROTOCOL_NAMES[n % 3], images=3) for n in range(series)]
    return mpps_final(made, ended=ENDED, status=status, reason=reason)


def item_for(console: Console, accession: str) -> Dataset:
    [item] = console.worklist(accession=accession)
    return item


def statuses(api: TestClient, accession: str) -> list[str]:
    return [s["status"] for s in api.get(f"/api/procedures/{accession}").json()["steps"]]


def test_a_whole_examination_moves_the_worklist_and_the_timeline(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    accession = book(runtime, "PID1", "Müller^Hans", "MRI1")
    console = Console(server)
    item = item_for(console, accession)
    assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"
    uid = generate_uid()
    assert console.n_create(uid, in_progress(item)).Status == 0x0000
    assert statuses(api, accession) == ["STARTED"]
    assert (
        item_for(console, accession).ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus
        == "STARTED"
    )
    assert console.n_set(uid, final()).Status == 0x0000
    assert statuses(api, accession) == ["COMPLETED"]
    assert console.worklist(station="MRI1", accession=accession) == []
    timeline = api.get(f"/api/procedures/{accession}").json()
    kinds = [(e["kind"], e["from_status"], e["to_status"], e["actor"]) for e in timeline["events"]]
    assert ("MPPS_STARTED", "SCHEDULED", "STARTED", "MRI1") in kinds
    assert ("MPPS_COMPLETED", "STARTED", "COMPLETED", "MRI1") in kinds
    [performed] = timeline["performed_steps"]
    assert performed["status"] == "COMPLETED"
    assert performed["messages"] == 2


def test_n_create_with_a_known_uid_gets_0111(runtime: Runtime, server: int) -> None:
    console = Console(server)
    item = item_for(console, book(runtime, "PID1", "A^B", "MRI1"))
    uid = generate_uid()
    assert console.n_create(uid, in_progress(item)).Status == 0x0000
    assert console.n_create(uid, in_progress(item)).Status == 0x0111


def test_n_create_missing_required_attributes_gets_0120_with_the_list(
    runtime: Runtime, server: int
) -> None:
    console = Console(server)
    dataset = in_progress(item_for(console, book(runtime, "PID1", "A^B", "MRI1")))
    del dataset.PerformedStationAETitle
    del dataset.PatientID
    status = console.n_create(generate_uid(), dataset)
    assert status.Status == 0x0120
    # N-CREATE responses have no Attribute Identifier List in pynetdicom: the comment names them.
    assert "(0010,0020)" in status.ErrorComment
    assert "(0040,0241)" in status.ErrorComment


def test_n_create_with_an_empty_type1_value_gets_0121(runtime: Runtime, server: int) -> None:
    console = Console(server)
    dataset = in_progress(item_for(console, book(runtime, "PID1", "A^B", "MRI1")))
    dataset.PerformedProcedureStepID = ""
    assert console.n_create(generate_uid(), dataset).Status == 0x0121


def test_n_create_with_status_other_than_in_progress_gets_0106(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    dataset = in_progress(item_for(console, accession))
    dataset.PerformedProcedureStepStatus = "COMPLETED"
    assert console.n_create(generate_uid(), dataset).Status == 0x0106
    assert statuses(api, accession) == ["SCHEDULED"]


def test_n_set_of_an_unknown_instance_gets_0112(server: int) -> None:
    assert Console(server).n_set(generate_uid(), final()).Status == 0x0112


def test_n_set_after_completed_is_refused_with_a710(runtime: Runtime, server: int) -> None:
    console = Console(server)
    item = item_for(console, book(runtime, "PID1", "A^B", "MRI1"))
    uid = generate_uid()
    console.n_create(uid, in_progress(item))
    assert console.n_set(uid, final()).Status == 0x0000
    refused = console.n_set(uid, final())
    assert refused.Status == 0x0110
    assert refused.ErrorID == 0xA710


def test_completed_without_performed_series_gets_0121_and_changes_nothing(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    uid = generate_uid()
    console.n_create(uid, in_progress(item_for(console, accession)))
    assert console.n_set(uid, final(series=0)).Status == 0x0121
    assert statuses(api, accession) == ["STARTED"]
    assert console.n_set(uid, final()).Status == 0x0000


def test_a_bad_status_value_in_n_set_gets_0106(runtime: Runtime, server: int) -> None:
    console = Console(server)
    uid = generate_uid()
    console.n_create(uid, in_progress(item_for(console, book(runtime, "PID1", "A^B", "MRI1"))))
    assert console.n_set(uid, final("DONE")).Status == 0x0106


def test_attributes_not_created_are_accepted_with_a_warning_unless_strict(
    runtime: Runtime, server: int, caplog: pytest.LogCaptureFixture
) -> None:
    console = Console(server)
    uid = generate_uid()
    console.n_create(uid, in_progress(item_for(console, book(runtime, "PID1", "A^B", "MRI1"))))
    # (0040,0281) was not created at N-CREATE: many consoles still send it.
    assert console.n_set(uid, final("DISCONTINUED", reason="110501")).Status == 0x0000
    assert "ignored" in caplog.text

    strict = MppsHandlers(runtime.sessions, fixed_clock, strict=True)
    strict_port = free_port()  # not server + 1: that port may belong to anyone
    config = DicomServerConfig("LSP_RIS", "127.0.0.1", strict_port, False, 4)
    strict_server = start_dicom_server(config, runtime.nodes, runtime.finder, strict)
    try:
        strict_console = Console(strict_port)
        uid2 = generate_uid()
        item = item_for(strict_console, book(runtime, "PID2", "C^D", "MRI1"))
        strict_console.n_create(uid2, in_progress(item))
        refused = strict_console.n_set(uid2, final("DISCONTINUED", reason="110501"))
        assert refused.Status == 0x0106
        listed = refused.AttributeIdentifierList
        listed = listed if isinstance(listed, MultiValue | list) else [listed]
        assert 0x00400281 in {int(tag) for tag in listed}
    finally:
        strict_server.shutdown()


def test_wrong_worklist_entry_returns_the_step_to_scheduled_and_flags_images(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    uid = generate_uid()
    dataset = in_progress(item_for(console, accession))
    dataset.PerformedProcedureStepDiscontinuationReasonCodeSequence = Sequence()
    console.n_create(uid, dataset)
    assert console.n_set(uid, final("DISCONTINUED", reason="110514")).Status == 0x0000
    timeline = api.get(f"/api/procedures/{accession}").json()
    assert [s["status"] for s in timeline["steps"]] == ["SCHEDULED"]
    assert "incorrect worklist entry" in timeline["performed_steps"][0]["images_flagged"]
    assert len(console.worklist(accession=accession)) == 1


def test_rescheduling_reasons_discontinue_and_offer_a_new_step(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    uid = generate_uid()
    dataset = in_progress(item_for(console, accession))
    dataset.PerformedProcedureStepDiscontinuationReasonCodeSequence = Sequence()
    console.n_create(uid, dataset)
    assert console.n_set(uid, final("DISCONTINUED", reason="110528")).Status == 0x0000
    assert statuses(api, accession) == ["DISCONTINUED", "SCHEDULED"]
    [offered] = console.worklist(accession=accession)
    assert offered.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "SCHEDULED"


def test_an_mpps_matching_no_step_waits_in_the_reconciliation_queue(
    server: int, api: TestClient
) -> None:
    console = Console(server)
    uid = generate_uid()
    assert console.n_create(uid, in_progress()).Status == 0x0000
    queue = api.get("/api/reconciliation").json()["performed_steps"]
    assert [q["sop_instance_uid"] for q in queue] == [uid]
    assert console.n_set(uid, final()).Status == 0x0000
    assert api.get("/api/reconciliation").json()["performed_steps"][0]["status"] == "COMPLETED"


def test_an_mpps_for_a_cancelled_step_is_kept_and_queued_for_a_person(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    item = item_for(console, accession)
    assert api.post(f"/api/procedures/{accession}/cancel", json={"reason": "GP"}).status_code == 200
    uid = generate_uid()
    assert console.n_create(uid, in_progress(item)).Status == 0x0000
    queue = api.get("/api/reconciliation").json()["performed_steps"]
    assert [q["sop_instance_uid"] for q in queue] == [uid]
    assert statuses(api, accession) == ["CANCELED"]
    kinds = [e["kind"] for e in api.get(f"/api/procedures/{accession}").json()["events"]]
    assert kinds == ["ORDERED", "CANCEL", "MPPS_ON_CLOSED_STEP"]


def test_one_mpps_for_two_grouped_steps_moves_both(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    first = book(runtime, "PID1", "A^B", "MRI1")
    second = book(runtime, "PID1", "A^B", "MRI1", indication="inflammatory-back-pain")
    uid = generate_uid()
    dataset = in_progress(item_for(console, first), item_for(console, second))
    assert console.n_create(uid, dataset).Status == 0x0000
    assert statuses(api, first) == statuses(api, second) == ["STARTED"]
    console.n_set(uid, final())
    assert statuses(api, first) == statuses(api, second) == ["COMPLETED"]


def test_a_step_completes_only_when_its_last_mpps_is_done(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    item = item_for(console, accession)
    first, second = generate_uid(), generate_uid()
    console.n_create(first, in_progress(item))
    console.n_create(second, in_progress(item))
    console.n_set(first, final())
    assert statuses(api, accession) == ["STARTED"]
    console.n_set(second, final())
    assert statuses(api, accession) == ["COMPLETED"]


def test_radiographer_check_in_and_safety_make_the_step_ready(
    runtime: Runtime, api: TestClient
) -> None:
    accession = book(runtime, "PID1", "A^B", "MRI1", indication="infection")
    assert api.post(f"/api/procedures/{accession}/check-in", json={}).json()["status"] == "ARRIVED"
    partial = {
        "implants_and_pacemaker_cleared": True,
        "claustrophobia_discussed": True,
        "pregnancy_excluded_or_not_applicable": True,
    }
    answer = api.post(f"/api/procedures/{accession}/safety", json={"checklist": partial}).json()
    assert answer["status"] == "ARRIVED"
    assert any("eGFR" in m for m in answer["missing"])
    complete = {**partial, "egfr_ml_min": 75, "contrast_allergy_checked": True}
    answer = api.post(f"/api/procedures/{accession}/safety", json={"checklist": complete}).json()
    assert (answer["status"], answer["missing"]) == ("READY", [])


def test_an_illegal_transition_answers_409_with_the_current_state(
    runtime: Runtime, api: TestClient
) -> None:
    accession = book(runtime, "PID1", "A^B", "MRI1")
    assert api.post(f"/api/procedures/{accession}/cancel", json={"reason": "GP"}).status_code == 200
    refused = api.post(f"/api/procedures/{accession}/check-in", json={})
    assert refused.status_code == 409
    assert refused.json()["current_status"] == "CANCELED"
    assert api.post("/api/procedures/NOPE/check-in", json={}).status_code == 404


def test_no_show_and_reschedule(runtime: Runtime, api: TestClient) -> None:
    accession = book(runtime, "PID1", "A^B", "MRI1")
    assert api.post(f"/api/procedures/{accession}/no-show", json={}).json()["status"] == "DEPARTED"
    moved = api.post(
        f"/api/procedures/{accession}/reschedule",
        json={"scheduled_date": "2026-03-05", "scheduled_time": "10:00", "station": "MRI2"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "SCHEDULED"
    day = api.get("/api/worklist", params={"date": "2026-03-05", "station": "MRI2"}).json()
    assert [d["accession_number"] for d in day] == [accession]


def test_racing_n_sets_leave_one_consistent_result(
    runtime: Runtime, server: int, api: TestClient
) -> None:
    # PostgreSQL serialises them on the row lock; SQLite on its write lock.
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    uid = generate_uid()
    console.n_create(uid, in_progress(item_for(console, accession)))
    results: list[int] = []

    def send(status: str) -> None:
        results.append(int(Console(server).n_set(uid, final(status, reason="110501")).Status))

    threads = [threading.Thread(target=send, args=(s,)) for s in ("COMPLETED", "DISCONTINUED")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0x0000, 0x0110]
    timeline = api.get(f"/api/procedures/{accession}").json()
    performed = timeline["performed_steps"][0]["status"]
    assert performed in ("COMPLETED", "DISCONTINUED")
    assert statuses(api, accession) == [performed]
    assert timeline["performed_steps"][0]["messages"] == 2  # N-CREATE and the one N-SET


def test_a_database_restart_between_n_create_and_n_set_loses_nothing(
    runtime: Runtime, server: int, api: TestClient, database_url: str
) -> None:
    console = Console(server)
    accession = book(runtime, "PID1", "A^B", "MRI1")
    uid = generate_uid()
    console.n_create(uid, in_progress(item_for(console, accession)))
    if database_url.startswith("postgresql"):
        restart_postgresql()
    else:
        runtime.engine.dispose()
    assert console.n_set(uid, final()).Status == 0x0000
    assert statuses(api, accession) == ["COMPLETED"]
