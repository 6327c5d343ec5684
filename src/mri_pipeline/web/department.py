"""The department view (administrators): waiting times referral → scan and turnaround
images → final report per priority against the B.3 targets, today and over the last 30
days, as server-drawn SVG charts each with its data table; and the queues a person must
work through (studies at risk, the unassigned list, reconciliation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from mri_pipeline.api.deps import RuntimeDep, SessionDep
from mri_pipeline.domain.access import Area
from mri_pipeline.domain.turnaround import (
    DayFigures,
    Measure,
    PriorityFigures,
    by_day,
    clinic_days,
    day_start,
    describe,
    figures,
)
from mri_pipeline.services import department
from mri_pipeline.web.pages import PagePrincipal, allow, clinic_time, render

router = APIRouter(include_in_schema=False)

WINDOW_DAYS = 30
# Axis tops a chart rounds up to, so its scale reads as a round duration.
_STEPS_MIN = (15, 30, 60, 120, 240, 360, 480, 720, 1440, 2880, 4320, 7200, 10080, 20160, 40320)


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    kind: str  # CSS class: median, p90, within, over, none
    title: str


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    kind: str  # target, aim, axis, grid


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    kind: str = ""


@dataclass
class Chart:
    """An inline SVG chart: what to draw, and its accessible title and description."""

    ident: str
    title: str
    description: str
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def axis_top(longest: timedelta) -> timedelta:
    """The round duration a chart's axis ends at: the first step above ``longest``."""
    minutes = longest.total_seconds() / 60
    for step in _STEPS_MIN:
        if minutes <= step * 0.92:  # leave room above the tallest bar for its label
            return timedelta(minutes=step)
    weeks = int(minutes // 10080) + 1
    return timedelta(weeks=weeks)


def priority_chart(
    ident: str, title: str, measure: Measure, rows: Sequence[PriorityFigures]
) -> Chart:
    """One panel per priority (each on its own scale, as targets run from 1 h to 5 d):
    bars of the median and the 90th percentile, the target a dashed line, the aim dotted;
    under each panel the priority, how many, and the target in words."""
    width, height, top, bottom = 560, 270, 30, 66
    panel = width / len(rows)
    plot_height = height - top - bottom
    base = top + plot_height
    said = []
    chart = Chart(ident, title, "", width, height)
    for index, row in enumerate(rows):
        left = index * panel
        centre = left + panel / 2
        goals = [
            f"{kind} {describe(value)}"
            for kind, value in (("target", row.target), ("aim", row.aim))
            if value is not None
        ]
        chart.labels.append(Label(centre, base + 18, row.priority.value, kind="priority"))
        chart.labels.append(Label(centre, base + 33, f"n = {row.done}", kind="count"))
        chart.labels.append(
            Label(
                centre,
                base + 48,
                " · ".join(goals) or "no target",
                kind="goal" if goals else "count",
            )
        )
        chart.lines.append(Line(left + 12, base, left + panel - 12, base, "axis"))
        marks = [m for m in (row.median, row.p90, row.target, row.aim) if m is not None]
        if not row.done:
            chart.labels.append(Label(centre, base - plot_height / 2, "none done", kind="none"))
            said.append(f"{row.priority.value}: none done")
        if not marks:
            continue
        scale = axis_top(max(marks))

        def y_of(length: timedelta, scale: timedelta = scale) -> float:
            return base - plot_height * (length / scale)

        chart.lines.append(Line(left + 12, top, left + panel - 12, top, "grid"))
        chart.labels.append(Label(left + 14, top - 5, describe(scale), "start", "scale"))
        for kind, value in (("target", row.target), ("aim", row.aim)):
            if value is not None:
                y = y_of(value)
                chart.lines.append(Line(left + 14, y, left + panel - 14, y, kind))
        # Two bars 60 px apart, so their value labels never run into each other.
        for offset, kind, value, name in (
            (-30, "median", row.median, "median"),
            (30, "p90", row.p90, "90th percentile"),
        ):
            if value is None:
                continue
            y = y_of(value)
            chart.rects.append(
                Rect(
                    centre + offset - 13,
                    y,
                    26,
                    base - y,
                    kind,
                    f"{row.priority.value} {name}: {describe(value)}",
                )
            )
            chart.labels.append(Label(centre + offset, y - 5, describe(value), kind="value"))
        if row.done:
            said.append(
                f"{row.priority.value}: {row.done} done, median {describe(row.median)}, "
                f"90th percentile {describe(row.p90)}, "
                + (", ".join(goals) if goals else "no target")
            )
    chart.description = (
        f"{measure.label}, median and 90th percentile per priority, each on its own "
        f"scale, target as a dashed line. " + "; ".join(said) + "."
    )
    return chart


def daily_chart(ident: str, title: str, measure: Measure, days: Sequence[DayFigures]) -> Chart:
    """One stacked bar per day: within target, over target, and without a target."""
    width, height, top, bottom, left_margin = 1100, 210, 20, 40, 36
    chart = Chart(ident, title, "", width, height)
    plot_height = height - top - bottom
    base = top + plot_height
    step = (width - left_margin - 8) / max(len(days), 1)
    most = max((d.done for d in days), default=0)
    scale = next((n for n in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if n >= most), most)
    chart.lines.append(Line(left_margin, base, width - 8, base, "axis"))
    chart.lines.append(Line(left_margin, top, width - 8, top, "grid"))
    chart.labels.append(Label(left_margin - 6, top + 4, str(scale), "end", "scale"))
    chart.labels.append(Label(left_margin - 6, base + 4, "0", "end", "scale"))
    for index, day in enumerate(days):
        x = left_margin + index * step + step * 0.15
        bar = step * 0.7
        y = float(base)
        for kind, count, words in (
            ("within", day.within_target, "within target"),
            ("over", day.over_target, "over target"),
            ("none", day.without_target, "no target"),
        ):
            if count:
                height_of = plot_height * count / scale
                y -= height_of
                chart.rects.append(
                    Rect(x, y, bar, height_of, kind, f"{day.day:%a %d %b}: {count} {words}")
                )
        chart.labels.append(Label(x + bar / 2, base + 14, str(day.day.day), kind="day"))
        # The month where it starts (and at the left edge); Mondays mark the weeks.
        below = f"{day.day:%b}" if index == 0 or day.day.day == 1 else ""
        below = below or ("Mon" if day.day.weekday() == 0 else "")
        if below:
            chart.labels.append(Label(x + bar / 2, base + 28, below, kind="day"))
    total = sum(d.done for d in days)
    within = sum(d.within_target for d in days)
    with_target = sum(d.with_target for d in days)
    chart.description = (
        f"{measure.label}, studies finished per day over {len(days)} days: {total} in all, "
        f"{within} of the {with_target} with a target within it. The table below lists each day."
    )
    return chart


@dataclass(frozen=True)
class Window:
    ident: str
    title: str
    since: datetime


@dataclass
class MeasureView:
    measure: Measure
    windows: list[tuple[Window, list[PriorityFigures], Chart]]
    days: list[DayFigures]
    daily: Chart


def _measures(session: Session, now: datetime, zone: ZoneInfo) -> list[MeasureView]:
    today = now.astimezone(zone).date()
    days = clinic_days(today, WINDOW_DAYS)
    windows = (
        Window("today", f"Today ({today:%a} {today.day} {today:%b})", day_start(today, zone)),
        Window("30d", f"Last {WINDOW_DAYS} days", day_start(days[0], zone)),
    )
    views = []
    for measure, load in (
        (Measure.SCAN_WAIT, department.scan_waits),
        (Measure.REPORT_TURNAROUND, department.report_turnarounds),
    ):
        intervals = load(session, windows[-1].since)
        shown = []
        for window in windows:
            rows = figures(intervals, measure, window.since, now)
            ident = f"{measure.value}-{window.ident}"
            title = f"{measure.label}: {window.title}"
            shown.append((window, rows, priority_chart(ident, title, measure, rows)))
        daily_rows = by_day(intervals, measure, days, zone)
        daily = daily_chart(
            f"{measure.value}-daily", f"{measure.label}: day by day", measure, daily_rows
        )
        views.append(MeasureView(measure, shown, daily_rows, daily))
    return views


def share(part: int | None, whole: int) -> str:
    if part is None:
        return "no target"
    if whole == 0:
        return "–"
    return f"{part} of {whole} ({round(100 * part / whole)} %)"


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


@router.get("/department", response_class=HTMLResponse)
def get_department(
    request: Request, principal: PagePrincipal, runtime: RuntimeDep, session: SessionDep
) -> Response:
    """Turnaround against the targets, and the queues that need a person."""
    allow(principal, Area.DEPARTMENT)
    now = runtime.clock()
    zone = ZoneInfo(runtime.settings.clinic_timezone)
    board = runtime.reading_board.current(session)
    queues = {
        "at_risk": department.at_risk(board, now),
        "unassigned": department.unassigned(board, now),
        **department.reconciliation(session),
    }
    return render(
        request,
        "department.html",
        principal,
        now=now,
        measures=_measures(session, now, zone),
        queues=queues,
        describe=describe,
        share=share,
        day_label=day_label,
        when=clinic_time(zone),
    )
