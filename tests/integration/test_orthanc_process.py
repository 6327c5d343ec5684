"""A real Orthanc started from the committed ``orthanc.json`` and the node table."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid

from mri_pipeline.domain.nodes import DicomNode, NodeRole, NodeTable
from mri_pipeline.orthanc import (
    OrthancProcess,
    OrthancStartError,
    find_plugins,
    generated_configuration,
    orthanc_credentials,
)
from tests.conftest import ROOT, free_port
from tests.integration.dcmtk import echoscu
from tests.integration.orthanc_tools import (
    BASE_CONFIGURATION,
    NEEDS_ORTHANC,
    Patient,
    instance_count,
    node_table,
    start_orthanc,
    storescu,
    write_mr_series,
)

pytestmark = NEEDS_ORTHANC


def tiny_mr_image(path: Path) -> Path:
    """An 8x8 MR image, enough for Orthanc to index it."""
    written = write_mr_series(
        path.parent / path.stem,
        patient=Patient("TEST0001", "TEST^ORTHANC"),
        accession_number="LSP0000001",
        study_instance_uid=str(generate_uid()),
        description="TEST",
        images=1,
        size=8,
    )
    return written.paths[0]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    with start_orthanc(tmp_path_factory.mktemp("orthanc-var")) as running:
        yield running


def test_rest_api_needs_the_generated_credentials(orthanc: OrthancProcess) -> None:
    assert httpx.get(f"{orthanc.url}/system", timeout=10).status_code == 401
    answer = httpx.get(f"{orthanc.url}/system", auth=orthanc.auth, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["DicomAet"] == "LSP_PACS"
    assert answer.json()["DicomPort"] == orthanc.dicom_port


def test_dicomweb_plugin_answers(orthanc: OrthancProcess) -> None:
    answer = httpx.get(f"{orthanc.url}/dicom-web/studies", auth=orthanc.auth, timeout=10)
    assert answer.status_code == 200
    unauthenticated = httpx.get(f"{orthanc.url}/dicom-web/studies", timeout=10)
    assert unauthenticated.status_code == 401


def test_echo_from_a_known_scanner_succeeds(orthanc: OrthancProcess) -> None:
    done = echoscu(orthanc.dicom_port, called=orthanc.ae_title, calling="MRI1")
    assert done.returncode == 0, done.stdout + done.stderr


def test_wrong_called_ae_title_is_rejected(orthanc: OrthancProcess) -> None:
    done = echoscu(orthanc.dicom_port, called="NOT_ORTHANC", calling="MRI1")
    assert done.returncode != 0
    assert "reject" in (done.stdout + done.stderr).lower()


def test_store_from_a_known_scanner_is_kept(orthanc: OrthancProcess, tmp_path: Path) -> None:
    before = instance_count(orthanc)
    image = tiny_mr_image(tmp_path / "mr.dcm")
    done = storescu(orthanc.dicom_port, [image], calling="MRI1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert instance_count(orthanc) == before + 1


def test_store_from_an_unknown_ae_is_refused(orthanc: OrthancProcess, tmp_path: Path) -> None:
    before = instance_count(orthanc)
    image = tiny_mr_image(tmp_path / "rogue.dcm")
    done = storescu(orthanc.dicom_port, [image], calling="ROGUE")
    assert done.returncode != 0, done.stdout + done.stderr
    assert instance_count(orthanc) == before


def test_store_from_a_workstation_is_refused(orthanc: OrthancProcess, tmp_path: Path) -> None:
    before = instance_count(orthanc)
    image = tiny_mr_image(tmp_path / "ws.dcm")
    done = storescu(orthanc.dicom_port, [image], calling="FINDSCU")
    assert done.returncode != 0, done.stdout + done.stderr
    assert instance_count(orthanc) == before


def test_credentials_are_private_and_reused_on_the_next_start(tmp_path: Path) -> None:
    with start_orthanc(tmp_path) as first:
        first_credentials = orthanc_credentials(tmp_path)
        assert httpx.get(f"{first.url}/system", auth=first.auth, timeout=10).status_code == 200
    credentials = tmp_path / "orthanc" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    generated = tmp_path / "orthanc" / "config" / "generated.json"
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    with start_orthanc(tmp_path) as second:
        assert orthanc_credentials(tmp_path) == first_credentials
        assert httpx.get(f"{second.url}/system", auth=second.auth, timeout=10).status_code == 200
    assert not first.running and not second.running


def test_a_failed_start_raises_with_the_log_and_leaves_no_process(tmp_path: Path) -> None:
    broken = tmp_path / "orthanc.json"
    broken.write_text('{"DicomAet": "LSP_PACS", "HttpPort": 1}', encoding="utf-8")
    process = OrthancProcess(
        node_table(),
        var_dir=tmp_path,
        base_configuration=broken,  # HttpPort twice: Orthanc refuses the folder
        http_port=free_port(),
        dicom_port=free_port(),
    )
    with pytest.raises(OrthancStartError, match="exited"):
        process.start()
    assert not process.running


def test_generated_configuration_grants_rights_by_role(tmp_path: Path) -> None:
    nodes = NodeTable(
        nodes=(
            DicomNode(ae_title="MRI1", host="10.0.0.5", port=104, role=NodeRole.SCANNER),
            DicomNode(ae_title="WS1", host="10.0.0.6", port=11112, role=NodeRole.WORKSTATION),
            DicomNode(ae_title="PACS2", host="10.0.0.7", port=4242, role=NodeRole.ARCHIVE),
        )
    )
    config = generated_configuration(
        nodes,
        http_port=8042,
        dicom_port=4242,
        storage_dir=tmp_path / "storage",
        index_dir=tmp_path / "index",
        credentials=("user", "secret"),
        plugins=[Path("/plugins/libOrthancDicomWeb.so")],
    )
    assert config["HttpPort"] == 8042
    assert config["DicomPort"] == 4242
    assert config["StorageDirectory"] == str(tmp_path / "storage")
    assert config["IndexDirectory"] == str(tmp_path / "index")
    assert config["RegisteredUsers"] == {"user": "secret"}
    assert config["Plugins"] == ["/plugins/libOrthancDicomWeb.so"]
    modalities = config["DicomModalities"]
    assert set(modalities) == {"MRI1", "WS1", "PACS2"}
    scanner, workstation, archive = modalities["MRI1"], modalities["WS1"], modalities["PACS2"]
    assert (scanner["AET"], scanner["Host"], scanner["Port"]) == ("MRI1", "10.0.0.5", 104)
    assert scanner["AllowStore"] and scanner["AllowEcho"]
    assert not (scanner["AllowFind"] or scanner["AllowMove"] or scanner["AllowGet"])
    for peer in (workstation, archive):
        assert peer["AllowFind"] and peer["AllowMove"] and peer["AllowGet"] and peer["AllowEcho"]
        assert not peer["AllowStore"]


def test_generated_keys_do_not_repeat_the_committed_file(tmp_path: Path) -> None:
    # Orthanc refuses a key defined in two files of its configuration folder.
    base = json.loads(BASE_CONFIGURATION.read_text(encoding="utf-8"))
    config = generated_configuration(
        node_table(),
        http_port=8042,
        dicom_port=4242,
        storage_dir=tmp_path,
        index_dir=tmp_path,
        credentials=("u", "p"),
        plugins=[],
    )
    assert not set(base) & set(config)
    assert base["DicomCheckCalledAet"] is True
    assert base["DicomAlwaysAllowStore"] is False
    assert base["AuthenticationEnabled"] is True


def test_find_plugins_returns_the_dicomweb_plugin_or_nothing(tmp_path: Path) -> None:
    assert find_plugins([tmp_path]) == []
    (tmp_path / "libOrthancDicomWeb.so").write_bytes(b"")
    assert find_plugins([tmp_path]) == [tmp_path / "libOrthancDicomWeb.so"]


PARENT = """
import sys, time
from pathlib import Path
from mri_pipeline.orthanc import OrthancProcess
from tests.integration.orthanc_tools import BASE_CONFIGURATION, node_table
orthanc = OrthancProcess(
    node_table(), var_dir=Path(sys.argv[1]), base_configuration=BASE_CONFIGURATION,
    http_port=int(sys.argv[2]), dicom_port=int(sys.argv[3]),
)
orthanc.start()
print("started", flush=True)
time.sleep(600)
"""


def test_an_orthanc_does_not_outlive_a_parent_killed_with_sigkill(tmp_path: Path) -> None:
    http_port = free_port()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path), str(http_port), str(free_port())],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "started"
        assert httpx.get(f"http://127.0.0.1:{http_port}/system").status_code == 401  # up
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{http_port}/system", timeout=1)
            except httpx.TransportError:
                break  # Orthanc went with its parent
            assert time.monotonic() < deadline, "Orthanc outlived the process that started it"
            time.sleep(0.2)
    finally:
        if parent.poll() is None:
            parent.kill()
