"""Orthanc, the image store: its process (``process``) and, later, its REST client."""

from mri_pipeline.orthanc.process import (
    OrthancProcess,
    OrthancStartError,
    find_plugins,
    generated_configuration,
    orthanc_credentials,
)

__all__ = [
    "OrthancProcess",
    "OrthancStartError",
    "find_plugins",
    "generated_configuration",
    "orthanc_credentials",
]
