"""The DICOM node table: who may talk to us, and how (``dicom_nodes/nodes.yaml``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mri_pipeline.domain.yaml_source import parse_yaml_model


class NodeRole(StrEnum):
    SCANNER = "scanner"
    WORKSTATION = "workstation"
    ARCHIVE = "archive"


class DicomNode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ae_title: str = Field(min_length=1, max_length=16)
    host: str
    port: int = Field(ge=1, le=65535)
    role: NodeRole
    modality: str | None = None
    station_name: str | None = Field(default=None, max_length=16)
    location: str | None = Field(default=None, max_length=16)
    character_set: str = "ISO_IR 192"
    tls: bool = Field(default=False, description="accepts DICOM TLS only: Orthanc sends over TLS")
    description: str = ""

    @field_validator("ae_title")
    @classmethod
    def _ae_title_characters(cls, value: str) -> str:
        if value != value.strip() or "\\" in value or not value.isprintable():
            raise ValueError("AE title: printable characters, no backslash or edge spaces")
        return value

    @field_validator("character_set")
    @classmethod
    def _known_charset(cls, value: str) -> str:
        if value not in ("ISO_IR 192", "ISO_IR 100", "ISO_IR 6"):
            raise ValueError("character_set must be ISO_IR 192, ISO_IR 100 or ISO_IR 6")
        return value


class NodeTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    nodes: tuple[DicomNode, ...]

    @model_validator(mode="after")
    def _unique_ae_titles(self) -> NodeTable:
        seen: set[str] = set()
        for node in self.nodes:
            if node.ae_title in seen:
                raise ValueError(f"AE title {node.ae_title} appears twice")
            seen.add(node.ae_title)
        return self

    def get(self, ae_title: str) -> DicomNode | None:
        return next((n for n in self.nodes if n.ae_title == ae_title), None)

    def scanners(self, modality: str = "MR") -> list[DicomNode]:
        return [n for n in self.nodes if n.role is NodeRole.SCANNER and n.modality == modality]

    @property
    def ae_titles(self) -> list[str]:
        return [n.ae_title for n in self.nodes]


def parse_node_table(text: str, source: str) -> NodeTable:
    return parse_yaml_model(text, source, NodeTable)
