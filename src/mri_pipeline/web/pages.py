"""What every page shares: templates, who is logged in (else to the login page), the
navigation a role sees, and the audit of pages that show patient data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mri_pipeline import __version__
from mri_pipeline.api.deps import RuntimeDep, identify
from mri_pipeline.domain.access import Area, Role, may
from mri_pipeline.services.accounts import Principal

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
STATIC = Path(__file__).with_name("static")

# (area, path, label): the navigation, filtered by role.
NAVIGATION = (
    (Area.SCHEDULE, "/radiographer", "Scanners today"),
    (Area.READING, "/radiologist", "Reading list"),
    (Area.DEPARTMENT, "/department", "Department"),
)
HOME = {
    Role.RADIOGRAPHER: "/radiographer",
    Role.RADIOLOGIST: "/radiologist",
    Role.ADMIN: "/department",
}


class LoginRequired(Exception):
    """The page needs a login: answered with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def page_principal(request: Request, runtime: RuntimeDep) -> Principal:
    try:
        principal = identify(request, runtime)
    except HTTPException:
        principal = None
    if principal is None:
        raise LoginRequired(request.url.path)
    request.state.principal = principal
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


class ScreenForbidden(Exception):
    """The logged-in role may not open this screen: answered 403 with a page saying so."""


def allow(principal: Principal, area: Area) -> None:
    if not may(principal.role, area):
        raise ScreenForbidden(f"A {principal.role.value} may not open this screen.")


def clinic_time(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    """A template helper: a moment as the clinic reads it ("Mon 2 Mar 07:40")."""

    def show(moment: datetime | None) -> str:
        if moment is None:
            return "–"
        local = moment.astimezone(zone)
        return f"{local:%a} {local.day} {local:%b %H:%M}"

    return show


def person_name(value: str | None) -> str:
    """A DICOM PN (``Family^Given^Middle^Prefix^Suffix``) as people write it:
    "Family, Given Middle"."""
    if not value:
        return "(no name)"
    family, _, rest = value.split("=")[0].partition("^")
    given = " ".join(part for part in rest.split("^")[:2] if part)
    return f"{family}, {given}" if given else family


def render(
    request: Request, template: str, principal: Principal | None, **context: Any
) -> HTMLResponse:
    navigation = (
        [(path, label) for area, path, label in NAVIGATION if may(principal.role, area)]
        if principal is not None
        else []
    )
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "navigation": navigation,
            "csrf_token": principal.csrf_token if principal is not None else None,
            "version": __version__,
            **context,
        },
    )
