"""The audit log covers every read of patient data: each screen and API route a person
opens, and each worklist a DICOM peer is shown; and it keeps what it was given while
the database is away."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from mri_pipeline.api.app import NOT_PATIENT_DATA, routers
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime
from mri_pipeline.services.audit import audit_entries
from tests.integration.api_tools import api_client
from tests.integration.dcmtk import findscu
from tests.integration.test_mwl_scp import USUAL_KEYS, book, serve

# Reads that never show patient data, or that no logged-in user makes.
PUBLIC = {"/health", "/login"}


def get_routes() -> list[str]:
    """Every GET path the application serves (API and screens), parameters filled in."""
    return sorted(
        re.sub(r"\{[^}]+\}", "1.2.3", route.path)
        for router in routers()
        for route in router.routes
        if isinstance(route, APIRoute) and "GET" in route.methods
    )


def entries(runtime: Runtime, **filters: str) -> list[dict[str, object]]:
    assert runtime.audit.flush()
    with runtime.sessions() as session:
        return audit_entries(session, limit=1000, **filters)


def test_every_read_by_a_logged_in_user_is_audited_but_who_am_i(runtime: Runtime) -> None:
    paths = [p for p in get_routes() if p not in PUBLIC]
    assert len(paths) >= 15  # the whole application, screens included
    assert "/api/events" in paths  # a live stream is audited when it opens
    with api_client(runtime, Role.ADMIN) as admin:
        answered = {}
        for path in paths:
            if path == "/api/events":
                with admin.stream("GET", path, params={"after": 0}) as stream:
                    answered[path] = stream.status_code
            else:
                answered[path] = admin.get(path, follow_redirects=False).status_code
    assert 500 not in answered.values(), answered
    audited = {e["resource"].split("?")[0]: e["status"] for e in entries(runtime)}
    for path in paths:
        if path in NOT_PATIENT_DATA:
            assert path not in audited, path
        else:
            # refused and not found are audited too: someone asked for the data
            assert audited.get(path) == answered[path], (path, audited.get(path))
    assert set(NOT_PATIENT_DATA) <= set(paths)  # the exceptions are real routes


def test_a_refused_screen_is_in_the_audit_log_with_its_status(runtime: Runtime) -> None:
    with api_client(runtime, Role.RADIOGRAPHER) as radiographer:
        assert radiographer.get("/radiologist").status_code == 403
        assert radiographer.get("/api/reading-list").status_code == 403
    found = [(e["resource"], e["status"], e["role"]) for e in entries(runtime)]
    assert ("/radiologist", 403, "radiographer") in found
    assert ("/api/reading-list", 403, "radiographer") in found


def test_each_worklist_query_is_audited_with_the_ae_and_the_items_shown_never_names(
    runtime: Runtime, tmp_path: Path
) -> None:
    shown = book(runtime, "AUD-MWL-1", "Zyskowski^Ada", "MRI1")
    book(runtime, "AUD-MWL-2", "Quellmalz^Bo", "MRI2")
    server = serve(runtime)
    try:
        result = findscu(runtime.settings.dicom_port, USUAL_KEYS, tmp_path, calling="MRI1")
        assert result.returncode == 0, result.output
        assert [str(r.AccessionNumber) for r in result.responses] == [shown]
        refused = findscu(
            runtime.settings.dicom_port,
            ["0010,0020", "(0040,0100)[0].0040,0002=2026-03-02"],
            tmp_path / "bad",
            calling="MRI1",
        )
        assert refused.responses == []
    finally:
        server.shutdown()
    [entry] = entries(runtime, username="MRI1")
    assert entry["role"] == "dicom"
    assert entry["action"] == "mwl-find"
    assert str(entry["resource"]).endswith(f"-> 1 items: {shown}")
    assert "station=MRI1 modality=MR from=2026-03-02T00:00" in str(entry["resource"])
    assert "patient_id" not in str(entry["resource"])  # only the keys the console matched on
    assert "Zyskowski" not in str(entry["resource"])


def test_looks_wait_while_the_database_is_away_and_are_written_when_it_is_back(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    assert entries(runtime) == []
    with runtime.engine.begin() as connection:  # the table goes, as if the server did
        connection.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))
    caplog.set_level(logging.WARNING, logger="mri_pipeline.services.audit")
    for n in range(3):
        runtime.audit.record("rg.kay", "radiographer", "read", f"/api/procedures/A{n}", 200)
    assert not runtime.audit.flush(timeout=0.5)  # not written: nowhere to write
    assert "audit entries not written yet" in caplog.text
    with runtime.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))
    written = entries(runtime, username="rg.kay")
    assert sorted(e["resource"] for e in written) == [f"/api/procedures/A{n}" for n in range(3)]


def test_closing_writes_what_is_queued(runtime: Runtime) -> None:
    for n in range(450):  # more than one batch
        runtime.audit.record("MRI2", "dicom", "mwl-find", f"MWL C-FIND step={n}", 0)
    runtime.audit.close()
    with runtime.sessions() as session:
        assert len(audit_entries(session, username="MRI2", limit=1000)) == 450


def test_a_logged_database_error_shows_the_statement_but_never_a_value(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Database errors end up in the log. SQLAlchemy hides the statement's parameters,
    but PostgreSQL quotes the failing row in its own message: neither may reach it."""
    failing = text(
        "INSERT INTO audit_log (at, username, role, action, resource, status) "
        "VALUES (NULL, :name, 'r', 'a', 'x', 0)"
    )
    with pytest.raises(IntegrityError) as caught, runtime.engine.begin() as connection:
        connection.execute(failing, {"name": "Zyskowski^Ada"})
    assert "parameters hidden" in str(caught.value)
    logger = logging.getLogger("mri_pipeline.test")
    with caplog.at_level(logging.INFO):
        try:
            raise RuntimeError("storing failed") from caught.value
        except RuntimeError:
            logger.exception("storing failed accession=%s", "LSP1")
        logger.warning("conflict error=%s", caught.value.orig)
    assert "Zyskowski" not in caplog.text
    assert "INSERT INTO audit_log" in caplog.text  # what failed is still there
    if runtime.engine.dialect.name == "postgresql":
        assert "sqlstate=23502" in caplog.text  # not_null_violation
        assert "table=audit_log column=at" in caplog.text
    else:
        assert "NOT NULL constraint failed: audit_log.at" in caplog.text
