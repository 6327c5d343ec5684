"""``/api/reading-list``: a radiologist's studies, the study view, claim, release,
reassignment, reports, and sending a study to a workstation.

A radiologist acts as the radiologist their login is linked to; an administrator may
look at anyone's list (``?radiologist=``) and reassign, but reads and reports as nobody."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field

from mri_pipeline.api.deps import (
    OrthancDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    acting_radiologist,
    require,
)
from mri_pipeline.domain.access import Area
from mri_pipeline.domain.reading import ReportStatus
from mri_pipeline.services import viewer
from mri_pipeline.services.accounts import Principal
from mri_pipeline.services.examinations import UnknownExamination
from mri_pipeline.services.studies import find_study

router = APIRouter(prefix="/api/reading-list", tags=["reading"])


class UnknownDelivery(UnknownExamination):
    """No such send of this study."""


RadiologistKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,31}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimIn(_In):
    radiologist: RadiologistKey | None = None  # yourself; say it to be explicit


class ReleaseIn(_In):
    radiologist: RadiologistKey | None = None
    reason: str = Field(min_length=1, max_length=200)


class ReassignIn(_In):
    to: RadiologistKey
    reason: str = Field(min_length=1, max_length=200)


class ReportIn(_In):
    radiologist: RadiologistKey | None = None
    status: ReportStatus
    impression: str = Field(min_length=1, max_length=10_000)


@router.get("")
async def get_reading_list(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    radiologist: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9._-]{1,31}$")] = None,
) -> dict[str, Any]:
    """Your studies in hand, most urgent and earliest deadline first, with the time
    left, and the study you would take next from the unassigned list."""
    key = acting_radiologist(principal, radiologist, admin_may_name=True)
    return await runtime.reading_room().reading_list_soon(runtime.sessions, key)


class SendIn(_In):
    radiologist: RadiologistKey | None = None
    ae_title: str | None = Field(default=None, min_length=1, max_length=16)


@router.get("/{study_instance_uid}")
def get_study_view(
    study_instance_uid: str, session: SessionDep, runtime: RuntimeDep, orthanc: OrthancDep
) -> dict[str, Any]:
    """Order, indication and red flags, protocol, QC, assignment and its reason, report,
    turnaround, routing events, viewer links, deliveries and the patient's priors in
    Orthanc (``priors`` is null with ``priors_error`` when Orthanc cannot be asked)."""
    return viewer.full_study_view(
        runtime.reading_room(),
        session,
        orthanc,
        runtime.settings.orthanc_browser_url(),
        study_instance_uid,
    )


@router.post("/{study_instance_uid}/send", status_code=status.HTTP_202_ACCEPTED)
def post_send(
    study_instance_uid: str,
    body: SendIn,
    session: SessionDep,
    runtime: RuntimeDep,
    orthanc: OrthancDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Send to my workstation: Orthanc C-STOREs the study to your workstation AE (or
    ``ae_title``, a workstation of the node table). Follow it at ``deliveries/{id}``."""
    key = acting_radiologist(principal, body.radiologist)
    with session.begin():
        study = find_study(session, study_instance_uid)
        ae_title = viewer.workstation_for(
            session, runtime.roster, runtime.nodes, key, body.ae_title
        )
        delivery = viewer.send_to_workstation(
            session, orthanc, study, key, ae_title, runtime.clock()
        )
        session.flush()
        return viewer.delivery_view(delivery)


@router.get("/{study_instance_uid}/deliveries/{delivery_id}")
def get_delivery(
    study_instance_uid: str,
    delivery_id: int,
    session: SessionDep,
    runtime: RuntimeDep,
    orthanc: OrthancDep,
) -> dict[str, Any]:
    """How far a send has got: state sending, delivered or failed, and Orthanc's progress."""
    with session.begin():
        study = find_study(session, study_instance_uid)
        delivery = next((d for d in viewer.deliveries(session, study) if d.id == delivery_id), None)
        if delivery is None:
            raise UnknownDelivery(f"no delivery {delivery_id} of {study_instance_uid}")
        return viewer.delivery_view(viewer.refresh_delivery(orthanc, delivery, runtime.clock()))


@router.post("/{study_instance_uid}/claim")
def post_claim(
    study_instance_uid: str,
    body: ClaimIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Start reading: the first waiting study of your list, or the top of the unassigned
    list among those you may report (409 with what to take instead)."""
    room = runtime.reading_room()
    with session.begin():
        room.claim(session, study_instance_uid, acting_radiologist(principal, body.radiologist))
    return room.study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/release")
def post_release(
    study_instance_uid: str,
    body: ReleaseIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Give a study in your hands back; routing offers it to someone else."""
    room = runtime.reading_room()
    with session.begin():
        key = acting_radiologist(principal, body.radiologist)
        room.release(session, study_instance_uid, key, body.reason)
    return room.study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/reassign")
def post_reassign(
    study_instance_uid: str,
    body: ReassignIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Area.REASSIGN))],
) -> dict[str, Any]:
    """Administrators: move a study to a radiologist who may report it."""
    room = runtime.reading_room()
    with session.begin():
        room.reassign(session, study_instance_uid, body.to, principal.username, body.reason)
    return room.study_view(session, study_instance_uid)


@router.post("/{study_instance_uid}/report")
def post_report(
    study_instance_uid: str,
    body: ReportIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """Record a preliminary or final report; final closes the study's assignment."""
    room = runtime.reading_room()
    key = acting_radiologist(principal, body.radiologist)
    with session.begin():
        room.report(session, study_instance_uid, key, body.status, body.impression)
    return room.study_view(session, study_instance_uid)
