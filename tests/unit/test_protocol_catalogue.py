"""The protocol catalogue file and the indication → priority/protocol rules (DOMAIN.md B.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mri_pipeline.domain.errors import UnknownIndication
from mri_pipeline.domain.protocols import (
    Catalogue,
    CatalogueError,
    Priority,
    choose_protocol,
    parse_catalogue,
)

CATALOGUE_FILE = Path(__file__).resolve().parents[2] / "worklist/protocols.yaml"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), "protocols.yaml")


def test_the_ten_lumbar_protocols_are_there_with_their_loinc_codes(catalogue: Catalogue) -> None:
    expected = {
        "LSP-STD": ("30679-5", False),
        "LSP-RAD": ("30679-5", False),
        "LSP-STEN": ("30679-5", False),
        "LSP-TRAUMA": ("30679-5", False),
        "LSP-INF": ("24967-2", True),
        "LSP-TUM": ("24967-2", True),
        "LSP-POSTOP": ("24967-2", True),
        "LSP-SPA": ("30679-5", False),
        "LSP-CES": ("30679-5", False),
        "LSP-SCREEN": ("30679-5", False),
    }
    assert {p.code for p in catalogue.protocols} == set(expected)
    for code, (loinc, contrast) in expected.items():
        protocol = catalogue.protocol(code)
        assert protocol.requested_procedure_codes[0].code_value == loinc
        assert protocol.requested_procedure_codes[0].coding_scheme_designator == "LN"
        assert protocol.contrast is contrast
        assert protocol.scheduled_protocol_code.coding_scheme_designator == "99LSPINE"
        assert protocol.slot_minutes >= protocol.scan_minutes


def test_spa_orders_lumbar_spine_and_sacroiliac_joints(catalogue: Catalogue) -> None:
    codes = [c.code_value for c in catalogue.protocol("LSP-SPA").requested_procedure_codes]
    assert codes == ["30679-5", "36031-3"]


def test_gadolinium_protocols_order_post_contrast_series(catalogue: Catalogue) -> None:
    for protocol in catalogue.protocols:
        post_contrast = [s for s in protocol.series if "+C" in s.description and s.required]
        assert bool(post_contrast) is protocol.contrast, protocol.code


@pytest.mark.parametrize(
    ("indication", "priority", "protocol"),
    [
        ("suspected-ces", Priority.STAT, "LSP-CES"),
        ("motor-deficit", Priority.STAT, "LSP-RAD"),
        ("infection-with-deficit", Priority.STAT, "LSP-INF"),
        ("cancer-with-deficit", Priority.STAT, "LSP-TUM"),
        ("infection", Priority.HIGH, "LSP-INF"),
        ("cancer-red-flags", Priority.HIGH, "LSP-TUM"),
        ("fracture-risk", Priority.HIGH, "LSP-TRAUMA"),
        ("postop-new-deficit", Priority.HIGH, "LSP-POSTOP"),
        ("postop", Priority.ROUTINE, "LSP-POSTOP"),
        ("radiculopathy", Priority.ROUTINE, "LSP-RAD"),
        ("stenosis", Priority.ROUTINE, "LSP-STEN"),
        ("inflammatory-back-pain", Priority.ROUTINE, "LSP-SPA"),
        ("screening", Priority.LOW, "LSP-SCREEN"),
    ],
)
def test_each_indication_maps_to_its_priority_and_protocol(
    catalogue: Catalogue, indication: str, priority: Priority, protocol: str
) -> None:
    choice = choose_protocol(catalogue, indication)
    assert (choice.priority, choice.protocol.code) == (priority, protocol)


def test_the_highest_priority_red_flag_wins_and_never_downgrades(catalogue: Catalogue) -> None:
    choice = choose_protocol(catalogue, "radiculopathy", ["suspected-ces"])
    assert (choice.priority, choice.protocol.code) == (Priority.STAT, "LSP-CES")
    choice = choose_protocol(catalogue, "suspected-ces", ["radiculopathy"])
    assert (choice.priority, choice.protocol.code) == (Priority.STAT, "LSP-CES")


def test_a_tie_keeps_the_primary_indications_protocol(catalogue: Catalogue) -> None:
    choice = choose_protocol(catalogue, "infection", ["fracture-risk"])
    assert (choice.priority, choice.protocol.code) == (Priority.HIGH, "LSP-INF")


def test_screening_without_red_flags_is_flagged_not_indicated(catalogue: Catalogue) -> None:
    assert "usually not appropriate" in (
        choose_protocol(catalogue, "screening").not_indicated or ""
    )
    with_flag = choose_protocol(catalogue, "screening", ["cancer-red-flags"])
    assert with_flag.not_indicated is None
    assert with_flag.protocol.code == "LSP-TUM"


def test_an_unknown_indication_names_itself_and_the_valid_ones(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownIndication, match=r"back-ache.*valid: suspected-ces"):
        choose_protocol(catalogue, "back-ache")


def replace_line(old: str, new: str) -> str:
    text = CATALOGUE_FILE.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_wrong_type_names_its_line_and_field() -> None:
    text = replace_line("    slot_minutes: 45\n", "    slot_minutes: forty-five\n")
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(text, "protocols.yaml")
    line = line_of(text, "forty-five")
    assert f"protocols.yaml, line {line}: protocols[4].slot_minutes" in str(caught.value)


def test_a_missing_field_names_the_protocol_entry() -> None:
    text = replace_line("    contrast: true\n", "")
    with pytest.raises(CatalogueError, match=r"protocols\[4\].contrast: Field required"):
        parse_catalogue(text, "protocols.yaml")


def test_an_indication_naming_an_unknown_protocol_is_refused() -> None:
    text = replace_line("    protocol: LSP-SPA\n", "    protocol: LSP-NOPE\n")
    with pytest.raises(CatalogueError, match="unknown protocol LSP-NOPE"):
        parse_catalogue(text, "protocols.yaml")


def test_a_yaml_syntax_error_names_its_line() -> None:
    text = replace_line("  - code: LSP-STD\n", "  - code: [LSP-STD\n")
    with pytest.raises(CatalogueError, match="line"):
        parse_catalogue(text, "protocols.yaml")


def test_a_bad_catalogue_stops_start_up(tmp_path: Path) -> None:
    from mri_pipeline.config import Settings
    from mri_pipeline.runtime import build_runtime

    bad = tmp_path / "protocols.yaml"
    bad.write_text(replace_line("    scan_minutes: 20\n", "    scan_minutes: -3\n"))
    settings = Settings(var_dir=tmp_path, protocols_file=bad)
    with pytest.raises(CatalogueError, match="scan_minutes"):
        build_runtime(settings)
    assert not (tmp_path / "mri_pipeline.db").exists()
