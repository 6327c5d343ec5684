"""MPPS benchmark: how fast an examination's progress reaches the API, and MPPS throughput.

Everything runs in this process against a fresh database: our DICOM server (worklist + MPPS,
``start_dicom_server``) on a free port and the API under uvicorn in a background thread, so
every status read is a real HTTP request. The consoles are pynetdicom SCUs that open a new
association per operation, as most scanner consoles do.

1. Sequential, one exam at a time (``--exams``, default 200): the console queries the
   worklist for the accession (C-FIND), sends N-CREATE (IN PROGRESS), then polls
   ``GET /api/procedures/{accession}`` until the step shows STARTED; then N-SET (COMPLETED,
   two performed series) and polls until COMPLETED. A C-ECHO association is timed before
   every exam as the floor, so machine noise hits floor and MPPS alike.

   * "round trip": associate, request, response, release (what the console waits for);
   * "visible": from the start of that association until the first GET that shows the
     new status (the GETs start after the release).

2. Concurrent (``--consoles``, default 8): each console thread runs its share of fresh
   exams (query + N-CREATE + N-SET, a new association each) at once. MPPS operations per
   second count N-CREATE and N-SET. Any non-0x0000 status, refused association, a query
   not finding exactly one item, or a step not COMPLETED in the API afterwards is a failure,
   and the bench exits 1.

The console turns Nagle off (``--nagle`` leaves it on). Our SCP turns it off on every
association itself: a response with a dataset is two PDUs, and with Nagle on the second
waited for the console's delayed ACK (about 40 ms an answer; found by this bench).

    .venv/bin/python bench/mpps.py                 # 200 exams, 8 consoles, SQLite
    .venv/bin/python bench/mpps.py --quick         # 20 exams, 2 consoles
    .venv/bin/python bench/mpps.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt

from common import (
    HOST,
    ROOT,
    Figure,
    add_json_option,
    free_port,
    fresh_database,
    mark,
    p95,
    slot_start,
    synthetic_order,
    write_figures,
)
from mri_pipeline.api.app import create_app
from mri_pipeline.config import Settings
from mri_pipeline.dicom.console_messages import (
    PerformedSeries,
    mpps_final,
    mpps_in_progress,
    worklist_query,
)
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime, build_runtime
from mri_pipeline.services.accounts import add_user
from mri_pipeline.services.orders import create_order

CALLED_AE = "LSP_RIS"
STATIONS = ["MRI1", "MRI2"]
# SOP Class UIDs as strings: pynetdicom.sop_class builds its names at run time (mypy sees none)
VERIFICATION = "1.2.840.10008.1.1"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"
PENDING = (0xFF00, 0xFF01)
POLL_TIMEOUT = 10.0
PROTOCOL_NAMES = ["SAG T1 TSE", "SAG T2 TSE", "AX T2 TSE"]


# ---------------------------------------------------------------- set-up


class ApiServer:
    """The FastAPI app under uvicorn in a background thread, and the headers of a client
    logged in with ``token``."""

    def __init__(self, runtime: Runtime, port: int, token: str) -> None:
        config = uvicorn.Config(
            create_app(runtime),
            host=HOST,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://{HOST}:{port}"
        self.headers = {"Authorization": f"Bearer {token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class Booked:
    accession: str
    station: str


def book_exams(runtime: Runtime, count: int, first_day: date, offset: int) -> list[Booked]:
    """``count`` orders at explicit slots, alternating MRI1/MRI2, 28 slots a station-day."""
    booked = []
    for index in range(offset, offset + count):
        station = STATIONS[index % len(STATIONS)]
        request = synthetic_order(
            index + 1,
            "bench",
            indication="radiculopathy",
            station=station,
            start=slot_start(first_day, index // len(STATIONS)),
        )
        with runtime.sessions() as session, session.begin():
            order = create_order(session, runtime.desk, request)
        booked.append(Booked(order.accession_number, order.station_ae_title))
    return booked


# ---------------------------------------------------------------- the console


def disable_nagle(event: Any) -> None:
    """EVT_CONN_OPEN: send each PDU at once, as a console that sets TCP_NODELAY does."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class OperationFailed(Exception):
    pass


@dataclass
class Timed:
    seconds: float
    status: int
    result: Any = None


class Console:
    """A scanner console as an SCU: one association per operation, like most consoles."""

    def __init__(self, port: int, ae_title: str, *, nagle: bool) -> None:
        self.port = port
        self.ae = AE(ae_title=ae_title)
        self.ae.add_requested_context(VERIFICATION)
        self.ae.add_requested_context(MODALITY_WORKLIST_FIND)
        self.ae.add_requested_context(MPPS)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 60
        self.handlers: list[Any] = [] if nagle else [(evt.EVT_CONN_OPEN, disable_nagle)]

    def _timed(self, send: Callable[[Any], tuple[int, Any]]) -> Timed:
        started = time.perf_counter()
        assoc = self.ae.associate(HOST, self.port, ae_title=CALLED_AE, evt_handlers=self.handlers)
        if not assoc.is_established:
            raise OperationFailed(f"association not established ({self.ae.ae_title})")
        try:
            status, result = send(assoc)
        finally:
            assoc.release()
        return Timed(time.perf_counter() - started, status, result)

    def echo(self) -> Timed:
        def send(assoc: Any) -> tuple[int, Any]:
            status = assoc.send_c_echo()
            return (int(status.Status) if status else -1), None

        return self._timed(send)

    def find(self, accession: str) -> Timed:
        query = worklist_query(station=self.ae.ae_title, accession=accession, modality="MR")

        def send(assoc: Any) -> tuple[int, Any]:
            items: list[Dataset] = []
            final = -1
            for status, identifier in assoc.send_c_find(query, MODALITY_WORKLIST_FIND):
                if not status:
                    return -1, items
                if status.Status in PENDING:
                    items.append(identifier)
                else:
                    final = int(status.Status)
            return final, items

        return self._timed(send)

    def n_create(self, uid: str, dataset: Dataset) -> Timed:
        def send(assoc: Any) -> tuple[int, Any]:
            status, _ = assoc.send_n_create(dataset, MPPS, uid)
            return (int(status.Status) if status else -1), None

        return self._timed(send)

    def n_set(self, uid: str, modification: Dataset) -> Timed:
        def send(assoc: Any) -> tuple[int, Any]:
            status, _ = assoc.send_n_set(modification, MPPS, uid)
            return (int(status.Status) if status else -1), None

        return self._timed(send)


def in_progress(item: Dataset, station: str, now: datetime) -> Dataset:
    """The N-CREATE a console sends for the worklist item it chose."""
    pps_id = f"PPS{uuid.uuid4().hex[:8].upper()}"
    return mpps_in_progress([item], station=station, started=now, pps_id=pps_id)


def completed(now: datetime, series: int = 2, images: int = 3) -> Dataset:
    """The N-SET that closes the step, listing every series and image made."""
    made = [
        PerformedSeries.made(PROTOCOL_NAMES[n % len(PROTOCOL_NAMES)], images) for n in range(series)
    ]
    return mpps_final(made, ended=now)


def expect(timed: Timed, what: str, accession: str) -> Timed:
    if timed.status != 0x0000:
        raise OperationFailed(f"{what} {accession}: status 0x{timed.status & 0xFFFF:04X}")
    return timed


def query_item(console: Console, exam: Booked) -> tuple[Timed, Dataset]:
    timed = expect(console.find(exam.accession), "C-FIND", exam.accession)
    if len(timed.result) != 1:
        raise OperationFailed(f"C-FIND {exam.accession}: {len(timed.result)} items, expected 1")
    item: Dataset = timed.result[0]
    return timed, item


# ---------------------------------------------------------------- phase 1: latency


@dataclass
class Latencies:
    echo: list[float] = field(default_factory=list)
    find: list[float] = field(default_factory=list)
    create: list[float] = field(default_factory=list)
    started_visible: list[float] = field(default_factory=list)
    set_: list[float] = field(default_factory=list)
    completed_visible: list[float] = field(default_factory=list)
    get: list[float] = field(default_factory=list)
    first_get_hits: int = 0
    gets: int = 0


def step_statuses(client: httpx.Client, accession: str) -> list[str]:
    answer = client.get(f"/api/procedures/{accession}")
    answer.raise_for_status()
    return [step["status"] for step in answer.json()["steps"]]


def wait_until(
    client: httpx.Client, accession: str, wanted: str, started: float, lat: Latencies
) -> tuple[float, bool]:
    """Poll the API tightly; seconds from ``started`` and whether the first GET showed it."""
    first = True
    deadline = time.perf_counter() + POLL_TIMEOUT
    while True:
        before = time.perf_counter()
        statuses = step_statuses(client, accession)
        after = time.perf_counter()
        lat.get.append(after - before)
        lat.gets += 1
        if statuses == [wanted]:
            return after - started, first
        if after > deadline:
            raise OperationFailed(f"{accession}: API still shows {statuses}, wanted {wanted}")
        first = False


def run_sequential(
    exams: list[Booked], port: int, api: ApiServer, nagle: bool, failures: list[str]
) -> Latencies:
    lat = Latencies()
    consoles = {station: Console(port, station, nagle=nagle) for station in STATIONS}
    with api.client() as client:
        for exam in exams:
            console = consoles[exam.station]
            try:
                lat.echo.append(expect(console.echo(), "C-ECHO", exam.accession).seconds)
                found, item = query_item(console, exam)
                lat.find.append(found.seconds)
                uid = generate_uid()
                dataset = in_progress(item, exam.station, datetime.now())
                before = time.perf_counter()
                lat.create.append(
                    expect(console.n_create(uid, dataset), "N-CREATE", exam.accession).seconds
                )
                seconds, hit = wait_until(client, exam.accession, "STARTED", before, lat)
                lat.started_visible.append(seconds)
                lat.first_get_hits += hit
                modification = completed(datetime.now())
                before = time.perf_counter()
                lat.set_.append(
                    expect(console.n_set(uid, modification), "N-SET", exam.accession).seconds
                )
                seconds, hit = wait_until(client, exam.accession, "COMPLETED", before, lat)
                lat.completed_visible.append(seconds)
                lat.first_get_hits += hit
            except (OperationFailed, httpx.HTTPError) as exc:
                failures.append(f"sequential: {exc}")
    return lat


# ---------------------------------------------------------------- phase 2: throughput


@dataclass
class Throughput:
    consoles: int
    exams: int
    seconds: float
    mpps_ops: int
    create: list[float]
    set_: list[float]
    find: list[float]


def run_concurrent(
    shares: list[list[Booked]], port: int, api: ApiServer, nagle: bool, failures: list[str]
) -> Throughput:
    lock = threading.Lock()
    barrier = threading.Barrier(len(shares) + 1)
    create: list[float] = []
    set_: list[float] = []
    find: list[float] = []
    ops = [0]

    def console_thread(number: int, share: list[Booked]) -> None:
        consoles = {s: Console(port, s, nagle=nagle) for s in STATIONS}
        barrier.wait()
        for exam in share:
            console = consoles[exam.station]
            try:
                found, item = query_item(console, exam)
                uid = generate_uid()
                created = console.n_create(uid, in_progress(item, exam.station, datetime.now()))
                with lock:
                    ops[0] += 1
                expect(created, "N-CREATE", exam.accession)
                modified = console.n_set(uid, completed(datetime.now()))
                with lock:
                    ops[0] += 1
                expect(modified, "N-SET", exam.accession)
                with lock:
                    find.append(found.seconds)
                    create.append(created.seconds)
                    set_.append(modified.seconds)
            except Exception as exc:  # a console counts every failure and carries on
                with lock:
                    failures.append(f"console {number}: {type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=console_thread, args=(n, share), name=f"console-{n}")
        for n, share in enumerate(shares, 1)
    ]
    for thread in threads:
        thread.start()
    started = 0.0
    try:
        barrier.wait(timeout=60)
        started = time.perf_counter()
    finally:
        for thread in threads:
            thread.join()
    seconds = time.perf_counter() - started

    # Afterwards every step must read COMPLETED through the API.
    with api.client() as client:
        for exam in (e for share in shares for e in share):
            try:
                statuses = step_statuses(client, exam.accession)
            except httpx.HTTPError as exc:
                failures.append(f"concurrent check {exam.accession}: {exc}")
                continue
            if statuses != ["COMPLETED"]:
                failures.append(f"concurrent check {exam.accession}: API shows {statuses}")
    exams = sum(len(share) for share in shares)
    return Throughput(len(shares), exams, seconds, ops[0], create, set_, find)


# ---------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def print_latencies(lat: Latencies) -> None:
    floor = statistics.median(lat.echo) if lat.echo else float("nan")
    rows = [
        ("C-ECHO association (floor)", lat.echo),
        ("C-FIND by accession", lat.find),
        ("N-CREATE round trip", lat.create),
        ("N-CREATE -> STARTED visible", lat.started_visible),
        ("N-SET round trip", lat.set_),
        ("N-SET -> COMPLETED visible", lat.completed_visible),
        ("GET /api/procedures/{acc}", lat.get),
    ]
    print()
    title = "sequential (one exam at a time)"
    print(f"{title:<32}{'n':>6}{'median ms':>11}{'p95 ms':>10}{'x echo':>9}")
    print("-" * 68)
    for name, values in rows:
        if not values:
            print(f"{name:<32}{0:>6}{'-':>11}{'-':>10}{'-':>9}")
            continue
        median = statistics.median(values)
        print(
            f"{name:<32}{len(values):>6}{ms(median):>11}{ms(p95(values)):>10}{median / floor:>9.2f}"
        )
    transitions = len(lat.started_visible) + len(lat.completed_visible)
    print(
        f"first GET already showed the new status: {lat.first_get_hits}/{transitions} "
        f"({lat.gets} GETs in all)"
    )
    print("round trip = associate + request + response + release; visible = from the start")
    print("of that association until the first GET (after the release) showing the status")


def print_throughput(result: Throughput, failures: int) -> None:
    print()
    print(f"concurrent: {result.consoles} consoles, {result.exams} exams")
    print("-" * 68)
    print(f"{'wall time':<32}{result.seconds:>10.2f} s")
    print(f"{'MPPS operations (N-CREATE+N-SET)':<32}{result.mpps_ops:>10}")
    print(f"{'MPPS operations per second':<32}{result.mpps_ops / result.seconds:>10.1f}")
    print(f"{'exams per second':<32}{result.exams / result.seconds:>10.1f}")
    for name, values in (
        ("C-FIND under load", result.find),
        ("N-CREATE under load", result.create),
        ("N-SET under load", result.set_),
    ):
        if values:
            print(
                f"{name:<32}{ms(statistics.median(values)):>10} ms median"
                f"{ms(p95(values)):>10} ms p95"
            )
    print(f"{'failures':<32}{failures:>10}")


def headline(lat: Latencies, result: Throughput, failures: int) -> list[Figure]:
    """The report rows: each step's median against the C-ECHO floor, the throughput, and
    the failures (any fails the run)."""
    floor = statistics.median(lat.echo) if lat.echo else math.nan
    reference = f"C-ECHO association {floor * 1000:.2f} ms"
    figures = []
    for name, values in (
        ("C-FIND by accession", lat.find),
        ("N-CREATE round trip", lat.create),
        ("N-CREATE -> STARTED seen in the API", lat.started_visible),
        ("N-SET round trip", lat.set_),
        ("N-SET -> COMPLETED seen in the API", lat.completed_visible),
    ):
        median = statistics.median(values) if values else math.nan
        figures.append(
            Figure(
                f"{name}, median",
                median * 1000,
                "ms",
                reference,
                median / floor,
            )
        )
    figures.append(
        Figure(
            f"N-CREATE + N-SET, {result.consoles} consoles at once",
            result.mpps_ops / result.seconds if result.seconds else math.nan,
            "ops/s",
        )
    )
    figures.append(
        Figure("failed operations", failures, "ops", target="0", verdict=mark(failures == 0))
    )
    return figures


# ---------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exams", type=int, default=200, help="sequential exams (default 200)")
    parser.add_argument("--consoles", type=int, default=8, help="concurrent consoles (default 8)")
    parser.add_argument(
        "--per-console", type=int, default=0, help="exams per console (default exams/consoles)"
    )
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 exams, 2 consoles")
    parser.add_argument(
        "--nagle", action="store_true", help="leave Nagle on in the console (its default)"
    )
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.exams, args.consoles = 20, 2
    if args.exams < 1 or args.consoles < 1:
        parser.error("--exams and --consoles must be at least 1")
    if args.per_console < 1:
        args.per_console = max(1, args.exams // args.consoles)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    backend = args.database_url.split(":", 1)[0] if args.database_url else "sqlite (temporary)"
    print(
        f"MPPS benchmark: {os.cpu_count()} CPU cores (os.cpu_count()), "
        f"Python {sys.version.split()[0]}, database {backend}"
    )
    print(
        "TCP: Nagle "
        + ("left on in the console (--nagle)" if args.nagle else "off in the console")
        + "; our SCP turns it off itself"
    )
    failures: list[str] = []
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="mpps_bench_") as tmp,
        fresh_database(args.database_url, Path(tmp)) as url,
    ):
        settings = Settings(
            database_url=url,
            var_dir=Path(tmp),
            protocols_file=ROOT / "worklist/protocols.yaml",
            nodes_file=ROOT / "dicom_nodes/nodes.yaml",
            dicom_host=HOST,
            dicom_port=free_port(),
            api_host=HOST,
            api_port=free_port(),
        )
        runtime = build_runtime(settings)
        dicom: Any = None
        api: ApiServer | None = None
        try:
            first_day = runtime.desk.local_now().date() + timedelta(days=1)
            concurrent_total = args.consoles * args.per_console
            started = time.perf_counter()
            sequential = book_exams(runtime, args.exams, first_day, 0)
            rest = book_exams(runtime, concurrent_total, first_day, args.exams)
            booking = time.perf_counter() - started
            shares = [rest[n :: args.consoles] for n in range(args.consoles)]
            print(
                f"booked {args.exams + concurrent_total} orders on {', '.join(STATIONS)} "
                f"from {first_day.isoformat()} in {booking:.1f} s"
            )
            config = DicomServerConfig(
                CALLED_AE, HOST, settings.dicom_port, True, settings.max_associations
            )
            dicom = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
            # The radiographer watching the examination; the API answers no one else.
            with runtime.sessions.begin() as session:
                _, token = add_user(
                    session, "bench.radiographer", Role.RADIOGRAPHER, runtime.clock()
                )
            api = ApiServer(runtime, settings.api_port, token)
            api.start()
            print(f"DICOM {CALLED_AE} @ {HOST}:{settings.dicom_port}, API {api.url}")

            lat = run_sequential(sequential, settings.dicom_port, api, args.nagle, failures)
            print_latencies(lat)
            before = len(failures)
            result = run_concurrent(shares, settings.dicom_port, api, args.nagle, failures)
            print_throughput(result, len(failures) - before)
            figures = headline(lat, result, len(failures))
        finally:
            if dicom is not None:
                dicom.shutdown()
            if api is not None:
                api.stop()
            runtime.close()
    write_figures(args.json, "mpps", figures)
    print()
    if failures:
        print(f"FAILED: {len(failures)} operation(s)")
        for line in failures[:20]:
            print(f"  {line}")
        return 1
    print("all operations succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
