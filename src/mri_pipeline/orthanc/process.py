"""Orthanc as a child process: configuration generated from the node table, start,
health check, stop.

Orthanc reads every ``*.json`` file of the folder it is given and refuses a key
defined in two files, so the committed ``orthanc.json`` holds what every
installation shares and ``generated.json`` only what differs per machine and start
(ports, folders, credentials, plugin paths, modalities).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mri_pipeline.domain.nodes import DicomNode, NodeRole, NodeTable
from mri_pipeline.subprocesses import stop_process
from mri_pipeline.tls import TlsFiles

log = logging.getLogger(__name__)

ORTHANC_EXECUTABLE = Path("/usr/sbin/Orthanc")
PLUGIN_DIRECTORIES = (
    Path("/usr/share/orthanc/plugins"),
    Path("/usr/lib/orthanc/plugins"),
    Path("/usr/local/share/orthanc/plugins"),
)
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"
WEB_VIEWER_PLUGIN = "libOrthancWebViewer.so"
# The plugins the project loads when their Debian package is installed, in load order.
KNOWN_PLUGINS = (DICOMWEB_PLUGIN, WEB_VIEWER_PLUGIN)
ORTHANC_USERNAME = "mri-pipeline"
QUERY_ROLES = (NodeRole.WORKSTATION, NodeRole.ARCHIVE)


class OrthancStartError(RuntimeError):
    """Orthanc did not come up healthy; the message carries the tail of its log."""


def configured_ae_title(base_configuration: Path) -> str:
    """The AE title Orthanc answers to, as the committed configuration sets it."""
    base = json.loads(base_configuration.read_text(encoding="utf-8"))
    return str(base.get("DicomAet", "ORTHANC"))


def orthanc_credentials(var_dir: Path) -> tuple[str, str]:
    """The REST user and password: read from ``var_dir/orthanc/credentials.json``,
    generated (mode 0600) at the first start."""
    path = var_dir / "orthanc" / "credentials.json"
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        return str(stored["username"]), str(stored["password"])
    path.parent.mkdir(parents=True, exist_ok=True)
    username, password = ORTHANC_USERNAME, secrets.token_urlsafe(24)
    # O_EXCL with the mode at creation: the password is never readable by others,
    # not even for the moment between writing and a later chmod.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"username": username, "password": password}, file)
    log.info("generated Orthanc REST credentials", extra={"path": str(path)})
    return username, password


def modality_entry(node: DicomNode) -> dict[str, Any]:
    """One ``DicomModalities`` entry (Orthanc 1.10 object form) with the role's rights;
    Orthanc's own associations to a TLS node (C-STORE to a workstation) use DICOM TLS."""
    queries = node.role in QUERY_ROLES
    return {
        "AET": node.ae_title,
        "Host": node.host,
        "Port": node.port,
        "Manufacturer": "Generic",
        "AllowEcho": True,
        "AllowStore": node.role is NodeRole.SCANNER,
        "AllowFind": queries,
        "AllowFindWorklist": False,
        "AllowGet": queries,
        "AllowMove": queries,
        "AllowStorageCommitment": node.role is NodeRole.SCANNER,
        "UseDicomTls": node.tls,
    }


@dataclass(frozen=True)
class OrthancTls:
    """DICOM TLS for Orthanc. Its DICOM port then speaks TLS only (Orthanc 1.10 has one
    DICOM listener), and the same certificate serves its own associations to the
    modalities marked ``tls`` in the node table."""

    files: TlsFiles
    remote_certificate_required: bool = True

    def configuration(self) -> dict[str, Any]:
        """The options (Orthanc 1.9.0; the last one 1.9.3), with absolute paths."""
        return {
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(self.files.certificate.resolve()),
            "DicomTlsPrivateKey": str(self.files.private_key.resolve()),
            "DicomTlsTrustedCertificates": str(self.files.ca_certificates.resolve()),
            "DicomTlsRemoteCertificateRequired": self.remote_certificate_required,
        }


def generated_configuration(
    nodes: NodeTable,
    *,
    http_port: int,
    dicom_port: int,
    storage_dir: Path,
    index_dir: Path,
    credentials: tuple[str, str],
    plugins: Sequence[Path],
    web_viewer_cache_dir: Path | None = None,
    tls: OrthancTls | None = None,
) -> dict[str, Any]:
    """The per-machine part of Orthanc's configuration (pure: no file is touched).

    With the web viewer among ``plugins``, its image cache goes to
    ``web_viewer_cache_dir`` (the plugin's default is inside the storage folder).
    With ``tls``, Orthanc's DICOM port speaks DICOM TLS only.
    """
    username, password = credentials
    configuration: dict[str, Any] = {
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "StorageDirectory": str(storage_dir),
        "IndexDirectory": str(index_dir),
        "RegisteredUsers": {username: password},
        "Plugins": [str(plugin) for plugin in plugins],
        "DicomModalities": {node.ae_title: modality_entry(node) for node in nodes.nodes},
        **(tls.configuration() if tls is not None else {}),
    }
    if web_viewer_cache_dir is not None and any(p.name == WEB_VIEWER_PLUGIN for p in plugins):
        configuration["WebViewer"] = {"CachePath": str(web_viewer_cache_dir)}
    return configuration


def find_plugins(directories: Sequence[Path] = PLUGIN_DIRECTORIES) -> list[Path]:
    """Every known plugin (DICOMweb, web viewer) that is installed, each from the first
    directory that holds it; an empty list when none is."""
    found: list[Path] = []
    for name in KNOWN_PLUGINS:
        candidate = next((d / name for d in directories if (d / name).is_file()), None)
        if candidate is not None:
            found.append(candidate)
    return found


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _from_main_thread() -> bool:
    # The parent-death signal fires when the starting *thread* ends, so only the main
    # thread (which lives as long as the process) asks for it.
    return threading.current_thread() is threading.main_thread()


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when our process dies, even by SIGKILL, so no
    Orthanc outlives the pipeline that started it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


class OrthancProcess:
    """A supervised Orthanc: ``with OrthancProcess(...) as orthanc: ...``.

    Files live under ``var_dir/orthanc/``: ``config/`` (the committed base file copied
    next to ``generated.json``), ``storage/``, ``index/``, ``webviewer-cache/``,
    ``credentials.json`` and ``orthanc.log``.
    """

    def __init__(
        self,
        nodes: NodeTable,
        *,
        var_dir: Path,
        base_configuration: Path,
        http_port: int,
        dicom_port: int,
        executable: Path = ORTHANC_EXECUTABLE,
        plugins: Sequence[Path] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        tls: OrthancTls | None = None,
    ) -> None:
        self.nodes = nodes
        self.tls = tls
        self.root = var_dir / "orthanc"
        self.base_configuration = base_configuration
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.executable = executable
        self.plugins = list(find_plugins() if plugins is None else plugins)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.config_dir = self.root / "config"
        self.log_path = self.root / "orthanc.log"
        self.ae_title = configured_ae_title(base_configuration)
        self.url = f"http://127.0.0.1:{http_port}"
        self.auth = httpx.BasicAuth(*orthanc_credentials(var_dir))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_configuration(self) -> Path:
        """Write the configuration folder Orthanc is started with; returns the folder."""
        storage_dir, index_dir = self.root / "storage", self.root / "index"
        for folder in (self.config_dir, storage_dir, index_dir):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.base_configuration, self.config_dir / "orthanc.json")
        generated = generated_configuration(
            self.nodes,
            http_port=self.http_port,
            dicom_port=self.dicom_port,
            storage_dir=storage_dir,
            index_dir=index_dir,
            credentials=orthanc_credentials(self.root.parent),
            plugins=self.plugins,
            web_viewer_cache_dir=self.root / "webviewer-cache",
            tls=self.tls,
        )
        target = self.config_dir / "generated.json"
        # The file holds the REST password: created 0600 like credentials.json.
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(generated, file, indent=2)
        return self.config_dir

    def start(self) -> None:
        """Start Orthanc and return once ``/system`` answers; stop it again on failure."""
        if self.running:
            return
        config_dir = self.write_configuration()
        log.info(
            "starting Orthanc",
            extra={
                "ae_title": self.ae_title,
                "http_port": self.http_port,
                "dicom_port": self.dicom_port,
                "dicom_tls": self.tls is not None,
            },
        )
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [str(self.executable), str(config_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                # DCMTK under Orthanc leaves Nagle on unless told: every C-STORE answer
                # would then wait for the console's delayed ACK (about 40 ms an image).
                env={**os.environ, "TCP_NODELAY": "1"},
                preexec_fn=_stop_with_parent if _from_main_thread() else None,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(base_url=self.url, auth=self.auth, timeout=2.0) as client:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    code = None if process is None else process.returncode
                    raise OrthancStartError(
                        f"Orthanc exited with code {code} during start-up; "
                        f"log {self.log_path}:\n{log_tail(self.log_path)}"
                    )
                try:
                    if client.get("/system").status_code == httpx.codes.OK:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise OrthancStartError(
                        f"Orthanc not healthy after {self.startup_timeout:.0f} s; "
                        f"log {self.log_path}:\n{log_tail(self.log_path)}"
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; safe to call more than once."""
        process, self._process = self._process, None
        if process is None:
            return
        if stop_process(process, self.stop_timeout):
            log.warning("Orthanc ignored SIGTERM; killed", extra={"pid": process.pid})
        log.info("Orthanc stopped", extra={"returncode": process.returncode})

    def __enter__(self) -> OrthancProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
