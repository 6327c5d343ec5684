"""What the benches share: free ports, a fresh database per run, percentiles and
verdicts, a console's worklist query, and the writer of the headline figures that
``bench/report.py`` puts in one table."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pynetdicom import AE, evt
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mri_pipeline.config import Settings
from mri_pipeline.dicom.scanner import leave_answers_to_the_caller
from mri_pipeline.dicom.server import MODALITY_WORKLIST_FIND, VERIFICATION, no_delay
from mri_pipeline.imaging.sample_studies import load_manifest
from mri_pipeline.localports import free_port
from mri_pipeline.runtime import Runtime, build_runtime
from mri_pipeline.services.orders import OrderRequest, PatientIn
from mri_pipeline.subprocesses import stop_process

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_studies"
FIRST_SLOT = clock_time(7, 0)
SLOT_MINUTES = 30
SLOTS_PER_DAY = 28  # 07:00-21:00


class BenchError(RuntimeError):
    """An operation the bench relies on failed (not a missed target)."""


@contextmanager
def fresh_database(url: str | None, tmp: Path, prefix: str = "bench") -> Iterator[str]:
    """A fresh database: a SQLite file in ``tmp``, or a new PostgreSQL schema dropped
    afterwards; any other URL is used as it is."""
    if not url:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    if not url.startswith("postgresql"):
        yield url
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def pipeline_runtime(
    database_url: str | None, var_dir: Path, **overrides: Any
) -> Iterator[Runtime]:
    """Settings and runtime of one pipeline on free ports and a fresh database (nothing
    started yet); ``overrides`` are further settings, or replace these."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with fresh_database(database_url, var_dir) as url:
        values: dict[str, Any] = {
            "database_url": url,
            "var_dir": var_dir,
            "protocols_file": ROOT / "worklist/protocols.yaml",
            "nodes_file": ROOT / "dicom_nodes/nodes.yaml",
            "orthanc_config_file": ROOT / "orthanc.json",
            "dicom_host": HOST,
            "dicom_port": free_port(),
            "orthanc_http_port": free_port(),
            "orthanc_dicom_port": free_port(),
        }
        settings = Settings(**(values | overrides))
        runtime = build_runtime(settings)
        try:
            yield runtime
        finally:
            runtime.close()


@contextmanager
def serving(
    command: Sequence[str],
    base_url: str,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[None]:
    """A server run as ``command`` from the repository's root, its output in ``log_path``,
    until the block ends: entered once ``GET base_url/health`` answers 200, stopped with
    SIGTERM (killed after 30 s)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise BenchError(f"the server exited ({process.returncode}): {tail(log_path)}")
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the server did not answer /health: {tail(log_path)}")
            time.sleep(0.1)
        yield
    finally:
        stop_process(process, 30)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log."""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def slot_start(first_day: date, index: int) -> datetime:
    """The start of booking slot ``index`` from ``first_day`` on: 28 of 30 minutes a day
    from 07:00, then the next day's."""
    day = first_day + timedelta(days=index // SLOTS_PER_DAY)
    return datetime.combine(day, FIRST_SLOT) + timedelta(
        minutes=SLOT_MINUTES * (index % SLOTS_PER_DAY)
    )


def synthetic_order(
    number: int, prefix: str, *, indication: str, station: str, start: datetime
) -> OrderRequest:
    """The order of synthetic patient ``number`` (ID ``{PREFIX}{number:06d}``, named
    ``{Prefix}^Patient{number}``) on ``station`` at ``start``."""
    return OrderRequest(
        patient=PatientIn(
            patient_id=f"{prefix.upper()}{number:06d}",
            name=f"{prefix.capitalize()}^Patient{number}",
            birth_date=date(1940 + number % 60, 1 + number % 12, 1 + number % 28),
            sex="MF"[number % 2],
        ),
        indication=indication,
        station=station,
        scheduled_date=start.date(),
        scheduled_time=start.time(),
    )


def sample_paths(case: str) -> dict[str, list[Path]]:
    """Series description -> the sample files of ``case``, in instance order."""
    return load_manifest(SAMPLES).case(case).paths_by_description(SAMPLES)


@dataclass(frozen=True)
class Figure:
    """One headline figure of a bench: a row of ``bench/report.py``'s table."""

    figure: str  # in words: what was measured, and at what size
    value: float
    unit: str
    reference: str | None = None  # in words, with the reference's own value
    ratio: float | None = None  # value / the reference's value, unless ``figure`` says otherwise
    target: str | None = None
    verdict: str | None = None  # "PASS" or "MISS" against ``target``


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``: where a bench writes its headline figures for ``bench/report.py``."""
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the headline figures there, as JSON rows (bench/report.py reads them)",
    )


def write_figures(path: Path | None, bench: str, figures: Iterable[Figure]) -> None:
    """The figures as a JSON list of rows at ``path`` (a bench's ``--json``); nothing
    without a path. A figure that could not be measured (NaN) is written as null."""
    if path is None:
        return

    def finite(value: object) -> object:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    rows = [
        {"bench": bench, **{key: finite(value) for key, value in asdict(figure).items()}}
        for figure in figures
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- figures


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.95: p95); NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def p95(values: Sequence[float]) -> float:
    return percentile(values, 0.95)


def mark(ok: bool) -> str:
    """A target's verdict."""
    return "PASS" if ok else "MISS"


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the pipeline writes UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# ---------------------------------------------------------------- a console's worklist query

PENDING = (0xFF00, 0xFF01)


def console_query(today: date, station: str) -> Dataset:
    """The typical console query: own station, today, MR, the usual return keys."""
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientWeight",
        "MedicalAlerts",
        "Allergies",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "RequestedProcedurePriority",
    ):
        setattr(query, keyword, "")
    query.RequestedProcedureCodeSequence = DicomSequence()
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = today.strftime("%Y%m%d")
    step.Modality = "MR"
    for keyword in (
        "ScheduledProcedureStepStartTime",
        "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepID",
        "ScheduledStationName",
        "ScheduledProcedureStepLocation",
        "RequestedContrastAgent",
        "ScheduledProcedureStepStatus",
    ):
        setattr(step, keyword, "")
    step.ScheduledProtocolCodeSequence = DicomSequence()
    query.ScheduledProcedureStepSequence = DicomSequence([step])
    return query


@dataclass
class Outcome:
    """One association's result, as the console saw it."""

    seconds: float
    ok: bool
    matches: int = 0
    error: str = ""
    answers: list[Dataset] = field(default_factory=list)


class Console:
    """A pynetdicom SCU with ``ae_title`` as its calling AE, one per console thread; it
    asks ``called_ae`` on 127.0.0.1.

    pynetdicom leaves Nagle on, and a C-FIND-RQ is two PDUs (command, identifier), so
    with Nagle every query waits ~40 ms for a delayed ACK before the server has it.
    That is the client's cost, not the server's, so the bench turns it off by default.
    """

    def __init__(
        self, ae_title: str, called_ae: str, *, nagle: bool = False, timeout: float = 600
    ) -> None:
        self.ae = AE(ae_title=ae_title)
        self.ae.add_requested_context(MODALITY_WORKLIST_FIND)
        self.ae.add_requested_context(VERIFICATION)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = timeout
        self.called_ae = called_ae
        self.handlers: list[Any] = [] if nagle else [(evt.EVT_CONN_OPEN, no_delay)]

    def associate(self, port: int) -> Any:
        assoc = self.ae.associate(HOST, port, ae_title=self.called_ae, evt_handlers=self.handlers)
        if assoc.is_established:
            leave_answers_to_the_caller(assoc)  # as the product's console does
        return assoc


def find(
    console: Console, port: int, query: Dataset, expected: int | None, keep: bool = False
) -> Outcome:
    """New association, one C-FIND with every response consumed, release."""
    started = time.perf_counter()
    assoc = console.associate(port)
    if not assoc.is_established:
        return Outcome(time.perf_counter() - started, False, error="association not established")
    answers: list[Dataset] = []
    final: int | None = None
    try:
        for status, identifier in assoc.send_c_find(query, MODALITY_WORKLIST_FIND):
            code = int(status.Status) if status else None
            if code in PENDING:
                answers.append(identifier)
            else:
                final = code
    finally:
        assoc.release()
    seconds = time.perf_counter() - started
    error = ""
    if final != 0x0000:
        error = f"final status {final if final is None else hex(final)}"
    elif expected is not None and len(answers) != expected:
        error = f"{len(answers)} matches, expected {expected}"
    return Outcome(seconds, not error, len(answers), error, answers if keep else [])
