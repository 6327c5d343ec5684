"""DICOM TLS with real peers: DCMTK's TLS tools and a pynetdicom console against our AE,
and DCMTK and the console against Orthanc with DICOM TLS on (and Orthanc sending to a
workstation that speaks TLS only)."""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pydicom.uid import generate_uid
from sqlalchemy import select
from typer.testing import CliRunner

from mri_pipeline.cli import app
from mri_pipeline.config import get_settings
from mri_pipeline.db.models import ScheduledStep
from mri_pipeline.dicom.scanner import Peer, PlannedSeries, ScannerConsole, perform
from mri_pipeline.dicom.server import (
    DicomListeners,
    DicomServerConfig,
    TlsListener,
    start_dicom_server,
)
from mri_pipeline.domain.nodes import NodeTable
from mri_pipeline.orthanc import OrthancProcess
from mri_pipeline.orthanc.process import OrthancTls
from mri_pipeline.runtime import Runtime, build_runtime
from mri_pipeline.subprocesses import stop_process
from mri_pipeline.tls import (
    DemoCertificates,
    TlsFiles,
    client_context,
    server_context,
    write_demo_certificates,
)
from tests.conftest import fixed_clock, free_port, make_settings
from tests.integration.dcmtk import Workstation, findscu
from tests.integration.orthanc_tools import (
    BASE_CONFIGURATION,
    NEEDS_ORTHANC,
    Patient,
    mr_template,
    node_table,
    storescu,
    write_mr_series,
)
from tests.integration.test_mwl_scp import USUAL_KEYS, book

pytestmark = NEEDS_ORTHANC
TLS_LOG = "mri_pipeline.dicom.tls_server"
WORKSTATION = "RAD_WS1"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> DemoCertificates:
    return write_demo_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> DemoCertificates:
    """Certificates from another CA: a console nobody here vouches for."""
    return write_demo_certificates(tmp_path_factory.mktemp("other-ca"))


def tls_options(files: TlsFiles) -> list[str]:
    """DCMTK's options for an authenticated TLS association with ``files``."""
    return [
        "+tls",
        str(files.private_key),
        str(files.certificate),
        "+cf",
        str(files.ca_certificates),
    ]


def echoscu(
    port: int, options: Sequence[str] = (), *, called: str = "LSP_RIS"
) -> subprocess.CompletedProcess[str]:
    """``echoscu -v``; short timeouts, so a server that stopped answering fails the test."""
    command = ["echoscu", "-v", "-to", "5", "-ta", "5", "-td", "5", "-aet", "ECHOSCU"]
    return subprocess.run(
        [*command, "-aec", called, *options, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 5.0) -> str:
    """The first captured message holding ``text``. The server logs a failed handshake in
    the connection's thread, which may be a moment after the peer has given up."""
    deadline = time.monotonic() + timeout
    while True:
        for record in list(caplog.records):
            if text in record.getMessage():
                return record.getMessage()
        assert time.monotonic() < deadline, f"nothing logged with {text!r}:\n{caplog.text}"
        time.sleep(0.02)


@dataclass
class Ris:
    """Our AE with a plain and a TLS listener."""

    runtime: Runtime
    listeners: DicomListeners
    plain_port: int
    tls_port: int


def serve_tls(
    runtime: Runtime,
    certificates: DemoCertificates,
    *,
    plain: bool = True,
    require_peer_certificate: bool = True,
) -> Ris:
    """Our AE on free ports: TLS, and plain unless ``plain`` is off."""
    plain_port, tls_port = free_port(), free_port()
    context = server_context(certificates.server, require_peer_certificate=require_peer_certificate)
    config = DicomServerConfig(
        ae_title="LSP_RIS",
        host="127.0.0.1",
        port=plain_port,
        allow_any_ae=False,
        max_associations=8,
        tls=TlsListener(tls_port, context),
        plain=plain,
    )
    listeners = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
    return Ris(runtime, listeners, plain_port, tls_port)


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory, certificates: DemoCertificates) -> Iterator[Ris]:
    """One server (SQLite) for the handshake tests: they touch no worklist data."""
    root = tmp_path_factory.mktemp("ris")
    runtime = build_runtime(make_settings(f"sqlite:///{root / 'ris.db'}", root), clock=fixed_clock)
    served = serve_tls(runtime, certificates)
    try:
        yield served
    finally:
        served.listeners.shutdown()
        runtime.close()


@pytest.fixture
def tls_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger=TLS_LOG)
    return caplog


def assert_still_serving(ris: Ris, certificates: DemoCertificates) -> None:
    done = echoscu(ris.tls_port, tls_options(certificates.client))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Received Echo Response (Success)" in done.stdout + done.stderr


# --- our AE ---------------------------------------------------------------------------


def test_echoscu_with_a_console_certificate_of_our_ca_is_answered(
    ris: Ris, certificates: DemoCertificates
) -> None:
    assert_still_serving(ris, certificates)
    # The plain port is still there beside the TLS one.
    plain = echoscu(ris.plain_port)
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_findscu_over_tls_gets_the_worklist(
    runtime: Runtime, certificates: DemoCertificates, tmp_path: Path
) -> None:
    booked = [
        book(runtime, "TLS0001", "Müller^Hans", "MRI1"),
        book(runtime, "TLS0002", "Dvořák^Antonín", "MRI1"),
    ]
    served = serve_tls(runtime, certificates)
    try:
        result = findscu(
            served.tls_port, USUAL_KEYS, tmp_path, extra=tls_options(certificates.client)
        )
    finally:
        served.listeners.shutdown()
    assert result.returncode == 0, result.output
    assert sorted(str(r.AccessionNumber) for r in result.responses) == sorted(booked)
    assert {str(r.PatientName) for r in result.responses} == {"Müller^Hans", "Dvořák^Antonín"}


def test_a_plain_association_to_the_tls_port_fails_and_is_logged(
    ris: Ris, certificates: DemoCertificates, tls_log: pytest.LogCaptureFixture
) -> None:
    done = echoscu(ris.tls_port)
    assert done.returncode != 0
    assert "Received Echo Response" not in done.stdout + done.stderr
    message = logged(tls_log, "DICOM TLS handshake failed peer=127.0.0.1:")
    assert "reason=" in message
    assert_still_serving(ris, certificates)


def test_a_console_certificate_from_another_ca_is_refused(
    ris: Ris,
    certificates: DemoCertificates,
    stranger: DemoCertificates,
    tls_log: pytest.LogCaptureFixture,
) -> None:
    # The console trusts our CA, but its own certificate is signed by a CA we do not know.
    impostor = TlsFiles(stranger.client.certificate, stranger.client.private_key, certificates.ca)
    done = echoscu(ris.tls_port, tls_options(impostor))
    assert done.returncode != 0
    assert "Received Echo Response" not in done.stdout + done.stderr
    message = logged(tls_log, "CERTIFICATE_VERIFY_FAILED")
    assert "peer=127.0.0.1:" in message
    assert "PRIVATE KEY" not in tls_log.text
    assert_still_serving(ris, certificates)


def test_a_console_without_a_certificate_is_refused_when_one_is_required(
    ris: Ris, certificates: DemoCertificates, tls_log: pytest.LogCaptureFixture
) -> None:
    done = echoscu(ris.tls_port, ["+tla", "+cf", str(certificates.ca)])
    assert done.returncode != 0
    assert "Received Echo Response" not in done.stdout + done.stderr
    logged(tls_log, "DICOM TLS handshake failed peer=127.0.0.1:")
    assert_still_serving(ris, certificates)


def test_a_connection_that_never_starts_its_handshake_holds_up_nobody(
    ris: Ris, certificates: DemoCertificates, tls_log: pytest.LogCaptureFixture
) -> None:
    # pynetdicom's own TLS server would do this handshake in its accept loop and wait.
    with socket.create_connection(("127.0.0.1", ris.tls_port), timeout=5) as silent:
        silent_port = silent.getsockname()[1]
        assert_still_serving(ris, certificates)
    # Gone without a word: its handshake ends at once, and says so.
    logged(tls_log, f"DICOM TLS handshake failed peer=127.0.0.1:{silent_port} reason=")


def test_without_required_certificates_anonymous_tls_is_let_in_but_strangers_are_not(
    ris: Ris, certificates: DemoCertificates, stranger: DemoCertificates
) -> None:
    lenient = serve_tls(ris.runtime, certificates, require_peer_certificate=False)
    try:
        anonymous = echoscu(lenient.tls_port, ["+tla", "+cf", str(certificates.ca)])
        assert anonymous.returncode == 0, anonymous.stdout + anonymous.stderr
        impostor = TlsFiles(
            stranger.client.certificate, stranger.client.private_key, certificates.ca
        )
        assert echoscu(lenient.tls_port, tls_options(impostor)).returncode != 0
    finally:
        lenient.listeners.shutdown()


def test_the_plain_port_can_be_switched_off(ris: Ris, certificates: DemoCertificates) -> None:
    served = serve_tls(ris.runtime, certificates, plain=False)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", served.plain_port), timeout=5).close()
        done = echoscu(served.tls_port, tls_options(certificates.client))
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        served.listeners.shutdown()


# --- Orthanc ----------------------------------------------------------------------------


@dataclass
class SecurePacs:
    orthanc: OrthancProcess
    workstation: Workstation


def tls_storescp(
    ae_title: str, port: int, folder: Path, files: TlsFiles, log: Path
) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as log_file:
        return subprocess.Popen(
            ["storescp", "-aet", ae_title, "-od", str(folder), *tls_options(files), str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def tls_nodes(workstation_port: int) -> NodeTable:
    """The committed node table; the reading workstation on this test's port, TLS only."""
    return NodeTable(
        nodes=tuple(
            node.model_copy(update={"port": workstation_port, "tls": True})
            if node.ae_title == WORKSTATION
            else node
            for node in node_table().nodes
        )
    )


@pytest.fixture(scope="module")
def pacs(
    tmp_path_factory: pytest.TempPathFactory, certificates: DemoCertificates
) -> Iterator[SecurePacs]:
    """Orthanc with DICOM TLS, and a reading workstation (storescp) that speaks TLS only."""
    root = tmp_path_factory.mktemp("pacs")
    workstation_port = free_port()
    orthanc = OrthancProcess(
        tls_nodes(workstation_port),
        var_dir=root / "var",
        base_configuration=BASE_CONFIGURATION,
        http_port=free_port(),
        dicom_port=free_port(),
        tls=OrthancTls(certificates.server),
    )
    process = tls_storescp(
        WORKSTATION, workstation_port, root / "received", certificates.client, root / "ws.log"
    )
    try:
        with orthanc:
            deadline = time.monotonic() + 10
            options = tls_options(certificates.client)
            while echoscu(workstation_port, options, called=WORKSTATION).returncode != 0:
                assert process.poll() is None, (root / "ws.log").read_text(errors="replace")
                assert time.monotonic() < deadline, "the TLS workstation did not answer"
                time.sleep(0.05)
            yield SecurePacs(orthanc, Workstation(WORKSTATION, workstation_port, root / "received"))
    finally:
        stop_process(process)


def lookup(orthanc: OrthancProcess, uid: str) -> list[str]:
    """Orthanc's IDs of the instances with this SOP Instance UID."""
    answer = httpx.post(f"{orthanc.url}/tools/lookup", content=uid, auth=orthanc.auth, timeout=10)
    answer.raise_for_status()
    return [found["ID"] for found in answer.json() if found["Type"] == "Instance"]


def one_series(folder: Path, patient_id: str, images: int = 2) -> tuple[str, list[Path], list[str]]:
    study = str(generate_uid())
    series = write_mr_series(
        folder,
        patient=Patient(patient_id, "Tls^Test"),
        accession_number=patient_id,
        study_instance_uid=study,
        description="SAG T2 TSE",
        images=images,
    )
    return study, series.paths, series.sop_instance_uids


def test_orthancs_generated_configuration_turns_dicom_tls_on(pacs: SecurePacs) -> None:
    generated = (pacs.orthanc.config_dir / "generated.json").read_text(encoding="utf-8")
    assert '"DicomTlsEnabled": true' in generated
    assert '"DicomTlsRemoteCertificateRequired": true' in generated
    assert "PRIVATE KEY" not in generated  # paths to the key, never the key


def store_over_tls(
    pacs: SecurePacs, certificates: DemoCertificates, folder: Path, patient_id: str
) -> tuple[str, dict[str, str]]:
    """``storescu +tls`` of a new two-image series into Orthanc: its study, and Orthanc's
    ID of each SOP Instance UID (each found exactly once)."""
    study, paths, uids = one_series(folder, patient_id)
    done = storescu(pacs.orthanc.dicom_port, paths, extra=tls_options(certificates.client))
    assert done.returncode == 0, done.stdout + done.stderr
    found = [lookup(pacs.orthanc, uid) for uid in uids]
    assert all(len(ids) == 1 for ids in found), found
    return study, {uid: ids[0] for uid, ids in zip(uids, found, strict=True)}


def test_storescu_over_tls_stores_into_orthanc(
    pacs: SecurePacs, certificates: DemoCertificates, tmp_path: Path
) -> None:
    _, stored = store_over_tls(pacs, certificates, tmp_path, "TLSSTORE1")
    assert len(stored) == 2


def test_a_plain_storescu_to_orthancs_tls_port_fails(pacs: SecurePacs, tmp_path: Path) -> None:
    _, paths, uids = one_series(tmp_path, "TLSPLAIN1", images=1)
    done = storescu(pacs.orthanc.dicom_port, paths)
    assert done.returncode != 0
    assert lookup(pacs.orthanc, uids[0]) == []


def test_orthanc_sends_to_a_tls_workstation_over_tls(
    pacs: SecurePacs, certificates: DemoCertificates, tmp_path: Path
) -> None:
    study, stored = store_over_tls(pacs, certificates, tmp_path, "TLSSEND1")
    sent = httpx.post(
        f"{pacs.orthanc.url}/modalities/{WORKSTATION}/store",
        json={"Resources": list(stored.values()), "Synchronous": True},
        auth=pacs.orthanc.auth,
        timeout=30,
    )
    assert sent.status_code == 200, sent.text
    assert pacs.workstation.received(study) == set(stored)


def test_a_console_does_a_whole_examination_over_tls(
    runtime: Runtime, pacs: SecurePacs, certificates: DemoCertificates
) -> None:
    accession = book(runtime, "TLS0100", "Console^Tls", "MRI1")
    served = serve_tls(runtime, certificates)
    context = client_context(
        certificates.ca, certificates.client.certificate, certificates.client.private_key
    )
    console = ScannerConsole(
        "MRI1",
        ris=Peer("127.0.0.1", served.tls_port, "LSP_RIS", context),
        pacs=Peer("127.0.0.1", pacs.orthanc.dicom_port, pacs.orthanc.ae_title, context),
    )
    try:
        [item] = console.worklist(accession=accession)
        plan = [PlannedSeries("SAG T2 TSE", [mr_template(1), mr_template(2)])]
        done = perform(console, item, plan, clock=fixed_clock)
    finally:
        served.listeners.shutdown()
    assert (done.status, done.stored, done.failed) == ("COMPLETED", 2, [])
    stored_uids = [uid for series in done.series for uid in series.sop_instance_uids]
    assert all(len(lookup(pacs.orthanc, uid)) == 1 for uid in stored_uids)
    with runtime.sessions() as session:
        status = session.execute(
            select(ScheduledStep.status).where(ScheduledStep.accession_number == accession)
        ).scalar_one()
    assert status == "COMPLETED"


# --- the demo certificates ------------------------------------------------------------


def test_demo_certificates_chain_to_the_demo_ca_and_name_this_machine(
    certificates: DemoCertificates, stranger: DemoCertificates
) -> None:
    ca = x509.load_pem_x509_certificate(certificates.ca.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for files in (certificates.server, certificates.client):
        leaf = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        leaf.verify_directly_issued_by(ca)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in names.get_values_for_type(x509.DNSName)
        assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert files.private_key.stat().st_mode & 0o777 == 0o600
    other_ca = x509.load_pem_x509_certificate(stranger.ca.read_bytes())
    with pytest.raises(InvalidSignature):
        x509.load_pem_x509_certificate(
            certificates.client.certificate.read_bytes()
        ).verify_directly_issued_by(other_ca)


def test_tls_demo_certs_makes_keys_for_the_owner_only_and_keeps_what_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MRI_PIPELINE_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(app, ["tls", "demo-certs"])
        assert made.exit_code == 0, made.output
        demo = DemoCertificates(tmp_path / "tls")
        assert demo.complete()
        for key in (demo.server.private_key, demo.client.private_key):
            assert key.stat().st_mode & 0o777 == 0o600
        assert "PRIVATE KEY" not in made.output
        before = demo.ca.read_bytes()
        again = runner.invoke(app, ["tls", "demo-certs"])
        assert again.exit_code == 1
        assert "--force" in again.output
        assert demo.ca.read_bytes() == before
        forced = runner.invoke(app, ["tls", "demo-certs", "--force"])
        assert forced.exit_code == 0, forced.output
        assert demo.ca.read_bytes() != before
    finally:
        get_settings.cache_clear()


def test_dcmtk_is_built_with_tls() -> None:
    # Guards the tests above against a DCMTK without OpenSSL, where +tls is unknown.
    assert shutil.which("echoscu") is not None
    usage = subprocess.run(["echoscu", "--help"], capture_output=True, text=True, check=False)
    assert "+tls" in usage.stdout
