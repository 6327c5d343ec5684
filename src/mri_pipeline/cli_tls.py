"""``mri-pipeline tls`` and the DICOM TLS wiring of the other commands (settings to SSL
contexts, listeners and Orthanc's options)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mri_pipeline.config import Settings, get_settings
from mri_pipeline.dicom.server import DicomServerConfig, TlsListener
from mri_pipeline.orthanc.process import OrthancTls
from mri_pipeline.tls import (
    DemoCertificates,
    TlsFiles,
    client_context,
    server_context,
    write_demo_certificates,
)

tls_app = typer.Typer(help="DICOM TLS certificates.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@tls_app.command("demo-certs")
def tls_demo_certs(
    out: Annotated[Path | None, typer.Option("--out", help="Folder; default var/tls")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace certificates there")] = False,
) -> None:
    """Make a demo CA, a server certificate (our AE and Orthanc) and a client certificate
    (a console or workstation), for DICOM TLS on this machine only; never commit them."""
    folder = out or get_settings().demo_tls_folder()
    there = [path.name for path in DemoCertificates(folder).paths if path.exists()]
    if there and not force:
        err.print(
            f"[red]{folder} already holds {', '.join(there)}[/red]; --force replaces them",
            highlight=False,
        )
        raise typer.Exit(1)
    made = write_demo_certificates(folder)
    table = Table("file", "for")
    table.add_row(str(made.ca), "every peer's trusted CA (DCMTK +cf)")
    table.add_row(str(made.server.certificate), "our AE and Orthanc")
    table.add_row(str(made.server.private_key), "their private key (mode 0600)")
    table.add_row(str(made.client.certificate), "a console or workstation (DCMTK +tls KEY CERT)")
    table.add_row(str(made.client.private_key), "its private key (mode 0600)")
    console.print(table)
    console.print("valid for localhost, 127.0.0.1 and ::1, one year; the CA key is not kept")


def ensure_demo_certificates(settings: Settings) -> None:
    """``up --demo`` with DICOM TLS on and no certificates configured: make the demo ones
    when they are missing."""
    if not (settings.dicom_tls or settings.orthanc_dicom_tls):
        return
    demo = DemoCertificates(settings.demo_tls_folder())
    if settings.uses_demo_tls_files() and not demo.complete():
        write_demo_certificates(demo.folder)
        console.print(
            f"demo: DICOM TLS certificates made in {demo.folder} (CA ca.crt, "
            "our AE and Orthanc server.crt, a console client.crt)",
            highlight=False,
        )


def tls_files(settings: Settings) -> TlsFiles:
    """The certificate, key and CA of our AE and Orthanc: configured, or the demo's."""
    if settings.uses_demo_tls_files():
        return DemoCertificates(settings.demo_tls_folder()).server
    certificate = settings.dicom_tls_certificate
    private_key = settings.dicom_tls_private_key
    ca_certificates = settings.dicom_tls_ca_certificates
    if certificate is None or private_key is None or ca_certificates is None:
        err.print(
            "[red]cannot start:[/red] set all of MRI_PIPELINE_DICOM_TLS_CERTIFICATE, "
            "_PRIVATE_KEY and _CA_CERTIFICATES, or none of them for the demo files"
        )
        raise typer.Exit(2)
    return TlsFiles(certificate, private_key, ca_certificates)


def _unusable(settings: Settings, files: TlsFiles, exc: OSError) -> typer.Exit:
    demo = settings.uses_demo_tls_files()
    hint = "; `mri-pipeline tls demo-certs` makes demo ones" if demo else ""
    err.print(
        f"[red]cannot use DICOM TLS:[/red] {exc} (certificate {files.certificate}, "
        f"key {files.private_key}, CA {files.ca_certificates}){hint}",
        highlight=False,
    )
    return typer.Exit(2)


def tls_listener(settings: Settings) -> TlsListener | None:
    """Our AE's DICOM TLS listener when ``dicom_tls`` is on."""
    if not settings.dicom_tls:
        return None
    files = tls_files(settings)
    try:
        context = server_context(
            files, require_peer_certificate=settings.dicom_tls_require_peer_certificate
        )
    except OSError as exc:  # a missing or unreadable file; ssl.SSLError for a bad one
        raise _unusable(settings, files, exc) from exc
    return TlsListener(settings.dicom_tls_port, context)


def listening(config: DicomServerConfig) -> list[tuple[int, str]]:
    """Our AE's ports, each with what to say of it: plain, then DICOM TLS."""
    ports = [(config.port, "")] if config.plain else []
    if config.tls is not None:
        required = config.tls.context.verify_mode is ssl.CERT_REQUIRED
        peer = "client certificate required" if required else "client certificate optional"
        ports.append((config.tls.port, f"DICOM TLS, {peer}"))
    return ports


def orthanc_tls(settings: Settings) -> OrthancTls | None:
    if not settings.orthanc_dicom_tls:
        return None
    return OrthancTls(tls_files(settings), settings.dicom_tls_require_peer_certificate)


def console_context(
    settings: Settings, certificate: Path | None, private_key: Path | None
) -> ssl.SSLContext:
    """A simulated console's TLS context: its certificate (the demo console's unless
    given) and our CA."""
    demo = DemoCertificates(settings.demo_tls_folder()).client
    files = TlsFiles(
        certificate or demo.certificate,
        private_key or demo.private_key,
        tls_files(settings).ca_certificates,
    )
    try:
        return client_context(files.ca_certificates, files.certificate, files.private_key)
    except OSError as exc:
        raise _unusable(settings, files, exc) from exc


def tls_findscu(settings: Settings, host: str, port: int, ae_title: str) -> str:
    """The ``findscu`` arguments that reach our TLS port as a console."""
    if settings.uses_demo_tls_files():
        client = DemoCertificates(settings.demo_tls_folder()).client
        tls = f"+tls {client.private_key} {client.certificate} +cf {client.ca_certificates}"
    else:
        tls = f"+tls CONSOLE.key CONSOLE.crt +cf {settings.dicom_tls_ca_certificates}"
    return f"findscu -W {tls} -aec {ae_title} {host} {port}"
