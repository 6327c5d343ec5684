"""Fixtures of the hostile-input suite: one DICOM server per module, CI-sized fuzzing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import Runtime, build_runtime
from tests.conftest import BACKENDS, fixed_clock, make_settings, postgres_schema
from tests.integration.test_mwl_scp import book


def fuzz_settings(max_examples: int, **extra: Any) -> settings:
    """Reproducible in CI (derandomized, no example database written into the checkout)."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
        **extra,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database for a whole module: a SQLite file, or a schema in the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'hostile.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def module_runtime(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A runtime shared by one module's fuzzing (one server, one database)."""
    var_dir: Path = tmp_path_factory.mktemp("hostile-var")
    built = build_runtime(make_settings(module_database_url, var_dir), clock=fixed_clock)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(scope="module")
def booked(module_runtime: Runtime) -> list[str]:
    """Three scheduled examinations (one with a name outside Latin-1)."""
    return [
        book(module_runtime, "PID0001", "Müller^Hans", "MRI1"),
        book(module_runtime, "PID0002", "Dvořák^Antonín", "MRI2"),
        book(module_runtime, "PID0003", "Smith^John", "MRI1"),
    ]


@pytest.fixture(scope="module")
def dicom_port(module_runtime: Runtime, booked: list[str]) -> Iterator[int]:
    """Our worklist and MPPS server on the runtime's port, as ``mri-pipeline up`` runs it."""
    port = module_runtime.settings.dicom_port
    config = DicomServerConfig("LSP_RIS", "127.0.0.1", port, False, 32)
    server = start_dicom_server(
        config, module_runtime.nodes, module_runtime.finder, module_runtime.mpps
    )
    try:
        yield port
    finally:
        server.shutdown()
