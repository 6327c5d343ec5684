"""``/api/reading-list``: a radiologist's studies, the study view, claim, release,
reassignment, reports, and sending a study to a workstation.

Until logins arrive the radiologist names themselves (``radiologist``); an
administrator's action names who did it (``by``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from mri_pipeline.api.deps import RuntimeDep, SessionDep
from mri_pipeline.domain.reading import ReportStatus

router = APIRouter(prefix="/api/reading-list", tags=["reading"])

RadiologistKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,31}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimIn(_In):
    radiologist: RadiologistKey


class ReleaseIn(_In):
    radiologist: RadiologistKey
    reason: str = Field(min_length=1, max_length=200)


class ReassignIn(_In):
    to: RadiologistKey
    by: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=200)


class ReportIn(_In):
    radiologist: RadiologistKey
    status: ReportStatus
    impression: str = Field(min_length=1, max_length=10_000)


@router.get("")
def get_reading_list(
    session: SessionDep,
    runtime: RuntimeDep,
    radiologist: Annotated[str, Query(pattern=r"^[a-z][a-z0-9._-]{1,31}$")],
) -> dict[str, Any]:
    """The radiologist's studies in hand, most urgent and earliest deadline first, with
    the time left, and the study they would take next from the unassigned list."""
    return runtime.reading_room().reading_list(session, radiologist)


@router.get("/{study_instance_uid}")
def get_study_view(
    study_instance_uid: str, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Order, indication and red flags, protocol, QC, assignment and its reason, report,
    turnaround and the study's routing events."""
    return runtime.reading_room().study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/claim")
def post_claim(
    study_instance_uid: str, body: ClaimIn, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Start reading: the first waiting study of your list, or the top of the unassigned
    list among those you may report (409 with what to take instead)."""
    room = runtime.reading_room()
    with session.begin():
        room.claim(session, study_instance_uid, body.radiologist)
    return room.study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/release")
def post_release(
    study_instance_uid: str, body: ReleaseIn, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Give a study in your hands back; routing offers it to someone else."""
    room = runtime.reading_room()
    with session.begin():
        room.release(session, study_instance_uid, body.radiologist, body.reason)
    return room.study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/reassign")
def post_reassign(
    study_instance_uid: str, body: ReassignIn, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Administrators: move a study to a radiologist who may report it."""
    room = runtime.reading_room()
    with session.begin():
        room.reassign(session, study_instance_uid, body.to, body.by, body.reason)
    return room.study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/report")
def post_report(
    study_instance_uid: str, body: ReportIn, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Record a preliminary or final report; final closes the study's assignment."""
    room = runtime.reading_room()
    with session.begin():
        room.report(session, study_instance_uid, body.radiologist, body.status, body.impression)
    return room.study_view(session, study_instance_uid)
