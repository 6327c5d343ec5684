"""The scene of the fault tests: their settings, the pipeline as real processes, and one
audit of the outcome (the consoles are in ``console.py``).

What every fault test asserts afterwards is the same (issue 8): every examination the
consoles had acknowledged is present once (each image once in Orthanc and once in our
rows, one study), QC'd, routed once (one assignment), and its events are complete with
none doubled. ``audit_examinations`` checks that and counts it (``step_events`` the
MPPS part alone).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from mri_pipeline.config import Settings
from mri_pipeline.db.models import (
    Assignment,
    PerformedStep,
    PerformedStepLink,
    PerformedStepMessage,
    ReceivedInstance,
    ReceivedStudy,
    RequestedProcedure,
    ScheduledStep,
    StepEvent,
)
from mri_pipeline.dicom.scanner import Examination
from mri_pipeline.localports import free_port
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.qc import ROUTABLE
from tests.conftest import ROOT, make_settings
from tests.integration.worker_processes import Worker, answers_health, spawn, stop, wait_for

ROSTER = Path(__file__).with_name("radiologists.yaml")
# What `up` takes from the test's settings besides what every worker takes.
UP_SETTINGS = (
    "dicom_host",
    "dicom_port",
    "api_port",
    "orthanc_dicom_port",
    "orthanc_config_file",
    "routing_poll_interval",
)


def fault_settings(database_url: str, var_dir: Path, **overrides: Any) -> Settings:
    """The tests' settings with radiologists on at every hour, free ports for `up` (API,
    Orthanc) and short polling intervals."""
    values: dict[str, Any] = {
        "radiologists_file": ROSTER,
        "orthanc_config_file": ROOT / "orthanc.json",
        "api_port": free_port(),
        "orthanc_http_port": free_port(),
        "orthanc_dicom_port": free_port(),
        "ingest_poll_interval": 0.05,
        "routing_poll_interval": 0.1,
    }
    return make_settings(database_url, var_dir, **(values | overrides))


# -- the pipeline's processes ---------------------------------------------------------------


def serving(servers: Sequence[tuple[Worker, int]]) -> list[Worker]:
    """The workers, once each answers on its API port; all stopped if one does not.
    (Started together: an interpreter importing the application takes seconds.)"""
    workers = [worker for worker, _ in servers]
    urls = [f"http://127.0.0.1:{port}" for _, port in servers]
    try:
        wait_for(lambda: all(map(answers_health, urls)), "starting", workers, timeout=90)
    except BaseException:
        stop(workers)
        raise
    return workers


def up(settings: Settings, name: str) -> tuple[Worker, int]:
    """`mri-pipeline up` on the test's settings (its own Orthanc under ``var_dir``),
    started, and its API port."""
    return spawn(name, ["up"], settings, also=UP_SETTINGS), settings.api_port


def names_logged(workers: Sequence[Worker], names: Iterable[str]) -> list[str]:
    """Which of these patient names the workers wrote to their logs (none may be)."""
    logs = "\n".join(worker.output() for worker in workers)
    return [name for name in names if name in logs]


def kill(worker: Worker) -> None:
    """SIGKILL: no handler runs, no transaction is finished, nothing is flushed."""
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)


def orthanc_pids(settings: Settings) -> list[int]:
    """The live Orthanc processes started with ``var_dir``'s configuration folder."""
    folder = str(settings.var_dir / "orthanc" / "config").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if folder in arguments:
            found.append(int(entry.name))
    return found


def wait_for_orthanc_to_stop(settings: Settings, timeout: float = 30) -> None:
    """Until the Orthanc a killed `up` left behind has shut down (its parent-death
    signal is SIGTERM), as a supervisor waits for a unit's last process before starting
    it again."""
    deadline = time.monotonic() + timeout
    while orthanc_pids(settings):
        assert time.monotonic() < deadline, "the killed pipeline's Orthanc did not stop"
        time.sleep(0.05)


# -- the audit ------------------------------------------------------------------------------


def count(session: Session, model: type[Any], *where: ColumnElement[bool]) -> int:
    """Rows of ``model`` (those meeting ``where``)."""
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def rows(runtime: Runtime, model: type[Any], *where: ColumnElement[bool]) -> int:
    """``count`` in a session of its own, for waiting on the pipeline."""
    with runtime.sessions() as session:
        return count(session, model, *where)


def step_events(session: Session, accession: str, mpps_uid: str, status: str) -> list[StepEvent]:
    """Check the examination's step and its MPPS: the step in ``status``, one MPPS in
    that status linked to it alone, with one N-CREATE and one N-SET recorded. Returns
    the events of the step (its study's included) and of the MPPS."""
    step = session.execute(
        select(ScheduledStep).where(ScheduledStep.accession_number == accession)
    ).scalar_one()
    performed = session.execute(
        select(PerformedStep).where(PerformedStep.sop_instance_uid == mpps_uid)
    ).scalar_one()
    linked = session.execute(
        select(PerformedStepLink.performed_step_pk, PerformedStepLink.scheduled_step_pk).where(
            or_(
                PerformedStepLink.performed_step_pk == performed.id,
                PerformedStepLink.scheduled_step_pk == step.id,
            )
        )
    ).all()
    assert [tuple(link) for link in linked] == [(performed.id, step.id)], accession
    messages = session.execute(
        select(PerformedStepMessage.operation)
        .where(PerformedStepMessage.performed_step_pk == performed.id)
        .order_by(PerformedStepMessage.id)
    ).scalars()
    assert list(messages) == ["N-CREATE", "N-SET"], accession
    assert (step.status, performed.status) == (status, status), accession
    return list(
        session.execute(
            select(StepEvent)
            .where(
                or_(
                    StepEvent.scheduled_step_pk == step.id,
                    StepEvent.performed_step_pk == performed.id,
                )
            )
            .order_by(StepEvent.id)
        ).scalars()
    )


def performed_kinds(status: str) -> Counter[str]:
    """The events of an order performed to ``status``, one of each."""
    return Counter(["ORDERED", "MPPS_STARTED", f"PERFORMED_{status}", f"MPPS_{status}"])


@dataclass
class Tally:
    """What an audit counted (and checked)."""

    examinations: int = 0
    instances: int = 0
    assignments: int = 0
    events: int = 0


def audit_examinations(
    runtime: Runtime, orthanc: httpx.Client, examinations: Sequence[Examination]
) -> Tally:
    """Every examination present once (each image once in Orthanc and in our rows, one
    study, matched, complete by its MPPS), QC'd and passed, routed once to a radiologist,
    and its events complete with none doubled; nothing else received or assigned."""
    tally = Tally()
    with runtime.sessions() as session:
        for exam in examinations:
            accession = exam.accession_number
            sent = sorted(uid for series in exam.series for uid in series.sop_instance_uids)
            ordered, study = session.execute(
                select(RequestedProcedure.study_instance_uid, ReceivedStudy)
                .join(ReceivedStudy, ReceivedStudy.procedure_pk == RequestedProcedure.id)
                .where(RequestedProcedure.accession_number == accession)
            ).one()
            state = (study.study_instance_uid, study.reconciliation, study.state)
            assert state == (ordered, "matched", "ready_for_reading"), state
            assert study.completion_basis == "mpps"
            recorded = session.execute(
                select(ReceivedInstance.sop_instance_uid).where(
                    ReceivedInstance.study_pk == study.id
                )
            ).scalars()
            assert sorted(recorded) == sent and study.instance_count == len(sent), accession
            answer = orthanc.get(f"/studies/{study.orthanc_id}/instances")
            stored = [i["MainDicomTags"]["SOPInstanceUID"] for i in answer.json()]
            assert sorted(stored) == sent, accession
            assert study.qc_verdict in ROUTABLE, study.qc_summary
            assignment = session.execute(
                select(Assignment).where(Assignment.study_pk == study.id)
            ).scalar_one()
            assert assignment.radiologist_key is not None and study.routed_at is not None

            events = step_events(session, accession, exam.mpps_uid, "COMPLETED")
            series_checks = Counter(
                (e.details["series"], e.details["images"])
                for e in events
                if e.kind.startswith("QC_SERIES_")
            )
            kinds = Counter(e.kind for e in events if not e.kind.startswith("QC_SERIES_"))
            expected = performed_kinds("COMPLETED") + Counter(
                ["STUDY_RECEIVING", "STUDY_READY_FOR_READING", f"QC_{study.qc_verdict}", "ROUTED"]
            )
            assert kinds == expected, (accession, kinds)
            # Each series checked once at each count it was seen with (a series QC saw
            # half-stored during an outage is checked again), and once in full.
            assert set(series_checks.values()) == {1}, series_checks
            full = {(s.protocol_name, len(s.sop_instance_uids)) for s in exam.series}
            assert full <= set(series_checks), (full, series_checks)
            tally.examinations += 1
            tally.instances += len(sent)
            tally.assignments += 1
            tally.events += len(events)
        total = tally.instances
        assert count(session, ReceivedStudy) == count(session, Assignment) == len(examinations)
        assert count(session, ReceivedInstance) == total
    statistics = orthanc.get("/statistics").json()
    assert statistics["CountInstances"] == total
    return tally
