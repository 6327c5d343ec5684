"""The radiologists file: validated with line numbers, shifts made concrete for routing."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mri_pipeline.domain.nodes import parse_node_table
from mri_pipeline.domain.protocols import Priority
from mri_pipeline.domain.radiologists import RadiologistsError, parse_radiologists
from mri_pipeline.domain.routing import StudyToRoute, choose
from tests.conftest import ROOT

LONDON = ZoneInfo("Europe/London")
FILE = ROOT / "tests/data/radiologists.yaml"


def committed() -> str:
    return FILE.read_text(encoding="utf-8")


def test_the_committed_file_is_valid_and_its_workstations_are_known_nodes() -> None:
    table = parse_radiologists(committed(), str(FILE))
    nodes_file = ROOT / "dicom_nodes/nodes.yaml"
    nodes = parse_node_table(nodes_file.read_text(encoding="utf-8"), str(nodes_file))
    assert table.unknown_workstations(nodes) == []
    assert {r.key for r in table.radiologists} >= {"rad.okafor", "rad.moreau"}


def test_a_workstation_that_is_not_a_workstation_node_is_named() -> None:
    table = parse_radiologists(committed().replace("RAD_WS2", "MRI1"), "r.yaml")
    nodes_file = ROOT / "dicom_nodes/nodes.yaml"
    nodes = parse_node_table(nodes_file.read_text(encoding="utf-8"), str(nodes_file))
    assert table.unknown_workstations(nodes) == [
        "rad.lindqvist: MRI1 is not a workstation in the node table"
    ]


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        (
            ("subspecialties: [MSK]", "subspecialties: [cardiac]"),
            "line 18: radiologists[1].subspecialties",
        ),
        (('start: "08:00", end: "18:00"}', 'start: "18:00", end: "08:00"}'), "ends (08:00)"),
        (('start: "09:00"', 'start: "9am"'), "not a time of day like 08:00"),
        (("key: rad.brennan", "key: rad.okafor"), "radiologist key appears twice: rad.okafor"),
        (("max_in_hand: 6", "max_in_hand: 0"), "max_in_hand"),
    ],
)
def test_a_bad_file_is_refused_with_the_line_and_field(change: tuple[str, str], fault: str) -> None:
    with pytest.raises(RadiologistsError) as refused:
        parse_radiologists(committed().replace(*change, 1), "r.yaml")
    assert fault in str(refused.value)


def test_weekly_patterns_become_concrete_shifts_in_clinic_time() -> None:
    table = parse_radiologists(committed(), str(FILE))
    monday = date(2026, 3, 2)
    team = {r.key: r for r in table.on(monday, LONDON)}
    at_noon = datetime(2026, 3, 2, 12, 0, tzinfo=LONDON)
    at_night = datetime(2026, 3, 2, 23, 30, tzinfo=LONDON)
    early = datetime(2026, 3, 2, 3, 0, tzinfo=LONDON)
    assert team["rad.okafor"].shift_at(at_noon) is not None
    assert team["rad.okafor"].shift_at(at_night) is None
    night = team["rad.moreau"].shift_at(at_night)
    assert night is not None and night.on_call
    assert night.end == datetime(2026, 3, 3, 0, 0, tzinfo=LONDON)  # "24:00"
    assert team["rad.moreau"].shift_at(early) is not None  # Monday 00:00-08:00
    assert team["rad.brennan"].shift_at(datetime(2026, 3, 3, 12, tzinfo=LONDON)) is None  # Tue


def stat_ces(at: datetime) -> StudyToRoute:
    return StudyToRoute(
        study_instance_uid="2.25.9",
        priority=Priority.STAT,
        protocol_code="LSP-CES",
        protocol_meaning="cauda equina",
        subspecialties=("neuro", "MSK"),
        contrast=False,
        site="MAIN",
        completed_at=at,
    )


@pytest.mark.parametrize(
    ("moment", "who"),
    [
        (datetime(2026, 3, 7, 14, 0, tzinfo=LONDON), "rad.okafor"),  # Saturday: on call
        (datetime(2026, 3, 4, 22, 0, tzinfo=LONDON), "rad.moreau"),  # weekday night
        (datetime(2026, 3, 4, 12, 0, tzinfo=LONDON), None),  # weekday day: nobody on call
    ],
)
def test_stat_goes_to_whoever_the_rota_puts_on_call(moment: datetime, who: str | None) -> None:
    team = parse_radiologists(committed(), str(FILE)).on(moment.date(), LONDON)
    assert choose(stat_ces(moment), team, {}, moment).radiologist == who


def test_the_demo_roster_has_an_on_call_neuro_radiologist_at_every_hour_of_the_week() -> None:
    """STAT cauda equina studies go to the on-call neuro radiologist: there must be one."""
    demo = ROOT / "worklist/radiologists.yaml"
    table = parse_radiologists(demo.read_text(encoding="utf-8"), str(demo))
    monday = datetime(2026, 3, 2, tzinfo=LONDON)
    for hour in range(7 * 24):
        moment = monday + timedelta(hours=hour, minutes=30)
        on_call = [
            r.key
            for r in table.on(moment.date(), LONDON)
            if "neuro" in r.subspecialties
            and (shift := r.shift_at(moment)) is not None
            and shift.on_call
        ]
        assert on_call, f"nobody on call for neuro at {moment:%a %H:%M}"
