"""QC benchmark: how long image QC takes per series and per examination, and how soon
after the last image the radiographer sees the result.

1. In process, no network (``--runs``, default 20, after one warm-up run that is not
   counted). The stages ``QcWorker.check`` runs, timed one by one on the files as Orthanc
   hands them back (Explicit VR Little Endian, as the console sends them):

   * ``20x256x256``: the sample ``AX T2 TSE`` of the normal case;
   * ``40x512x512``: the same images upsampled two-fold in plane (pixel spacing halved,
     each pixel repeated 2x2) and two-fold through the stack (a slice half-way between
     each pair, ImagePositionPatient stepping half the original spacing);

   decode (``load_series_bytes``), ``measure``, ``check_series`` against LSP-STD of
   ``worklist/protocols.yaml``, ``thumbnail_png``, and their total (median and p95). Then a
   whole examination: every series of the normal sample case against LSP-STD, with
   ``missing_series`` and ``examination_verdict``. Target: the 20x256x256 series checked in
   under 0.3 s (median), so QC never holds up the radiographer.

2. The real pipeline (``--exams``, default 5): a fresh Orthanc, our DICOM server (MWL +
   MPPS), the ingest worker and the QC worker in threads (as ``mri-pipeline up`` runs them:
   the configured poll interval for both, QC's default ``quiet_seconds`` and the real clock
   ``datetime.now(UTC)``), a temporary SQLite database. A scanner console on MRI1 performs
   booked screening examinations (LSP-SCREEN, the normal sample images) one after another.
   From the console's last C-STORE acknowledged (its progress callback) the bench polls the
   database every 20 ms until (a) each series' ``received_series.qc_outcome`` and (b) the
   study's ``received_studies.qc_verdict`` are set. Beside the polled times it reports the
   worker's own time stamps (QC results' ``checked_at``, the verdict event), when each
   series became due, and how the worker's checks split into fetching the files from
   Orthanc and the rest (decode, measure, judge, store). Last, a probe fetches the largest
   series of the last examination from the idle Orthanc as QC does (``series_files``) and
   with the same GETs asking for no content coding (``Accept-Encoding: identity``).

   A series is checked once its images have been quiet for ``quiet_seconds`` (3 s) or its
   study is complete (MPPS COMPLETED, then ingest marks it ready for reading); the verdict
   needs the study ready and every series checked. An examination stored in less than
   3 s is therefore checked only when its MPPS has made it ready: the verdict's latency is
   the MPPS -> ready latency plus the QC passes over its series.

Targets are reported PASS/MISS; the exit status is 1 only when an operation failed.

    .venv/bin/python bench/qc.py                        # 20 runs, 5 examinations, SQLite
    .venv/bin/python bench/qc.py --quick                # smoke run: 5 runs, 2 examinations
    .venv/bin/python bench/qc.py --in-process-only      # no Orthanc
    .venv/bin/python bench/qc.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from common import (
    HOST,
    ROOT,
    BenchError,
    Figure,
    add_json_option,
    as_utc,
    mark,
    p95,
    pipeline_runtime,
    sample_paths,
    slot_start,
    synthetic_order,
    write_figures,
)
from mri_pipeline.db.models import QcResult, ReceivedSeries, ReceivedStudy, StepEvent
from mri_pipeline.dicom.exam_card import exam_card
from mri_pipeline.dicom.scanner import Peer, ScannerConsole, explicit_file_meta, perform
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.domain.protocols import Catalogue, Protocol
from mri_pipeline.domain.qc import (
    CheckResult,
    ExamOutcome,
    Outcome,
    check_series,
    examination_verdict,
    missing_series,
)
from mri_pipeline.imaging.qc_measures import measure, thumbnail_png
from mri_pipeline.imaging.series_images import load_series_bytes
from mri_pipeline.orthanc import OrthancClient, OrthancProcess, orthanc_credentials
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.orders import create_order
from mri_pipeline.services.qc import QcWorker
from mri_pipeline.services.reference import load_catalogue

STATION = "MRI1"  # a scanner of dicom_nodes/nodes.yaml: Orthanc accepts its C-STOREs
CASE = "normal"
SERIES_PROTOCOL = "LSP-STD"  # the in-process checks, and the whole sample examination
EXAM_PROTOCOL = "LSP-SCREEN"  # what the indication "screening" books
INDICATION = "screening"
SMALL_SERIES = "AX T2 TSE"  # 37 slices of 256x256
LARGE_SLICES = 40
STAGES = ("decode", "measure", "check_series", "thumbnail_png", "total")
DB_POLL = 0.02
QC_TIMEOUT = 60.0
SERIES_TARGET = 0.3  # seconds, median QC of a 20x256x256 series
NEVER = datetime.min.replace(tzinfo=UTC)


# ---------------------------------------------------------------- series as Orthanc holds them


def file_bytes(ds: Dataset) -> bytes:
    """``ds`` as the console sends it and Orthanc stores it: Explicit VR Little Endian."""
    ds.file_meta = explicit_file_meta(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def upsampled_series(sources: Sequence[Dataset], slices: int) -> list[Dataset]:
    """``sources`` (one stack) at twice the matrix and ``slices`` slices at half the
    spacing: every other slice an original, the ones between the mean of their
    neighbours; pixel spacing halved, each pixel repeated 2x2, positions consistent."""
    ordered = sorted(sources, key=lambda ds: int(ds.InstanceNumber))
    first = ordered[0]
    orientation = [float(v) for v in first.ImageOrientationPatient]
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, column)
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    step = float(
        np.dot(np.array([float(v) for v in ordered[1].ImagePositionPatient]) - origin, normal)
    )
    half_step = step / 2
    between_rows, between_columns = (float(v) for v in first.PixelSpacing)
    # The centre of the first new pixel: a quarter of an old pixel up and left of the old one.
    corner = origin - row * between_columns / 4 - column * between_rows / 4
    planes = [ds.pixel_array.astype(np.float64) for ds in ordered]
    last = len(planes) - 1
    series_uid = generate_uid()
    made = []
    for k in range(slices):
        index, between = divmod(k, 2)
        low, high = planes[min(index, last)], planes[min(index + 1, last)]
        plane = (low + high) / 2 if between else low
        pixels = np.repeat(np.repeat(np.rint(plane).astype("<u2"), 2, axis=0), 2, axis=1)
        ds = copy.deepcopy(ordered[min(index, last)])
        position = corner + normal * half_step * k
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = k + 1
        ds.InStackPositionNumber = k + 1
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelSpacing = [_ds(between_rows / 2), _ds(between_columns / 2)]
        ds.ImagePositionPatient = [_ds(float(v)) for v in position]
        ds.SliceLocation = _ds(float(np.dot(position, normal)))
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds(abs(half_step))
        ds.AcquisitionMatrix = [0, pixels.shape[1], pixels.shape[0], 0]
        ds.NumberOfPhaseEncodingSteps = pixels.shape[1]
        ds.PixelData = pixels.tobytes()
        made.append(ds)
    return made


@dataclass(frozen=True)
class BenchSeries:
    name: str
    description: str
    files: list[bytes]

    @property
    def megabytes(self) -> float:
        return sum(len(f) for f in self.files) / 1e6


def bench_series() -> tuple[BenchSeries, BenchSeries, list[BenchSeries], list[bytes]]:
    """The 20x256x256 and 40x512x512 series, every series of the normal case, and the
    committed (Deflated) files of the small series."""
    paths = sample_paths(CASE)
    small_paths = paths[SMALL_SERIES]
    small = [dcmread(path) for path in small_paths]
    rows, columns = int(small[0].Rows), int(small[0].Columns)
    large = upsampled_series(small, LARGE_SLICES)
    exam = [
        BenchSeries(description, description, [file_bytes(dcmread(p)) for p in series_paths])
        for description, series_paths in paths.items()
    ]
    return (
        BenchSeries(f"{len(small)}x{rows}x{columns}", SMALL_SERIES, [file_bytes(d) for d in small]),
        BenchSeries(
            f"{len(large)}x{int(large[0].Rows)}x{int(large[0].Columns)}",
            SMALL_SERIES,
            [file_bytes(d) for d in large],
        ),
        exam,
        [path.read_bytes() for path in small_paths],
    )


# ---------------------------------------------------------------- phase 1: in process


def check_once(
    files: Sequence[bytes], protocol: Protocol
) -> tuple[dict[str, float], list[CheckResult]]:
    """What ``QcWorker.check`` computes for one series, stage by stage (seconds)."""
    started = time.perf_counter()
    images = load_series_bytes(files)
    decoded = time.perf_counter()
    measured = measure(images)
    measured_at = time.perf_counter()
    results = check_series(measured, protocol, thresholds=protocol.qc_thresholds)
    checked = time.perf_counter()
    thumbnail_png(images)
    done = time.perf_counter()
    seconds = {
        "decode": decoded - started,
        "measure": measured_at - decoded,
        "check_series": checked - measured_at,
        "thumbnail_png": done - checked,
        "total": done - started,
    }
    return seconds, results


def examine_once(exam: Sequence[BenchSeries], protocol: Protocol) -> tuple[float, ExamOutcome, int]:
    """Every series checked, missing series, the verdict: seconds, verdict, results."""
    started = time.perf_counter()
    results: list[CheckResult] = []
    for series in exam:
        results += check_once(series.files, protocol)[1]
    results += missing_series(protocol, [series.description for series in exam])
    verdict = examination_verdict(results)
    return time.perf_counter() - started, verdict.outcome, len(results)


def findings(results: Sequence[CheckResult]) -> str:
    problems = [f"{r.outcome.value}: {r.message}" for r in results if r.outcome is not Outcome.PASS]
    passed = sum(r.outcome is Outcome.PASS for r in results)
    return f"{passed} of {len(results)} checks PASS" + "".join(f"; {p}" for p in problems)


@dataclass
class InProcess:
    stages: dict[str, dict[str, list[float]]]  # series name -> stage -> seconds per run
    exam_seconds: list[float]
    exam_verdict: ExamOutcome
    small: BenchSeries


def run_in_process(args: argparse.Namespace, catalogue: Catalogue) -> InProcess:
    protocol = catalogue.protocol(SERIES_PROTOCOL)
    small, large, exam, deflated = bench_series()
    inflated = BenchSeries("deflated", SMALL_SERIES, deflated)
    images = sum(len(s.files) for s in exam)
    print(
        f"\nin process, no network: {args.runs} runs after 1 warm-up, against {SERIES_PROTOCOL}; "
        "files Explicit VR LE as Orthanc holds them"
    )
    for series in (small, large):
        print(f"  {series.name} {series.description}: {series.megabytes:.1f} MB, ", end="")
        print(findings(check_once(series.files, protocol)[1]))
    _, outcome, count = examine_once(exam, protocol)
    print(
        f"  whole examination, {CASE} case: {len(exam)} series, {images} images, "
        f"{sum(s.megabytes for s in exam):.1f} MB; verdict {outcome.value} from {count} results"
    )
    stages: dict[str, dict[str, list[float]]] = {
        s.name: {stage: [] for stage in STAGES} for s in (small, large, inflated)
    }
    exam_seconds: list[float] = []
    for _ in range(args.runs):
        for series in (small, large, inflated):
            seconds, _ = check_once(series.files, protocol)
            for stage, value in seconds.items():
                stages[series.name][stage].append(value)
        exam_seconds.append(examine_once(exam, protocol)[0])

    header = f"  {'ms':<44}{'median':>9}{'p95':>9}"
    print(header)
    for series in (small, large):
        print(f"  {series.name} {series.description} ({len(series.files)} files)")
        for stage in STAGES:
            values = stages[series.name][stage]
            label = {"decode": "decode (load_series_bytes)"}.get(stage, stage)
            print(
                f"    {label:<42}{statistics.median(values) * 1e3:>9.1f}{p95(values) * 1e3:>9.1f}"
            )
    values = stages["deflated"]["decode"]
    print(
        f"  {'(decode of the committed Deflated files)':<44}"
        f"{statistics.median(values) * 1e3:>9.1f}{p95(values) * 1e3:>9.1f}"
    )
    print(
        f"  {f'whole examination ({len(exam)} series, {images} images)':<44}"
        f"{statistics.median(exam_seconds) * 1e3:>9.1f}{p95(exam_seconds) * 1e3:>9.1f}"
    )
    return InProcess(stages, exam_seconds, outcome, small)


# ---------------------------------------------------------------- phase 2: set-up


@dataclass(frozen=True)
class Booked:
    accession_number: str
    study_instance_uid: str


def book(runtime: Runtime, count: int) -> list[Booked]:
    """``count`` screening orders on MRI1 at explicit slots from tomorrow."""
    first_day = runtime.desk.local_now().date() + timedelta(days=1)
    booked = []
    for index in range(count):
        request = synthetic_order(
            index + 1,
            "benchqc",
            indication=INDICATION,
            station=STATION,
            start=slot_start(first_day, index),
        )
        with runtime.sessions() as session, session.begin():
            order = create_order(session, runtime.desk, request)
        booked.append(Booked(order.accession_number, order.study_instance_uid))
    return booked


class TimedOrthancClient(OrthancClient):
    """Our Orthanc client adding up the time spent fetching series' files."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        super().__init__(url, auth)
        self.fetch_seconds = 0.0
        self.fetched_bytes = 0

    def series_files(self, orthanc_series_id: str) -> list[bytes]:
        started = time.perf_counter()
        try:
            files = super().series_files(orthanc_series_id)
        finally:
            self.fetch_seconds += time.perf_counter() - started
        self.fetched_bytes += sum(len(f) for f in files)
        return files


@dataclass(frozen=True)
class CheckTiming:
    series_pk: int
    seconds: float  # QcWorker.check, wall
    cpu_seconds: float  # of the QC thread
    fetch_seconds: float  # of which: GET the series and each instance's file from Orthanc
    finished_at: datetime


class TimedQcWorker(QcWorker):
    """The QC worker noting when each series became due and what each check cost."""

    def __init__(
        self, runtime: Runtime, orthanc: TimedOrthancClient, clock: Callable[[], datetime]
    ) -> None:
        # quiet_seconds left at its default, as mri-pipeline up builds the worker.
        super().__init__(runtime.sessions, orthanc, runtime.catalogue, clock=clock)
        self.timed_client = orthanc
        self.due_at: dict[int, datetime] = {}
        self.checks: list[CheckTiming] = []
        self.judged_at: dict[str, datetime] = {}

    def due_series(self) -> list[int]:
        due = super().due_series()
        now = datetime.now(UTC)
        for series_pk in due:
            self.due_at.setdefault(series_pk, now)
        return due

    def check(self, series_pk: int) -> Outcome | None:
        fetched = self.timed_client.fetch_seconds
        started, cpu = time.perf_counter(), time.thread_time()
        outcome = super().check(series_pk)
        self.checks.append(
            CheckTiming(
                series_pk,
                time.perf_counter() - started,
                time.thread_time() - cpu,
                self.timed_client.fetch_seconds - fetched,
                datetime.now(UTC),
            )
        )
        return outcome

    def judge(self) -> list[str]:
        judged = super().judge()
        now = datetime.now(UTC)
        for uid in judged:
            self.judged_at[uid] = now
        return judged


@dataclass
class Running:
    orthanc: OrthancProcess
    url: str  # Orthanc's REST API, as the workers reach it
    auth: tuple[str, str]
    qc: TimedQcWorker
    interval: float


@contextmanager
def running_pipeline(runtime: Runtime) -> Iterator[Running]:
    """Orthanc, our DICOM server, and the ingest and QC threads, as ``mri-pipeline up``
    runs them (each worker its own Orthanc client, one poll interval)."""
    settings = runtime.settings
    orthanc = OrthancProcess(
        runtime.nodes,
        var_dir=settings.var_dir,
        base_configuration=ROOT / "orthanc.json",
        http_port=settings.orthanc_http_port,
        dicom_port=settings.orthanc_dicom_port,
    )
    server: Any = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    clients: list[OrthancClient] = []
    try:
        orthanc.start()
        config = DicomServerConfig(
            settings.ae_title, HOST, settings.dicom_port, False, settings.max_associations
        )
        server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
        auth = orthanc_credentials(settings.var_dir)
        ingest_client = OrthancClient(settings.resolved_orthanc_url(), auth)
        qc_client = TimedOrthancClient(settings.resolved_orthanc_url(), auth)
        clients += [ingest_client, qc_client]
        qc = TimedQcWorker(runtime, qc_client, clock=lambda: datetime.now(UTC))
        interval = settings.ingest_poll_interval
        for name, worker in (("ingest", runtime.ingest(ingest_client)), ("qc", qc)):
            thread = threading.Thread(
                target=worker.run,
                args=(stop,),
                kwargs={"interval": interval},
                name=name,
                daemon=True,
            )
            thread.start()
            threads.append(thread)
        yield Running(orthanc, settings.resolved_orthanc_url(), auth, qc, interval)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for client in clients:
            client.close()
        if server is not None:
            server.shutdown()
        orthanc.stop()


# ---------------------------------------------------------------- phase 2: examinations


@dataclass
class SeriesLatency:
    description: str
    images: int
    outcome: str
    seen: float  # polled: last C-STORE of the exam -> qc_outcome set, s
    stamped: float  # the same by the QC results' checked_at
    from_own_store: float  # this series' last C-STORE -> qc_outcome set (polled), s
    due: float  # last C-STORE of the exam -> the worker found the series due, s
    quiet: bool  # due before its study was ready: its images had been quiet long enough
    check: CheckTiming | None


@dataclass
class ExamLatency:
    accession_number: str
    store_seconds: float  # perform started -> last C-STORE acknowledged
    nset_seconds: float  # last C-STORE acknowledged -> perform returned (MPPS COMPLETED)
    ready_seconds: float  # last C-STORE -> ready for reading (the ingest's completed_at)
    verdict: str
    verdict_seen: float  # polled, from the last C-STORE
    verdict_stamped: float  # the verdict event's time, from the last C-STORE
    verdict_after_perform: float  # polled, from perform returning
    judge_lag: float  # last series checked -> verdict event
    series: list[SeriesLatency] = field(default_factory=list)


@dataclass
class Acks:
    """When the console saw each C-STORE acknowledged, the last one per series."""

    last_by_series: dict[str, float] = field(default_factory=dict)
    last: float = 0.0
    last_wall: datetime = NEVER

    def __call__(self, ds: Dataset) -> None:
        self.last = time.perf_counter()
        self.last_wall = datetime.now(UTC)
        self.last_by_series[str(ds.SeriesInstanceUID)] = self.last


def wait_for_verdict(
    sessions: sessionmaker[Session], study_uid: str, since: float
) -> tuple[dict[str, float], float]:
    """Poll until the study has its verdict: when each series' outcome (by UID) and the
    verdict were first seen (perf_counter)."""
    study_query = select(ReceivedStudy.id, ReceivedStudy.qc_verdict).where(
        ReceivedStudy.study_instance_uid == study_uid
    )
    seen: dict[str, float] = {}
    deadline = since + QC_TIMEOUT
    while True:
        with sessions() as session:
            study = session.execute(study_query).one_or_none()
            rows = (
                session.execute(
                    select(ReceivedSeries.series_instance_uid, ReceivedSeries.qc_outcome).where(
                        ReceivedSeries.study_pk == study.id
                    )
                ).all()
                if study is not None
                else []
            )
        now = time.perf_counter()
        for uid, outcome in rows:
            if outcome is not None:
                seen.setdefault(uid, now)
        if study is not None and study.qc_verdict is not None:
            for uid, _ in rows:
                seen.setdefault(uid, now)
            return seen, now
        if now > deadline:
            raise BenchError(
                f"study {study_uid}: no QC verdict {QC_TIMEOUT:.0f} s after the last C-STORE "
                f"({len(seen)} of {len(rows)} series checked)"
            )
        time.sleep(DB_POLL)


def exam_latency(
    running: Running,
    sessions: sessionmaker[Session],
    booked: Booked,
    acks: Acks,
    started: float,
    performed: float,
) -> ExamLatency:
    seen, verdict_seen = wait_for_verdict(sessions, booked.study_instance_uid, acks.last)
    last_wall = acks.last_wall

    def after(moment: datetime) -> float:
        return (as_utc(moment) - last_wall).total_seconds()

    with sessions() as session:
        study = session.execute(
            select(ReceivedStudy).where(
                ReceivedStudy.study_instance_uid == booked.study_instance_uid
            )
        ).scalar_one()
        ready = after(study.completed_at) if study.completed_at is not None else math.nan
        verdict_at = session.scalar(
            select(func.max(StepEvent.at)).where(
                StepEvent.study_instance_uid == booked.study_instance_uid,
                StepEvent.kind.in_([f"QC_{o.value}" for o in ExamOutcome]),
            )
        )
        checked_at = dict(
            session.execute(
                select(QcResult.series_pk, func.max(QcResult.checked_at))
                .where(QcResult.study_pk == study.id, QcResult.series_pk.is_not(None))
                .group_by(QcResult.series_pk)
            ).all()
        )
        checks = {c.series_pk: c for c in running.qc.checks}
        series = [
            SeriesLatency(
                description=s.series_description or "",
                images=s.instance_count,
                outcome=s.qc_outcome or "",
                seen=seen[s.series_instance_uid] - acks.last,
                stamped=after(checked_at[s.id]) if s.id in checked_at else math.nan,
                from_own_store=seen[s.series_instance_uid]
                - acks.last_by_series.get(s.series_instance_uid, acks.last),
                due=after(running.qc.due_at[s.id]) if s.id in running.qc.due_at else math.nan,
                quiet=s.id in running.qc.due_at
                and study.completed_at is not None
                and running.qc.due_at[s.id] < as_utc(study.completed_at),
                check=checks.get(s.id),
            )
            for s in sorted(study.series, key=lambda s: s.series_number or 0)
        ]
        verdict = study.qc_verdict or ""
    last_checked = max((after(checked_at[k]) for k in checked_at), default=math.nan)
    stamped = after(verdict_at) if verdict_at is not None else math.nan
    return ExamLatency(
        booked.accession_number,
        store_seconds=acks.last - started,
        nset_seconds=performed - acks.last,
        ready_seconds=ready,
        verdict=verdict,
        verdict_seen=verdict_seen - acks.last,
        verdict_stamped=stamped,
        verdict_after_perform=verdict_seen - performed,
        judge_lag=stamped - last_checked,
        series=series,
    )


@dataclass(frozen=True)
class FetchProbe:
    """Fetching one series from an idle Orthanc, as QC does and without content coding."""

    images: int
    megabytes: float
    encoding: str  # Content-Encoding Orthanc answers httpx's default Accept-Encoding with
    client_seconds: float  # OrthancClient.series_files, median
    identity_seconds: float  # the same GETs with Accept-Encoding: identity, median


def fetch_probe(
    running: Running, sessions: sessionmaker[Session], study_uid: str, rounds: int = 5
) -> FetchProbe:
    with sessions() as session:
        orthanc_id = session.scalars(
            select(ReceivedSeries.orthanc_id)
            .join(ReceivedStudy, ReceivedStudy.id == ReceivedSeries.study_pk)
            .where(ReceivedStudy.study_instance_uid == study_uid)
            .order_by(ReceivedSeries.instance_count.desc())
        ).first()
    if orthanc_id is None:
        raise BenchError(f"study {study_uid} has no series recorded")
    url, auth = running.url, running.auth
    with (
        OrthancClient(url, auth) as client,
        httpx.Client(base_url=url, auth=auth) as usual,
        httpx.Client(base_url=url, auth=auth, headers={"Accept-Encoding": "identity"}) as plain,
    ):
        instances = [str(i) for i in plain.get(f"/series/{orthanc_id}").json()["Instances"]]
        answer = usual.get(f"/instances/{instances[0]}/file")
        encoding = answer.headers.get("content-encoding", "none")
        by_client: list[float] = []
        by_identity: list[float] = []
        size = 0
        for _ in range(rounds):
            started = time.perf_counter()
            files = client.series_files(orthanc_id)
            by_client.append(time.perf_counter() - started)
            started = time.perf_counter()
            plain.get(f"/series/{orthanc_id}").raise_for_status()
            size = 0
            for instance in instances:
                response = plain.get(f"/instances/{instance}/file")
                response.raise_for_status()
                size += len(response.content)
            by_identity.append(time.perf_counter() - started)
    if size != sum(len(f) for f in files):
        raise BenchError("the fetch probe got different files with and without content coding")
    return FetchProbe(
        len(instances),
        size / 1e6,
        encoding,
        statistics.median(by_client),
        statistics.median(by_identity),
    )


@dataclass
class PipelineRun:
    exams: list[ExamLatency]
    quiet: float  # QcWorker's quiet_seconds
    interval: float  # the ingest's and QC's poll interval
    probe: FetchProbe


def run_exams(args: argparse.Namespace, tmp: Path) -> PipelineRun:
    """The examinations, one after another, then the fetch probe on the last one."""
    results: list[ExamLatency] = []
    with pipeline_runtime(args.database_url, tmp / "exams") as runtime:
        zone = ZoneInfo(runtime.settings.clinic_timezone)
        booked = book(runtime, args.exams)
        normal = sample_paths(CASE)
        plan = exam_card(runtime.catalogue.protocol(EXAM_PROTOCOL), normal, normal)
        images = sum(len(series.templates) for series in plan)
        with running_pipeline(runtime) as running:
            quiet = running.qc.quiet.total_seconds()
            print(
                f"\npipeline: {args.exams} examinations on {STATION}, indication {INDICATION!r} -> "
                f"{EXAM_PROTOCOL} ({len(plan)} series, {images} images of the {CASE} case); "
                f"QC quiet_seconds {quiet:g} s, ingest and QC poll interval {running.interval:g} s"
            )
            console = ScannerConsole(
                STATION,
                ris=Peer(HOST, runtime.settings.dicom_port, runtime.settings.ae_title),
                pacs=Peer(HOST, running.orthanc.dicom_port, running.orthanc.ae_title),
            )
            for exam in booked:
                [item] = console.worklist(accession=exam.accession_number)
                acks = Acks()
                started = time.perf_counter()
                done = perform(console, item, plan, clock=lambda: datetime.now(zone), progress=acks)
                performed = time.perf_counter()
                if done.failed:
                    raise BenchError(f"{exam.accession_number}: {len(done.failed)} refused")
                results.append(
                    exam_latency(running, runtime.sessions, exam, acks, started, performed)
                )
            probe = fetch_probe(running, runtime.sessions, booked[-1].study_instance_uid)
            return PipelineRun(results, quiet, running.interval, probe)


def print_exams(run: PipelineRun) -> None:
    exams, quiet, interval, probe = run.exams, run.quiet, run.interval, run.probe
    median = statistics.median
    print("  seconds from the console's last C-STORE acknowledged (progress callback):")
    header = (
        f"  {'accession':<16}{'store':>7}{'N-SET':>7}{'ready':>7}{'1st due':>8}"
        f"{'series QC':>11}{'verdict':>9}{'stamped':>9}  verdict"
    )
    print(header)
    for exam in exams:
        dues = [s.due for s in exam.series]
        print(
            f"  {exam.accession_number:<16}{exam.store_seconds:>7.2f}{exam.nset_seconds:>7.2f}"
            f"{exam.ready_seconds:>7.2f}{min(dues):>8.2f}"
            f"{min(s.seen for s in exam.series):>5.2f}-{max(s.seen for s in exam.series):<5.2f}"
            f"{exam.verdict_seen:>9.2f}{exam.verdict_stamped:>9.2f}  {exam.verdict}"
        )
    print(
        "  store: perform started -> last C-STORE acknowledged (MPPS N-CREATE + C-STOREs); "
        "N-SET: -> perform returned (MPPS COMPLETED acknowledged); ready: the ingest's "
        "completed_at; 1st due: the QC worker first found a series due; series QC: first-last "
        "series' qc_outcome seen; verdict: qc_verdict seen (polled every 20 ms); stamped: the "
        "verdict event's time (no polling delay)"
    )

    everything = [s for exam in exams for s in exam.series]
    rows = [
        ("(a) each series' QC result stored, polled", [s.seen for s in everything]),
        ("(a) ... by the results' checked_at", [s.stamped for s in everything]),
        ("(a) ... from that series' own last C-STORE", [s.from_own_store for s in everything]),
        ("(b) the examination's verdict stored, polled", [e.verdict_seen for e in exams]),
        ("(b) ... by the verdict event's time", [e.verdict_stamped for e in exams]),
        ("(b) ... from perform returning (N-SET acked)", [e.verdict_after_perform for e in exams]),
        ("study ready for reading (MPPS -> ready)", [e.ready_seconds for e in exams]),
    ]
    print(f"\n  {'from the last C-STORE acknowledged, s':<48}{'median':>9}{'max':>9}{'n':>5}")
    for name, values in rows:
        print(f"  {name:<48}{median(values):>9.3f}{max(values):>9.3f}{len(values):>5}")

    print(f"\n  per series (medians over {len(exams)} examinations), s")
    print(
        f"  {'series':<14}{'images':>7}{'due':>7}{'quiet':>7}{'check':>8}{'fetch':>8}"
        f"{'rest':>8}{'CPU':>8}{'QC seen':>9}  outcomes"
    )
    for description in dict.fromkeys(s.description for s in everything):
        mine = [s for s in everything if s.description == description]
        checks = [s.check for s in mine if s.check is not None]
        outcomes = sorted({s.outcome for s in mine})
        print(
            f"  {description:<14}{median(s.images for s in mine):>7.0f}"
            f"{median(s.due for s in mine):>7.2f}{sum(s.quiet for s in mine):>4}/{len(mine):<2}"
            f"{median(c.seconds for c in checks):>8.3f}"
            f"{median(c.fetch_seconds for c in checks):>8.3f}"
            f"{median(c.seconds - c.fetch_seconds for c in checks):>8.3f}"
            f"{median(c.cpu_seconds for c in checks):>8.3f}{median(s.seen for s in mine):>9.2f}"
            f"  {', '.join(outcomes)}"
        )
    print(
        "  due: the worker found the series due; quiet: how many were due on quiet_seconds "
        "rather than the study being ready; check: QcWorker.check wall time = fetch (GET the "
        "series, then each instance's file, one request each) + rest (decode, measure, "
        "check, thumbnail, store); CPU: the QC thread's"
    )

    checks_per_exam = [
        sum(s.check.seconds for s in exam.series if s.check is not None) for exam in exams
    ]
    fetch_per_exam = [
        sum(s.check.fetch_seconds for s in exam.series if s.check is not None) for exam in exams
    ]
    first_due = [min(s.due for s in exam.series) for exam in exams]
    ready = [e.ready_seconds for e in exams]
    waited = median(d - r for d, r in zip(first_due, ready, strict=True))
    print(
        f"\n  where the verdict's time goes (medians): MPPS -> ready {median(ready):.2f} s; "
        f"ready -> first series due {waited:.2f} s "
        f"(QC polls every {interval:g} s); the series' checks, one after another, "
        f"{median(checks_per_exam):.2f} s (of which fetching the files from Orthanc "
        f"{median(fetch_per_exam):.2f} s); last check -> verdict "
        f"{median(e.judge_lag for e in exams):.2f} s"
    )
    print(
        f"  a series is checked once its images have been quiet for quiet_seconds ({quiet:g} s) "
        "or its study is complete (MPPS COMPLETED -> ready for reading), so (b) is dominated by "
        "the MPPS -> ready latency plus the QC time"
    )
    print(
        f"  fetch probe, the largest series of the last examination ({probe.images} files, "
        f"{probe.megabytes:.1f} MB) from an idle Orthanc, median of 5: "
        f"OrthancClient.series_files {probe.client_seconds:.3f} s (Orthanc answers httpx's "
        f"default Accept-Encoding with Content-Encoding: {probe.encoding}); the same GETs with "
        f"Accept-Encoding: identity {probe.identity_seconds:.3f} s"
    )


# ---------------------------------------------------------------- report


def tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "not found"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip("$ ") if lines else "unknown"


def print_summary(in_process: InProcess, exams: Sequence[ExamLatency]) -> None:
    small = in_process.stages[in_process.small.name]["total"]
    median = statistics.median(small)
    cores = os.cpu_count() or 1
    print("\n=== summary ===")
    print(f"  {'':<52}{'median':>9}{'p95/max':>9}")
    rows: list[tuple[str, float, float]] = [
        (f"{in_process.small.name} series QC total, s", median, p95(small)),
    ]
    for name, stages in in_process.stages.items():
        if name not in (in_process.small.name, "deflated"):
            rows.append(
                (
                    f"{name} series QC total, s",
                    statistics.median(stages["total"]),
                    p95(stages["total"]),
                )
            )
    seconds = in_process.exam_seconds
    rows.append(
        ("whole sample examination QC (in process), s", statistics.median(seconds), p95(seconds))
    )
    if exams:
        series = [s.seen for e in exams for s in e.series]
        verdicts = [e.verdict_seen for e in exams]
        rows.append(
            ("last C-STORE -> each series' QC stored, s", statistics.median(series), max(series))
        )
        rows.append(
            ("last C-STORE -> examination verdict, s", statistics.median(verdicts), max(verdicts))
        )
    for name, middle, high in rows:
        print(f"  {name:<52}{middle:>9.3f}{high:>9.3f}")
    print()
    ok = median < SERIES_TARGET
    print(
        f"  [{mark(ok)}] {in_process.small.name} series QC (decode + measure + check + "
        f"thumbnail) median < {SERIES_TARGET:.1f} s: {median:.3f} s (p95 {p95(small):.3f} s)"
    )
    print(
        f"  machine: {cores} CPU cores (os.cpu_count()); Python {sys.version.split()[0]}, "
        f"numpy {np.__version__}, pydicom {version('pydicom')}, pynetdicom {version('pynetdicom')}"
    )
    if not ok:
        print("\n" + "!" * 72)
        print(f"!!! MISS: series QC median {median:.3f} s >= {SERIES_TARGET:.1f} s")
        print("!" * 72)


def headline(in_process: InProcess, exams: Sequence[ExamLatency]) -> list[Figure]:
    """The summary as report rows: QC of one series against its target, of the larger
    series and the whole examination; with the pipeline, the time to the verdict against
    the time the study took to be ready for reading."""
    small = in_process.small.name
    total = statistics.median(in_process.stages[small]["total"])
    figures = [
        Figure(
            f"{small} series QC in process, median",
            total,
            "s",
            target=f"< {SERIES_TARGET:.1f} s",
            verdict=mark(total < SERIES_TARGET),
        )
    ]
    for name, stages in in_process.stages.items():
        if name not in (small, "deflated"):
            seconds = statistics.median(stages["total"])
            figures.append(Figure(f"{name} series QC in process, median", seconds, "s"))
    figures.append(
        Figure(
            "whole sample examination QC in process, median",
            statistics.median(in_process.exam_seconds),
            "s",
        )
    )
    if exams:
        ready = statistics.median(e.ready_seconds for e in exams)
        figures.append(
            Figure(
                f"last C-STORE -> each series' QC stored, median, {len(exams)} exams",
                statistics.median(s.seen for e in exams for s in e.series),
                "s",
            )
        )
        verdict = statistics.median(e.verdict_seen for e in exams)
        figures.append(
            Figure(
                f"last C-STORE -> examination verdict, median, {len(exams)} exams",
                verdict,
                "s",
                f"study ready for reading {ready:.2f} s",
                verdict / ready if ready else None,
            )
        )
    return figures


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="in-process runs (default 20)")
    parser.add_argument("--exams", type=int, default=5, help="examinations timed (default 5)")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument(
        "--in-process-only", action="store_true", help="skip the pipeline (no Orthanc)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 runs, 2 examinations")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.exams = 5, 2
    if args.runs < 1 or args.exams < 1:
        parser.error("--runs and --exams must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    backend = args.database_url.split(":", 1)[0] if args.database_url else "sqlite (temporary)"
    print(
        f"QC benchmark: {os.cpu_count()} CPU cores (os.cpu_count()), Python "
        f"{sys.version.split()[0]}, numpy {np.__version__}, pydicom {version('pydicom')}, "
        f"database {backend}"
    )
    started = time.perf_counter()
    catalogue = load_catalogue(ROOT / "worklist/protocols.yaml")
    in_process = run_in_process(args, catalogue)
    exams: list[ExamLatency] = []
    if not args.in_process_only:
        print(f"Orthanc: {tool_version(['/usr/sbin/Orthanc', '--version'])}")
        # DCMTK's switch, read by Orthanc (a child, it inherits it): without it each C-STORE
        # response can wait ~40 ms for a delayed ACK. The console turns Nagle off itself.
        os.environ["TCP_NODELAY"] = "1"
        try:
            with tempfile.TemporaryDirectory(prefix="qc_bench_") as tmp:
                pipeline = run_exams(args, Path(tmp))
        except BenchError as exc:
            print(f"\nFAILED: {exc}")
            return 1
        print_exams(pipeline)
        exams = pipeline.exams
    print_summary(in_process, exams)
    write_figures(args.json, "qc", headline(in_process, exams))
    print(f"\n(total {time.perf_counter() - started:.0f} s; the target is informational)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
