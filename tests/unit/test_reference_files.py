"""The node table and text checks: bad files name their line, bad values say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from mri_pipeline.domain.dicom_text import check_text
from mri_pipeline.domain.nodes import NodeRole, parse_node_table
from mri_pipeline.domain.yaml_source import SourceError

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_node_table_has_two_mr_scanners() -> None:
    table = parse_node_table((ROOT / "dicom_nodes/nodes.yaml").read_text(), "nodes.yaml")
    assert [n.ae_title for n in table.scanners("MR")] == ["MRI1", "MRI2"]
    assert table.get("MRI2") is not None
    assert table.get("MRI2").character_set == "ISO_IR 100"  # type: ignore[union-attr]
    assert all(n.role in NodeRole for n in table.nodes)


def test_a_bad_port_names_its_line_and_field() -> None:
    text = "nodes:\n  - ae_title: MRI1\n    host: h\n    port: many\n    role: scanner\n"
    with pytest.raises(SourceError, match=r"nodes.yaml, line 4: nodes\[0\].port"):
        parse_node_table(text, "nodes.yaml")


def test_an_over_long_ae_title_is_refused() -> None:
    text = "nodes:\n  - ae_title: ABCDEFGHIJKLMNOPQ\n    host: h\n    port: 1\n    role: scanner\n"
    with pytest.raises(SourceError, match="line 2"):
        parse_node_table(text, "nodes.yaml")


def test_broken_yaml_names_its_line() -> None:
    with pytest.raises(SourceError, match="line 3"):
        parse_node_table("nodes:\n  - ae_title: A\n   bad: [\n", "nodes.yaml")


def test_duplicate_ae_titles_are_refused() -> None:
    node = "  - {ae_title: A, host: h, port: 1, role: scanner}\n"
    with pytest.raises(SourceError, match="appears twice"):
        parse_node_table("nodes:\n" + node + node, "nodes.yaml")


@pytest.mark.parametrize(
    ("value", "vr", "words"),
    [
        ("A" * 65, "PN", "PN allows 64"),
        ("a^b^c^d^e^f", "PN", "five components"),
        ("^Hans", "PN", "family name"),
        ("x\\y", "LO", "backslash"),
        ("A" * 65, "LO", "LO allows 64"),
        ("tab\there", "LO", "control"),
    ],
)
def test_text_that_does_not_fit_its_vr_is_refused_with_a_reason(
    value: str, vr: str, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        check_text(value, vr)


def test_text_that_fits_is_returned() -> None:
    assert check_text("Müller^Hans", "PN") == "Müller^Hans"
