"""The radiographer screen in a real browser: today's schedule, the actions, statuses
that change live when the console's MPPS arrives over DICOM, and failed QC that shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from sqlalchemy import select

from mri_pipeline.db.models import (
    AuditEntry,
    ReceivedStudy,
    RequestedProcedure,
    ScheduledStep,
)
from mri_pipeline.dicom.scanner import Peer, ScannerConsole
from mri_pipeline.dicom.server import DicomServerConfig, start_dicom_server
from mri_pipeline.domain.access import Role
from mri_pipeline.imaging.png import encode_gray8
from mri_pipeline.services.events import record_study_event
from mri_pipeline.services.worklist import record_status
from tests.conftest import FIXED_NOW
from tests.e2e.conftest import Site, log_in, screenshot, text_of, wait_for
from tests.factories import checked_series, received_study
from tests.integration.test_mwl_scp import book

SUMMARY = "Failed: SAG T2 TSE: signal-to-noise 4.1, below 8.0; repeat the series."


@pytest.fixture
def dicom_server(site: Site) -> Iterator[int]:
    """Our DICOM server (worklist and MPPS) on the site's database."""
    runtime = site.runtime
    config = DicomServerConfig(
        ae_title=runtime.settings.ae_title,
        host="127.0.0.1",
        port=runtime.settings.dicom_port,
        allow_any_ae=False,
        max_associations=8,
    )
    server = start_dicom_server(config, runtime.nodes, runtime.finder, runtime.mpps)
    try:
        yield runtime.settings.dicom_port
    finally:
        server.shutdown()


def row(browser: WebDriver, accession: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'tr.exam[data-accession="{accession}"]')


def row_text(browser: WebDriver, accession: str, css: str) -> str:
    """The visible text of ``css`` in the examination's row, read in one step: the page
    swaps rows in as events arrive, so an element found a moment ago may be gone."""
    return str(
        browser.execute_script(
            'const row = document.querySelector(`tr.exam[data-accession="${arguments[0]}"]`);'
            "const cell = row && row.querySelector(arguments[1]);"
            "return cell ? cell.innerText.trim() : null;",
            accession,
            css,
        )
    )


def status_of(browser: WebDriver, accession: str) -> str:
    return row_text(browser, accession, ".status")


def wait_for_status(browser: WebDriver, accession: str, label: str) -> None:
    wait_for(
        browser,
        lambda b: status_of(b, accession) == label,
        f"{accession} never showed {label!r} (shows {status_of(browser, accession)!r})",
    )


def press(browser: WebDriver, accession: str, action: str) -> None:
    row(browser, accession).find_element(By.CSS_SELECTOR, f'[data-action="{action}"]').click()


def dialog(browser: WebDriver, name: str) -> WebElement:
    opened = wait_for(
        browser,
        lambda b: b.find_element(By.CSS_SELECTOR, f"dialog#{name}-dialog[open]"),
        f"the {name} dialog did not open",
    )
    assert isinstance(opened, WebElement)
    return opened


def dialog_closed(browser: WebDriver, name: str) -> None:
    wait_for(
        browser,
        lambda b: not b.find_elements(By.CSS_SELECTOR, f"dialog#{name}-dialog[open]"),
        f"the {name} dialog stayed open",
    )


def no_reload_marker(browser: WebDriver) -> None:
    browser.execute_script("window.__sameDocument = true;")


def same_document(browser: WebDriver) -> bool:
    return browser.execute_script("return window.__sameDocument === true;") is True


def settled(browser: WebDriver) -> None:
    """Wait until no change is highlighted any more (for a screenshot as people see it)."""
    wait_for(
        browser,
        lambda b: not b.find_elements(By.CSS_SELECTOR, ".changed"),
        "a change stayed highlighted",
    )
    browser.execute_script("window.scrollTo(0, 0);")


def fetch_status(browser: WebDriver, path: str) -> int:
    """The HTTP status of a GET made by the page itself, with the browser's session."""
    status: Any = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {headers: {Accept: 'application/json'}})"
        ".then(r => done(r.status), e => done(String(e)));",
        path,
    )
    return int(status)


def seed_failed_qc(site: Site, accession: str) -> str:
    """A received study of ``accession`` that QC failed, and its QC_FAILED event, as the
    QC worker leaves them; returns the Study Instance UID."""
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    with site.runtime.sessions.begin() as session:
        procedure = session.execute(
            select(RequestedProcedure).where(RequestedProcedure.accession_number == accession)
        ).scalar_one()
        study = received_study(
            procedure, FIXED_NOW, qc_verdict="FAILED", qc_summary=SUMMARY, instances=30
        )
        session.add(study)
        session.flush()
        for number, description, outcome in ((1, "SAG T1 TSE", "PASS"), (2, "SAG T2 TSE", "FAIL")):
            thumbnail = encode_gray8(gradient)
            session.add(
                checked_series(study, number, description, outcome, FIXED_NOW, thumbnail=thumbnail)
            )
        record_study_event(
            session, study, kind="QC_FAILED", actor="qc", at=FIXED_NOW, reason=SUMMARY
        )
        return procedure.study_instance_uid


def test_the_schedule_shows_each_scanner_and_a_check_in_turns_to_in_progress_by_mpps(
    site: Site, browser: WebDriver, dicom_server: int
) -> None:
    mueller = book(site.runtime, "PID0001", "Müller^Hans", "MRI1")
    obrien = book(site.runtime, "PID0002", "O'Brien^Síle", "MRI1", indication="suspected-ces")
    dvorak = book(site.runtime, "PID0003", "Dvořák^Antonín", "MRI2", indication="infection")
    site.user("rg.ward", Role.RADIOGRAPHER)
    log_in(browser, site, "rg.ward")
    assert browser.current_url.endswith("/radiographer")

    # One section per scanner, rows in time order, with protocol, priority and red flags.
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "section.station h2")]
    assert [h.split()[0] for h in headings] == ["MRI1", "MRI2"]
    mri1 = browser.find_elements(By.CSS_SELECTOR, 'tbody[data-station="MRI1"] tr.exam')
    assert [r.get_attribute("data-accession") for r in mri1] == [mueller, obrien]
    times = [r.find_element(By.CSS_SELECTOR, "td.time").text for r in mri1]
    assert times == sorted(times) and times[0] == "08:00"
    assert row(browser, mueller).find_element(By.CSS_SELECTOR, ".patient .name").text == (
        "Müller, Hans"
    )
    assert "PID0001" in row(browser, mueller).find_element(By.CSS_SELECTOR, ".patient").text
    protocol = row(browser, mueller).find_element(By.CSS_SELECTOR, "td.protocol").text
    assert "LSP-RAD" in protocol and "radiculopathy" in protocol
    stat = row(browser, obrien).find_element(By.CSS_SELECTOR, ".badge.STAT")
    assert stat.text == "STAT"
    assert stat.value_of_css_property("background-color") == "rgba(176, 0, 32, 1)"  # red
    assert "Suspected CES" in row(browser, obrien).find_element(By.CSS_SELECTOR, ".red-flag").text
    assert not row(browser, mueller).find_elements(By.CSS_SELECTOR, ".red-flag")
    assert row(browser, dvorak).find_element(By.CSS_SELECTOR, ".badge.HIGH").text == "HIGH"
    assert (
        "Suspected infection"
        in row(browser, dvorak).find_element(By.CSS_SELECTOR, ".red-flag").text
    )
    assert [status_of(browser, a) for a in (mueller, obrien, dvorak)] == ["Scheduled"] * 3
    assert site.runtime.audit.flush()
    with site.runtime.sessions() as session:
        audited = session.execute(
            select(AuditEntry.resource).where(AuditEntry.username == "rg.ward")
        ).scalars()
        assert "/radiographer" in list(audited)  # the page showed patient data
    no_reload_marker(browser)

    # Check in, then the safety checklist: it says what is missing until it is complete.
    press(browser, mueller, "check-in")
    wait_for_status(browser, mueller, "Checked in")
    press(browser, mueller, "safety")
    safety = dialog(browser, "safety")
    assert not safety.find_element(By.CSS_SELECTOR, "fieldset.contrast").is_displayed()
    safety.find_element(By.NAME, "implants_and_pacemaker_cleared").click()
    safety.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    missing = wait_for(
        browser,
        lambda b: b.find_element(By.ID, "safety-missing").text,
        "the checklist did not say what is missing",
    )
    assert "claustrophobia not discussed" in str(missing)
    assert "pregnancy not excluded" in str(missing)
    assert "implants" not in str(missing)
    screenshot(browser, "radiographer-safety")
    safety.find_element(By.NAME, "claustrophobia_discussed").click()
    safety.find_element(By.NAME, "pregnancy_excluded_or_not_applicable").click()
    safety.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    dialog_closed(browser, "safety")
    wait_for_status(browser, mueller, "Ready to scan")

    # By keyboard: Enter checks in, the focus stays in the row (on what can be done
    # next), Enter opens the checklist. A gadolinium protocol asks for eGFR and allergy.
    check_in = row(browser, dvorak).find_element(By.CSS_SELECTOR, '[data-action="check-in"]')
    browser.execute_script("arguments[0].focus();", check_in)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for_status(browser, dvorak, "Checked in")
    wait_for(
        browser,
        lambda b: b.switch_to.active_element.get_attribute("data-action") == "safety",
        "the focus left the row after the check-in",
    )
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    safety = dialog(browser, "safety")
    assert safety.find_element(By.CSS_SELECTOR, "fieldset.contrast").is_displayed()
    for name in (
        "implants_and_pacemaker_cleared",
        "claustrophobia_discussed",
        "pregnancy_excluded_or_not_applicable",
    ):
        safety.find_element(By.NAME, name).click()
    safety.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    missing = wait_for(
        browser,
        lambda b: b.find_element(By.ID, "safety-missing").text,
        "the contrast items were not asked for",
    )
    assert "eGFR not recorded" in str(missing) and "contrast allergy" in str(missing)
    safety.find_element(By.CSS_SELECTOR, "[data-close]").click()
    dialog_closed(browser, "safety")
    assert status_of(browser, dvorak) == "Checked in"

    # The console starts the examination: MPPS N-CREATE IN PROGRESS over DICOM.
    console = ScannerConsole(
        "MRI1",
        ris=Peer("127.0.0.1", dicom_server, site.runtime.settings.ae_title),
        pacs=Peer("127.0.0.1", 1, "ORTHANC"),  # not used: no images are sent
        timeout=10,
    )
    [item] = console.worklist(accession=mueller)
    console.start(item, now=datetime(2026, 3, 2, 8, 5))
    wait_for_status(browser, mueller, "In progress")
    assert same_document(browser), "the page was reloaded"
    assert row(browser, mueller).get_attribute("data-status") == "STARTED"
    wait_for(
        browser,
        lambda b: (
            b.find_element(By.ID, "rg-announce").get_attribute("textContent")
            == "Müller, Hans: In progress"
        ),
        "the status change was not announced",
    )
    assert not row(browser, mueller).find_elements(By.CSS_SELECTOR, "button[data-action]")

    # Cancel with a reason; a no-show.
    press(browser, obrien, "cancel")
    cancel = dialog(browser, "cancel")
    cancel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert browser.find_elements(By.CSS_SELECTOR, "dialog#cancel-dialog[open]")  # reason needed
    cancel.find_element(By.ID, "cancel-reason").send_keys("Referred to the emergency department")
    cancel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    dialog_closed(browser, "cancel")
    wait_for_status(browser, obrien, "Cancelled")
    press(browser, dvorak, "no-show")
    dialog(browser, "no-show").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    dialog_closed(browser, "no-show")
    wait_for_status(browser, dvorak, "Did not attend")
    assert same_document(browser)
    with site.runtime.sessions() as session:
        steps = dict(
            session.execute(select(ScheduledStep.accession_number, ScheduledStep.status)).all()
        )
    assert steps == {mueller: "STARTED", obrien: "CANCELED", dvorak: "DEPARTED"}
    settled(browser)
    screenshot(browser, "radiographer")


def test_a_failed_qc_raises_the_alarm_live_with_its_images_and_is_accepted_with_a_reason(
    site: Site, browser: WebDriver
) -> None:
    accession = book(site.runtime, "PID0010", "Nakamura^Emi", "MRI2")
    site.user("rg.ward", Role.RADIOGRAPHER)
    log_in(browser, site, "rg.ward")
    assert not browser.find_element(By.ID, "qc-alarm").is_displayed()
    assert "No images yet" in row(browser, accession).text
    no_reload_marker(browser)

    study_uid = seed_failed_qc(site, accession)
    alarm = wait_for(
        browser,
        lambda b: (
            b.find_element(By.ID, "qc-alarm").is_displayed() and b.find_element(By.ID, "qc-alarm")
        ),
        "the failed QC did not raise the alarm",
    )
    assert isinstance(alarm, WebElement)
    assert "QC failed: 1 examination needs a decision" in alarm.text
    assert "Nakamura, Emi" in alarm.text and SUMMARY in alarm.text
    assert same_document(browser), "the page was reloaded"
    assert alarm.value_of_css_property("border-top-color") == "rgba(176, 0, 32, 1)"
    wait_for(
        browser,
        lambda b: (
            "QC failed for Nakamura, Emi"
            in str(b.find_element(By.ID, "rg-alarm-announce").get_attribute("textContent"))
        ),
        "the failure was not announced",
    )

    # The row and the examination's images show it too, series by series.
    wait_for(
        browser,
        lambda b: "QC FAILED" in row_text(b, accession, ".images-cell"),
        "the row does not show the failed QC",
    )
    article = browser.find_element(By.ID, f"images-{accession}")
    assert SUMMARY in article.text
    figures = article.find_elements(By.CSS_SELECTOR, "ul.cards li")
    assert [f.find_element(By.CSS_SELECTOR, ".badge").text for f in figures] == [
        "QC pass",
        "QC FAIL",
    ]
    image = figures[1].find_element(By.TAG_NAME, "img")
    assert image.get_attribute("alt") == "Series 2 SAG T2 TSE: middle slice"
    wait_for(
        browser,
        lambda b: (
            b.execute_script("return arguments[0].complete && arguments[0].naturalWidth;", image)
            == 64
        ),
        "the thumbnail did not load",
    )
    settled(browser)
    screenshot(browser, "radiographer-qc-failed")
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", article)
    screenshot(browser, "radiographer-images")

    # Accepting needs a reason; then the alarm goes and the verdict says so.
    alarm.find_element(By.CSS_SELECTOR, '[data-action="accept-qc"]').click()
    accept = dialog(browser, "accept")
    assert SUMMARY in accept.text
    accept.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert browser.find_elements(By.CSS_SELECTOR, "dialog#accept-dialog[open]")
    accept.find_element(By.ID, "accept-reason").send_keys("Diagnostic despite the noise")
    accept.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    dialog_closed(browser, "accept")
    wait_for(
        browser,
        lambda b: not b.find_element(By.ID, "qc-alarm").is_displayed(),
        "the alarm stayed after accepting",
    )
    wait_for(
        browser,
        lambda b: "QC failed, accepted" in b.find_element(By.ID, f"images-{accession}").text,
        "the verdict does not say accepted",
    )
    with site.runtime.sessions() as session:
        verdict = session.execute(
            select(ReceivedStudy.qc_verdict).where(ReceivedStudy.study_instance_uid == study_uid)
        ).scalar_one()
    assert verdict == "ACCEPTED"


def test_a_refused_action_is_shown_and_the_reading_list_is_not_for_radiographers(
    site: Site, browser: WebDriver
) -> None:
    accession = book(site.runtime, "PID0020", "Smith^John", "MRI1")
    site.user("rg.ward", Role.RADIOGRAPHER)
    log_in(browser, site, "rg.ward")
    assert status_of(browser, accession) == "Scheduled"

    # Someone else checked the patient in, and this page has not heard of it yet.
    with site.runtime.sessions.begin() as session:
        step = session.execute(
            select(ScheduledStep).where(ScheduledStep.accession_number == accession)
        ).scalar_one()
        record_status(session, step, "ARRIVED", at=FIXED_NOW)
    press(browser, accession, "check-in")
    notice = wait_for(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#notice.bad").is_displayed()
            and b.find_element(By.CSS_SELECTOR, "#notice.bad")
        ),
        "the refusal was not shown",
    )
    assert isinstance(notice, WebElement)
    assert "cannot check in a step that is ARRIVED" in notice.text
    wait_for_status(browser, accession, "Checked in")  # the row shows where it really is

    # The reading list is not offered, and the API refuses it to this session.
    navigation = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    assert navigation == [f"{site.url}/radiographer"]
    assert text_of(browser, "nav") == "Scanners today"
    assert fetch_status(browser, "/api/reading-list") == 403
    assert fetch_status(browser, "/api/worklist") == 200  # the session itself works
    browser.get(f"{site.url}/radiologist")
    assert text_of(browser, "h1") == "Not for your role"
    assert fetch_status(browser, "/radiologist") == 403
