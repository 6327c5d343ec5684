"""The API killed while routing: SIGKILL of ``up`` (API and routing desk) and of an ``api
serve`` worker in the middle of a routing pass, while radiologists claim studies through
both. Restarted, every study is assigned exactly once, and no routing or claim event is
doubled or lost.

Studies become ready for reading in batches, as QC clears them, and the radiologists
take the first study waiting in their list, over whichever API worker answers. The kill
comes while the routing desk's transaction is open with studies in it; PostgreSQL shows
that (``pg_stat_activity``), so this test runs on PostgreSQL only.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from mri_pipeline.config import Settings
from mri_pipeline.db.models import Assignment, ReceivedStudy, StepEvent
from mri_pipeline.domain.access import Role
from mri_pipeline.localports import free_port
from mri_pipeline.runtime import Runtime, build_runtime
from tests.conftest import POSTGRES_URL, fixed_clock, postgres_schema
from tests.faults.scene import (
    count,
    fault_settings,
    kill,
    names_logged,
    rows,
    serving,
    up,
    wait_for_orthanc_to_stop,
)
from tests.integration.api_tools import token_for
from tests.integration.orthanc_tools import NEEDS_ORTHANC
from tests.integration.test_routing_assignment import claimed_by, ready_study
from tests.integration.worker_processes import Worker, spawn, stop, wait_for

pytestmark = [
    *NEEDS_ORTHANC,  # `up` runs its Orthanc
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="the kill is timed by pg_stat_activity: set MRI_PIPELINE_TEST_DATABASE_URL",
    ),
]

BATCH = 15  # studies QC clears at once
MOST = 300  # studies made, at most, waiting for the moment to kill
READERS = ("rad.night", "rad.day")
# A routing pass with studies in it: the prior-report lookup of each, or the assignments.
IN_ROUTING = text(
    "SELECT query FROM pg_stat_activity WHERE application_name = :name "
    "AND xact_start IS NOT NULL AND (query ILIKE 'SELECT reports.radiologist_key %' "
    "OR query ILIKE 'INSERT INTO assignments%')"
)


class Reader:
    """A radiologist at the reading list: claims the first study waiting in their list,
    over one API worker then the other; a request cut off by the kill is asked again."""

    def __init__(self, key: str, token: str, urls: Sequence[str]) -> None:
        self.key = key
        self.headers = {"Authorization": f"Bearer {token}"}
        self.urls = urls
        self.claimed: Counter[str] = Counter()  # study → claims answered 200
        self.cut_off = 0

    def run(self, halt: threading.Event) -> None:
        clients = [httpx.Client(base_url=u, headers=self.headers, timeout=10) for u in self.urls]
        try:
            for turn in itertools.count():
                if halt.is_set():
                    return
                self._turn(clients[turn % len(clients)])
        finally:
            for client in clients:
                client.close()

    def _turn(self, client: httpx.Client) -> None:
        try:
            listed = client.get("/api/reading-list")
            assert listed.status_code == 200, listed.text
            waiting = [s for s in listed.json()["studies"] if s["state"] == "assigned"]
            if not waiting:
                time.sleep(0.2)
                return
            uid = waiting[0]["study_instance_uid"]
            answer = client.post(f"/api/reading-list/{uid}/claim", json={})
        except httpx.TransportError:
            self.cut_off += 1
            time.sleep(0.2)
            return
        if answer.status_code == 200:
            self.claimed[uid] += 1
        else:  # someone's list changed between the two requests; look again
            assert answer.status_code == 409, answer.text


def api(settings: Settings, name: str, port: int) -> tuple[Worker, int]:
    """`mri-pipeline api serve` on ``port``, started."""
    return spawn(name, ["api", "serve", "--port", str(port)], settings), port


def produce(runtime: Runtime, killed: threading.Event) -> list[str]:
    """Studies ready for reading and QC-cleared, a batch at a time, until the kill and a
    batch after it."""
    accessions: list[str] = []
    after = False
    while not after:
        after = killed.is_set()
        for number in range(len(accessions), len(accessions) + BATCH):
            now = datetime.now(UTC)
            accessions.append(ready_study(runtime, f"API{number:03d}", "radiculopathy", now))
        assert len(accessions) < MOST, "the kill never came"
        time.sleep(0.3)
    return accessions


def wait_for_a_routing_pass(name: str, readers: Sequence[Reader], timeout: float = 60) -> str:
    """Once the readers have claimed a few studies, wait until ``name``'s routing desk
    is inside a pass with studies in it; returns the statement it is at."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    deadline = time.monotonic() + timeout
    try:
        with admin.connect() as connection:
            while time.monotonic() < deadline:
                if sum(r.claimed.total() for r in readers) >= 3:
                    found = connection.scalar(IN_ROUTING, {"name": name})
                    if found is not None:
                        return str(found)
                time.sleep(0.002)
    finally:
        admin.dispose()
    raise AssertionError("never caught the routing desk inside a pass")


def test_api_and_routing_killed_mid_pass_assign_and_claim_each_study_once(
    tmp_path: Path, checked: Callable[[str], None]
) -> None:
    with postgres_schema() as url:
        settings = fault_settings(url, tmp_path)
        runtime = build_runtime(settings, clock=fixed_clock)
        port = free_port()
        urls = [f"http://127.0.0.1:{settings.api_port}", f"http://127.0.0.1:{port}"]
        readers = [Reader(k, token_for(runtime, Role.RADIOLOGIST, k), urls) for k in READERS]
        workers: list[Worker] = []
        halt, killed = threading.Event(), threading.Event()
        try:
            workers += serving([up(settings, "routing-1"), api(settings, "api-1", port)])
            with ThreadPoolExecutor(max_workers=len(readers) + 1) as pool:
                try:
                    reading = [pool.submit(reader.run, halt) for reader in readers]
                    producing = pool.submit(produce, runtime, killed)
                    caught = wait_for_a_routing_pass("routing-1", readers)
                    for worker in workers:
                        kill(worker)
                    killed.set()
                    at_kill = rows(runtime, Assignment)
                    wait_for_orthanc_to_stop(settings)
                    workers += serving([up(settings, "routing-2"), api(settings, "api-2", port)])
                    accessions = producing.result(timeout=120)
                    wait_for(
                        lambda: (
                            rows(runtime, Assignment, Assignment.state == "claimed")
                            == len(accessions)
                        ),
                        "every study claimed",
                        workers[2:],
                        timeout=120,
                    )
                finally:
                    halt.set()
                    killed.set()
                for done in reading:
                    done.result(timeout=30)
            with runtime.sessions() as session:
                holders = claimed_by(
                    session,
                    ReceivedStudy.accession_number.in_(accessions),
                    ReceivedStudy.routed_at.is_not(None),
                )
                assignments = count(session, Assignment)
                events = list(
                    session.execute(
                        select(StepEvent).where(StepEvent.study_instance_uid.in_(holders))
                    ).scalars()
                )
        finally:
            halt.set()
            stop(workers)
            runtime.close()

    # (ready_study names the patient of API007 "Route^API007")
    assert names_logged(workers, (f"Route^API{n:03d}" for n in range(len(accessions)))) == []
    # Every study assigned once, to one radiologist who claimed it, and each decision
    # and each claim recorded once.
    assert len(holders) == assignments == len(accessions)
    kinds = Counter((e.study_instance_uid, e.kind) for e in events)
    assert kinds == Counter({(uid, kind): 1 for uid in holders for kind in ("ROUTED", "CLAIMED")})
    for event in events:
        who = event.details["radiologist"] if event.kind == "ROUTED" else event.actor
        assert who == holders[str(event.study_instance_uid)], event.kind
    answered = {uid: r.key for r in readers for uid in r.claimed}
    assert len(answered) == sum(len(r.claimed) for r in readers)  # none granted to both
    assert all(holders[uid] == key for uid, key in answered.items())
    # A claim the kill cut off may have been recorded without its answer; no more.
    cut_off = sum(r.cut_off for r in readers)
    assert len(accessions) - len(answered) <= cut_off
    assert at_kill < len(accessions)
    checked(
        f"faults: API SIGKILL during routing (postgresql): {len(holders)} studies, "
        f"{assignments} assignments, {len(answered)} claims answered, {len(events)} events "
        f"checked; killed with {at_kill} assigned, at {caught[:40]!r}; {cut_off} requests "
        "cut off or refused while down, and repeated"
    )
