"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when configured), clock."""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mri_pipeline import logsafe
from mri_pipeline.config import Settings
from mri_pipeline.localports import free_port
from mri_pipeline.runtime import Runtime, build_runtime

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("MRI_PIPELINE_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])

# Monday 2 March 2026, 08:00 in London (GMT): the tests' "now".
FIXED_NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


# A DICOM person name as the tests write them, Family^Given: in a log line, a leak.
PERSON_NAME = re.compile(r"[^\W\d_][\w'-]*\^[^\W\d_]")


class LogLines(logging.Handler):
    """Every log record of a test, formatted as a log file would show it (tracebacks and
    exception messages included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def no_patient_name_in_logs() -> Iterator[None]:
    """Whatever a test does, no log record of ours or of a library names a patient."""
    logsafe.install()  # as every command of the application does
    root = logging.getLogger()
    lines = LogLines()
    level = root.level
    root.addHandler(lines)
    root.setLevel(min(level, logging.INFO) or logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(lines)
        root.setLevel(level)
    leaks = [line for line in lines.lines if PERSON_NAME.search(line)]
    assert not leaks, f"patient names in the log: {leaks[:3]}"


_CHECKED: list[str] = []


@pytest.fixture
def checked() -> Callable[[str], None]:
    """Say what a fault or load test counted and checked: printed at the end of the run,
    so ``make test`` shows it (pytest keeps a passing test's own output to itself)."""

    def say(line: str) -> None:
        print(line)
        _CHECKED.append(line.strip())

    return say


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _CHECKED:
        terminalreporter.section("what the fault and load tests checked")
        for line in _CHECKED:
            terminalreporter.write_line(line)


def fixed_clock() -> datetime:
    return FIXED_NOW


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A new, empty schema in the test PostgreSQL (its URL), dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # NullPool: a test may terminate every backend (a database restart); drop with a new one.
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_settings(database_url: str, var_dir: Path, **overrides: Any) -> Settings:
    """The committed reference files, the tests' radiologists, London, free ports."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "var_dir": var_dir,
        "protocols_file": ROOT / "worklist/protocols.yaml",
        "nodes_file": ROOT / "dicom_nodes/nodes.yaml",
        "demo_orders_file": ROOT / "worklist/demo_orders.yaml",
        "radiologists_file": ROOT / "tests/data/radiologists.yaml",
        "clinic_timezone": "Europe/London",
        "dicom_host": "127.0.0.1",
        "dicom_port": free_port(),
    }
    return Settings(**(values | overrides))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(settings, clock=fixed_clock)
    try:
        yield built
    finally:
        built.close()
