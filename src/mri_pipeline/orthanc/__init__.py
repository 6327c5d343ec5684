"""Orthanc, the image store: its process (``process``) and its REST API (``client``)."""

from mri_pipeline.orthanc.client import (
    Change,
    ChangesPage,
    JobStatus,
    OrthancClient,
    OrthancUnavailable,
    Resource,
    StoredStudy,
    UnknownModality,
    UnknownResource,
)
from mri_pipeline.orthanc.process import (
    OrthancProcess,
    OrthancStartError,
    configured_ae_title,
    find_plugins,
    generated_configuration,
    orthanc_credentials,
)

__all__ = [
    "Change",
    "ChangesPage",
    "JobStatus",
    "OrthancClient",
    "OrthancProcess",
    "OrthancStartError",
    "OrthancUnavailable",
    "Resource",
    "StoredStudy",
    "UnknownModality",
    "UnknownResource",
    "configured_ae_title",
    "find_plugins",
    "generated_configuration",
    "orthanc_credentials",
]
