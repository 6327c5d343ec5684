"""Logging in and out in a real browser, and what a page does without a login."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from mri_pipeline.domain.access import Role
from tests.e2e.conftest import Site, log_in, screenshot, text_of, wait_for


def test_the_login_page_logs_each_role_in_to_its_screen_and_out_again(
    site: Site, browser: WebDriver
) -> None:
    browser.get(f"{site.url}/radiographer")
    assert "/login?next=/radiographer" in browser.current_url
    assert browser.find_element(By.CSS_SELECTOR, "label[for=username]").text == "User name"
    screenshot(browser, "login")

    site.user("rg.ward", Role.RADIOGRAPHER)
    browser.find_element(By.ID, "username").send_keys("rg.ward")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    assert text_of(browser, "[role=alert]") == "Wrong user name or password."

    log_in(browser, site, "rg.ward")
    assert browser.current_url.endswith("/radiographer")
    cookie = browser.get_cookie("mri_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait_for(browser, lambda b: b.current_url.endswith("/login"), "not logged out")
    browser.get(f"{site.url}/radiographer")
    assert "/login" in browser.current_url  # the session ended on the server too

    for username, role, radiologist, home in (
        ("rad.okafor.user", Role.RADIOLOGIST, "rad.okafor", "/radiologist"),
        ("boss", Role.ADMIN, None, "/department"),
    ):
        site.user(username, role, radiologist)
        browser.delete_all_cookies()
        log_in(browser, site, username)
        assert browser.current_url.endswith(home), (username, browser.current_url)
