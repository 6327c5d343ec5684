"""Scaled out on one PostgreSQL: two ingest workers and two API workers do nothing twice.

One schema, one Orthanc, and four real processes as a group of sites runs them:
``mri-pipeline ingest run`` twice (they share Orthanc's change log through the cursor
row, locked for each page) and ``mri-pipeline api serve`` twice (a claim locks the
study's assignment row). PostgreSQL only: SQLite serialises every writer anyway.

Rows say nothing of which process wrote them, so each worker connects with its own
``application_name`` and a trigger added to this test's schema notes, for each image
recorded, the process and the transaction that recorded it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import func, select, text

from mri_pipeline.db.models import Assignment, ReceivedInstance, ReceivedStudy, StepEvent
from mri_pipeline.dicom.console_messages import PerformedSeries
from mri_pipeline.dicom.scanner import Peer, ScannerConsole, restamp
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.domain.access import Role
from mri_pipeline.orthanc import OrthancProcess
from mri_pipeline.runtime import Runtime, build_runtime
from tests.conftest import POSTGRES_URL, fixed_clock, free_port, make_settings, postgres_schema
from tests.integration.api_tools import token_for
from tests.integration.orthanc_tools import NEEDS_ORTHANC, orthanc_get, start_orthanc, storescu
from tests.integration.test_ingest import plan
from tests.integration.test_mwl_scp import book
from tests.integration.test_routing_assignment import claimed_by, ready_study
from tests.integration.worker_processes import Worker, answers_health, spawn, stop, wait_for

pytestmark = [
    *NEEDS_ORTHANC,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="scale-out needs PostgreSQL: set MRI_PIPELINE_TEST_DATABASE_URL (CI does)",
    ),
]

EXAMINATIONS = 4
SERIES = ("SAG T1 TSE", "SAG T2 TSE", "AX T2 TSE")
IMAGES_PER_SERIES = 10
PER_EXAMINATION = len(SERIES) * IMAGES_PER_SERIES
TOTAL = EXAMINATIONS * PER_EXAMINATION
BATCH = 3  # changes per page: many pages, so the two ingest workers meet often
CONTESTED = 12  # studies two radiologists try to claim at the same instant
# Both may report a cauda equina study (neuro or MSK, no contrast), on shift or not.
RACERS = ("rad.okafor", "rad.lindqvist")
AUDIT = (
    "CREATE TABLE scale_audit (sop_instance_uid text NOT NULL, worker text NOT NULL, "
    "txid bigint NOT NULL)",
    "CREATE FUNCTION scale_audit_instance() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO scale_audit VALUES (NEW.sop_instance_uid, "
    "current_setting('application_name'), txid_current()); RETURN NEW; END $$",
    "CREATE TRIGGER scale_audit AFTER INSERT ON received_instances "
    "FOR EACH ROW EXECUTE FUNCTION scale_audit_instance()",
)


def claim_at_once(
    pool: ThreadPoolExecutor, clients: Sequence[httpx.Client], path: str
) -> list[httpx.Response]:
    """POST the same claim from each client, each in its own thread, all let go by one
    barrier."""
    start = threading.Barrier(len(clients))

    def claim(client: httpx.Client) -> httpx.Response:
        start.wait(timeout=10)
        return client.post(path, json={})

    sent = [pool.submit(claim, client) for client in clients]
    return [answer.result(timeout=30) for answer in sent]


@dataclass
class Examination:
    accession: str
    mpps_uid: str
    series: list[PerformedSeries]
    images: list[Dataset]


@dataclass
class Site:
    """The test's own runtime (the clock at Monday 08:00), Orthanc, the MWL/MPPS server,
    and the four workers."""

    runtime: Runtime
    orthanc: OrthancProcess
    ris: Peer
    ingest: list[Worker]
    api: list[Worker]
    api_urls: list[str]

    def console(self) -> ScannerConsole:
        pacs = Peer("127.0.0.1", self.orthanc.dicom_port, self.orthanc.ae_title)
        return ScannerConsole("MRI1", ris=self.ris, pacs=pacs)

    def examination(self, patient_id: str) -> Examination:
        """Booked, started on the console (MPPS IN PROGRESS), its images made."""
        accession = book(self.runtime, patient_id, f"Scale^{patient_id}", "MRI1")
        console = self.console()
        [item] = console.worklist(accession=accession)
        mpps_uid = console.start(item, now=fixed_clock())
        made = restamp(
            plan(*SERIES, images=IMAGES_PER_SERIES), item, station="MRI1", now=fixed_clock()
        )
        images = [ds for _, series_images in made for ds in series_images]
        return Examination(accession, mpps_uid, [s for s, _ in made], images)

    def store(self, examination: Examination, folder: Path) -> None:
        """Write the images, then storescu them a few files per association, as a console
        process does (pynetdicom associations in threads of one process trip over each
        other: "Received unexpected C-STORE service message")."""
        folder.mkdir(parents=True)
        paths = []
        for number, ds in enumerate(examination.images):
            paths.append(folder / f"{number:03d}.dcm")
            ds.save_as(paths[-1], enforce_file_format=True)
        for start in range(0, len(paths), 5):
            done = storescu(
                self.orthanc.dicom_port, paths[start : start + 5], called=self.orthanc.ae_title
            )
            assert done.returncode == 0, done.stdout + done.stderr

    def states(self, accessions: Sequence[str]) -> list[str]:
        with self.runtime.sessions() as session:
            return list(
                session.execute(
                    select(ReceivedStudy.state).where(
                        ReceivedStudy.accession_number.in_(accessions)
                    )
                ).scalars()
            )


@pytest.fixture(scope="module")
def schema_url() -> Iterator[str]:
    """A new schema in the test PostgreSQL, made as conftest's ``database_url`` makes one,
    but for the module: the four workers are started once."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def site(schema_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    var_dir = tmp_path_factory.mktemp("scale")
    with start_orthanc(var_dir) as orthanc, ExitStack() as teardown:
        settings = make_settings(
            schema_url,
            var_dir,
            orthanc_http_port=orthanc.http_port,
            orthanc_dicom_port=orthanc.dicom_port,
            ingest_batch_size=BATCH,
            ingest_poll_interval=0.05,
        )
        # Migrated here, once, before any worker starts (each would otherwise race to).
        runtime = build_runtime(settings, clock=fixed_clock)
        teardown.callback(runtime.close)
        with runtime.sessions.begin() as session:
            for statement in AUDIT:
                session.execute(text(statement))
        config = DicomServerConfig("LSP_RIS", "127.0.0.1", settings.dicom_port, False, 16)
        server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
        teardown.callback(server.shutdown)
        workers: list[Worker] = []
        teardown.callback(stop, workers)
        ingest = [spawn(f"ingest-{n}", ["ingest", "run"], settings) for n in "ab"]
        workers += ingest
        ports = [free_port(), free_port()]
        api = [
            spawn(f"api-{n}", ["api", "serve", "--port", str(port)], settings)
            for n, port in zip("ab", ports, strict=True)
        ]
        workers += api
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        wait_for(
            lambda: (
                all(w.count("ingest following") for w in ingest)
                and all(answers_health(url) for url in urls)
            ),
            "workers starting",
            workers,
            timeout=45,  # four interpreters importing at once on a small CI machine
        )
        ris = Peer("127.0.0.1", settings.dicom_port, "LSP_RIS")
        yield Site(runtime, orthanc, ris, ingest, api, urls)


def test_two_ingest_workers_record_every_image_and_every_study_once(
    site: Site, tmp_path: Path
) -> None:
    examinations = [site.examination(f"SCALE{n}") for n in range(EXAMINATIONS)]
    accessions = [e.accession for e in examinations]
    # The four consoles store at once, then each says it is done (MPPS COMPLETED).
    with ThreadPoolExecutor(max_workers=EXAMINATIONS) as consoles:
        stores = [consoles.submit(site.store, e, tmp_path / e.accession) for e in examinations]
        for done in stores:
            done.result(timeout=60)
    console = site.console()
    for examination in examinations:
        console.finish(examination.mpps_uid, examination.series, now=fixed_clock())
    wait_for(
        lambda: site.states(accessions) == ["ready_for_reading"] * EXAMINATIONS,
        "every study ready for reading",
        site.ingest,
    )

    sent = {str(ds.SOPInstanceUID) for e in examinations for ds in e.images}
    with site.runtime.sessions() as session:
        recorded = list(session.execute(select(ReceivedInstance.sop_instance_uid)).scalars())
        studies = list(
            session.execute(
                select(ReceivedStudy).where(ReceivedStudy.accession_number.in_(accessions))
            ).scalars()
        )
        events = Counter(
            session.execute(
                select(StepEvent.study_instance_uid, StepEvent.kind).where(
                    StepEvent.study_instance_uid.in_([s.study_instance_uid for s in studies]),
                    StepEvent.kind.like("STUDY_%"),
                )
            ).all()
        )
        audit = {
            worker: (int(images), int(pages))
            for worker, images, pages in session.execute(
                text(
                    "SELECT worker, count(*), count(DISTINCT txid) FROM scale_audit "
                    "GROUP BY worker ORDER BY worker"
                )
            ).all()
        }
    statistics = orthanc_get(site.orthanc, "/statistics")
    assert isinstance(statistics, dict)

    # Every image once: in our rows, in the trigger's notes, and as many as Orthanc holds.
    assert len(recorded) == len(set(recorded)) == statistics["CountInstances"] == TOTAL
    assert set(recorded) == sent
    assert sum(images for images, _ in audit.values()) == TOTAL
    # Every study once, matched to its order, complete by its MPPS, with one event of each.
    assert sorted(s.accession_number or "" for s in studies) == sorted(accessions)
    assert all(s.instance_count == PER_EXAMINATION for s in studies)
    assert all(s.completion_basis == "mpps" for s in studies)
    assert events == Counter(
        {
            (s.study_instance_uid, kind): 1
            for s in studies
            for kind in ("STUDY_RECEIVING", "STUDY_READY_FOR_READING")
        }
    )
    # Both workers recorded pages: the cursor lock shares the log out, it does not leave
    # one worker idle; and between them each study was logged as matched and ready once.
    matched = {w.name: w.count("study matched") for w in site.ingest}
    ready = {w.name: w.count("study ready for reading") for w in site.ingest}
    print(f"images (recorded, pages) by worker {audit}; studies matched {matched}, ready {ready}")
    assert sorted(audit) == ["ingest-a", "ingest-b"], audit
    assert sum(matched.values()) == sum(ready.values()) == EXAMINATIONS, (matched, ready)
    # Starting together on an empty database, neither worker trips over the other.
    failures = {w.name: w.count("pass failed") for w in site.ingest}
    assert failures == {"ingest-a": 0, "ingest-b": 0}, [w.output()[-2000:] for w in site.ingest]


def test_two_api_workers_give_each_contested_study_to_one_radiologist(site: Site) -> None:
    runtime = site.runtime
    accessions = [ready_study(runtime, f"RACE{n:02d}", "suspected-ces") for n in range(CONTESTED)]
    # Monday 08:00: nobody is on call, so every STAT study waits in the unassigned list.
    runtime.routing_desk().route_pass()
    with runtime.sessions() as session:
        queue = session.execute(
            select(ReceivedStudy.study_instance_uid, Assignment.state, Assignment.radiologist_key)
            .join(Assignment, Assignment.study_pk == ReceivedStudy.id)
            .where(ReceivedStudy.accession_number.in_(accessions))
            .order_by(Assignment.priority_rank.desc(), Assignment.deadline, Assignment.id)
        ).all()
    assert [(state, holder) for _, state, holder in queue] == [("unassigned", None)] * CONTESTED
    uids = [uid for uid, _, _ in queue]

    winners: dict[str, tuple[str, str]] = {}  # study → radiologist, API worker
    with ExitStack() as connections, ThreadPoolExecutor(max_workers=len(RACERS)) as pool:
        # One client per radiologist and API worker, connected before the race.
        clients = {
            (key, worker.name): connections.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            )
            for key, token in ((k, token_for(runtime, Role.RADIOLOGIST, k)) for k in RACERS)
            for worker, url in zip(site.api, site.api_urls, strict=True)
        }
        assert {c.get("/api/reading-list").status_code for c in clients.values()} == {200}
        for number, uid in enumerate(uids):
            # The top of the unassigned list for both; each asks a different API worker,
            # the pairing swapped every round.
            asks = [
                (key, site.api[(number + i) % len(site.api)].name) for i, key in enumerate(RACERS)
            ]
            sent = claim_at_once(
                pool, [clients[ask] for ask in asks], f"/api/reading-list/{uid}/claim"
            )
            answers = dict(zip(asks, sent, strict=True))
            statuses = sorted(answer.status_code for answer in answers.values())
            assert statuses == [200, 409], {who: a.text for who, a in answers.items()}
            [(winner, worker)] = [who for who, answer in answers.items() if answer.is_success]
            [lost] = [answer for answer in answers.values() if not answer.is_success]
            assignment = answers[winner, worker].json()["assignment"]
            assert (assignment["radiologist"], assignment["state"]) == (winner, "claimed")
            assert f"is being read by {winner}" in lost.json()["detail"]
            winners[uid] = (winner, worker)

    with runtime.sessions() as session:
        holders = claimed_by(session, ReceivedStudy.study_instance_uid.in_(uids))
        claimed = [
            tuple(row)
            for row in session.execute(
                select(StepEvent.study_instance_uid, StepEvent.actor).where(
                    StepEvent.study_instance_uid.in_(uids), StepEvent.kind == "CLAIMED"
                )
            )
        ]
        rows = session.scalar(
            select(func.count())
            .select_from(Assignment)
            .join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
            .where(ReceivedStudy.study_instance_uid.in_(uids))
        )
    assert rows == CONTESTED
    assert holders == {uid: key for uid, (key, _) in winners.items()}
    assert sorted(claimed) == sorted((uid, key) for uid, (key, _) in winners.items())
    by_radiologist = Counter(key for key, _ in winners.values())
    by_worker = Counter(worker for _, worker in winners.values())
    print(f"claims won by radiologist {dict(by_radiologist)}, granted by worker {dict(by_worker)}")
