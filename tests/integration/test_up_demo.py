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
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.integration.dcmtk import Workstation, findscu, storescp


def examine(
    env: dict[str, str], api: httpx.Client, patient_id: str, indication: str
) -> tuple[str, dict[str, Any]]:
    """Referral, then a console (``scanner simulate``) performs it; until ready for
    reading. Returns the accession number and the study as ``/api/studies`` lists it."""
    referral = {
        "patient": {"patient_id": patient_id, "name": "Ødegård^Åse", "sex": "F"},
        "indication": indication,
        "station": "MRI1",
    }
    created = api.post("/api/orders", json=referral, timeout=10)
    assert created.status_code == 201, created.text
    accession = created.json()["accession_number"]
    command = ["scanner", "simulate", "--station", "MRI1", "--accession", accession]
    simulated = subprocess.run(
        [sys.executable, "-m", "mri_pipeline", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert "MPPS COMPLETED" in simulated.stdout
    assert "Ødegård" not in simulated.stdout  # the console prints identifiers, not names

    deadline = time.monotonic() + 30
    while True:
        found = api.get("/api/studies", params={"accession_number": accession}, timeout=10).json()
        if found and found[0]["state"] == "ready_for_reading":
            break
        assert time.monotonic() < deadline, f"study not ready for reading: {found}"
        time.sleep(0.2)
    assert found[0]["study_instance_uid"] == created.json()["study_instance_uid"]
    return accession, found[0]


def simulate_examination(env: dict[str, str], api: str, orthanc: str, auth: tuple[str, str]) -> str:
    """Referral → console (``scanner simulate``) → Orthanc → ingest → ready for reading."""
    accession, study = examine(env, api, "E2E0001", "radiculopathy")
    assert study["reconciliation"] == "matched"
    assert study["completion_basis"] == "mpps"

    # Orthanc's own view agrees with ours, image for image.
    in_orthanc = httpx.get(f"{orthanc}/studies/{study['orthanc_id']}", auth=auth).json()
    assert in_orthanc["MainDicomTags"]["AccessionNumber"] == accession
    assert in_orthanc["PatientMainDicomTags"]["PatientID"] == "E2E0001"
    statistics = httpx.get(f"{orthanc}/studies/{study['orthanc_id']}/statistics", auth=auth)
    assert statistics.json()["CountInstances"] == study["instances"] > 0
    detail = api.get(f"/api/studies/{study['study_instance_uid']}").json()
    assert [s["series_description"] for s in detail["series"]] == [
        "LOC 3PL",
        "SAG T1 TSE",
        "SAG T2 TSE",
        "SAG STIR",
        "AX T2 TSE",
        "AX T1 TSE",
    ]
    assert len(in_orthanc["Series"]) == len(detail["series"])
    timeline = api.get(f"/api/procedures/{accession}").json()
    assert [s["status"] for s in timeline["steps"]] == ["COMPLETED"]

    # QC runs in `up` too: every series checked, and a verdict for the examination.
    deadline = time.monotonic() + 30
    while (qc := api.get(f"/api/studies/{study['study_instance_uid']}/qc").json())[
        "verdict"
    ] is None:
        assert time.monotonic() < deadline, f"no QC verdict: {qc}"
        time.sleep(0.3)
    assert qc["verdict"] in ("PASSED", "PASSED_WITH_WARNINGS")
    assert all(s["outcome"] is not None for s in qc["series"])
    return accession


def logged_in(
    env: dict[str, str], base_url: str, role: str, radiologist: str | None = None
) -> httpx.Client:
    """A client with the token ``mri-pipeline user add`` prints for a new user."""
    name = f"e2e-{role}-{radiologist or 'x'}".replace(".", "-")
    extra = ["--radiologist", radiologist] if radiologist else []
    added = subprocess.run(
        [sys.executable, "-m", "mri_pipeline", "user", "add", name, "--role", role, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    token = added.stdout.strip().splitlines()[-1]
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def poll(what: str, fetch: Any, done: Any, timeout: float = 30) -> Any:
    """``fetch()`` until ``done(answer)``; fails with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not done(answer := fetch()):
        assert time.monotonic() < deadline, f"{what}: {answer}"
        time.sleep(0.2)
    return answer


def stat_cauda_equina_reaches_the_on_call_workstation(
    env: dict[str, str],
    api: httpx.Client,
    orthanc: str,
    auth: tuple[str, str],
    station: Workstation,
    prior: str,
) -> None:
    """A STAT cauda equina examination of the patient examined before (``prior``): ready,
    routed to the on-call neuro radiologist with its reason, the prior shown, and in
    that radiologist's workstation after "send"."""
    accession, study = examine(env, api, "E2E0001", "suspected-ces")
    uid = study["study_instance_uid"]
    view = poll(
        "never routed",
        lambda: api.get(f"/api/reading-list/{uid}", timeout=10).json(),
        lambda v: v.get("assignment") is not None,
    )
    assignment = view["assignment"]
    radiologist = assignment["radiologist"]
    # The demo roster always has an on-call neuro radiologist (Okafor by day and at
    # weekends, Moreau on weekday nights), both at reading room 1.
    assert radiologist in ("rad.okafor", "rad.moreau"), assignment
    assert assignment["reason"].startswith("STAT Lumbar spine MRI - suspected cauda equina")
    assert " → on-call neuro" in assignment["reason"]
    assert view["qc"]["verdict"] in ("PASSED", "PASSED_WITH_WARNINGS")
    assert view["order"]["red_flags"][0]["code"] == "suspected-ces"
    assert [p["accession_number"] for p in view["priors"]] == [prior]
    assert view["viewer"]["dicomweb_study"] == f"{orthanc}/dicom-web/studies/{uid}"
    assert httpx.get(view["viewer"]["web_viewer"][0]["url"], auth=auth).status_code == 200
    reader = logged_in(env, str(api.base_url), "radiologist", radiologist)
    assert api.get("/api/reading-list").status_code == 422  # an admin names whose list
    listed = reader.get("/api/reading-list").json()
    assert listed["studies"][0]["accession_number"] == accession
    assert listed["studies"][0]["time_left"].endswith("min left")

    sent = reader.post(f"/api/reading-list/{uid}/send", json={})
    assert sent.status_code == 202, sent.text
    assert sent.json()["ae_title"] == station.ae_title
    delivery = poll(
        "not delivered",
        lambda: api.get(
            f"/api/reading-list/{uid}/deliveries/{sent.json()['id']}", timeout=10
        ).json(),
        lambda d: d["state"] != "sending",
    )
    assert (delivery["state"], delivery["progress"]) == ("delivered", 100), delivery
    instances = httpx.get(f"{orthanc}/studies/{study['orthanc_id']}/instances", auth=auth)
    stored = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances.json()}
    assert len(stored) == study["instances"]
    assert station.received(uid) == stored  # every instance, and nothing else

    claimed = reader.post(f"/api/reading-list/{uid}/claim", json={})
    assert claimed.status_code == 200, claimed.text
    final = reader.post(
        f"/api/reading-list/{uid}/report",
        json={"status": "final", "impression": "No compression."},
    )
    assert final.status_code == 200, final.text
    turnaround = final.json()["turnaround"]
    assert turnaround["complete_to_final_s"] is not None
    assert turnaround["target_s"] == 3600


def test_up_demo_serves_api_and_worklist_and_stops_on_sigint(tmp_path: Path) -> None:
    api_port, dicom_port = free_port(), free_port()
    workstation_port = free_port()
    nodes = (ROOT / "dicom_nodes/nodes.yaml").read_text(encoding="utf-8")
    assert "    port: 11201\n" in nodes  # RAD_WS1, the on-call radiologists' workstation
    (tmp_path / "nodes.yaml").write_text(
        nodes.replace("    port: 11201\n", f"    port: {workstation_port}\n"), encoding="utf-8"
    )
    orthanc_http, orthanc_dicom = free_port(), free_port()
    env = {
        **os.environ,
        "MRI_PIPELINE_VAR_DIR": str(tmp_path / "var"),
        "MRI_PIPELINE_API_PORT": str(api_port),
        "MRI_PIPELINE_DICOM_PORT": str(dicom_port),
        "MRI_PIPELINE_DICOM_HOST": "127.0.0.1",
        "MRI_PIPELINE_ORTHANC_HTTP_PORT": str(orthanc_http),
        "MRI_PIPELINE_ORTHANC_DICOM_PORT": str(orthanc_dicom),
        "MRI_PIPELINE_NODES_FILE": str(tmp_path / "nodes.yaml"),
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
        assert httpx.get(f"http://127.0.0.1:{api_port}/api/worklist").status_code == 401
        api = logged_in(env, f"http://127.0.0.1:{api_port}", "admin")
        worklist = api.get("/api/worklist").json()
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
        prior = simulate_examination(env, api, orthanc, auth)
        with storescp(
            "RAD_WS1", workstation_port, tmp_path / "ws1", tmp_path / "storescp.log"
        ) as station:
            stat_cauda_equina_reaches_the_on_call_workstation(
                env, api, orthanc, auth, station, prior
            )
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "DICOM worklist AE   LSP_RIS" in output
    assert "demo: booked 6 referrals" in output
    assert "demo: logins admin, radiographer, okafor" in output
    logins = json.loads((tmp_path / "var" / "demo-logins.json").read_text(encoding="utf-8"))
    assert set(logins) >= {"admin", "radiographer", "okafor", "moreau"}
    assert ((tmp_path / "var" / "demo-logins.json").stat().st_mode & 0o777) == 0o600
    assert logins["admin"] not in output  # passwords stay in the file
    assert "DICOM store AE      LSP_PACS" in output
    assert "Ødegård" not in output  # logs carry identifiers, never names
    with pytest.raises(httpx.TransportError):  # Orthanc was stopped with us
        httpx.get(f"http://127.0.0.1:{orthanc_http}/system", timeout=2)
