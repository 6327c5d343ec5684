"""Mixed load (issue 8): consoles, scanners and radiologists at once against one site.

One site runs as ``mri-pipeline up`` runs it, in its own process: our DICOM server (MWL,
MPPS), a real Orthanc started by the project, ingest, QC and routing following it, and
the API under uvicorn on a real port; on a fresh SQLite file, or a fresh schema of the
PostgreSQL given by ``--database-url``. Its nodes are the committed ones plus scanners
MRI3..MRI20, and its radiologists are on call around the clock (so every study can be
routed whenever the bench runs). Before the load the bench books today's worklist (25
items a station) and, on the scanners' stations, the patients they will examine, and
gives each API client a user and token.

Then, for ``--seconds`` (60), all at once, from this process:

* 20 consoles (MRI1..MRI20), each in a loop: a new association, the typical console
  query (its own station, today, MR, the usual return keys), every answer read, release.
  On a station no scanner works on, anything but the 25 items booked is a failure.
* 4 scanners (MRI1..MRI4), each examining its patients one after another as a console
  does (``ScannerConsole``, ``perform``): the worklist item by accession number, MPPS
  N-CREATE, C-STORE of the LSP-CES examination card made of the sample images (3 series,
  53 images) into Orthanc, MPPS N-SET COMPLETED. A scanner finishes the examination it
  is in when the time is up.
* 50 API clients (httpx, a keep-alive connection each): 45 radiologists with their own
  tokens and 5 administrators naming a radiologist, each in a loop ``GET
  /api/reading-list``; once the list holds a study, the study view of its first study
  (``GET /api/reading-list/{uid}``, which asks Orthanc for priors), then again every
  fifth time. The lists fill as the scanners' studies are routed.

Every request is counted on its interface: failed when the answer is not Success / 200,
or none came within 30 s; the first failures' reasons are kept. Per interface: requests,
failures, throughput (requests over the time from its first request to its last answer)
and p50/p95/p99/max latency. DICOM latencies are whole associations (associate, request,
answers, release), except C-STORE: an image, from the previous image's answer (the first:
from asking for the association). After the load the bench waits (``--grace``, 120 s)
until every examination the scanners completed is recorded by ingest, ready for reading,
QC'd and routed, and reports how many got there and the lag from N-SET COMPLETED to
routed. Last, the site's and Orthanc's logs are searched for errors and for the
patients' names.

There is no time target: the verdict is "0 failed requests", and the exit status is 1
when a request failed or an examination did not get routed. The site runs in its own
process so that the clients do not share its interpreter lock, but they share the
machine's cores, so latencies include some of their own waiting.

    .venv/bin/python bench/load.py                   # 60 s on SQLite
    .venv/bin/python bench/load.py --quick           # 15 s (make bench BENCH_ARGS=--quick)
    .venv/bin/python bench/load.py --seconds 60 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import yaml
from pydicom.dataset import Dataset
from sqlalchemy import select

from common import (
    HOST,
    ROOT,
    BenchError,
    Console,
    Figure,
    add_json_option,
    as_utc,
    console_query,
    find,
    free_port,
    mark,
    percentile,
    pipeline_runtime,
    sample_paths,
    serving,
    slot_start,
    synthetic_order,
    write_figures,
)
from mri_pipeline.config import Settings
from mri_pipeline.db.models import Assignment, ReceivedStudy
from mri_pipeline.dicom.console_messages import PerformedSeries
from mri_pipeline.dicom.exam_card import CASE_BY_PROTOCOL, DEFAULT_CASE, exam_card
from mri_pipeline.dicom.scanner import (
    ConsoleError,
    Peer,
    PlannedSeries,
    ScannerConsole,
    StoreOutcome,
    perform,
)
from mri_pipeline.domain.access import Role
from mri_pipeline.orthanc import configured_ae_title
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.accounts import add_user
from mri_pipeline.services.ingest import StudyState
from mri_pipeline.services.orders import CreatedOrder, create_order

T = TypeVar("T")

EXAMS_PER_SCANNER_SECOND = 0.4  # patients booked for a scanner: more than it can examine
SCANNER_INDICATION = "suspected-ces"  # LSP-CES: the smallest examination card
CONSOLE_INDICATION = "radiculopathy"
PATIENT_PREFIX = "loadtest"  # patients LOADTEST000001.., named Loadtest^PatientN
ADMIN_EVERY = 10  # every tenth API client is an administrator naming a radiologist
VIEW_EVERY = 5  # an API client opens the first study of its list, then every fifth time
TIMEOUT = 30.0  # a request not answered by then has failed
REASONS_KEPT = 5
START_TIMEOUT = 90.0
POLL = 0.5
# Error lines: ours and uvicorn's (logging), a traceback, Orthanc's (glog: E1125 ...).
LOG_PROBLEMS = re.compile(r" (ERROR|CRITICAL) |^(ERROR|CRITICAL):|^Traceback|^E\d{4} ")


@dataclass(frozen=True)
class Shape:
    """How much load: for how long, and how many of each client."""

    seconds: float = 60.0
    consoles: int = 20
    scanners: int = 4
    api_clients: int = 50
    grace: float = 120.0  # after the load, for the pipeline to route every examination
    items_today: int = 25  # worklist items a station has today: what a console's query finds

    @property
    def stations(self) -> list[str]:
        return [f"MRI{n}" for n in range(1, max(self.consoles, self.scanners) + 1)]

    @property
    def radiologists(self) -> list[str]:
        admins = self.api_clients // ADMIN_EVERY
        return [f"rad.load{n:02d}" for n in range(1, max(1, self.api_clients - admins) + 1)]


# ---------------------------------------------------------------- the site


def site_overrides(folder: Path, shape: Shape) -> dict[str, Any]:
    """Settings of the site on top of a test's or bench's own: its node table (the
    committed one and the stations the shape needs), its radiologists (on call around the
    clock), and free ports for the API and Orthanc."""
    folder.mkdir(parents=True, exist_ok=True)
    nodes = yaml.safe_load((ROOT / "dicom_nodes/nodes.yaml").read_text(encoding="utf-8"))
    known = {node["ae_title"] for node in nodes["nodes"]}
    for number, station in enumerate(shape.stations, 1):
        if station not in known:
            nodes["nodes"].append(
                {
                    "ae_title": station,
                    "host": HOST,
                    "port": 11300 + number,
                    "role": "scanner",
                    "modality": "MR",
                    "station_name": station,
                    "location": f"MR ROOM {number}",
                    "description": "a scanner of the load bench",
                }
            )
    every_day = {
        "days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        "start": "00:00",
        "end": "24:00",
        "on_call": True,
    }
    radiologists = [
        {
            "key": key,
            "name": f"Reader^R{number:02d}",
            "subspecialties": ["neuro", "MSK", "general"],
            "sites": ["MAIN"],
            "reports_contrast": True,
            "max_in_hand": 200,
            "shifts": [every_day],
        }
        for number, key in enumerate(shape.radiologists, 1)
    ]
    nodes_file = folder / "nodes.yaml"
    nodes_file.write_text(yaml.safe_dump(nodes, sort_keys=False), encoding="utf-8")
    radiologists_file = folder / "radiologists.yaml"
    radiologists_file.write_text(
        yaml.safe_dump({"radiologists": radiologists}, sort_keys=False), encoding="utf-8"
    )
    return {
        "nodes_file": nodes_file,
        "radiologists_file": radiologists_file,
        "orthanc_config_file": ROOT / "orthanc.json",
        "dicom_host": HOST,
        "dicom_port": free_port(),
        "api_host": HOST,
        "api_port": free_port(),
        "orthanc_http_port": free_port(),
        "orthanc_dicom_port": free_port(),
    }


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that gives ``mri-pipeline`` these settings (and no others)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MRI_PIPELINE_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"MRI_PIPELINE_{name.upper()}"] = text
    return env


@contextmanager
def running_site(settings: Settings, log_path: Path) -> Iterator[str]:
    """``mri-pipeline up`` in its own process with these settings until the block ends;
    its output goes to ``log_path``. Yields the API's URL once ``/health`` answers."""
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    env = {**settings_environment(settings), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "mri_pipeline", "up"]
    with serving(command, base_url, log_path, env=env, timeout=START_TIMEOUT):
        yield base_url


# ---------------------------------------------------------------- what the load works on


def book(runtime: Runtime, shape: Shape) -> dict[str, list[CreatedOrder]]:
    """Every station's orders, in the order a scanner takes them: today's items (what
    the consoles' queries find), then on the scanners' stations a patient a slot from
    tomorrow on, so that a scanner has more patients than it can examine in the time."""
    today = runtime.desk.local_now().date()
    wanted = math.ceil(shape.seconds * EXAMS_PER_SCANNER_SECOND)
    booked: dict[str, list[CreatedOrder]] = {}
    patient = 0
    for number, station in enumerate(shape.stations):
        scanner = number < shape.scanners
        slots = [slot_start(today, slot) for slot in range(shape.items_today)]
        if scanner:
            tomorrow = today + timedelta(days=1)
            slots += [slot_start(tomorrow, slot) for slot in range(wanted - len(slots))]
        orders = []
        with runtime.sessions.begin() as session:
            for start in slots:
                patient += 1
                request = synthetic_order(
                    patient,
                    PATIENT_PREFIX,
                    indication=SCANNER_INDICATION if scanner else CONSOLE_INDICATION,
                    station=station,
                    start=start,
                )
                orders.append(create_order(session, runtime.desk, request))
        booked[station] = orders
    return booked


@dataclass(frozen=True)
class Reader:
    """An API client: a radiologist reading their own list, or an administrator
    looking at a radiologist's."""

    token: str
    radiologist: str
    admin: bool

    @property
    def path(self) -> str:
        if self.admin:
            return f"/api/reading-list?radiologist={self.radiologist}"
        return "/api/reading-list"


def add_readers(runtime: Runtime, shape: Shape) -> list[Reader]:
    """A user and API token for each API client."""
    keys = shape.radiologists
    readers = []
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        for number in range(shape.api_clients):
            key = keys[number % len(keys)]
            if number % ADMIN_EVERY == ADMIN_EVERY - 1:
                _, token = add_user(session, f"load.admin{number:02d}", Role.ADMIN, now)
                readers.append(Reader(token, key, admin=True))
            else:
                _, token = add_user(
                    session, f"load.user{number:02d}", Role.RADIOLOGIST, now, radiologist_key=key
                )
                readers.append(Reader(token, key, admin=False))
    return readers


def examination_card(runtime: Runtime, code: str) -> list[PlannedSeries]:
    """What a scanner acquires for protocol ``code``, as ``scanner simulate`` makes it."""
    case = CASE_BY_PROTOCOL.get(code, DEFAULT_CASE)
    return exam_card(
        runtime.catalogue.protocol(code), sample_paths(case), sample_paths(DEFAULT_CASE)
    )


# ---------------------------------------------------------------- counting


@dataclass
class Tally:
    """One interface under the load: every request's seconds, its failures and the
    first reasons; thread-safe."""

    interface: str
    seconds: list[float] = field(default_factory=list)
    failed: int = 0
    reasons: list[str] = field(default_factory=list)
    first: float = math.inf  # monotonic: when the first request was sent
    last: float = -math.inf  # ... and the last answer came
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, seconds: float, failure: str | None = None, *, ended: float | None = None
    ) -> None:
        """A request of ``seconds`` that ended now (or at ``ended``, monotonic)."""
        if ended is None:
            ended = time.monotonic()
        with self.lock:
            self.seconds.append(seconds)
            self.first = min(self.first, ended - seconds)
            self.last = max(self.last, ended)
            if failure is not None:
                self.failed += 1
                if len(self.reasons) < REASONS_KEPT:
                    self.reasons.append(failure)

    @property
    def requests(self) -> int:
        return len(self.seconds)

    @property
    def rate(self) -> float:
        """Requests a second, from the first request to the last answer."""
        span = self.last - self.first
        return self.requests / span if self.requests and span > 0 else math.nan

    def ms(self, share: float) -> float:
        return percentile(self.seconds, share) * 1000


def timed(tally: Tally, call: Callable[[], T]) -> T:
    """``call()`` counted on ``tally``; an exception is a failure, and raised again."""
    started = time.perf_counter()
    try:
        result = call()
    except Exception as exc:
        tally.add(time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        raise
    tally.add(time.perf_counter() - started)
    return result


class Tallies:
    """Every interface's tally."""

    def __init__(self) -> None:
        self.consoles = Tally("MWL C-FIND, consoles (station, today)")
        self.by_accession = Tally("MWL C-FIND, scanners (accession)")
        self.create = Tally("MPPS N-CREATE")
        self.images = Tally("C-STORE into Orthanc, an image")
        self.set_ = Tally("MPPS N-SET COMPLETED")
        self.exams = Tally("examination, worklist to N-SET")
        self.lists = Tally("GET /api/reading-list")
        self.views = Tally("GET /api/reading-list/{uid}")

    def all(self) -> list[Tally]:
        """In the table's order."""
        return [
            self.consoles,
            self.by_accession,
            self.create,
            self.images,
            self.set_,
            self.exams,
            self.lists,
            self.views,
        ]


# ---------------------------------------------------------------- the clients


def console_loop(
    console: Console, port: int, query: Dataset, expected: int | None, until: float, tally: Tally
) -> None:
    """Query until ``until`` (monotonic); every query counted."""
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            outcome = find(console, port, query, expected)
        except Exception as exc:  # a console counts a failed query and asks again
            tally.add(time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
            continue
        tally.add(outcome.seconds, None if outcome.ok else outcome.error)


class TimedScanner(ScannerConsole):
    """The product's scanner console, each operation counted on its interface."""

    def __init__(self, station: str, ris: Peer, pacs: Peer, tallies: Tallies) -> None:
        super().__init__(station, ris, pacs, timeout=TIMEOUT)
        self.tallies = tallies

    def item(self, accession: str) -> Dataset:
        """The worklist item of the patient on the table, found by accession number."""

        def query() -> Dataset:
            items = self.worklist(accession=accession)
            if len(items) != 1:
                raise ConsoleError(f"{len(items)} worklist items for accession {accession}")
            return items[0]

        return timed(self.tallies.by_accession, query)

    def start(self, item: Dataset, *, now: datetime) -> str:
        start = super().start
        return timed(self.tallies.create, lambda: start(item, now=now))

    def finish(
        self,
        mpps_uid: str,
        series: Sequence[PerformedSeries],
        *,
        now: datetime,
        discontinue: str | None = None,
    ) -> None:
        finish = super().finish
        timed(self.tallies.set_, lambda: finish(mpps_uid, series, now=now, discontinue=discontinue))

    def store(
        self, datasets: Iterable[Dataset], *, progress: Callable[[Dataset], None] | None = None
    ) -> StoreOutcome:
        """Each image counted from the previous image's answer (the first: from asking
        for the association); a refused image is a failure."""
        tally = self.tallies.images
        answers: dict[str, tuple[float, float]] = {}  # SOP Instance UID: seconds, when
        last = time.monotonic()

        def answered(ds: Dataset) -> None:
            nonlocal last
            now = time.monotonic()
            answers[str(ds.SOPInstanceUID)] = (now - last, now)
            last = now
            if progress is not None:
                progress(ds)

        try:
            outcome = super().store(datasets, progress=answered)
        except Exception as exc:
            tally.add(time.monotonic() - last, f"{type(exc).__name__}: {exc}")
            raise
        refused = dict(outcome.failed)  # the status of each image is known only now
        for uid, (took, when) in answers.items():
            code = refused.get(uid)
            failure = None if code is None else f"C-STORE status 0x{code:04X}"
            tally.add(took, failure, ended=when)
        return outcome


@dataclass(frozen=True)
class Examination:
    """An examination a scanner completed: N-SET COMPLETED acknowledged at ``completed``."""

    station: str
    accession_number: str
    study_instance_uid: str
    completed: datetime


def scanner_loop(
    scanner: TimedScanner,
    orders: Sequence[CreatedOrder],
    plan: Sequence[PlannedSeries],
    zone: ZoneInfo,
    until: float,
    done: list[Examination],
) -> None:
    """Examine the booked patients one after another until ``until`` (the examination
    under way is finished)."""
    for order in orders:
        if time.monotonic() >= until:
            return

        def examine(order: CreatedOrder = order) -> None:
            item = scanner.item(order.accession_number)
            perform(scanner, item, plan, clock=lambda: datetime.now(zone))

        try:
            timed(scanner.tallies.exams, examine)
        except Exception:  # counted on the interface that failed; the next patient
            continue
        done.append(
            Examination(
                scanner.station,
                order.accession_number,
                order.study_instance_uid,
                datetime.now(UTC),
            )
        )


async def read_lists(
    readers: Sequence[Reader], base_url: str, until: float, tallies: Tallies
) -> None:
    """The API clients, each on its own keep-alive connection, until ``until``."""

    async def get(http: httpx.AsyncClient, path: str, tally: Tally) -> Any:
        started = time.perf_counter()
        try:
            answer = await http.get(path)
        except httpx.HTTPError as exc:
            tally.add(time.perf_counter() - started, f"GET {path}: {type(exc).__name__}: {exc}")
            return None
        took = time.perf_counter() - started
        if answer.status_code != 200:
            tally.add(took, f"GET {path}: {answer.status_code} {answer.text[:200]}")
            return None
        tally.add(took)
        return answer.json()

    async def reader_loop(reader: Reader) -> None:
        headers = {"Authorization": f"Bearer {reader.token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=TIMEOUT) as http:
            since_view = VIEW_EVERY
            while time.monotonic() < until:
                listing = await get(http, reader.path, tallies.lists)
                since_view += 1
                if listing and listing["studies"] and since_view >= VIEW_EVERY:
                    uid = listing["studies"][0]["study_instance_uid"]
                    await get(http, f"/api/reading-list/{uid}", tallies.views)
                    since_view = 0

    await asyncio.gather(*(reader_loop(reader) for reader in readers))


@contextmanager
def quiet_clients() -> Iterator[None]:
    """pynetdicom and httpx log a line or more per request at INFO: held at WARNING."""
    loggers = [logging.getLogger(name) for name in ("pynetdicom", "httpx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# ---------------------------------------------------------------- the pipeline afterwards


@dataclass
class PipelineCheck:
    """Where the examinations the scanners completed got to in the pipeline."""

    examinations: int
    recorded: int = 0
    ready: int = 0
    routed: int = 0
    to_a_radiologist: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    lags: list[float] = field(default_factory=list)  # N-SET COMPLETED -> routed, s
    caught_up: float = math.nan  # s after the load until every one was routed
    behind: list[str] = field(default_factory=list)  # the first not routed, and why

    @property
    def complete(self) -> bool:
        return self.routed == self.examinations


def check_pipeline(
    runtime: Runtime, exams: Sequence[Examination], load_ended: float, grace: float
) -> PipelineCheck:
    """Poll the database until every examination is routed, or ``grace`` has passed."""
    by_uid = {exam.study_instance_uid: exam for exam in exams}
    query = (
        select(
            ReceivedStudy.study_instance_uid,
            ReceivedStudy.state,
            ReceivedStudy.qc_verdict,
            ReceivedStudy.routed_at,
            Assignment.radiologist_key,
        )
        .outerjoin(Assignment, Assignment.study_pk == ReceivedStudy.id)
        .where(ReceivedStudy.study_instance_uid.in_(list(by_uid)))
    )
    deadline = load_ended + grace
    while True:
        with runtime.sessions() as session:
            rows = session.execute(query).all() if by_uid else []
        check = PipelineCheck(len(exams))
        for uid, state, verdict, routed_at, radiologist in rows:
            check.recorded += 1
            check.ready += state == StudyState.READY_FOR_READING.value
            check.verdicts[verdict or "none yet"] += 1
            if routed_at is not None:
                check.routed += 1
                check.to_a_radiologist += radiologist is not None
                check.lags.append((as_utc(routed_at) - by_uid[uid].completed).total_seconds())
        if check.complete or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    if check.complete:
        check.caught_up = max(0.0, time.monotonic() - load_ended)
    seen = {row[0]: row for row in rows}
    for exam in exams:
        row = seen.get(exam.study_instance_uid)
        if row is None or row[3] is None:
            why = "not recorded" if row is None else f"{row[1]}, QC {row[2]}"
            check.behind.append(f"{exam.accession_number} ({exam.station}): {why}")
    return check


# ---------------------------------------------------------------- the run


@dataclass
class LoadResult:
    shape: Shape
    database: str
    seconds: float  # from the start of the load until every client stopped
    phases: dict[str, float]  # seconds: booking and site start, load, pipeline, site stop
    tallies: Tallies
    images_per_exam: int
    examinations: list[Examination]
    pipeline: PipelineCheck
    out_of_patients: list[str]  # scanners that examined every patient booked for them
    log_problems: list[str]  # error lines of the site's and Orthanc's logs (a few) ...
    log_problem_count: int  # ... and how many
    names_in_log: int  # lines of those logs naming a patient

    @property
    def failed(self) -> int:
        return sum(tally.failed for tally in self.tallies.all())


def run_load(runtime: Runtime, shape: Shape, workdir: Path) -> LoadResult:
    """The whole run against a site with ``runtime``'s settings (``site_overrides`` in
    them): book, serve the site, load it, check the pipeline, stop, read its log."""
    settings = runtime.settings
    clock = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        phases[name] = now - clock
        clock = now

    tallies = Tallies()
    exams: list[Examination] = []
    log_path = workdir / "site.log"
    with quiet_clients(), ThreadPoolExecutor(1) as pool:
        # The site starts (a few seconds: imports, Orthanc) while the orders are booked.
        booking = pool.submit(prepare, runtime, shape)
        with running_site(settings, log_path) as base_url:
            booked, readers, plan = booking.result()
            phase("booking and site start")
            until = time.monotonic() + shape.seconds
            threads = clients(runtime, shape, booked, plan, until, tallies, exams)
            threads.append(
                threading.Thread(
                    target=lambda: asyncio.run(read_lists(readers, base_url, until, tallies)),
                    name="api-clients",
                )
            )
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            phase("load")
            pipeline = check_pipeline(runtime, exams, time.monotonic(), shape.grace)
            phase("pipeline")
        phase("site stop")
    scanners = shape.stations[: shape.scanners]
    done = Counter(exam.station for exam in exams)
    orthanc_log = settings.var_dir / "orthanc" / "orthanc.log"
    problems, count, names = read_logs([log_path, orthanc_log])
    return LoadResult(
        shape=shape,
        database=runtime.engine.url.get_backend_name(),
        seconds=phases["load"],
        phases=phases,
        tallies=tallies,
        images_per_exam=sum(len(series.templates) for series in plan),
        examinations=exams,
        pipeline=pipeline,
        out_of_patients=[s for s in scanners if done[s] >= len(booked[s])],
        log_problems=problems,
        log_problem_count=count,
        names_in_log=names,
    )


def prepare(
    runtime: Runtime, shape: Shape
) -> tuple[dict[str, list[CreatedOrder]], list[Reader], list[PlannedSeries]]:
    """The orders, the API clients' tokens, and the scanners' examination card."""
    booked = book(runtime, shape)
    readers = add_readers(runtime, shape)
    scanners = shape.stations[: shape.scanners]
    plan = examination_card(runtime, booked[scanners[0]][0].protocol_code) if scanners else []
    return booked, readers, plan


def clients(
    runtime: Runtime,
    shape: Shape,
    booked: dict[str, list[CreatedOrder]],
    plan: Sequence[PlannedSeries],
    until: float,
    tallies: Tallies,
    exams: list[Examination],
) -> list[threading.Thread]:
    """The consoles' and the scanners' threads (not started)."""
    settings = runtime.settings
    today = runtime.desk.local_now().date()
    scanners = shape.stations[: shape.scanners]
    ris = Peer(HOST, settings.dicom_port, settings.ae_title)
    orthanc_ae = configured_ae_title(settings.orthanc_config_file)
    pacs = Peer(HOST, settings.orthanc_dicom_port, orthanc_ae)
    zone = ZoneInfo(settings.clinic_timezone)
    consoles = [
        threading.Thread(
            target=console_loop,
            args=(
                Console(station, settings.ae_title, timeout=TIMEOUT),
                settings.dicom_port,
                console_query(today, station),
                None if station in scanners else shape.items_today,
                until,
                tallies.consoles,
            ),
            name=f"console-{station}",
        )
        for station in shape.stations[: shape.consoles]
    ]
    return consoles + [
        threading.Thread(
            target=scanner_loop,
            args=(
                TimedScanner(station, ris, pacs, tallies),
                booked[station],
                plan,
                zone,
                until,
                exams,
            ),
            name=f"scanner-{station}",
        )
        for station in scanners
    ]


def read_logs(paths: Iterable[Path]) -> tuple[list[str], int, int]:
    """The error lines of the site's logs (the first few), how many, and how many lines
    name a patient of the bench."""
    problems: list[str] = []
    count = names = 0
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if LOG_PROBLEMS.search(line):
                    count += 1
                    if len(problems) < REASONS_KEPT:
                        problems.append(f"{path.name}: {line.rstrip()[:300]}")
                names += f"{PATIENT_PREFIX}^" in line.lower()
    return problems, count, names


# ---------------------------------------------------------------- output


def report(result: LoadResult) -> list[str]:
    """The per-interface table, the failures, the pipeline and the log, as lines."""
    shape = result.shape
    lines = [
        f"mixed load, {result.seconds:.0f} s on {result.database}: {shape.consoles} consoles, "
        f"{shape.scanners} scanners ({result.images_per_exam} images an examination), "
        f"{shape.api_clients} API clients; {os.cpu_count()} CPU cores shared by the site and "
        f"the clients",
        "",
        f"{'interface':<40}{'requests':>9}{'failed':>7}{'per s':>8}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    lines.append("-" * len(lines[-1]))
    for tally in result.tallies.all():
        lines.append(
            f"{tally.interface:<40}{tally.requests:>9}{tally.failed:>7}{tally.rate:>8.1f}"
            f"{tally.ms(0.5):>9.1f}{tally.ms(0.95):>9.1f}{tally.ms(0.99):>9.1f}"
            f"{tally.ms(1.0):>9.1f}"
        )
    for tally in result.tallies.all():
        for reason in tally.reasons:
            lines.append(f"  FAILED {tally.interface}: {reason}")
    lines.append(f"failed requests: {result.failed}")
    for station in result.out_of_patients:
        lines.append(f"  note: {station} examined every patient booked for it before the end")
    check = result.pipeline
    verdicts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(check.verdicts.items()))
    lines += [
        "",
        f"pipeline: {check.examinations} examinations completed by the scanners; recorded "
        f"{check.recorded}, ready for reading {check.ready}, QC {verdicts or '-'}; routed "
        f"{check.routed} ({check.to_a_radiologist} to a radiologist)",
    ]
    if check.lags:
        lines.append(
            f"  N-SET COMPLETED -> routed: p50 {percentile(check.lags, 0.5):.2f} s, "
            f"p95 {percentile(check.lags, 0.95):.2f} s, max {max(check.lags):.2f} s; "
            + (
                f"every one routed {check.caught_up:.1f} s after the load stopped"
                if check.complete
                else f"NOT every one routed {result.shape.grace:g} s after the load stopped"
            )
        )
    for behind in check.behind[:REASONS_KEPT]:
        lines.append(f"  NOT ROUTED {behind}")
    lines.append(
        f"logs (site, Orthanc): {result.log_problem_count} error lines, "
        f"{result.names_in_log} naming a patient"
    )
    lines += [f"  {line}" for line in result.log_problems]
    lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.phases.items()))
    return lines


def headline(result: LoadResult) -> list[Figure]:
    """Throughput and p95 of the main interfaces under the mixed load, the failures, and
    the examinations routed with their lag."""
    shape = result.shape
    tallies = result.tallies
    load = (
        f"{shape.consoles} consoles + {shape.scanners} scanners + {shape.api_clients} API clients"
    )
    figures = []
    for tally, unit in (
        (tallies.consoles, "queries/s"),
        (tallies.create, "N-CREATE/s"),
        (tallies.images, "images/s"),
        (tallies.set_, "N-SET/s"),
        (tallies.lists, "req/s"),
    ):
        figures.append(Figure(f"{tally.interface}, {load}", tally.rate, unit))
        figures.append(Figure(f"{tally.interface}, {load}, p95", tally.ms(0.95), "ms"))
    check = result.pipeline
    figures += [
        Figure(
            f"failed requests, every interface, {result.seconds:.0f} s of mixed load",
            result.failed,
            "requests",
            target="0",
            verdict=mark(result.failed == 0),
        ),
        Figure(
            f"examinations routed after the mixed load (grace {shape.grace:g} s)",
            check.routed,
            "exams",
            f"completed by the scanners: {check.examinations}",
            check.routed / check.examinations if check.examinations else None,
            "all",
            mark(check.complete),
        ),
        Figure(
            "N-SET COMPLETED -> routed under the mixed load, median",
            statistics.median(check.lags) if check.lags else math.nan,
            "s",
        ),
    ]
    return figures


# ---------------------------------------------------------------- entry


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="of load (default 60)")
    parser.add_argument("--consoles", type=int, default=20)
    parser.add_argument("--scanners", type=int, default=4)
    parser.add_argument("--api-clients", type=int, default=50)
    parser.add_argument(
        "--grace", type=float, default=120.0, help="for the pipeline after the load (s)"
    )
    parser.add_argument("--database-url", default="", help="PostgreSQL: a fresh schema")
    parser.add_argument("--quick", action="store_true", help="smoke run: 15 s")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 15.0
    if args.consoles < 0 or args.scanners < 0 or args.api_clients < 1 or args.seconds <= 0:
        parser.error("--consoles and --scanners >= 0, --api-clients >= 1, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    shape = Shape(args.seconds, args.consoles, args.scanners, args.api_clients, args.grace)
    try:
        with tempfile.TemporaryDirectory(prefix="load_bench_") as tmp:
            workdir = Path(tmp)
            overrides = site_overrides(workdir / "site", shape)
            with pipeline_runtime(args.database_url, workdir / "var", **overrides) as runtime:
                result = run_load(runtime, shape, workdir)
    except BenchError as exc:
        print(f"FAILED: {exc}")
        return 1
    print("\n".join(report(result)))
    write_figures(args.json, "load", headline(result))
    return 0 if result.failed == 0 and result.pipeline.complete else 1


if __name__ == "__main__":
    sys.exit(main())
