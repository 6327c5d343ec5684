"""The department view in a real browser: turnaround figures and charts computed from
seeded examinations with known times, and the queues (at risk, unassigned, studies and
MPPS that matched no order).

The site's clock is Monday 2 March 2026 08:00 London (GMT: clinic and UTC times agree).
"Today" starts at 2 March 00:00; the last 30 days at 1 February 00:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import select

from mri_pipeline.db.models import (
    Assignment,
    AuditEntry,
    PerformedStep,
    PerformedStepLink,
    ReceivedStudy,
    Report,
    RequestedProcedure,
)
from mri_pipeline.domain.access import Role
from mri_pipeline.domain.protocols import Priority
from mri_pipeline.domain.routing import REPORT_TARGET
from mri_pipeline.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.e2e.conftest import Site, log_in, screenshot, text_of
from tests.integration.test_mwl_scp import book
from tests.integration.test_routing_assignment import ready_study


def at(day: int, hh_mm: str, month: int = 3) -> datetime:
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    return datetime(2026, month, day, hours, minutes, tzinfo=UTC)


@dataclass(frozen=True)
class Exam:
    """One examination's moments; ``scan`` is the MPPS start unless ``mpps`` is False
    (then the first image received)."""

    patient_id: str
    indication: str
    referred: datetime
    scan: datetime | None = None
    complete: datetime | None = None
    final: datetime | None = None
    mpps: bool = True


def referred_at(runtime: Runtime, accession: str, moment: datetime) -> RequestedProcedure:
    with runtime.sessions.begin() as session:
        procedure = session.execute(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == accession)
        ).scalar_one()
        procedure.created_at = moment
        return procedure


def seed(runtime: Runtime, exam: Exam) -> str:
    """An order, and as far as it got: MPPS, images, assignment and final report."""
    accession = book(
        runtime, exam.patient_id, f"Dept^{exam.patient_id}", "MRI1", indication=exam.indication
    )
    referred_at(runtime, accession, exam.referred)
    if exam.scan is None:
        return accession
    with runtime.sessions.begin() as session:
        procedure = session.execute(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == accession)
        ).scalar_one()
        complete = exam.complete or exam.scan
        if exam.mpps:
            performed = PerformedStep(
                sop_instance_uid=f"1.2.826.0.1.3680043.10.1.{accession[-4:]}",
                status="COMPLETED",
                calling_ae_title="MRI1",
                performed_station_ae_title="MRI1",
                study_instance_uid=procedure.study_instance_uid,
                dataset_json="{}",
                created_tags=[],
                matched=True,
                created_at=exam.scan,
                updated_at=complete,
            )
            session.add(performed)
            session.flush()
            session.add(
                PerformedStepLink(
                    performed_step_pk=performed.id, scheduled_step_pk=procedure.steps[0].id
                )
            )
        study = ReceivedStudy(
            study_instance_uid=procedure.study_instance_uid,
            orthanc_id=f"o-{accession}",
            accession_number=accession,
            patient_id=exam.patient_id,
            procedure_pk=procedure.id,
            reconciliation="matched",
            state="ready_for_reading",
            instance_count=60,
            first_received_at=exam.scan + timedelta(minutes=2),
            last_received_at=complete,
            completed_at=complete,
            qc_verdict="PASSED",
        )
        session.add(study)
        session.flush()
        if exam.final is not None:
            priority = Priority(procedure.priority)
            session.add(
                Assignment(
                    study_pk=study.id,
                    radiologist_key="rad.okafor",
                    state="final",
                    reason="seeded",
                    priority=priority.value,
                    units=1.0,
                    deadline=complete + REPORT_TARGET[priority],
                    escalate_at=complete + REPORT_TARGET[priority] / 2,
                    assigned_at=complete,
                    priority_rank=priority.rank,
                    first_assigned_at=complete,
                    closed_at=exam.final,
                )
            )
            session.add(
                Report(
                    study_pk=study.id,
                    radiologist_key="rad.okafor",
                    status="final",
                    impression="No cauda equina compression.",
                    final_at=exam.final,
                    updated_at=exam.final,
                )
            )
    return accession


# referral → scan and images complete → final, per examination:
EXAMS = (
    # STAT: scans after 50 min, 3 h, 5 h; reports after 30 min, 45 min, 2 h (today).
    Exam("S1", "suspected-ces", at(1, "10:00"), at(1, "10:50"), at(1, "11:20"), at(1, "11:50")),
    Exam(
        "S2",
        "motor-deficit",
        at(20, "09:00", 2),
        at(20, "12:00", 2),
        at(20, "12:30", 2),
        at(20, "13:15", 2),
    ),
    Exam("S3", "suspected-ces", at(2, "00:30"), at(2, "05:30"), at(2, "05:30"), at(2, "07:30")),
    # HIGH: scanned after 30 h, reported after 6 h.
    Exam(
        "H1",
        "infection",
        at(10, "08:00", 2),
        at(11, "14:00", 2),
        at(11, "14:40", 2),
        at(11, "20:40", 2),
    ),
    # ROUTINE, a console without MPPS: the first image starts the scan (10 d 1 h after
    # the referral, as first_received_at is the scan plus 2 min, the wait is 10 d 1 h).
    Exam(
        "R1",
        "radiculopathy",
        at(10, "09:00", 2),
        at(20, "09:58", 2),
        at(20, "10:30", 2),
        at(21, "06:30", 2),
        mpps=False,
    ),
    # Older than 30 days: counted nowhere.
    Exam(
        "OLD",
        "suspected-ces",
        at(20, "08:00", 1),
        at(20, "09:00", 1),
        at(20, "09:30", 1),
        at(20, "10:30", 1),
    ),
    # Still waiting for the scan: a STAT past its 4 h target, a HIGH within its 48 h.
    Exam("W1", "suspected-ces", at(2, "03:00")),
    Exam("W2", "infection", at(2, "07:00")),
)


def test_the_department_view_charts_turnaround_against_targets_and_lists_the_queues(
    site: Site, browser: WebDriver
) -> None:
    runtime = site.runtime
    for exam in EXAMS:
        seed(runtime, exam)
    # Two STAT studies waiting for a radiologist (nobody is on call by day); the first,
    # complete at 07:20, passed its escalation point (50 % of 1 h) at 07:50.
    late = ready_study(runtime, "U1", "suspected-ces", at(2, "07:20"))
    fresh = ready_study(runtime, "U2", "motor-deficit", at(2, "07:45"))
    referred_at(runtime, late, at(2, "06:30"))  # images 50 min after the referral
    referred_at(runtime, fresh, at(2, "07:00"))  # and 45 min
    runtime.routing_desk().route_pass()
    with runtime.sessions.begin() as session:
        session.add(
            ReceivedStudy(
                study_instance_uid="1.2.826.0.1.3680043.10.9.1",
                orthanc_id="o-stranger",
                accession_number="EXT123",
                patient_id="STRANGER",
                reconciliation="unmatched",
                reconciliation_note="no order with accession number EXT123",
                state="held",
                instance_count=20,
                first_received_at=at(2, "06:10"),
                last_received_at=at(2, "06:20"),
            )
        )
        session.add(
            PerformedStep(
                sop_instance_uid="1.2.826.0.1.3680043.10.9.2",
                status="IN PROGRESS",
                calling_ae_title="MRI2",
                performed_station_ae_title="MRI2",
                study_instance_uid="1.2.3.999",
                dataset_json="{}",
                created_tags=[],
                matched=False,
                created_at=at(2, "06:40"),
                updated_at=at(2, "06:40"),
            )
        )

    site.user("radiologist", Role.RADIOLOGIST, "rad.okafor")
    log_in(browser, site, "radiologist")
    browser.get(f"{site.url}/department")
    assert text_of(browser, "h1") == "Not for your role"
    browser.delete_all_cookies()

    site.user("boss", Role.ADMIN)
    log_in(browser, site, "boss")
    assert browser.current_url.endswith("/department")
    assert text_of(browser, "h1") == "Department"

    def figure(table: str, priority: str, column: str) -> str:
        return text_of(browser, f"#{table}-table tr[data-priority='{priority}'] td.{column}")

    # Images complete → final report, STAT, 30 days: 30 min, 45 min, 2 h against 1 h.
    assert figure("report_turnaround-30d", "STAT", "done") == "3"
    assert figure("report_turnaround-30d", "STAT", "median") == "45 min"
    assert figure("report_turnaround-30d", "STAT", "p90") == "1 h 45 min"
    assert figure("report_turnaround-30d", "STAT", "target") == "1 h"
    assert figure("report_turnaround-30d", "STAT", "within") == "2 of 3 (67 %)"
    assert figure("report_turnaround-30d", "STAT", "waiting") == "2"  # U1, U2
    assert figure("report_turnaround-30d", "HIGH", "median") == "6 h"
    assert figure("report_turnaround-30d", "ROUTINE", "within") == "1 of 1 (100 %)"
    assert figure("report_turnaround-30d", "LOW", "done") == "0"
    # Today only the 2 h one ended.
    assert figure("report_turnaround-today", "STAT", "done") == "1"
    assert figure("report_turnaround-today", "STAT", "median") == "2 h"
    assert figure("report_turnaround-today", "STAT", "within") == "0 of 1 (0 %)"

    # Referral → scan, STAT, 30 days: 45 min, 50 min, 50 min, 3 h, 5 h against 4 h.
    assert figure("scan_wait-30d", "STAT", "done") == "5"
    assert figure("scan_wait-30d", "STAT", "median") == "50 min"
    assert figure("scan_wait-30d", "STAT", "p90") == "4 h 12 min"
    assert figure("scan_wait-30d", "STAT", "within") == "4 of 5 (80 %)"
    assert figure("scan_wait-30d", "STAT", "waiting") == "1 1 over target"  # W1, 5 h
    assert figure("scan_wait-30d", "HIGH", "median") == "1 d 6 h"
    assert figure("scan_wait-30d", "HIGH", "waiting") == "1"  # W2, 1 h
    assert figure("scan_wait-30d", "ROUTINE", "median") == "10 d 1 h"
    assert figure("scan_wait-30d", "ROUTINE", "within") == "no target"
    assert figure("scan_wait-today", "STAT", "median") == "50 min"

    # The charts: bars of the median and 90th percentile per priority with data, a
    # target line per priority that has one, and an accessible name.
    chart = browser.find_element(By.ID, "report_turnaround-30d-chart")
    assert chart.get_attribute("role") == "img"
    title = browser.find_element(By.ID, "report_turnaround-30d-title")
    assert title.get_attribute("textContent") == "Images complete → final report: Last 30 days"
    assert "STAT: 3 done, median 45 min" in str(
        browser.find_element(By.ID, "report_turnaround-30d-desc").get_attribute("textContent")
    )
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    titles = [str(bar.get_attribute("textContent")) for bar in bars]
    assert titles == [
        "STAT median: 45 min",
        "STAT 90th percentile: 1 h 45 min",
        "HIGH median: 6 h",
        "HIGH 90th percentile: 6 h",
        "ROUTINE median: 20 h",
        "ROUTINE 90th percentile: 20 h",
    ]
    assert len(chart.find_elements(By.CSS_SELECTOR, "line.target")) == 4
    # The STAT panel's scale is 2 h: the 45 min median is 3/8 as tall as the axis.
    median_bar = float(str(bars[0].get_attribute("height")))
    assert abs(median_bar - 174 * 45 / 120) < 0.2
    scan_chart = browser.find_element(By.ID, "scan_wait-30d-chart")
    assert len(scan_chart.find_elements(By.CSS_SELECTOR, "line.target")) == 2  # STAT, HIGH
    assert len(scan_chart.find_elements(By.CSS_SELECTOR, "line.aim")) == 1  # STAT 1 h
    daily = browser.find_element(By.ID, "report_turnaround-daily-chart")
    assert len(daily.find_elements(By.CSS_SELECTOR, "rect.within")) == 4  # four days
    assert len(daily.find_elements(By.CSS_SELECTOR, "rect.over")) == 1  # S3, today
    today_row = browser.find_element(
        By.CSS_SELECTOR, "#report_turnaround-daily-table tr[data-day='2026-03-02']"
    )
    cells = today_row.find_elements(By.CSS_SELECTOR, "th, td")  # in a closed <details>
    assert [c.get_attribute("textContent") for c in cells] == [
        "Mon 2 Mar",
        "1",  # done
        "0",  # within target
        "1",  # over target
        "0",  # no target
        "2 h",  # median
    ]
    screenshot(browser, "department-charts")
    browser.execute_script("arguments[0].scrollIntoView()", daily)
    screenshot(browser, "department-daily")

    # The queues.
    counts = browser.find_elements(By.CSS_SELECTOR, ".queue-counts li")
    assert [c.text for c in counts] == [
        "1 at risk",
        "2 unassigned",
        "1 studies to reconcile",
        "1 MPPS to reconcile",
    ]
    at_risk = browser.find_elements(By.CSS_SELECTOR, "#at-risk-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in at_risk] == [late]
    unassigned = browser.find_elements(By.CSS_SELECTOR, "#unassigned-table tbody tr")
    assert [r.find_element(By.TAG_NAME, "a").text for r in unassigned] == [late, fresh]
    stranger = text_of(browser, "#studies-table tbody tr")
    assert "unmatched" in stranger and "EXT123" in stranger and "STRANGER" in stranger
    assert "no order with accession number EXT123" in stranger
    mpps = text_of(browser, "#mpps-table tbody tr")
    assert "IN PROGRESS" in mpps and "MRI2" in mpps and "1.2.3.999" in mpps
    browser.find_element(By.CSS_SELECTOR, ".queue-counts a[href='#unassigned']").click()
    screenshot(browser, "department-queues")

    assert runtime.audit.flush()
    with runtime.sessions() as session:
        audited = session.execute(
            select(AuditEntry.username, AuditEntry.status).where(
                AuditEntry.resource == "/department"
            )
        ).all()
        assert ("boss", 200) in audited
        assert all(status == 403 for user, status in audited if user != "boss")
    assert at(2, "08:00") == FIXED_NOW
