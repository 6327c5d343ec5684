"""The Scheduled Procedure Step state machine of the order filler (DOMAIN.md F.2)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from mri_pipeline.domain.errors import DomainError
from mri_pipeline.domain.mpps import PerformedStatus
from mri_pipeline.domain.steps import StepStatus

WRONG_WORKLIST_ENTRY = "110514"  # DCM "Incorrect worklist entry selected": the MPPS is void
# DCM "Discontinued Procedure Step rescheduled" / "... rescheduling recommended".
RESCHEDULE_CODES = frozenset({"110528", "110529"})


class StepEvent(StrEnum):
    """What can happen to a Scheduled Procedure Step."""

    CHECK_IN = "CHECK_IN"
    SAFETY_CLEARED = "SAFETY_CLEARED"
    MPPS_STARTED = "MPPS_STARTED"
    MPPS_COMPLETED = "MPPS_COMPLETED"
    MPPS_DISCONTINUED = "MPPS_DISCONTINUED"
    CANCEL = "CANCEL"
    NO_SHOW = "NO_SHOW"
    RESCHEDULE = "RESCHEDULE"


_VERBS = {
    StepEvent.CHECK_IN: "check in",
    StepEvent.SAFETY_CLEARED: "clear for safety",
    StepEvent.MPPS_STARTED: "start",
    StepEvent.MPPS_COMPLETED: "complete",
    StepEvent.MPPS_DISCONTINUED: "discontinue",
    StepEvent.CANCEL: "cancel",
    StepEvent.NO_SHOW: "mark as departed",
    StepEvent.RESCHEDULE: "reschedule",
}


class IllegalTransition(DomainError):
    """An event the step's current status does not allow."""

    def __init__(self, current: StepStatus, event: StepEvent) -> None:
        super().__init__(f"cannot {_VERBS[event]} a step that is {current.value}")
        self.current = current
        self.event = event


_WAITING = (StepStatus.SCHEDULED, StepStatus.ARRIVED, StepStatus.READY)

# Where each event may start from, and where it leads (MPPS_DISCONTINUED: see next_status).
_SOURCES: dict[StepEvent, tuple[StepStatus, ...]] = {
    StepEvent.CHECK_IN: (StepStatus.SCHEDULED,),
    StepEvent.SAFETY_CLEARED: (StepStatus.ARRIVED,),
    # A resumed exam sends a new MPPS for a step that is STARTED already.
    StepEvent.MPPS_STARTED: (*_WAITING, StepStatus.STARTED),
    StepEvent.MPPS_COMPLETED: (StepStatus.STARTED,),
    StepEvent.MPPS_DISCONTINUED: (StepStatus.STARTED,),
    # Once an MPPS exists the step is reconciled by hand, never cancelled.
    StepEvent.CANCEL: _WAITING,
    StepEvent.NO_SHOW: _WAITING,
    StepEvent.RESCHEDULE: (*_WAITING, StepStatus.DEPARTED, StepStatus.DISCONTINUED),
}

_TARGETS: dict[StepEvent, StepStatus] = {
    StepEvent.CHECK_IN: StepStatus.ARRIVED,
    StepEvent.SAFETY_CLEARED: StepStatus.READY,
    StepEvent.MPPS_STARTED: StepStatus.STARTED,
    StepEvent.MPPS_COMPLETED: StepStatus.COMPLETED,
    StepEvent.CANCEL: StepStatus.CANCELED,
    StepEvent.NO_SHOW: StepStatus.DEPARTED,
    StepEvent.RESCHEDULE: StepStatus.SCHEDULED,
}


def offers_new_step(code: str | None) -> bool:
    """A discontinuation reason after which the order filler offers a new step (110528/9)."""
    return code in RESCHEDULE_CODES


def _target(event: StepEvent, discontinuation_code: str | None) -> StepStatus:
    if event is StepEvent.MPPS_DISCONTINUED:
        # The wrong worklist item was chosen: the step itself was never performed.
        if discontinuation_code == WRONG_WORKLIST_ENTRY:
            return StepStatus.SCHEDULED
        return StepStatus.DISCONTINUED
    return _TARGETS[event]


def next_status(
    current: StepStatus, event: StepEvent, *, discontinuation_code: str | None = None
) -> StepStatus:
    """The step's status after ``event``; raises IllegalTransition when F.2 forbids it.

    ``discontinuation_code`` is the (0040,0281) code value of a discontinued MPPS:
    110514 sends the step back to SCHEDULED, any other code (or none) to DISCONTINUED.
    """
    if current not in _SOURCES[event]:
        raise IllegalTransition(current, event)
    return _target(event, discontinuation_code)


def step_event_from_performed(statuses: Sequence[PerformedStatus]) -> StepEvent | None:
    """The event the MPPS of one step call for, taken together (F.2 "Additional rules").

    ``statuses`` are the current statuses of every MPPS that references the step,
    the one just created or updated included. The answer is:

    * None when no MPPS references the step;
    * MPPS_STARTED while any of them is IN PROGRESS, even if another is COMPLETED
      (scanning was interrupted and resumed; the step is not done yet);
    * MPPS_COMPLETED when none is IN PROGRESS and at least one is COMPLETED (earlier
      DISCONTINUED ones were attempts the completed exam replaces);
    * MPPS_DISCONTINUED when every one is DISCONTINUED; apply it with the reason code
      of the MPPS discontinued last.
    """
    if not statuses:
        return None
    if PerformedStatus.IN_PROGRESS in statuses:
        return StepEvent.MPPS_STARTED
    if PerformedStatus.COMPLETED in statuses:
        return StepEvent.MPPS_COMPLETED
    return StepEvent.MPPS_DISCONTINUED


def step_status_after_performed(
    current: StepStatus,
    statuses: Sequence[PerformedStatus],
    last_discontinuation_code: str | None = None,
) -> StepStatus:
    """The step's status after any MPPS change: what the caller stores.

    Applies ``step_event_from_performed`` through ``next_status``. A step already where
    the event leads stays there (the same aggregate seen twice is not an error);
    anything else the state machine forbids raises IllegalTransition, e.g. a new MPPS
    on a COMPLETED step, which goes to manual reconciliation.
    """
    event = step_event_from_performed(statuses)
    if event is None:
        return current
    target = _target(event, last_discontinuation_code)
    if current == target:
        return current
    return next_status(current, event, discontinuation_code=last_discontinuation_code)
