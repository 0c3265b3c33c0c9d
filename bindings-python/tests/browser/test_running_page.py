"""An executing action on the approvers' page (docs/contract/cancel-and-output.md):
its output shows as the agent sends it, without a reload, and an operator
cancels it from the page; the agent's waiting heartbeat hears the request
and its cancelled report ends the action."""

from __future__ import annotations

import threading

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

import actionq
from browser_support import ADMIN_KEY, Site, wait_until


def live_text(driver: WebDriver, action: int) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f"#history-list [data-id='{action}'] pre.live-output")
    return found[0].text if found else ""


def test_output_shows_as_it_comes_and_the_page_cancels(page: WebDriver, site: Site) -> None:
    assert site.api.post("/servers", json={"id": "web-1"}).status_code == 201
    created = site.api.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"})
    assert created.status_code == 201
    # The agent's side, through a second queue on the same file.
    claim = site.queue.claim_next("web-1")
    assert claim is not None
    action, token = claim.id, claim.lease_token
    assert site.queue.append_output(action, token, 1, "Vacuuming done\n")

    page.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    page.find_element(By.ID, "sign-in-button").click()
    wait_until(page, lambda d: live_text(d, action) == "Vacuuming done", "the output so far")
    page.execute_script("window.__sameDocument = true")  # gone if the page reloads
    assert site.queue.append_output(action, token, 2, None, "journal: 3 files removed\n")
    wait_until(
        page,
        lambda d: live_text(d, action) == "Vacuuming done\njournal: 3 files removed",
        "the next chunk, pushed",
    )
    assert page.execute_script("return window.__sameDocument") is True

    heard: list[actionq.Action] = []
    agent = threading.Thread(
        target=lambda: heard.append(site.queue.await_cancel(action, token, wait_seconds=30)), name="agent"
    )
    agent.start()
    button = page.find_element(By.CSS_SELECTOR, f"#history-list [data-id='{action}'] button.cancel")
    assert button.text == "Cancel"
    button.click()
    agent.join(timeout=30)
    assert heard and heard[0].cancel_requested_by is not None, "the waiting heartbeat heard the request"
    asked_by = heard[0].cancel_requested_by
    wait_until(
        page,
        lambda d: "cancel requested by" in d.find_element(By.CSS_SELECTOR, f"#history-list [data-id='{action}'] .outcome").text,
        "the request on the page",
    )
    done = site.queue.report_cancelled(action, token, 143, "Vacuuming done\n", "Terminated\n")
    assert (done.status, done.cancelled_by) == (actionq.ActionStatus.CANCELLED, asked_by)
    wait_until(
        page,
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#history-list [data-id='{action}'].cancelled"),
        "the cancelled action",
    )
    outcome = page.find_element(By.CSS_SELECTOR, f"#history-list [data-id='{action}'] .outcome").text
    assert outcome.endswith(f"cancelled by {asked_by}"), outcome
    assert not page.find_elements(By.CSS_SELECTOR, f"#history-list [data-id='{action}'] button.cancel")
