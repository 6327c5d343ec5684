"""The command line: order create, worklist import/export/list, db upgrade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from typer.testing import CliRunner

from mri_pipeline.cli import app
from mri_pipeline.config import get_settings
from mri_pipeline.db.engine import make_engine
from mri_pipeline.db.migrate import alembic_config
from tests.conftest import ROOT


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MRI_PIPELINE_DATABASE_URL", database_url)
    monkeypatch.setenv("MRI_PIPELINE_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


ORDER = [
    "order", "create", "--patient-id", "CLI001", "--name", "Cli^Test", "--birth-date",
    "19800101", "--sex", "F", "--indication", "stenosis", "--station", "MRI2",
]  # fmt: skip


def test_order_create_prints_the_booking(cli: CliRunner) -> None:
    result = cli.invoke(app, ORDER)
    assert result.exit_code == 0, result.output
    assert "LSP-STEN" in result.output
    assert "ROUTINE" in result.output
    assert "MRI2" in result.output


def test_order_create_refuses_an_unknown_indication_by_name(cli: CliRunner) -> None:
    result = cli.invoke(app, [*ORDER[:-4], "--indication", "headache"])
    assert result.exit_code == 2
    assert "indication" in result.output and "headache" in result.output


def test_order_create_refuses_a_bad_birth_date(cli: CliRunner) -> None:
    result = cli.invoke(app, [*ORDER[:6], "--birth-date", "1980-02-31", *ORDER[8:]])
    assert result.exit_code == 2
    assert "birth_date" in result.output


def test_export_import_and_list_round_trip(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(app, ORDER).exit_code == 0
    exported = cli.invoke(app, ["worklist", "export", str(tmp_path / "wl")])
    assert exported.exit_code == 0, exported.output
    assert "wrote 1 worklist files" in exported.output
    (tmp_path / "wl" / "junk.wl").write_text("not dicom")
    imported = cli.invoke(app, ["worklist", "import", str(tmp_path / "wl")])
    assert imported.exit_code == 1
    assert "updated 1, failed 1" in imported.output
    assert "junk.wl" in imported.output
    listing = cli.invoke(app, ["worklist", "list", "--date", "2099-01-01"])
    assert listing.exit_code == 0


def test_db_upgrade_creates_the_schema(cli: CliRunner, database_url: str) -> None:
    result = cli.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = make_engine(database_url)
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    engine.dispose()
    assert version == head


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_ingest_status_counts_nothing_on_a_new_database(cli: CliRunner) -> None:
    result = cli.invoke(app, ["ingest", "status"])
    assert result.exit_code == 0, result.output
    assert "change log cursor: 0" in result.output


def test_scanner_simulate_refuses_a_station_that_is_not_a_scanner(cli: CliRunner) -> None:
    result = cli.invoke(app, ["scanner", "simulate", "--station", "FINDSCU"])
    assert result.exit_code == 2
    assert "FINDSCU is not a scanner" in result.output


def test_scanner_simulate_refuses_an_unknown_discontinuation_reason(cli: CliRunner) -> None:
    result = cli.invoke(app, ["scanner", "simulate", "--discontinue", "999999"])
    assert result.exit_code == 2
    assert "unknown discontinuation reason 999999" in result.output
    assert "110515 Patient condition prevented continuing" in result.output


def test_scanner_simulate_says_when_the_ris_is_not_there(cli: CliRunner) -> None:
    result = cli.invoke(
        app,
        ["scanner", "simulate", "--station", "MRI1"],
        env={
            "MRI_PIPELINE_DICOM_PORT": "9",  # nothing listens on the discard port
        },
    )
    assert result.exit_code == 1
    assert "LSP_RIS at 127.0.0.1:9 refused the association from MRI1" in result.output


def test_samples_generate_writes_the_cases_and_says_how_big(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["samples", "generate", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    written = sum(1 for path in (tmp_path / "s").rglob("*") if path.is_file())
    committed = sum(1 for path in (ROOT / "sample_studies").rglob("*") if path.is_file())
    assert written == committed  # the same cases as the committed copy
    assert result.output.startswith(f"4 cases, {written} files,")
    assert (tmp_path / "s" / "manifest.json").is_file()
