"""Getting a study in front of a radiologist: viewer links, priors in Orthanc, and
"send to my workstation" (an Orthanc C-STORE job whose progress is kept)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mri_pipeline.db.models import Assignment, Delivery, ReceivedStudy, Report
from mri_pipeline.domain.nodes import NodeRole, NodeTable
from mri_pipeline.domain.reading import ReadingRefused
from mri_pipeline.orthanc import OrthancClient, OrthancUnavailable
from mri_pipeline.services.events import record_study_event
from mri_pipeline.services.radiologists import Roster
from mri_pipeline.services.reading import ReadingRoom
from mri_pipeline.services.studies import find_study

log = logging.getLogger(__name__)

DONE = {"Success": "delivered", "Failure": "failed"}


def full_study_view(
    room: ReadingRoom,
    session: Session,
    orthanc: OrthancClient,
    orthanc_url: str,
    study_instance_uid: str,
) -> dict[str, Any]:
    """The reading room's study view with what Orthanc adds: viewer links (``orthanc_url``
    as the radiologist's browser reaches Orthanc), deliveries, and the patient's priors
    (``priors`` None and ``priors_error`` set when Orthanc cannot be asked)."""
    view = room.study_view(session, study_instance_uid)
    study = find_study(session, study_instance_uid)
    view["viewer"] = viewer_links(orthanc_url, study)
    view["deliveries"] = [delivery_view(d) for d in deliveries(session, study)]
    try:
        view["priors"] = priors(session, orthanc, view["patient"]["patient_id"], study_instance_uid)
    except OrthancUnavailable as error:
        view["priors"], view["priors_error"] = None, str(error)
    return view


def viewer_links(orthanc_url: str, study: ReceivedStudy) -> dict[str, Any]:
    """DICOMweb (WADO-RS/QIDO-RS) for any DICOMweb viewer, Orthanc's web viewer per series."""
    base = orthanc_url.rstrip("/")
    uid = study.study_instance_uid
    return {
        "dicomweb_root": f"{base}/dicom-web",
        "dicomweb_study": f"{base}/dicom-web/studies/{uid}",
        "dicomweb_metadata": f"{base}/dicom-web/studies/{uid}/metadata",
        "web_viewer": [
            {
                "series_description": series.series_description,
                "url": f"{base}/web-viewer/app/viewer.html?series={series.orthanc_id}",
            }
            for series in study.series
        ],
    }


def priors(
    session: Session, orthanc: OrthancClient, patient_id: str | None, current_uid: str
) -> list[dict[str, Any]]:
    """The patient's other studies Orthanc holds, newest first, with our report of each
    when we have one."""
    if not patient_id:
        return []
    stored = [s for s in orthanc.patient_studies(patient_id) if s.study_instance_uid != current_uid]
    reports = {
        uid: (status, radiologist)
        for uid, status, radiologist in session.execute(
            select(ReceivedStudy.study_instance_uid, Report.status, Report.radiologist_key)
            .join(Report, Report.study_pk == ReceivedStudy.id)
            .where(ReceivedStudy.study_instance_uid.in_([s.study_instance_uid for s in stored]))
        ).all()
    }
    found = [
        {
            "study_instance_uid": s.study_instance_uid,
            "accession_number": s.accession_number,
            "study_date": s.study_date,
            "study_description": s.study_description,
            "series": len(s.series_ids),
            "report_status": reports.get(s.study_instance_uid, (None, None))[0],
            "reported_by": reports.get(s.study_instance_uid, (None, None))[1],
        }
        for s in stored
    ]
    return sorted(found, key=lambda p: p["study_date"] or "", reverse=True)


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "ae_title": delivery.ae_title,
        "radiologist": delivery.radiologist_key,
        "job_id": delivery.job_id,
        "state": delivery.state,
        "progress": delivery.progress,
        "error": delivery.error,
        "requested_at": delivery.requested_at,
        "finished_at": delivery.finished_at,
    }


def deliveries(session: Session, study: ReceivedStudy) -> list[Delivery]:
    return list(
        session.execute(
            select(Delivery).where(Delivery.study_pk == study.id).order_by(Delivery.id.desc())
        ).scalars()
    )


def workstation_for(
    session: Session, roster: Roster, nodes: NodeTable, radiologist: str, ae_title: str | None
) -> str:
    """The AE to send to: the one asked for (a workstation of the node table), else the
    radiologist's own."""
    if ae_title is None:
        ae_title = roster.entry(session, radiologist).workstation
        if ae_title is None:
            raise ReadingRefused(f"{radiologist} has no workstation in the radiologists file")
    node = nodes.get(ae_title)
    if node is None or node.role is not NodeRole.WORKSTATION:
        raise ReadingRefused(f"{ae_title} is not a workstation in the node table")
    return ae_title


def send_to_workstation(
    session: Session,
    orthanc: OrthancClient,
    study: ReceivedStudy,
    radiologist: str,
    ae_title: str,
    at: datetime,
) -> Delivery:
    """Have Orthanc C-STORE the study to ``ae_title``; only the radiologist who holds or
    reported the study may."""
    holder = session.execute(
        select(Assignment.radiologist_key).where(Assignment.study_pk == study.id)
    ).scalar_one_or_none()
    if holder != radiologist:
        raise ReadingRefused(
            f"{study.accession_number or study.study_instance_uid} is not in {radiologist}'s "
            "hands; claim it first"
        )
    job_id = orthanc.store_to_modality(ae_title, [study.orthanc_id])
    delivery = Delivery(
        study_pk=study.id,
        radiologist_key=radiologist,
        ae_title=ae_title,
        job_id=job_id,
        state="sending",
        progress=0,
        requested_at=at,
    )
    session.add(delivery)
    record_study_event(
        session,
        study,
        kind="SENT_TO_WORKSTATION",
        actor=radiologist,
        at=at,
        reason=f"sent to {ae_title} (Orthanc job {job_id})",
        details={"ae_title": ae_title, "job_id": job_id},
    )
    log.info("send study_uid=%s to=%s job=%s", study.study_instance_uid, ae_title, job_id)
    return delivery


def refresh_delivery(orthanc: OrthancClient, delivery: Delivery, at: datetime) -> Delivery:
    """Read the job's progress from Orthanc into the row (a finished one is left alone)."""
    if delivery.finished_at is not None or delivery.job_id is None:
        return delivery
    job = orthanc.job(delivery.job_id)
    if job is None:
        delivery.state, delivery.error, delivery.finished_at = "lost", "Orthanc forgot the job", at
        return delivery
    delivery.progress = job.progress
    if job.state in DONE:
        delivery.state = DONE[job.state]
        delivery.error = job.error[:256] if job.error else None
        delivery.finished_at = at
        if job.state == "Success":
            delivery.progress = 100
    return delivery
