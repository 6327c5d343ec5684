"""``/api/studies``: what Orthanc has received, tied to orders, and how complete it is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from mri_pipeline.api.deps import RuntimeDep, SessionDep, require
from mri_pipeline.domain.access import Area
from mri_pipeline.domain.reconciliation import Reconciliation
from mri_pipeline.services import studies
from mri_pipeline.services.accounts import Principal
from mri_pipeline.services.ingest import StudyState
from mri_pipeline.services.qc import accept, study_qc

router = APIRouter(prefix="/api/studies", tags=["studies"])


@router.get("")
def get_studies(
    session: SessionDep,
    state: StudyState | None = None,
    reconciliation: Reconciliation | None = None,
    accession_number: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Received studies, newest first."""
    return studies.list_studies(
        session,
        state=state.value if state is not None else None,
        reconciliation=reconciliation.value if reconciliation is not None else None,
        accession_number=accession_number,
        limit=limit,
    )


@router.get("/{study_instance_uid}")
def get_study(study_instance_uid: str, session: SessionDep) -> dict[str, Any]:
    """One study: reconciliation, completeness, series and events."""
    return studies.study_detail(session, study_instance_uid)


@router.get("/{study_instance_uid}/qc")
def get_study_qc(study_instance_uid: str, session: SessionDep) -> dict[str, Any]:
    """QC of the study: every check of every series in words, and the verdict."""
    return study_qc(session, studies.find_study(session, study_instance_uid))


@router.get(
    "/{study_instance_uid}/series/{series_instance_uid}/thumbnail.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def get_thumbnail(
    study_instance_uid: str, series_instance_uid: str, session: SessionDep
) -> Response:
    """The series' middle slice, for the screens."""
    png = studies.thumbnail(session, study_instance_uid, series_instance_uid)
    return Response(content=png, media_type="image/png")


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)


@router.post("/{study_instance_uid}/qc/accept")
def post_accept_qc(
    study_instance_uid: str,
    body: AcceptIn,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Area.SCHEDULE))],
) -> dict[str, Any]:
    """Radiographers: let a failed examination go to reporting as it is (409 unless QC
    failed it)."""
    with session.begin():
        study = studies.find_study(session, study_instance_uid)
        accept(session, study, by=principal.username, reason=body.reason, at=runtime.clock())
    return study_qc(session, studies.find_study(session, study_instance_uid))
