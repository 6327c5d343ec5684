"""The radiographer screen: today's schedule per scanner, the actions on each examination,
received series with their QC, and failed QC that cannot be missed. The page follows
``/api/events`` and re-fetches the fragments below for what changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mri_pipeline.api.deps import RuntimeDep, SessionDep
from mri_pipeline.domain.access import Area
from mri_pipeline.domain.steps import StepStatus
from mri_pipeline.runtime import Runtime
from mri_pipeline.services import schedule_view
from mri_pipeline.services.events import newest_event_id
from mri_pipeline.web.pages import PagePrincipal, allow, person_name, render

router = APIRouter(include_in_schema=False)

# What each status means at the scanner, in the radiographers' words.
STATUS_LABELS = {
    StepStatus.SCHEDULED: "Scheduled",
    StepStatus.ARRIVED: "Checked in",
    StepStatus.READY: "Ready to scan",
    StepStatus.STARTED: "In progress",
    StepStatus.COMPLETED: "Completed",
    StepStatus.DEPARTED: "Did not attend",
    StepStatus.CANCELED: "Cancelled",
    StepStatus.DISCONTINUED: "Discontinued",
}
WAITING = frozenset({StepStatus.SCHEDULED, StepStatus.ARRIVED, StepStatus.READY})
VERDICT_LABELS = {
    "PASSED": "QC passed",
    "PASSED_WITH_WARNINGS": "QC passed with warnings",
    "FAILED": "QC FAILED",
    "ACCEPTED": "QC failed, accepted",
}
SERIES_OUTCOME_LABELS = {"PASS": "QC pass", "WARN": "QC warning", "FAIL": "QC FAIL"}


def status_label(status: str) -> str:
    try:
        return STATUS_LABELS[StepStatus(status)]
    except ValueError:
        return status


def short_flag(label: str) -> str:
    """A red flag's badge text: its label up to the colon (the full label is its title)."""
    return label.split(":", 1)[0]


# Helpers the templates call; passed with every page and fragment of this screen.
HELPERS = {
    "person_name": person_name,
    "status_label": status_label,
    "short_flag": short_flag,
    "waiting": frozenset(s.value for s in WAITING),
    "verdict_labels": VERDICT_LABELS,
    "series_outcome_labels": SERIES_OUTCOME_LABELS,
}


def _today(runtime: Runtime) -> date:
    return runtime.desk.local_now().date()


def _with_images(rows: Iterable[schedule_view.ScheduleRow]) -> list[schedule_view.ScheduleRow]:
    """One row per examination that has images (its latest step), in time order."""
    latest = {row.accession_number: row for row in rows if row.images is not None}
    return sorted(latest.values(), key=lambda row: (row.start or datetime.min, row.step_id))


@router.get("/radiographer", response_class=HTMLResponse)
def get_radiographer(
    request: Request, principal: PagePrincipal, runtime: RuntimeDep, session: SessionDep
) -> HTMLResponse:
    """Today's schedule of every scanner, live."""
    allow(principal, Area.SCHEDULE)
    day = _today(runtime)
    last_event = newest_event_id(session)  # first: nothing after it is missed
    stations = schedule_view.day_schedule(
        session, day, runtime.catalogue, runtime.nodes.scanners("MR")
    )
    failures = schedule_view.qc_failures(session, day, runtime.desk.clinic_timezone)
    return render(
        request,
        "radiographer.html",
        principal,
        day=day,
        stations=stations,
        examined=_with_images(row for station in stations for row in station.rows),
        failures=failures,
        last_event=last_event,
        **HELPERS,
    )


@router.get("/radiographer/rows/{accession_number}", response_class=HTMLResponse)
def get_rows(
    accession_number: str,
    request: Request,
    principal: PagePrincipal,
    runtime: RuntimeDep,
    session: SessionDep,
) -> HTMLResponse:
    """One examination's rows of today and its images, as fragments the page swaps in."""
    allow(principal, Area.SCHEDULE)
    rows = schedule_view.rows_of_accession(
        session, _today(runtime), runtime.catalogue, accession_number
    )
    return render(
        request,
        "radiographer_rows.html",
        principal,
        rows=rows,
        examined=_with_images(rows),
        **HELPERS,
    )


@router.get("/radiographer/alarm", response_class=HTMLResponse)
def get_alarm(
    request: Request, principal: PagePrincipal, runtime: RuntimeDep, session: SessionDep
) -> HTMLResponse:
    """The failed-QC banner as it stands now."""
    allow(principal, Area.SCHEDULE)
    failures = schedule_view.qc_failures(session, _today(runtime), runtime.desk.clinic_timezone)
    return render(request, "radiographer_alarm.html", principal, failures=failures, **HELPERS)
