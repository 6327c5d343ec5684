"""Orthanc, the image store: its process (``process``) and its REST API (``client``)."""

from mri_pipeline.orthanc.client import (
    Change,
    ChangesPage,
    OrthancClient,
    OrthancUnavailable,
    Resource,
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
    "OrthancClient",
    "OrthancProcess",
    "OrthancStartError",
    "OrthancUnavailable",
    "Resource",
    "configured_ae_title",
    "find_plugins",
    "generated_configuration",
    "orthanc_credentials",
]
