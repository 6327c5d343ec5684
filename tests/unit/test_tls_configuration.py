"""DICOM TLS configuration: Orthanc's options, the node table's TLS flag, the settings'
rules, and that no key or certificate is ever committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from mri_pipeline.config import Settings
from mri_pipeline.domain.nodes import DicomNode, NodeRole, NodeTable
from mri_pipeline.orthanc.process import OrthancTls, generated_configuration
from mri_pipeline.tls import TlsFiles
from tests.conftest import ROOT

# PEM armour of a private key (any kind) or a certificate.
PEM_SECRET_OR_CERTIFICATE = re.compile(rb"-----BEGIN ([A-Z ]*PRIVATE KEY|CERTIFICATE)-----")


def configuration(nodes: NodeTable, tls: OrthancTls | None) -> dict[str, object]:
    return generated_configuration(
        nodes,
        http_port=8042,
        dicom_port=4242,
        storage_dir=Path("/s"),
        index_dir=Path("/i"),
        credentials=("u", "p"),
        plugins=[],
        tls=tls,
    )


NODES = NodeTable(
    nodes=(
        DicomNode(ae_title="MRI1", host="10.0.0.5", port=104, role=NodeRole.SCANNER),
        DicomNode(ae_title="WS1", host="10.0.0.6", port=2762, role=NodeRole.WORKSTATION, tls=True),
    )
)


def test_orthanc_gets_dicom_tls_options_with_absolute_paths(tmp_path: Path) -> None:
    files = TlsFiles(Path("tls/server.crt"), Path("tls/server.key"), Path("tls/ca.crt"))
    config = configuration(NODES, OrthancTls(files, remote_certificate_required=False))
    assert config["DicomTlsEnabled"] is True
    assert config["DicomTlsRemoteCertificateRequired"] is False
    for key, path in (
        ("DicomTlsCertificate", files.certificate),
        ("DicomTlsPrivateKey", files.private_key),
        ("DicomTlsTrustedCertificates", files.ca_certificates),
    ):
        # Orthanc runs in var/orthanc: a relative path would name another file there.
        assert config[key] == str(path.resolve())
        assert Path(str(config[key])).is_absolute()


def test_without_tls_orthanc_gets_no_dicom_tls_option() -> None:
    assert not any(key.startswith("DicomTls") for key in configuration(NODES, None))


def test_orthanc_reaches_nodes_marked_tls_over_tls_and_the_others_plainly() -> None:
    modalities = configuration(NODES, None)["DicomModalities"]
    assert isinstance(modalities, dict)
    assert modalities["WS1"]["UseDicomTls"] is True
    assert modalities["MRI1"]["UseDicomTls"] is False


def test_our_ae_cannot_be_left_without_any_dicom_listener() -> None:
    with pytest.raises(ValidationError, match="dicom_tls"):
        Settings(dicom_plain_enabled=False, dicom_tls=False)
    assert Settings(dicom_plain_enabled=False, dicom_tls=True).dicom_tls_port == 2762


def test_tls_is_off_and_mutual_by_default() -> None:
    settings = Settings()
    assert not settings.dicom_tls and not settings.orthanc_dicom_tls
    assert settings.dicom_tls_require_peer_certificate
    assert settings.uses_demo_tls_files()
    assert settings.demo_tls_folder() == settings.var_dir / "tls"
    assert not Settings(dicom_tls_certificate=Path("/etc/x.crt")).uses_demo_tls_files()


def test_no_private_key_or_certificate_is_committed() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    tracked = [ROOT / name for name in listed.decode().split("\0") if name]
    assert tracked, "git ls-files listed nothing"
    found = [
        str(path.relative_to(ROOT))
        for path in tracked
        if path.is_file() and PEM_SECRET_OR_CERTIFICATE.search(path.read_bytes())
    ]
    assert found == []
