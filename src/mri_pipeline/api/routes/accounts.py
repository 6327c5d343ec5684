"""``/api/me`` (who am I) and ``/api/audit`` (administrators: who read which data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from mri_pipeline.api.deps import PrincipalDep, RuntimeDep, SessionDep, require
from mri_pipeline.domain.access import GRANTS, Area
from mri_pipeline.services.audit import audit_entries

router = APIRouter(prefix="/api", tags=["accounts"])


@router.get("/me")
def get_me(principal: PrincipalDep) -> dict[str, Any]:
    return {
        "username": principal.username,
        "role": principal.role.value,
        "radiologist": principal.radiologist_key,
        "areas": sorted(area.value for area in GRANTS[principal.role]),
        "csrf_token": principal.csrf_token,  # a browser session sends it as X-CSRF-Token
    }


@router.get("/audit", dependencies=[Depends(require(Area.AUDIT))])
def get_audit(
    session: SessionDep,
    runtime: RuntimeDep,
    username: Annotated[str | None, Query(max_length=64)] = None,
    contains: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """The newest reads of patient data first; ``contains`` filters on the resource
    (an accession number, a Study Instance UID, a patient ID in a path). This process's
    own looks are written first; other processes' within moments."""
    runtime.audit.flush()
    return audit_entries(session, username=username, contains=contains, limit=limit)
