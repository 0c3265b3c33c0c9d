"""The page and notifications (docs/contract/notifications.md): a message's
link, ``/#action/<id>``, opens that action on top of the page, and an admin
sees a banner while a sink fails."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from actionq.server.notify import NotifyConfig, Sink
from browser_support import ADMIN_KEY, Site, wait_until


def sign_in(page: WebDriver) -> None:
    page.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    page.find_element(By.ID, "sign-in-button").click()
    wait_until(page, lambda d: d.find_element(By.ID, "app").is_displayed(), "the signed-in view")


def test_an_action_link_opens_that_action(page: WebDriver, site: Site) -> None:
    assert site.api.post("/servers", json={"id": "web-1"}).status_code == 201
    done = site.api.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
    site.api.post("/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"})
    page.get(f"{site.url}/#action/{done['id']}")
    sign_in(page)
    view = wait_until(page, lambda d: d.find_element(By.ID, "action-section").is_displayed() and d.find_element(By.ID, "action-view"), "the linked action")
    card = wait_until(page, lambda d: view.find_elements(By.CSS_SELECTOR, f"article[data-id='{done['id']}']"), "its card")
    assert "clear_logs" in card[0].text or "journalctl" in card[0].text
    assert page.find_element(By.ID, "action-title").text == f"#{done['id']}"
    # Another link on the same page: the view follows the hash.
    page.execute_script("window.location.hash = '#action/999'")
    wait_until(page, lambda d: "#999" in d.find_element(By.ID, "action-section").text and "not found" in d.find_element(By.ID, "action-view").text.lower(), "a missing action said so")
    page.execute_script("window.location.hash = ''")
    wait_until(page, lambda d: not d.find_element(By.ID, "action-section").is_displayed(), "no linked action")


def test_an_admin_sees_a_failing_sink(page: WebDriver, site: Site) -> None:
    # The sinks of a --notify file (no delivery task runs: the test server has no lifespan).
    site.app.state.actionq_notify = NotifyConfig(
        sinks=(Sink(name="ops", kind="webhook", url="http://127.0.0.1:9/", secret=b"0" * 16),), page_url=site.url
    )
    assert site.api.post("/servers", json={"id": "web-1"}).status_code == 201
    site.queue.register_delivery("ops", "webhook")
    site.api.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"})
    site.queue.take_lease("delivery:ops", "test", 30)
    site.queue.record_delivery("ops", "test", 1, "failed", "HTTP 503")
    sign_in(page)
    banner = wait_until(page, lambda d: d.find_element(By.ID, "notify-banner") if d.find_element(By.ID, "notify-banner").is_displayed() else None, "the failing-sink banner")
    assert "ops (HTTP 503; 1 waiting, 0 given up)" in banner.text
    # A viewer is not shown it.
    viewer = site.queue.issue_credential("vic", "viewer").secret
    page.find_element(By.ID, "sign-out").click()
    page.find_element(By.ID, "key").send_keys(viewer)
    page.find_element(By.ID, "sign-in-button").click()
    wait_until(page, lambda d: d.find_element(By.ID, "app").is_displayed(), "the viewer's view")
    assert not page.find_element(By.ID, "notify-banner").is_displayed()
