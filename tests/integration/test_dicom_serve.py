"""`mri-pipeline dicom serve` as a real process: a console runs a whole examination."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydicom.uid import generate_uid

from mri_pipeline.config import Settings
from mri_pipeline.runtime import build_runtime
from mri_pipeline.services.examinations import timeline
from tests.conftest import ROOT, free_port
from tests.integration.dcmtk import echoscu
from tests.integration.test_mpps_scp import Console, final, in_progress


def test_a_console_runs_an_examination_against_dicom_serve(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MRI_PIPELINE_DATABASE_URL": database_url,
        "MRI_PIPELINE_VAR_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "mri_pipeline"]
    booked = subprocess.run(
        [*command, "order", "create", "--patient-id", "SRV1", "--name", "Serve^Test",
         "--indication", "radiculopathy", "--station", "MRI1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert booked.returncode == 0, booked.stdout + booked.stderr
    accession = booked.stdout.split()[1]
    server = subprocess.Popen(
        [*command, "dicom", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            if echoscu(port).returncode == 0:
                break
            time.sleep(0.1)
        console = Console(port)
        [item] = console.worklist(accession=accession)
        uid = generate_uid()
        assert console.n_create(uid, in_progress(item)).Status == 0x0000
        assert console.n_set(uid, final()).Status == 0x0000
        assert console.worklist(station="MRI1") == []
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output
    assert "Müller" not in output and "Serve^Test" not in output  # names never logged
    runtime = build_runtime(
        Settings(
            database_url=database_url,
            var_dir=tmp_path,
            protocols_file=ROOT / "worklist/protocols.yaml",
            nodes_file=ROOT / "dicom_nodes/nodes.yaml",
        )
    )
    try:
        with runtime.sessions() as session:
            story = timeline(session, accession)
    finally:
        runtime.close()
    assert [s["status"] for s in story["steps"]] == ["COMPLETED"]
    kinds = [e["kind"] for e in story["events"]]
    assert kinds == ["ORDERED", "MPPS_STARTED", "PERFORMED_COMPLETED", "MPPS_COMPLETED"]
