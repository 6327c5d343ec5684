"""Browser tests: the app served by uvicorn on a free port, driven by Debian's headless
Chromium through Debian's chromedriver (Selenium never downloads a browser or driver).
Screenshots go to ``test-artifacts/screens/``."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from mri_pipeline.api.app import create_app
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import Runtime, build_runtime
from mri_pipeline.services.accounts import add_user
from tests.conftest import ROOT, fixed_clock, free_port, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENS = ROOT / "test-artifacts" / "screens"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
)
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (make setup installs them)",
)


@dataclass
class Site:
    """The running app: its runtime (database, clock) and where the browser finds it."""

    runtime: Runtime
    url: str

    def user(self, username: str, role: Role, radiologist: str | None = None) -> str:
        """A user who can log in with ``PASSWORD``."""
        with self.runtime.sessions.begin() as session:
            add_user(
                session,
                username,
                role,
                self.runtime.clock(),
                radiologist_key=radiologist,
                password=PASSWORD,
            )
        return username


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The app on SQLite (browser tests are about the screens, not the database)."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'screens.db'}",
        tmp_path,
        orthanc_url=f"http://127.0.0.1:{free_port()}",  # nothing listens unless a test starts it
        orthanc_username="u",
        orthanc_password="p",
    )
    runtime = build_runtime(settings, clock=fixed_clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the app did not come up"
        time.sleep(0.05)
    try:
        yield Site(runtime, url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def log_in(browser: WebDriver, site: Site, username: str, password: str = PASSWORD) -> None:
    browser.get(f"{site.url}/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]").click()
    wait_for(browser, lambda b: "/login" not in b.current_url, f"{username} not logged in")


def wait_for(browser: WebDriver, condition: object, message: str, timeout: float = 10) -> object:
    """``condition``: a Selenium expected condition or a callable of the driver."""
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition, message)


def text_of(browser: WebDriver, css: str) -> str:
    element = wait_for(
        browser, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)), css
    )
    return str(element.text)  # type: ignore[attr-defined]


def screenshot(browser: WebDriver, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path
