"""Loading the reference files: protocol catalogue, DICOM node table, radiologists."""

from __future__ import annotations

from pathlib import Path

from mri_pipeline.domain.nodes import NodeTable, parse_node_table
from mri_pipeline.domain.protocols import Catalogue, parse_catalogue
from mri_pipeline.domain.radiologists import (
    RadiologistsError,
    RadiologistTable,
    parse_radiologists,
)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from exc


def load_catalogue(path: Path) -> Catalogue:
    return parse_catalogue(_read(path), str(path))


def load_node_table(path: Path) -> NodeTable:
    return parse_node_table(_read(path), str(path))


def load_radiologists(path: Path, nodes: NodeTable) -> RadiologistTable:
    """The radiologists file, checked against the node table (each workstation known)."""
    table = parse_radiologists(_read(path), str(path))
    problems = table.unknown_workstations(nodes)
    if problems:
        raise RadiologistsError(f"{path}: " + "; ".join(problems))
    return table
