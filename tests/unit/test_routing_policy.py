"""The routing policy on tables of cases: each rule alone, ties, nobody eligible, shifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mri_pipeline.domain.protocols import Priority
from mri_pipeline.domain.routing import (
    InHand,
    Radiologist,
    Shift,
    StudyToRoute,
    at_risk,
    choose,
    escalation_due,
    queue_order,
    why_not,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = Shift(NOW.replace(hour=8), NOW.replace(hour=18))
ON_CALL = Shift(NOW.replace(hour=0), NOW.replace(hour=23, minute=59), on_call=True)


def radiologist(key: str, **changes: object) -> Radiologist:
    values: dict[str, object] = {
        "key": key,
        "name": f"Dr {key.title()}",
        "subspecialties": frozenset({"MSK"}),
        "sites": frozenset({"MAIN"}),
        "reports_contrast": True,
        "shifts": (DAY,),
        "max_in_hand": 10,
    }
    values.update(changes)
    return Radiologist(**values)  # type: ignore[arg-type]


def study(**changes: object) -> StudyToRoute:
    values: dict[str, object] = {
        "study_instance_uid": "2.25.1",
        "priority": Priority.ROUTINE,
        "protocol_code": "LSP-RAD",
        "protocol_meaning": "radiculopathy",
        "subspecialties": (),
        "contrast": False,
        "site": "MAIN",
        "completed_at": NOW - timedelta(minutes=5),
    }
    values.update(changes)
    return StudyToRoute(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rad", "case", "problem"),
    [
        (radiologist("a", shifts=()), study(), "not on shift"),
        (
            radiologist("a", shifts=(Shift(NOW - timedelta(hours=9), NOW),)),
            study(),
            "not on shift",
        ),
        (radiologist("a"), study(priority=Priority.STAT), "not on call for STAT"),
        (radiologist("a", sites=frozenset({"NORTH"})), study(), "not credentialed for MAIN"),
        (radiologist("a"), study(subspecialties=("neuro",)), "not neuro"),
        (
            radiologist("a", reports_contrast=False),
            study(contrast=True),
            "does not report contrast studies",
        ),
        (radiologist("a", max_in_hand=2), study(), "has 2 studies in hand (limit 2)"),
        (radiologist("a"), study(subspecialties=("neuro", "MSK")), None),
        (radiologist("a", shifts=(ON_CALL,)), study(priority=Priority.STAT), None),
    ],
)
def test_each_eligibility_rule_alone(
    rad: Radiologist, case: StudyToRoute, problem: str | None
) -> None:
    assert why_not(rad, case, InHand(studies=2, units=2.0), NOW) == problem


def test_stat_cauda_equina_goes_to_the_on_call_neuro_radiologist_with_the_reason() -> None:
    ces = study(
        priority=Priority.STAT,
        protocol_code="LSP-CES",
        protocol_meaning="cauda equina",
        subspecialties=("neuro", "MSK"),
    )
    team = [
        radiologist("day", subspecialties=frozenset({"neuro"})),
        radiologist("oncall", subspecialties=frozenset({"neuro"}), shifts=(ON_CALL,)),
    ]
    decision = choose(ces, team, {"oncall": InHand(2, 2.0)}, NOW)
    assert decision.radiologist == "oncall"
    assert decision.reason == "STAT cauda equina → on-call neuro Dr Oncall, 2 studies in hand"


def test_least_work_in_weighted_units_wins_not_the_fewest_studies() -> None:
    team = [radiologist("a"), radiologist("b")]
    in_hand = {"a": InHand(studies=2, units=3.0), "b": InHand(studies=3, units=2.25)}
    decision = choose(study(), team, in_hand, NOW)
    assert decision.radiologist == "b"
    assert decision.reason.endswith("3 studies in hand, least work of 2 eligible")


def test_equal_work_is_broken_by_continuity_with_the_prior_then_by_name() -> None:
    team = [radiologist("b"), radiologist("a")]
    assert choose(study(), team, {}, NOW).radiologist == "a"
    decision = choose(study(prior_reporter="b"), team, {}, NOW)
    assert decision.radiologist == "b"
    assert "reported the prior" in decision.reason


def test_nobody_eligible_leaves_it_unassigned_and_says_why_for_the_alert() -> None:
    team = [radiologist("a", shifts=()), radiologist("b", sites=frozenset({"NORTH"}))]
    decision = choose(study(), team, {}, NOW)
    assert decision.radiologist is None
    assert decision.reason == (
        "routine radiculopathy: nobody eligible "
        "(Dr A: not on shift; Dr B: not credentialed for MAIN)"
    )


def test_shift_change_moves_new_work_to_whoever_is_on() -> None:
    early = radiologist("early", shifts=(Shift(NOW.replace(hour=6), NOW.replace(hour=10)),))
    late = radiologist("late", shifts=(Shift(NOW.replace(hour=10), NOW.replace(hour=20)),))
    team = [early, late]
    assert choose(study(), team, {}, NOW - timedelta(minutes=1)).radiologist == "early"
    assert choose(study(), team, {}, NOW).radiologist == "late"


def test_escalation_excludes_the_current_radiologist() -> None:
    team = [radiologist("a"), radiologist("b")]
    assert choose(study(), team, {}, NOW, exclude=["a"]).radiologist == "b"


@pytest.mark.parametrize(
    ("priority", "risk_after"),
    [
        (Priority.STAT, timedelta(minutes=30)),
        (Priority.HIGH, timedelta(hours=6, minutes=24)),
        (Priority.ROUTINE, timedelta(hours=38, minutes=24)),
        (Priority.LOW, timedelta(days=4)),
    ],
)
def test_a_study_is_at_risk_at_half_the_stat_target_and_80_percent_of_the_others(
    priority: Priority, risk_after: timedelta
) -> None:
    case = study(priority=priority, completed_at=NOW)
    assert escalation_due(case) == NOW + risk_after
    assert not at_risk(case, NOW + risk_after - timedelta(seconds=1))
    assert at_risk(case, NOW + risk_after)


def test_queue_is_most_urgent_first_then_earliest_deadline() -> None:
    old_routine = study(study_instance_uid="r-old", completed_at=NOW - timedelta(hours=40))
    new_routine = study(study_instance_uid="r-new")
    stat = study(study_instance_uid="stat", priority=Priority.STAT)
    low = study(
        study_instance_uid="low", priority=Priority.LOW, completed_at=NOW - timedelta(days=9)
    )
    ordered = queue_order([new_routine, low, stat, old_routine])
    assert [s.study_instance_uid for s in ordered] == ["stat", "r-old", "r-new", "low"]
