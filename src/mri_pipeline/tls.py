"""DICOM TLS material: a node's PEM files, the SSL contexts made from them, and the
demo certificates (``mri-pipeline tls demo-certs``).

Imports nothing of the project, so the DICOM edge, the Orthanc adapter and the CLI can
all use it. A clinic's real certificates come from its own CA; the demo ones are made
here, never committed, and are only good for one machine (``localhost``, ``127.0.0.1``).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class TlsFiles(NamedTuple):
    """PEM files of one TLS node: its certificate, its private key, and the CA
    certificate(s) a peer's certificate must chain to."""

    certificate: Path
    private_key: Path
    ca_certificates: Path


def server_context(files: TlsFiles, *, require_peer_certificate: bool) -> ssl.SSLContext:
    """The context of a DICOM TLS listener: TLS 1.2 or newer, our certificate, and peers'
    certificates verified against the CA (refused when absent if required; DCMTK's
    ``--require-peer-cert`` and ``--verify-peer-cert``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate, files.private_key)
    context.load_verify_locations(cafile=files.ca_certificates)
    context.verify_mode = ssl.CERT_REQUIRED if require_peer_certificate else ssl.CERT_OPTIONAL
    return context


def client_context(
    ca_certificates: Path,
    certificate: Path | None = None,
    private_key: Path | None = None,
) -> ssl.SSLContext:
    """The context of a DICOM TLS requestor (a console): the peer's certificate must chain
    to our CA and name the host we connect to; ours is presented when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_certificates)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        context.load_cert_chain(certificate, private_key)
    return context


@dataclass(frozen=True)
class DemoCertificates:
    """The files ``write_demo_certificates`` makes in ``folder``: a CA (its key is not
    kept, so nothing more can be signed with it), a server certificate for our AE and
    Orthanc, and a client certificate for a console or workstation."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def server(self) -> TlsFiles:
        return TlsFiles(self.folder / "server.crt", self.folder / "server.key", self.ca)

    @property
    def client(self) -> TlsFiles:
        return TlsFiles(self.folder / "client.crt", self.folder / "client.key", self.ca)

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.ca, *self.server[:2], *self.client[:2])

    def complete(self) -> bool:
        return all(path.is_file() for path in self.paths)


ORGANISATION = "MRI pipeline demo"
DEMO_HOSTS = ("localhost",)
DEMO_ADDRESSES = ("127.0.0.1", "::1")


def write_demo_certificates(
    folder: Path,
    *,
    days: int = 365,
    hosts: Sequence[str] = DEMO_HOSTS,
    addresses: Sequence[str] = DEMO_ADDRESSES,
    now: datetime | None = None,
) -> DemoCertificates:
    """Make a demo CA and the server and client certificates it signs (RSA 2048, SHA-256;
    subject alternative names ``hosts`` and ``addresses``), replacing what is there.
    Private keys are written mode 0600."""
    demo = DemoCertificates(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # tolerate a little clock skew
    end = start + timedelta(days=days)
    ca_key = _new_key()
    ca_name = _name("MRI pipeline demo CA")
    ca = (
        _builder(ca_name, ca_name, ca_key, start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_certificate(demo.ca, ca)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    # Orthanc uses one certificate both as SCP and when it sends (SCU), and a workstation
    # both receives and queries: each certificate serves either end of an association.
    for files, common_name in (
        (demo.server, "MRI pipeline demo server"),
        (demo.client, "MRI pipeline demo console"),
    ):
        key = _new_key()
        certificate = (
            _builder(_name(common_name), ca_name, key, start, end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private_key(files.private_key, key)
        _write_certificate(files.certificate, certificate)
    return demo


def _new_key() -> rsa.RSAPrivateKey:
    # RSA rather than ECDSA: what every DICOM TLS implementation (BCP 195 profiles) takes.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    start: datetime,
    end: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Unencrypted PEM (servers start unattended), readable by the owner only from the
    moment the file exists."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # an older file keeps its mode through O_TRUNC
        file.write(pem)
