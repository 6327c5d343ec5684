"""`mri-pipeline up --demo` as a real process: API answers, findscu sees today's demo orders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.integration.dcmtk import findscu


def test_up_demo_serves_api_and_worklist_and_stops_on_sigint(tmp_path: Path) -> None:
    api_port, dicom_port = free_port(), free_port()
    orthanc_http, orthanc_dicom = free_port(), free_port()
    env = {
        **os.environ,
        "MRI_PIPELINE_VAR_DIR": str(tmp_path / "var"),
        "MRI_PIPELINE_API_PORT": str(api_port),
        "MRI_PIPELINE_DICOM_PORT": str(dicom_port),
        "MRI_PIPELINE_DICOM_HOST": "127.0.0.1",
        "MRI_PIPELINE_ORTHANC_HTTP_PORT": str(orthanc_http),
        "MRI_PIPELINE_ORTHANC_DICOM_PORT": str(orthanc_dicom),
    }
    env.pop("MRI_PIPELINE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mri_pipeline", "up", "--demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("API did not come up")
        worklist = httpx.get(f"http://127.0.0.1:{api_port}/api/worklist").json()
        assert len(worklist) == 6
        today = datetime.now(ZoneInfo("Europe/London")).strftime("%Y%m%d")
        result = findscu(
            dicom_port,
            [
                "0010,0010",
                "0008,0050",
                f"(0040,0100)[0].0040,0002={today}",
                "(0040,0100)[0].0040,0001=MRI1",
            ],
            tmp_path / "find",
        )
        assert result.returncode == 0, result.output
        assert len(result.responses) == 3
        credentials = json.loads(
            (tmp_path / "var" / "orthanc" / "credentials.json").read_text(encoding="utf-8")
        )
        auth = (credentials["username"], credentials["password"])
        orthanc = f"http://127.0.0.1:{orthanc_http}"
        assert httpx.get(f"{orthanc}/system", auth=auth).json()["DicomAet"] == "LSP_PACS"
        assert httpx.get(f"{orthanc}/system").status_code == 401
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "DICOM worklist AE   LSP_RIS" in output
    assert "demo: booked 6 referrals" in output
    assert "DICOM store AE      LSP_PACS" in output
    with pytest.raises(httpx.TransportError):  # Orthanc was stopped with us
        httpx.get(f"http://127.0.0.1:{orthanc_http}/system", timeout=2)
