"""Scheduled Procedure Step status values (DOMAIN.md F.1) and worklist visibility (F.3)."""

from __future__ import annotations

from enum import StrEnum


class StepStatus(StrEnum):
    """Scheduled Procedure Step Status (0040,0020), stored as its DICOM string."""

    SCHEDULED = "SCHEDULED"
    ARRIVED = "ARRIVED"
    READY = "READY"
    STARTED = "STARTED"
    DEPARTED = "DEPARTED"
    CANCELED = "CANCELED"
    DISCONTINUED = "DISCONTINUED"
    COMPLETED = "COMPLETED"


HIDDEN_FROM_EVERY_QUERY = frozenset(
    {StepStatus.CANCELED, StepStatus.DISCONTINUED, StepStatus.COMPLETED}
)
HIDDEN_FROM_BROAD_QUERIES = HIDDEN_FROM_EVERY_QUERY | {StepStatus.DEPARTED}


def hidden_statuses(*, status_is_matching_key: bool, patient_based: bool) -> frozenset[str]:
    """Statuses a worklist query does not show unless it asks for a status itself (F.3)."""
    if status_is_matching_key:
        return frozenset()
    if patient_based:
        return frozenset(s.value for s in HIDDEN_FROM_EVERY_QUERY)
    return frozenset(s.value for s in HIDDEN_FROM_BROAD_QUERIES)
