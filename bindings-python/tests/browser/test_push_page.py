"""The approvers' page follows the events stream (docs/contract/push.md#over-http):
a change shows without a reload, and the page sends no request while nothing
changes (no polling), as the browser's own network log shows."""

from __future__ import annotations

import json
import time
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from browser_support import ADMIN_KEY, Site, wait_until


def requests_sent(driver: WebDriver) -> list[str]:
    """URLs the page requested since the last call (DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]  # Chrome's driver has it
        message: dict[str, Any] = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_a_change_arrives_pushed_with_no_poll_request(page: WebDriver, site: Site) -> None:
    assert site.api.post("/servers", json={"id": "web-1", "hostname": "web-1.lan"}).status_code == 201
    assert site.api.put("/servers/web-1/pause").status_code == 200  # actions wait for a decision
    requests_sent(page)  # drop what earlier pages logged
    page.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    page.find_element(By.ID, "sign-in-button").click()
    wait_until(page, lambda d: d.find_element(By.ID, "app").is_displayed(), "the signed-in view")
    page.execute_script("window.__sameDocument = true")  # gone if the page reloads
    seen: list[str] = []

    def stream_opened(driver: WebDriver) -> bool:
        seen.extend(requests_sent(driver))
        return any("/api/v1/events/stream" in u for u in seen)

    wait_until(page, stream_opened, "the stream")
    # Nothing changes for three seconds (twice the old polling period): the
    # page asks nothing.
    time.sleep(3)
    assert requests_sent(page) == []

    created = site.api.post("/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"})
    assert created.status_code == 201
    action = created.json()["id"]
    wait_until(page, lambda d: d.find_elements(By.CSS_SELECTOR, f"#pending-list [data-id='{action}']"), "the pushed action")
    assert page.execute_script("return window.__sameDocument") is True
    after = requests_sent(page)
    # The change was pushed on the open stream: the page re-read its lists
    # once for it, and neither reconnected nor tailed /events itself.
    assert not any("/events" in u for u in after), after
    assert any("/actions?status=pending" in u for u in after), after

    # An approval made elsewhere moves it, pushed too.
    assert site.api.post(f"/actions/{action}/approve").status_code == 200
    wait_until(page, lambda d: not d.find_elements(By.CSS_SELECTOR, f"#pending-list [data-id='{action}']"), "the approval")
    wait_until(page, lambda d: d.find_elements(By.CSS_SELECTOR, f"#history-list [data-id='{action}']"), "the history")
    time.sleep(2)
    requests_sent(page)
    time.sleep(3)
    assert requests_sent(page) == []
