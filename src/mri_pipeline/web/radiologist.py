"""The radiologist screen: my reading list (priority and deadline order, time left, claim
and release, the next study of the unassigned list) and the study view (indication,
protocol, QC, priors, why it was routed to me, viewer links, send to my workstation, the
report). Pages are rendered here; actions go to ``/api/reading-list`` from
``static/radiologist.js``. An administrator sees any radiologist's list, read-only, and
may reassign a study from its view."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from mri_pipeline.api.deps import OrthancDep, RuntimeDep, SessionDep
from mri_pipeline.domain.access import Area, Role
from mri_pipeline.domain.reading import IN_HAND, AssignmentState
from mri_pipeline.runtime import Runtime
from mri_pipeline.services import viewer
from mri_pipeline.services.accounts import Principal
from mri_pipeline.services.events import newest_event_id
from mri_pipeline.services.radiologists import UnknownRadiologist
from mri_pipeline.services.studies import UnknownStudy
from mri_pipeline.web.pages import (
    PagePrincipal,
    allow,
    clinic_time,
    person_name,
    render,
)

router = APIRouter(include_in_schema=False)

RadiologistQuery = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9._-]{1,31}$")]


def _helpers(runtime: Runtime) -> dict[str, Any]:
    catalogue = runtime.catalogue

    def flag(code: str | None) -> str:
        """An indication code as the request form words it."""
        return catalogue.indication_label(code) or "–"

    return {
        "when": clinic_time(ZoneInfo(runtime.settings.clinic_timezone)),
        "name": person_name,
        "flag": flag,
    }


def _list_context(
    session: Session, runtime: Runtime, principal: Principal, chosen: str | None
) -> dict[str, Any]:
    """Whose list the page shows, the list, and for an administrator the chooser."""
    acting = principal.role is Role.RADIOLOGIST
    key = principal.radiologist_key if acting else chosen
    context: dict[str, Any] = {
        "acting": acting,
        "key": key,
        "listing": None,
        "problem": None,
        "last_event": newest_event_id(session),
    }
    if not acting:
        table = runtime.roster.table(session)
        context["radiologists"] = [(r.key, r.name) for r in table.radiologists] if table else []
    if key is None:
        if acting:
            context["problem"] = "Your login is not linked to a radiologist of the roster."
        return context
    try:
        context["listing"] = runtime.reading_room().reading_list(session, key)
    except UnknownRadiologist as error:
        context["problem"] = f"{error}: nobody by that key is in today's roster."
    return context


@router.get("/radiologist", response_class=HTMLResponse)
def get_reading_list(
    request: Request,
    principal: PagePrincipal,
    runtime: RuntimeDep,
    session: SessionDep,
    radiologist: RadiologistQuery = None,
) -> Response:
    """The reading list: a radiologist's own, or (administrators) anyone's, read-only."""
    return _list_page(request, principal, runtime, session, radiologist, "radiologist.html")


@router.get("/radiologist/list", response_class=HTMLResponse)
def get_reading_list_part(
    request: Request,
    principal: PagePrincipal,
    runtime: RuntimeDep,
    session: SessionDep,
    radiologist: RadiologistQuery = None,
) -> Response:
    """The list alone, for the page to refresh itself when routing changes it."""
    return _list_page(request, principal, runtime, session, radiologist, "radiologist_list.html")


def _list_page(
    request: Request,
    principal: Principal,
    runtime: Runtime,
    session: Session,
    radiologist: str | None,
    template: str,
) -> Response:
    allow(principal, Area.READING)
    context = _list_context(session, runtime, principal, radiologist)
    return render(request, template, principal, **context, **_helpers(runtime))


def _may_act(principal: Principal, assignment: dict[str, Any] | None) -> dict[str, bool]:
    """Which buttons the study view offers this user (the API decides in the end)."""
    mine = (
        principal.role is Role.RADIOLOGIST
        and assignment is not None
        and assignment["radiologist"] == principal.radiologist_key
        and assignment["state"] in IN_HAND
    )
    state = assignment["state"] if assignment else None
    return {
        "mine": mine,
        "claim": (mine and state == AssignmentState.ASSIGNED)
        or (principal.role is Role.RADIOLOGIST and state == AssignmentState.UNASSIGNED),
        "release": mine,
        "report": mine,
        "reassign": principal.role is Role.ADMIN
        and state is not None
        and state != AssignmentState.FINAL,
    }


@router.get("/radiologist/study/{study_instance_uid}", response_class=HTMLResponse)
def get_study(
    study_instance_uid: str,
    request: Request,
    principal: PagePrincipal,
    runtime: RuntimeDep,
    session: SessionDep,
    orthanc: OrthancDep,
) -> Response:
    """One study: what was asked, how it was scanned, why it is mine, and the report."""
    allow(principal, Area.READING)
    try:
        view = viewer.full_study_view(
            runtime.reading_room(),
            session,
            orthanc,
            runtime.settings.orthanc_browser_url(),
            study_instance_uid,
        )
    except UnknownStudy as error:
        page = render(request, "error.html", principal, title="No such study", message=str(error))
        page.status_code = status.HTTP_404_NOT_FOUND
        return page
    context: dict[str, Any] = {
        "study": view,
        "may": _may_act(principal, view["assignment"]),
        "last_event": newest_event_id(session),
    }
    if context["may"]["reassign"]:
        table = runtime.roster.table(session)
        context["radiologists"] = [(r.key, r.name) for r in table.radiologists] if table else []
    return render(request, "radiologist_study.html", principal, **context, **_helpers(runtime))
