"""Fixtures of the integration tests that need a real Orthanc."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mri_pipeline.config import Settings
from mri_pipeline.dicom.scanner import Peer, ScannerConsole
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.runtime import build_runtime
from tests.conftest import fixed_clock
from tests.integration.orthanc_tools import Pipeline, start_orthanc


@pytest.fixture
def pipeline(settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    """Orthanc (stable age 2 s), our MWL/MPPS server, ingest, and an MRI1 console."""
    with start_orthanc(tmp_path, stable_age=2) as orthanc:
        configured = settings.model_copy(
            update={
                "orthanc_http_port": orthanc.http_port,
                "orthanc_dicom_port": orthanc.dicom_port,
            }
        )
        runtime = build_runtime(configured, clock=fixed_clock)
        config = DicomServerConfig("LSP_RIS", "127.0.0.1", configured.dicom_port, False, 16)
        server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
        client = runtime.orthanc_client()
        console = ScannerConsole(
            "MRI1",
            ris=Peer("127.0.0.1", configured.dicom_port, "LSP_RIS"),
            pacs=Peer("127.0.0.1", orthanc.dicom_port, orthanc.ae_title),
        )
        try:
            yield Pipeline(runtime, orthanc, runtime.ingest(client), console)
        finally:
            client.close()
            server.shutdown()
            runtime.close()
