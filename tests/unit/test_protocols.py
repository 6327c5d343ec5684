"""The protocol catalogue (DOMAIN.md A.2, C.1) and the indication → priority → protocol rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mri_pipeline.domain.errors import DomainError, UnknownIndication, UnknownProtocol
from mri_pipeline.domain.protocols import (
    Catalogue,
    CatalogueError,
    CodedConcept,
    Priority,
    choose_protocol,
    parse_catalogue,
)

CATALOGUE_FILE = Path(__file__).parents[2] / "worklist/protocols.yaml"
WO = ("30679-5", "MR Lumbar spine WO contrast")
WO_AND_W = ("24967-2", "MR Lumbar spine WO and W contrast IV")
SIJ = ("36031-3", "MR Sacroiliac Joint")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"), "worklist/protocols.yaml")


# A small catalogue whose line numbers the error tests can name: line 10 is slot_minutes,
# line 18 is the indication's protocol.
SMALL = """\
contrast_agent: Gadolinium macrocyclic 0.1 mmol/kg
protocols:
  - code: LSP-STD
    meaning: Lumbar spine MRI - standard non-contrast
    series:
      - {description: LOC 3PL}
      - {description: SAG T2 TSE}
    contrast: false
    scan_minutes: 20
    slot_minutes: 30
    requested_procedure:
      - {code: "30679-5", scheme: LN, meaning: MR Lumbar spine WO contrast}
    default_priority: ROUTINE
indications:
  - code: radiculopathy
    label: Radiculopathy over 6 weeks
    priority: ROUTINE
    protocol: LSP-STD
"""


def small(old: str = "", new: str = "") -> str:
    assert old in SMALL
    return SMALL.replace(old, new, 1)


def refusal(text: str) -> str:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(text, "catalogue.yaml")
    return str(caught.value)


# --- the catalogue file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "contrast", "requested"),
    [
        ("LSP-STD", False, [WO]),
        ("LSP-RAD", False, [WO]),
        ("LSP-STEN", False, [WO]),
        ("LSP-TRAUMA", False, [WO]),
        ("LSP-INF", True, [WO_AND_W]),
        ("LSP-TUM", True, [WO_AND_W]),
        ("LSP-POSTOP", True, [WO_AND_W]),
        ("LSP-SPA", False, [WO, SIJ]),
        ("LSP-CES", False, [WO]),
        ("LSP-SCREEN", False, [WO]),
    ],
)
def test_each_protocol_orders_its_loinc_procedures_and_contrast(
    catalogue: Catalogue, code: str, contrast: bool, requested: list[tuple[str, str]]
) -> None:
    protocol = catalogue.protocol(code)
    assert protocol.contrast is contrast
    assert [
        (c.code_value, c.code_meaning, c.coding_scheme_designator)
        for c in protocol.requested_procedure_codes
    ] == [(value, meaning, "LN") for value, meaning in requested]
    assert protocol.requested_procedure_code == protocol.requested_procedure_codes[0]


def test_the_catalogue_holds_exactly_the_ten_lumbar_protocols_in_order(
    catalogue: Catalogue,
) -> None:
    assert catalogue.protocol_codes == [
        "LSP-STD",
        "LSP-RAD",
        "LSP-STEN",
        "LSP-TRAUMA",
        "LSP-INF",
        "LSP-TUM",
        "LSP-POSTOP",
        "LSP-SPA",
        "LSP-CES",
        "LSP-SCREEN",
    ]


def test_scheduled_protocol_codes_are_local_99lspine_codes_that_fit_sh_and_lo(
    catalogue: Catalogue,
) -> None:
    for protocol in catalogue.protocols:
        concept = protocol.scheduled_protocol_code
        assert concept == CodedConcept(
            code_value=protocol.code,
            coding_scheme_designator="99LSPINE",
            code_meaning=protocol.meaning,
        )
        assert len(concept.code_value) <= 16
        assert len(concept.code_meaning) <= 64
        assert concept.code_meaning.isascii(), concept.code_meaning


def test_the_standard_protocol_runs_the_six_default_series_in_order(catalogue: Catalogue) -> None:
    protocol = catalogue.protocol("LSP-STD")
    assert [s.description for s in protocol.series] == [
        "LOC 3PL",
        "SAG T1 TSE",
        "SAG T2 TSE",
        "SAG STIR",
        "AX T2 TSE",
        "AX T1 TSE",
    ]
    assert all(s.required for s in protocol.series)


@pytest.mark.parametrize(
    ("code", "optional"),
    [
        ("LSP-RAD", ["COR T2 TSE"]),
        ("LSP-STEN", ["SAG 3D T2"]),
        ("LSP-TRAUMA", ["COR STIR"]),
        ("LSP-INF", ["AX DWI", "COR T1 FS +C"]),
        ("LSP-TUM", ["SAG T2 DIXON"]),
        ("LSP-POSTOP", []),
        ("LSP-SPA", ["AX T2 TSE"]),
        ("LSP-CES", ["SAG T1 TSE", "SAG 3D T2"]),
    ],
)
def test_optional_series_are_not_required(
    catalogue: Catalogue, code: str, optional: list[str]
) -> None:
    protocol = catalogue.protocol(code)
    assert [s.description for s in protocol.series if not s.required] == optional
    assert protocol.series[0].description == "LOC 3PL"


def test_gadolinium_protocols_scan_post_contrast_series_and_the_others_do_not(
    catalogue: Catalogue,
) -> None:
    for protocol in catalogue.protocols:
        post_contrast = [s for s in protocol.required_series if s.post_contrast]
        assert bool(post_contrast) is protocol.contrast, protocol.code
    assert catalogue.contrast_agent.startswith("Gadolinium macrocyclic 0.1 mmol/kg")


def test_the_sacroiliac_protocol_has_the_four_asas_sequences(catalogue: Catalogue) -> None:
    descriptions = [s.description for s in catalogue.protocol("LSP-SPA").series]
    assert descriptions[-4:] == [
        "COR-OBL T1 TSE SIJ",
        "COR-OBL STIR SIJ",
        "COR-OBL 3D T1 GRE SIJ",
        "AX-OBL T2 FS SIJ",
    ]


@pytest.mark.parametrize(
    ("code", "scan", "slot", "priority"),
    [
        ("LSP-STD", 20, 30, Priority.ROUTINE),
        ("LSP-RAD", 25, 30, Priority.ROUTINE),
        ("LSP-STEN", 25, 30, Priority.ROUTINE),
        ("LSP-TRAUMA", 25, 30, Priority.HIGH),
        ("LSP-INF", 35, 45, Priority.HIGH),
        ("LSP-TUM", 35, 45, Priority.HIGH),
        ("LSP-POSTOP", 35, 45, Priority.ROUTINE),
        ("LSP-SPA", 35, 45, Priority.ROUTINE),
        ("LSP-CES", 10, 20, Priority.STAT),
        ("LSP-SCREEN", 15, 30, Priority.LOW),
    ],
)
def test_each_protocol_books_its_slot_at_its_default_priority(
    catalogue: Catalogue, code: str, scan: int, slot: int, priority: Priority
) -> None:
    protocol = catalogue.protocol(code)
    assert (protocol.scan_minutes, protocol.slot_minutes) == (scan, slot)
    assert protocol.default_priority is priority


def test_axial_levels_follow_the_coverage_of_each_protocol(catalogue: Catalogue) -> None:
    assert catalogue.protocol("LSP-STD").axial_levels == "L3-L4\\L4-L5\\L5-S1"
    assert catalogue.protocol("LSP-SCREEN").axial_levels == "L3-L4\\L4-L5\\L5-S1"
    assert catalogue.protocol("LSP-RAD").axial_levels == "L1-L2\\L2-L3\\L3-L4\\L4-L5\\L5-S1"
    assert catalogue.protocol("LSP-CES").axial_levels == "L1-L2\\L2-L3\\L3-L4\\L4-L5\\L5-S1"
    assert catalogue.protocol("LSP-STEN").axial_levels == (
        "T12-L1\\L1-L2\\L2-L3\\L3-L4\\L4-L5\\L5-S1"
    )


def test_subspecialty_hints_send_tumour_infection_ces_to_neuro_msk_and_spa_to_msk(
    catalogue: Catalogue,
) -> None:
    for code in ("LSP-TUM", "LSP-INF", "LSP-CES"):
        assert catalogue.protocol(code).subspecialty == ("neuro", "MSK")
    assert catalogue.protocol("LSP-SPA").subspecialty == ("MSK",)


# --- indication → priority → protocol (B.2) --------------------------------------------------


@pytest.mark.parametrize(
    ("indication", "priority", "protocol", "red_flag"),
    [
        ("suspected-ces", Priority.STAT, "LSP-CES", True),
        ("motor-deficit", Priority.STAT, "LSP-RAD", True),
        ("infection-with-deficit", Priority.STAT, "LSP-INF", True),
        ("cancer-with-deficit", Priority.STAT, "LSP-TUM", True),
        ("infection", Priority.HIGH, "LSP-INF", True),
        ("cancer-red-flags", Priority.HIGH, "LSP-TUM", True),
        ("fracture-risk", Priority.HIGH, "LSP-TRAUMA", True),
        ("postop-new-deficit", Priority.HIGH, "LSP-POSTOP", True),
        ("postop", Priority.ROUTINE, "LSP-POSTOP", False),
        ("radiculopathy", Priority.ROUTINE, "LSP-RAD", False),
        ("stenosis", Priority.ROUTINE, "LSP-STEN", False),
        ("inflammatory-back-pain", Priority.ROUTINE, "LSP-SPA", False),
        ("screening", Priority.LOW, "LSP-SCREEN", False),
    ],
)
def test_each_indication_maps_to_its_b2_priority_and_protocol(
    catalogue: Catalogue, indication: str, priority: Priority, protocol: str, red_flag: bool
) -> None:
    choice = choose_protocol(catalogue, indication)
    assert (choice.priority, choice.protocol.code) == (priority, protocol)
    assert choice.indications == (indication,)
    assert choice.reason == f"{indication} → {priority} {protocol}"
    assert catalogue.indication(indication).red_flag is red_flag


def test_the_catalogue_lists_the_thirteen_b2_indications(catalogue: Catalogue) -> None:
    assert len(catalogue.indication_codes) == 13
    assert all(len(i.label) <= 64 for i in catalogue.indications)
    assert all(i.priority is not Priority.MEDIUM for i in catalogue.indications)


def test_a_stat_red_flag_outranks_a_routine_indication(catalogue: Catalogue) -> None:
    choice = choose_protocol(catalogue, "radiculopathy", ["suspected-ces"])
    assert (choice.priority, choice.protocol.code) == (Priority.STAT, "LSP-CES")
    assert choice.indications == ("radiculopathy", "suspected-ces")
    assert choice.reason == "radiculopathy + suspected-ces → STAT LSP-CES"


def test_a_less_urgent_extra_indication_never_downgrades(catalogue: Catalogue) -> None:
    choice = choose_protocol(catalogue, "suspected-ces", ["radiculopathy", "fracture-risk"])
    assert (choice.priority, choice.protocol.code) == (Priority.STAT, "LSP-CES")


def test_a_tie_keeps_the_primary_indications_protocol(catalogue: Catalogue) -> None:
    # infection comes before fracture-risk in the catalogue, but fracture-risk is the primary.
    choice = choose_protocol(catalogue, "fracture-risk", ["infection"])
    assert (choice.priority, choice.protocol.code) == (Priority.HIGH, "LSP-TRAUMA")


@pytest.mark.parametrize(
    "flags", [["infection", "cancer-red-flags"], ["cancer-red-flags", "infection"]]
)
def test_a_tie_without_the_primary_takes_the_first_in_catalogue_order(
    catalogue: Catalogue, flags: list[str]
) -> None:
    choice = choose_protocol(catalogue, "radiculopathy", flags)
    assert (choice.priority, choice.protocol.code) == (Priority.HIGH, "LSP-INF")


def test_a_red_flag_ticked_twice_counts_once(catalogue: Catalogue) -> None:
    choice = choose_protocol(catalogue, "suspected-ces", ["suspected-ces"])
    assert choice.indications == ("suspected-ces",)


def test_screening_without_red_flags_is_flagged_not_indicated(catalogue: Catalogue) -> None:
    choice = choose_protocol(catalogue, "screening")
    assert (choice.priority, choice.protocol.code) == (Priority.LOW, "LSP-SCREEN")
    assert choice.not_indicated == (
        "ACR Appropriateness Criteria Low Back Pain variants 1-2: usually not appropriate"
    )


def test_screening_with_a_red_flag_is_not_flagged_and_takes_the_red_flag(
    catalogue: Catalogue,
) -> None:
    choice = choose_protocol(catalogue, "screening", ["cancer-red-flags"])
    assert choice.not_indicated is None
    assert (choice.priority, choice.protocol.code) == (Priority.HIGH, "LSP-TUM")


def test_indicated_referrals_carry_no_warning(catalogue: Catalogue) -> None:
    assert all(
        choose_protocol(catalogue, code).not_indicated is None
        for code in catalogue.indication_codes
        if code != "screening"
    )


def test_an_unknown_indication_names_itself_and_the_valid_ones(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownIndication) as caught:
        choose_protocol(catalogue, "back-ache")
    message = str(caught.value)
    assert "'back-ache'" in message
    assert all(code in message for code in catalogue.indication_codes)
    assert isinstance(caught.value, DomainError)


def test_an_unknown_red_flag_names_itself_and_the_red_flags(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownIndication, match=r"unknown red flag 'dragons'; red flags: "):
        choose_protocol(catalogue, "radiculopathy", ["dragons"])


def test_an_unknown_protocol_code_is_a_domain_error(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownProtocol, match=r"'LSP-XYZ'.*LSP-STD"):
        catalogue.protocol("LSP-XYZ")


def test_priorities_rank_stat_highest_and_low_lowest() -> None:
    ranked = sorted(Priority, key=lambda p: p.rank, reverse=True)
    assert ranked == [Priority.STAT, Priority.HIGH, Priority.ROUTINE, Priority.MEDIUM, Priority.LOW]
    assert Priority.HIGH == "HIGH"


def test_a_code_value_over_sixteen_characters_is_refused() -> None:
    with pytest.raises(ValidationError, match="DICOM SH allows 16"):
        CodedConcept(code_value="X" * 17, coding_scheme_designator="LN", code_meaning="m")


# --- bad catalogue files name their line ----------------------------------------------------


def test_the_small_catalogue_is_valid() -> None:
    assert parse_catalogue(SMALL, "catalogue.yaml").protocol("LSP-STD").slot_minutes == 30


def test_a_wrong_type_names_its_line_and_field() -> None:
    message = refusal(small("    slot_minutes: 30\n", "    slot_minutes: thirty\n"))
    assert message == (
        "catalogue.yaml, line 10: protocols[0].slot_minutes: "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_a_wrong_type_in_the_real_file_names_its_line() -> None:
    text = CATALOGUE_FILE.read_text(encoding="utf-8")
    bad = text.replace("    slot_minutes: 45\n", "    slot_minutes: forty-five\n", 1)
    line = next(n for n, row in enumerate(bad.splitlines(), 1) if "forty-five" in row)
    assert f"catalogue.yaml, line {line}: protocols[4].slot_minutes: " in refusal(bad)


def test_a_missing_field_names_the_line_of_its_protocol() -> None:
    message = refusal(small("    contrast: false\n"))
    assert message == "catalogue.yaml, line 3: protocols[0].contrast: Field required"


def test_an_indication_naming_an_unknown_protocol_names_its_line() -> None:
    message = refusal(small("    protocol: LSP-STD\n", "    protocol: LSP-NOPE\n"))
    assert message.startswith(
        "catalogue.yaml, line 18: indications[0].protocol: unknown protocol LSP-NOPE"
    )


def test_a_yaml_syntax_error_names_its_line() -> None:
    message = refusal(small("      - {description: SAG T2 TSE}\n", "      - {description: SAG\n"))
    assert message.startswith("catalogue.yaml, line 8: not valid YAML:")


def test_a_slot_shorter_than_the_scan_names_the_slot_line() -> None:
    message = refusal(small("    slot_minutes: 30\n", "    slot_minutes: 15\n"))
    assert message == (
        "catalogue.yaml, line 10: protocols[0].slot_minutes: "
        "the slot (15 min) is shorter than the scan (20 min)"
    )


def test_a_protocol_without_series_is_refused() -> None:
    text = small("      - {description: LOC 3PL}\n      - {description: SAG T2 TSE}\n")
    message = refusal(text.replace("series:\n", "series: []\n"))
    assert message == "catalogue.yaml, line 5: protocols[0].series: needs at least one item"


def test_contrast_true_without_a_post_contrast_series_is_refused() -> None:
    message = refusal(small("    contrast: false\n", "    contrast: true\n"))
    assert "line 8: protocols[0].contrast: is true but no series is post-contrast" in message


def test_an_indication_code_written_twice_is_refused() -> None:
    again = "  - {code: radiculopathy, label: Again, priority: LOW, protocol: LSP-STD}\n"
    message = refusal(SMALL + again)
    assert message == "catalogue.yaml, line 19: indications[1].code: radiculopathy appears twice"


def test_a_key_written_twice_in_one_mapping_is_refused() -> None:
    message = refusal(
        small("    slot_minutes: 30\n", "    slot_minutes: 30\n    slot_minutes: 40\n")
    )
    assert message == (
        "catalogue.yaml, line 11: protocols[0].slot_minutes: appears twice in the same mapping"
    )


@pytest.mark.parametrize(
    ("priority", "words"), [("URGENT", "URGENT is written HIGH"), ("MEDIUM", "MEDIUM is not used")]
)
def test_urgent_and_medium_priorities_are_refused_with_advice(priority: str, words: str) -> None:
    message = refusal(small("    priority: ROUTINE\n", f"    priority: {priority}\n"))
    assert f"line 17: indications[0].priority: {words}" in message


def test_an_empty_file_is_refused() -> None:
    assert refusal("# nothing yet\n") == "catalogue.yaml: the file is empty"
