"""What the browser tests share (fixtures, re-exported by conftest.py): the approvers' page in Debian's headless
Chromium (driven through /usr/bin/chromedriver by selenium; nothing is
downloaded), against a real ``actionq.server`` under uvicorn on a SQLite file.

``make test`` installs chromium and chromium-driver first (mk/web.mk).
Screenshots go to ``target/web/``.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import actionq
from actionq.server import create_app

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
ADMIN_KEY = "browser-test-admin-key"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "target" / "web"

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Site:
    """A running backend: its URL, an API client with the admin key, and a
    second queue object on the same SQLite file (to seed what the HTTP API
    cannot express, e.g. a requester's name)."""

    url: str
    api: httpx.Client
    queue: actionq.ActionQueue
    app: Any


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    """The backend, with the default whitelist or the one a test passes as
    the indirect parameter ``site``."""
    db = tmp_path / "actionq.sqlite3"
    whitelist = getattr(request, "param", None)
    app = create_app(db, api_key=ADMIN_KEY, whitelist=whitelist)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url + "/api/v1", headers={"X-API-Key": ADMIN_KEY}, timeout=30) as api:
        while not server.started:  # readiness, not a timed assertion
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.02)
        yield Site(url=url, api=api, queue=actionq.ActionQueue(db, whitelist=whitelist), app=app)
    app.state.actionq.closing.close()  # ends the page's events stream, if still open
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the whole run (each test gets its own origin,
    so nothing is shared between tests: sessionStorage is per origin and tab)."""
    if not Path(CHROMEDRIVER).exists() or shutil.which("chromium") is None:
        pytest.fail("chromium and chromium-driver are missing: `make test-web` installs them (apt-get)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    # "performance": the DevTools network log, read by the push tests.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, site: Site) -> Iterator[WebDriver]:
    """The browser on the site's page, one tab, desktop size."""
    browser.set_window_size(1280, 900)
    browser.get(site.url + "/")
    yield browser
    # Leave one tab, on a blank page (closes tabs a test opened).
    for handle in browser.window_handles[1:]:
        browser.switch_to.window(handle)
        browser.close()
    browser.switch_to.window(browser.window_handles[0])
    browser.get("about:blank")


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str, timeout: float = 15) -> Any:
    """Waits for `condition` (a readiness wait: the assertion is that it happens)."""
    # A card the page re-rendered between finding and reading it is stale: look again.
    wait = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition, message=f"timed out waiting for {what}")
