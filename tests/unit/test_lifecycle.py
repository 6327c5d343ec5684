"""The Scheduled Procedure Step state machine of DOMAIN.md F.2."""

from __future__ import annotations

import pytest

from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.lifecycle import (
    WRONG_WORKLIST_ENTRY,
    IllegalTransition,
    StepEvent,
    next_status,
    offers_new_step,
    step_event_from_performed,
    step_status_after_performed,
)
from mri_pipeline.domain.mpps import PerformedStatus
from mri_pipeline.domain.steps import StepStatus

S = StepStatus
E = StepEvent
P = PerformedStatus

ALLOWED: list[tuple[StepStatus, StepEvent, StepStatus]] = [
    (S.SCHEDULED, E.CHECK_IN, S.ARRIVED),
    (S.ARRIVED, E.SAFETY_CLEARED, S.READY),
    (S.SCHEDULED, E.MPPS_STARTED, S.STARTED),
    (S.ARRIVED, E.MPPS_STARTED, S.STARTED),
    (S.READY, E.MPPS_STARTED, S.STARTED),
    (S.STARTED, E.MPPS_STARTED, S.STARTED),
    (S.STARTED, E.MPPS_COMPLETED, S.COMPLETED),
    (S.STARTED, E.MPPS_DISCONTINUED, S.DISCONTINUED),
    (S.SCHEDULED, E.CANCEL, S.CANCELED),
    (S.ARRIVED, E.CANCEL, S.CANCELED),
    (S.READY, E.CANCEL, S.CANCELED),
    (S.SCHEDULED, E.NO_SHOW, S.DEPARTED),
    (S.ARRIVED, E.NO_SHOW, S.DEPARTED),
    (S.READY, E.NO_SHOW, S.DEPARTED),
    (S.SCHEDULED, E.RESCHEDULE, S.SCHEDULED),
    (S.ARRIVED, E.RESCHEDULE, S.SCHEDULED),
    (S.READY, E.RESCHEDULE, S.SCHEDULED),
    (S.DEPARTED, E.RESCHEDULE, S.SCHEDULED),
    (S.DISCONTINUED, E.RESCHEDULE, S.SCHEDULED),
]

ILLEGAL: list[tuple[StepStatus, StepEvent]] = [
    (S.ARRIVED, E.CHECK_IN),
    (S.COMPLETED, E.CHECK_IN),
    (S.SCHEDULED, E.SAFETY_CLEARED),
    (S.READY, E.SAFETY_CLEARED),
    (S.DEPARTED, E.MPPS_STARTED),
    (S.DISCONTINUED, E.MPPS_STARTED),
    (S.COMPLETED, E.MPPS_STARTED),
    (S.CANCELED, E.MPPS_STARTED),
    (S.SCHEDULED, E.MPPS_COMPLETED),
    (S.READY, E.MPPS_COMPLETED),
    (S.COMPLETED, E.MPPS_COMPLETED),
    (S.READY, E.MPPS_DISCONTINUED),
    (S.DISCONTINUED, E.MPPS_DISCONTINUED),
    (S.STARTED, E.CANCEL),
    (S.COMPLETED, E.CANCEL),
    (S.CANCELED, E.CANCEL),
    (S.STARTED, E.NO_SHOW),
    (S.DEPARTED, E.NO_SHOW),
    (S.STARTED, E.RESCHEDULE),
    (S.COMPLETED, E.RESCHEDULE),
    (S.CANCELED, E.RESCHEDULE),
]


@pytest.mark.parametrize(("current", "event", "expected"), ALLOWED)
def test_allowed_transition_leads_to_the_f2_status(
    current: StepStatus, event: StepEvent, expected: StepStatus
) -> None:
    assert next_status(current, event) is expected


@pytest.mark.parametrize(("current", "event"), ILLEGAL)
def test_forbidden_transition_raises_illegal_transition(
    current: StepStatus, event: StepEvent
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_status(current, event)

    assert caught.value.current is current
    assert caught.value.event is event


def test_every_pair_outside_the_allowed_table_is_illegal() -> None:
    allowed = {(current, event) for current, event, _ in ALLOWED}
    for current in StepStatus:
        for event in StepEvent:
            if (current, event) in allowed:
                continue
            with pytest.raises(IllegalTransition):
                next_status(current, event)


def test_illegal_transition_is_a_domain_error_with_a_readable_message() -> None:
    with pytest.raises(DomainError, match="cannot check in a step that is COMPLETED"):
        next_status(S.COMPLETED, E.CHECK_IN)


def test_discontinued_with_wrong_worklist_entry_goes_back_to_scheduled() -> None:
    status = next_status(S.STARTED, E.MPPS_DISCONTINUED, discontinuation_code="110514")

    assert status is S.SCHEDULED


@pytest.mark.parametrize("code", ["110528", "110529", "110505", "110501", None])
def test_discontinued_with_any_other_reason_is_discontinued(code: str | None) -> None:
    status = next_status(S.STARTED, E.MPPS_DISCONTINUED, discontinuation_code=code)

    assert status is S.DISCONTINUED


def test_wrong_worklist_entry_code_does_not_make_a_waiting_step_discontinuable() -> None:
    with pytest.raises(IllegalTransition):
        next_status(S.SCHEDULED, E.MPPS_DISCONTINUED, discontinuation_code=WRONG_WORKLIST_ENTRY)


@pytest.mark.parametrize(
    ("code", "offered"),
    [("110528", True), ("110529", True), ("110514", False), ("110505", False), (None, False)],
)
def test_only_rescheduling_reasons_offer_a_new_step(code: str | None, offered: bool) -> None:
    assert offers_new_step(code) is offered


# --- several MPPS on one step ------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "event"),
    [
        ([], None),
        ([P.IN_PROGRESS], E.MPPS_STARTED),
        ([P.COMPLETED], E.MPPS_COMPLETED),
        ([P.DISCONTINUED], E.MPPS_DISCONTINUED),
        ([P.COMPLETED, P.IN_PROGRESS], E.MPPS_STARTED),
        ([P.DISCONTINUED, P.IN_PROGRESS], E.MPPS_STARTED),
        ([P.DISCONTINUED, P.COMPLETED], E.MPPS_COMPLETED),
        ([P.COMPLETED, P.DISCONTINUED], E.MPPS_COMPLETED),
        ([P.DISCONTINUED, P.DISCONTINUED], E.MPPS_DISCONTINUED),
    ],
)
def test_step_event_from_performed_aggregates_every_mpps_of_the_step(
    statuses: list[PerformedStatus], event: StepEvent | None
) -> None:
    assert step_event_from_performed(statuses) is event


def test_step_is_not_completed_while_another_mpps_is_in_progress() -> None:
    status = step_status_after_performed(S.STARTED, [P.COMPLETED, P.IN_PROGRESS])

    assert status is S.STARTED


def test_discontinued_then_resumed_and_completed_step_is_completed() -> None:
    step = S.READY
    step = step_status_after_performed(step, [P.IN_PROGRESS])
    step = step_status_after_performed(step, [P.DISCONTINUED, P.IN_PROGRESS], "110501")
    assert step is S.STARTED

    step = step_status_after_performed(step, [P.DISCONTINUED, P.COMPLETED], "110501")

    assert step is S.COMPLETED


def test_last_discontinued_mpps_decides_with_its_reason_code() -> None:
    assert step_status_after_performed(S.STARTED, [P.DISCONTINUED], "110505") is S.DISCONTINUED
    assert step_status_after_performed(S.STARTED, [P.DISCONTINUED], "110514") is S.SCHEDULED


def test_wrong_worklist_entry_step_is_started_again_by_a_new_mpps() -> None:
    step = step_status_after_performed(S.STARTED, [P.DISCONTINUED], WRONG_WORKLIST_ENTRY)
    step = step_status_after_performed(step, [P.DISCONTINUED, P.IN_PROGRESS])

    assert step is S.STARTED


def test_step_without_mpps_keeps_its_status() -> None:
    assert step_status_after_performed(S.ARRIVED, []) is S.ARRIVED


@pytest.mark.parametrize(
    ("current", "statuses", "code"),
    [
        (S.COMPLETED, [P.COMPLETED], None),
        (S.COMPLETED, [P.COMPLETED, P.DISCONTINUED], "110501"),
        (S.DISCONTINUED, [P.DISCONTINUED], "110505"),
        (S.SCHEDULED, [P.DISCONTINUED], WRONG_WORKLIST_ENTRY),
    ],
)
def test_seeing_the_same_aggregate_again_leaves_the_step_as_it_is(
    current: StepStatus, statuses: list[PerformedStatus], code: str | None
) -> None:
    assert step_status_after_performed(current, statuses, code) is current


def test_new_mpps_on_a_completed_step_is_an_illegal_transition() -> None:
    with pytest.raises(IllegalTransition):
        step_status_after_performed(S.COMPLETED, [P.COMPLETED, P.IN_PROGRESS])
