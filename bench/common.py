"""What the benches share: free ports, a fresh database per run, and the writer of the
headline figures that ``bench/report.py`` puts in one table."""

from __future__ import annotations

import argparse
import json
import math
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mri_pipeline.config import Settings
from mri_pipeline.localports import free_port
from mri_pipeline.runtime import Runtime, build_runtime

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]


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
    started yet); ``overrides`` are further settings."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with fresh_database(database_url, var_dir) as url:
        settings = Settings(
            database_url=url,
            var_dir=var_dir,
            protocols_file=ROOT / "worklist/protocols.yaml",
            nodes_file=ROOT / "dicom_nodes/nodes.yaml",
            orthanc_config_file=ROOT / "orthanc.json",
            dicom_host=HOST,
            dicom_port=free_port(),
            orthanc_http_port=free_port(),
            orthanc_dicom_port=free_port(),
            **overrides,
        )
        runtime = build_runtime(settings)
        try:
            yield runtime
        finally:
            runtime.close()


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
