"""The radiologist screen in a real browser: the reading list in order with why each
study was routed, no cherry-picking, the study view, a final report that takes the study
off the list, the list refreshing itself as routing works, giving a study back, and who
may open the screen.

The site's clock is Monday 2 March 2026 08:00 London: rad.okafor (neuro) and
rad.lindqvist (MSK) are on the day shift and nobody is on call, so a STAT study waits in
the unassigned list. Inflammatory back pain (LSP-SPA) is MSK only: it goes to Lindqvist.
"""

from __future__ import annotations

from datetime import timedelta

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from sqlalchemy import select

from mri_pipeline.db.models import (
    Assignment,
    QcResult,
    ReceivedStudy,
    Report,
)
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.e2e.conftest import Site, log_in, screenshot, text_of, wait_for
from tests.factories import checked_series
from tests.integration.test_routing_assignment import ready_study

SPA = "inflammatory-back-pain"


def add_series(runtime: Runtime, accession: str) -> None:
    """Two series as ingest and QC leave them: one passed, one with a warning."""
    with runtime.sessions.begin() as session:
        study = session.execute(
            select(ReceivedStudy).where(ReceivedStudy.accession_number == accession)
        ).scalar_one()
        for number, description, outcome in ((1, "SAG T2 TSE", "PASS"), (2, "AX T2 TSE", "WARN")):
            series = checked_series(study, number, description, outcome, FIXED_NOW)
            session.add(series)
            session.flush()
            if outcome == "WARN":
                session.add(
                    QcResult(
                        study_pk=study.id,
                        series_pk=series.id,
                        series_description=description,
                        check="coverage",
                        outcome="WARN",
                        message="L5-S1 at the edge of the slab",
                        checked_at=FIXED_NOW,
                    )
                )


def assignment_of(runtime: Runtime, accession: str) -> Assignment:
    with runtime.sessions() as session:
        return session.execute(
            select(Assignment)
            .join(ReceivedStudy, ReceivedStudy.id == Assignment.study_pk)
            .where(ReceivedStudy.accession_number == accession)
        ).scalar_one()


def listed(browser: WebDriver) -> list[str]:
    """The accession numbers in the list, read in one go (the list may be redrawn live)."""
    found = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.reading-list tbody tr'),"
        " (row) => row.dataset.accession);"
    )
    return [str(accession) for accession in found]


def text_now(browser: WebDriver, css: str) -> str:
    """The element's text as it is now, "" when absent (the page may be reloading)."""
    found = browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
    )
    return str(found)


def row_button(browser: WebDriver, accession: str, action: str) -> object:
    return browser.find_element(
        By.CSS_SELECTOR, f"tr[data-accession='{accession}'] button[data-action='{action}']"
    )


def test_a_radiologist_claims_in_order_reports_final_and_the_study_leaves_the_list(
    site: Site, browser: WebDriver
) -> None:
    runtime = site.runtime
    first = ready_study(runtime, "SPA1", SPA, FIXED_NOW - timedelta(hours=2))
    second = ready_study(runtime, "SPA2", SPA, FIXED_NOW - timedelta(hours=1))
    stat = ready_study(runtime, "CES1", "suspected-ces", FIXED_NOW - timedelta(minutes=20))
    add_series(runtime, first)
    runtime.routing_desk().route_pass()
    routed = assignment_of(runtime, first)
    assert routed.radiologist_key == "rad.lindqvist"
    assert assignment_of(runtime, stat).radiologist_key is None
    site.user("erik", Role.RADIOLOGIST, "rad.lindqvist")

    log_in(browser, site, "erik")
    assert browser.current_url.endswith("/radiologist")
    assert listed(browser) == [first, second]  # same priority: the earlier deadline first
    row = f"tr[data-accession='{first}']"
    assert text_of(browser, f"{row} td.reason") == routed.reason
    assert "→ on shift MSK Lindqvist^Erik" in routed.reason
    assert text_of(browser, f"{row} .badge.ROUTINE") == "ROUTINE"
    assert "46 h 0 min left" in text_of(browser, f"{row} td.time-left")
    # The top of the unassigned list: the STAT study with its red flag.
    top = text_of(browser, ".next-study")
    assert stat in top and "STAT" in top and "40 min left" in top
    screenshot(browser, "radiologist-list")

    # No cherry-picking: the second study is refused, the server's reason shown.
    row_button(browser, second, "claim").click()  # type: ignore[attr-defined]
    wait_for(
        browser,
        expected_conditions.visibility_of_element_located((By.ID, "problem")),
        "the refusal is not shown",
    )
    problem = text_of(browser, "#problem")
    assert problem.startswith(f"Not claimed: take {first} (ROUTINE, due")
    assert problem.endswith("first: it is ahead in your list")
    assert assignment_of(runtime, second).state == "assigned"
    screenshot(browser, "radiologist-claim-refused")

    # The first study, claimed: its view says what was asked, how it went and why it is mine.
    row_button(browser, first, "claim").click()  # type: ignore[attr-defined]
    wait_for(browser, lambda b: "/radiologist/study/" in b.current_url, "no study view")
    assert assignment_of(runtime, first).state == "claimed"
    assert text_of(browser, ".why .reason") == routed.reason
    assert text_of(browser, ".why .state") == "claimed"
    assert text_of(browser, ".indication") == (
        "Inflammatory back pain (suspected axial spondyloarthritis)"
    )
    assert "LSP-SPA" in text_of(browser, ".protocol")
    assert text_of(browser, ".qc .badge") == "PASSED"
    qc_rows = browser.find_elements(By.CSS_SELECTOR, "table.qc-series tbody tr")
    assert [" ".join(r.text.split()) for r in qc_rows] == [
        "SAG T2 TSE 15 PASS –",
        "AX T2 TSE 15 WARN coverage: L5-S1 at the edge of the slab",
    ]
    # Orthanc is not running in this test: the view says why there are no priors.
    assert text_of(browser, ".priors-error").startswith("Priors are unavailable:")
    links = browser.find_elements(By.CSS_SELECTOR, ".viewer-links a")
    assert [link.text for link in links] == [
        "Open SAG T2 TSE in viewer",
        "Open AX T2 TSE in viewer",
    ]
    assert "web-viewer/app/viewer.html?series=series-" in str(links[0].get_attribute("href"))
    uid = browser.find_element(By.ID, "study").get_attribute("data-uid")
    dicomweb = browser.find_element(By.ID, "dicomweb").get_attribute("value")
    assert str(dicomweb).endswith(f"/dicom-web/studies/{uid}")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=impression]").text == "Impression"

    # Sending needs the image store: with Orthanc down, the user is told so.
    browser.find_element(By.ID, "send").click()
    wait_for(
        browser,
        lambda b: "Not sent:" in text_now(b, "#problem"),
        "the failed send is not shown",
    )
    assert "image store is not answering" in text_of(browser, "#problem")
    screenshot(browser, "radiologist-study")

    # Preliminary, then final: the study leaves the list and the report is stored.
    impression = "Bone marrow oedema at both SI joints, in keeping with active sacroiliitis."
    browser.find_element(By.ID, "impression").send_keys(impression)
    browser.find_element(By.CSS_SELECTOR, "#report-form button[value=preliminary]").click()
    wait_for(
        browser,
        lambda b: "preliminary" in text_now(b, ".report-status"),
        "the preliminary report is not confirmed",
    )
    browser.find_element(By.CSS_SELECTOR, "#report-form button[value=final]").click()
    wait_for(browser, lambda b: b.current_url.endswith("/radiologist"), "not back to the list")
    wait_for(browser, lambda b: listed(b) == [second], "the reported study is still listed")
    assert f"{first} reported: final report signed." in text_of(browser, "#list-status")
    with runtime.sessions() as session:
        report = session.execute(
            select(Report)
            .join(ReceivedStudy, ReceivedStudy.id == Report.study_pk)
            .where(ReceivedStudy.accession_number == first)
        ).scalar_one()
    assert (report.status, report.radiologist_key) == ("final", "rad.lindqvist")
    assert report.impression == impression
    assert report.final_at == FIXED_NOW
    assert assignment_of(runtime, first).state == "final"
    screenshot(browser, "radiologist-after-final")


def test_the_list_refreshes_itself_when_a_study_is_routed_and_a_study_can_be_given_back(
    site: Site, browser: WebDriver
) -> None:
    runtime = site.runtime
    first = ready_study(runtime, "LIVE1", SPA, FIXED_NOW - timedelta(hours=2))
    runtime.routing_desk().route_pass()
    site.user("erik", Role.RADIOLOGIST, "rad.lindqvist")
    log_in(browser, site, "erik")
    assert listed(browser) == [first]

    # Routing works while the page is open: the new study appears by itself.
    later = ready_study(runtime, "LIVE2", SPA, FIXED_NOW - timedelta(hours=1))
    runtime.routing_desk().route_pass()
    wait_for(browser, lambda b: listed(b) == [first, later], "the list did not refresh")
    assert text_of(browser, "#list-status") == "Reading list updated: 2 studies."

    # Giving a study back asks why; it leaves the list and returns to the unassigned list.
    row_button(browser, later, "release").click()  # type: ignore[attr-defined]
    reason = wait_for(
        browser,
        expected_conditions.visibility_of_element_located((By.ID, "release-reason")),
        "no reason asked",
    )
    assert browser.switch_to.active_element == reason
    screenshot(browser, "radiologist-give-back")
    reason.send_keys("I reported this patient's surgery: conflict of interest", Keys.ENTER)  # type: ignore[attr-defined]
    wait_for(browser, lambda b: listed(b) == [first], "the study given back is still listed")
    released = assignment_of(runtime, later)
    assert (released.state, released.radiologist_key) == ("unassigned", None)
    assert released.released_by == "rad.lindqvist"
    assert released.reason.endswith("conflict of interest")


def test_a_radiographer_gets_the_403_page_and_an_admin_sees_a_list_read_only_and_reassigns(
    site: Site, browser: WebDriver
) -> None:
    runtime = site.runtime
    first = ready_study(runtime, "ADM1", SPA, FIXED_NOW - timedelta(hours=2))
    runtime.routing_desk().route_pass()

    site.user("rg.ward", Role.RADIOGRAPHER)
    log_in(browser, site, "rg.ward")
    browser.get(f"{site.url}/radiologist")
    assert text_of(browser, "h1") == "Not for your role"
    assert text_of(browser, "[role=alert]") == "A radiographer may not open this screen."
    assert not browser.find_elements(By.CSS_SELECTOR, "table.reading-list")
    screenshot(browser, "radiologist-403-for-radiographer")
    browser.get(f"{site.url}/radiologist/list")
    assert text_of(browser, "h1") == "Not for your role"

    browser.delete_all_cookies()
    site.user("boss", Role.ADMIN)
    log_in(browser, site, "boss")
    browser.get(f"{site.url}/radiologist")
    assert not browser.find_elements(By.CSS_SELECTOR, "table.reading-list")
    chooser = browser.find_element(By.ID, "radiologist")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=radiologist]").is_displayed()
    chooser.send_keys("Lindqvist")
    browser.find_element(By.CSS_SELECTOR, "form.chooser button").click()
    wait_for(browser, lambda b: listed(b) == [first], "the chosen list is not shown")
    assert browser.current_url.endswith("/radiologist?radiologist=rad.lindqvist")
    assert not browser.find_elements(By.CSS_SELECTOR, "table.reading-list button")  # read-only
    screenshot(browser, "radiologist-admin-read-only")

    # From the study's view: no report form, but a reassignment, checked by the server.
    browser.find_element(By.CSS_SELECTOR, f"tr[data-accession='{first}'] a.open").click()
    wait_for(browser, lambda b: "/radiologist/study/" in b.current_url, "no study view")
    assert not browser.find_elements(By.ID, "report-form")
    assert not browser.find_elements(By.CSS_SELECTOR, "button[data-action]")
    to = Select(browser.find_element(By.ID, "reassign-to"))
    to.select_by_value("rad.okafor")  # neuro: may not report an MSK-only protocol
    browser.find_element(By.ID, "reassign-reason").send_keys("cover")
    browser.find_element(By.CSS_SELECTOR, "#reassign-form button[type=submit]").click()
    wait_for(
        browser,
        lambda b: "may not report it" in text_now(b, "#problem"),
        "the refused reassignment is not shown",
    )
    assert "Okafor^Ngozi may not report it: not MSK" in text_of(browser, "#problem")
    to.select_by_value("rad.moreau")
    browser.find_element(By.CSS_SELECTOR, "#reassign-form button[type=submit]").click()
    wait_for(
        browser,
        lambda b: "to Moreau^Claire" in text_now(b, ".why .reason"),
        "the reassignment is not shown",
    )
    moved = assignment_of(runtime, first)
    assert moved.radiologist_key == "rad.moreau"
    assert moved.reason.startswith("reassigned by boss from rad.lindqvist to Moreau^Claire: cover")
    screenshot(browser, "radiologist-admin-study")
