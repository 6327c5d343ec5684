"""The one settings object of the application (environment prefix ``MRI_PIPELINE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything that differs between a laptop demo, CI and a department."""

    model_config = SettingsConfigDict(env_prefix="MRI_PIPELINE_", env_file=None)

    var_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite (WAL) at var/mri_pipeline.db
    nodes_file: Path = Path("dicom_nodes/nodes.yaml")
    protocols_file: Path = Path("worklist/protocols.yaml")
    demo_orders_file: Path = Path("worklist/demo_orders.yaml")
    radiologists_file: Path = Path("worklist/radiologists.yaml")

    clinic_timezone: str = "Europe/London"
    uid_root: str = Field(default="2.25", description="UID root; 2.25 derives UIDs from UUIDs")
    accession_prefix: str = Field(default="LSP", max_length=6)
    working_day_start: str = "07:00"
    working_day_end: str = "21:00"

    ae_title: str = Field(default="LSP_RIS", max_length=16)
    dicom_host: str = "0.0.0.0"
    dicom_port: int = 11112
    allow_any_ae: bool = False
    max_associations: int = 64
    mwl_max_results: int = 2000
    mpps_strict: bool = Field(
        default=False, description="answer 0106 to N-SET attributes not created at N-CREATE"
    )

    # DICOM TLS (PS3.15 Annex B). Our AE listens for TLS on a second port beside the plain
    # one, as sites do while consoles migrate; the plain port can then be switched off.
    dicom_plain_enabled: bool = Field(default=True, description="listen on dicom_port, no TLS")
    dicom_tls: bool = Field(default=False, description="also listen for DICOM TLS")
    dicom_tls_port: int = Field(default=2762, description="DICOM's well-known TLS port")
    dicom_tls_certificate: Path | None = None  # None: the demo files under var_dir/tls
    dicom_tls_private_key: Path | None = None
    dicom_tls_ca_certificates: Path | None = None
    dicom_tls_require_peer_certificate: bool = Field(
        default=True, description="mutual TLS: refuse peers without a certificate of our CA"
    )

    cookie_secure: bool = Field(
        default=False, description="send the login cookie over HTTPS only (behind TLS)"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="larger request bodies are refused with 413"
    )

    orthanc_enabled: bool = True
    orthanc_config_file: Path = Path("orthanc.json")
    orthanc_executable: Path = Path("/usr/sbin/Orthanc")
    orthanc_http_port: int = 8042
    orthanc_dicom_port: int = 4242
    orthanc_startup_timeout: float = 30.0
    orthanc_dicom_tls: bool = Field(
        default=False, description="Orthanc's DICOM port speaks TLS only (one listener)"
    )
    orthanc_url: str = Field(
        default="", description="an Orthanc run elsewhere; empty: the project's own"
    )
    orthanc_username: str = ""  # empty: the generated var/orthanc/credentials.json
    orthanc_password: str = ""

    ingest_enabled: bool = True
    ingest_poll_interval: float = Field(default=0.25, gt=0)
    ingest_batch_size: int = Field(default=500, gt=0)

    routing_enabled: bool = True
    routing_poll_interval: float = Field(default=1.0, gt=0)
    site: str = Field(default="MAIN", max_length=16, description="this clinic's site code")
    orthanc_public_url: str = Field(
        default="", description="Orthanc as radiologists' browsers reach it; empty: orthanc_url"
    )

    @model_validator(mode="after")
    def _some_dicom_listener(self) -> Settings:
        if not (self.dicom_plain_enabled or self.dicom_tls):
            raise ValueError("dicom_plain_enabled=false needs dicom_tls=true")
        return self

    def uses_demo_tls_files(self) -> bool:
        """No certificate, key or CA configured: the demo's, under ``demo_tls_folder()``."""
        return (
            self.dicom_tls_certificate is None
            and self.dicom_tls_private_key is None
            and self.dicom_tls_ca_certificates is None
        )

    def demo_tls_folder(self) -> Path:
        return self.var_dir / "tls"

    def resolved_orthanc_url(self) -> str:
        return self.orthanc_url or f"http://127.0.0.1:{self.orthanc_http_port}"

    def orthanc_browser_url(self) -> str:
        """Orthanc as radiologists' browsers reach it (viewer and DICOMweb links)."""
        return self.orthanc_public_url or self.resolved_orthanc_url()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'mri_pipeline.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
