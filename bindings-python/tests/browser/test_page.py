"""The approvers' page in a real headless Chromium (docs/contract/approvers-page.md).

Every scenario drives the page as a person would (type, click) against a
live backend, and checks both what the page shows and what the API then
says. Screenshots of the main views are written under ``target/web/``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver as ChromeDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

import actionq
from actionq.server.web import CONTENT_SECURITY_POLICY

from browser_support import ADMIN_KEY, SCREENSHOTS, Site, wait_until


def sign_in(driver: WebDriver, key: str) -> None:
    box = driver.find_element(By.ID, "key")
    box.clear()
    box.send_keys(key)
    driver.find_element(By.ID, "sign-in-button").click()


def signed_in(driver: WebDriver) -> None:
    wait_until(driver, lambda d: d.find_element(By.ID, "app").is_displayed() and d.find_element(By.ID, "live").text, "the signed-in view")


def card(driver: WebDriver, list_id: str, action_id: int) -> WebElement | None:
    found = driver.find_elements(By.CSS_SELECTOR, f"#{list_id} [data-id='{action_id}']")
    return found[0] if found else None


def field(element: WebElement | None, cls: str) -> str:
    assert element is not None, "no such card"
    text: str = element.find_element(By.CSS_SELECTOR, f".{cls} dd").get_attribute("textContent") or ""
    return text


def error_text(driver: WebDriver) -> str:
    banner = driver.find_element(By.ID, "error")
    return (driver.find_element(By.ID, "error-text").get_attribute("textContent") or "") if banner.is_displayed() else ""


def create(site: Site, server: str, service: str) -> dict[str, Any]:
    response = site.api.post("/actions", json={"server_id": server, "action_type": "restart_service", "service_name": service})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def paused_server(site: Site, server_id: str = "web-1", hostname: str = "web-1.lan") -> None:
    assert site.api.post("/servers", json={"id": server_id, "hostname": hostname}).status_code == 201
    assert site.api.put(f"/servers/{server_id}/pause").status_code == 200


def test_page_is_served_with_a_csp_that_forbids_inline_script(site: Site) -> None:
    response = site.api.get(site.url + "/", headers={})
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "<script>" not in response.text and 'src="/static/app.js"' in response.text
    for name, media in (("app.js", "text/javascript"), ("style.css", "text/css")):
        asset = site.api.get(f"{site.url}/static/{name}", headers={})
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert site.api.get(f"{site.url}/static/..%2Fweb.py", headers={}).status_code == 404
    assert site.api.get(f"{site.url}/static/index.html", headers={}).status_code == 404


def test_sign_in_refuses_a_wrong_key_then_keeps_the_key_in_the_tab_only(page: WebDriver, site: Site) -> None:
    page.save_screenshot(str(SCREENSHOTS / "sign-in.png"))
    sign_in(page, "not-the-key")
    wait_until(page, lambda d: "Key refused (401)" in error_text(d), "the 401 in words")
    assert not page.find_element(By.ID, "app").is_displayed()
    page.save_screenshot(str(SCREENSHOTS / "sign-in-refused.png"))

    sign_in(page, ADMIN_KEY)
    signed_in(page)
    assert page.find_element(By.ID, "who-name").text == "dashboard"
    assert page.find_element(By.ID, "who-role").text == "admin"
    assert not page.find_element(By.ID, "error").is_displayed()
    # The key is in sessionStorage, not in a cookie or the URL.
    assert page.execute_script("return sessionStorage.getItem('actionq.key')") == ADMIN_KEY
    assert page.get_cookies() == [] and ADMIN_KEY not in page.current_url
    # A reload keeps the tab signed in; signing out forgets the key.
    page.refresh()
    signed_in(page)
    page.find_element(By.ID, "sign-out").click()
    wait_until(page, lambda d: d.find_element(By.ID, "sign-in").is_displayed(), "the sign-in form")
    assert page.execute_script("return sessionStorage.getItem('actionq.key')") is None


def test_an_action_appears_without_reload_and_approve_moves_it(page: WebDriver, site: Site) -> None:
    paused_server(site)
    assert site.api.post("/servers", json={"id": "db-1", "hostname": "db-1.lan"}).status_code == 201
    sign_in(page, ADMIN_KEY)
    signed_in(page)
    page.execute_script("window.__sameDocument = true")  # gone if the page reloads

    first = create(site, "web-1", "nginx")
    second = create(site, "web-1", "postgresql")
    wait_until(page, lambda d: card(d, "pending-list", second["id"]) is not None, "the new actions")
    pending = card(page, "pending-list", first["id"])
    assert pending is not None
    assert [a.text for a in pending.find_elements(By.CSS_SELECTOR, ".argv .arg")] == ["systemctl", "restart", "nginx.service"]
    assert field(pending, "requester") == "dashboard"
    assert field(pending, "approvals") == "none yet"
    assert "server web-1 is in maintenance" in field(pending, "why")
    assert "s ago" in pending.find_element(By.CSS_SELECTOR, ".age").text
    page.save_screenshot(str(SCREENSHOTS / "pending.png"))

    pending.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_until(page, lambda d: card(d, "pending-list", first["id"]) is None, "the approved action to leave the pending list")
    done = wait_until(page, lambda d: card(d, "history-list", first["id"]), "the approved action in the history")
    assert "approved by dashboard" in field(done, "outcome")
    assert site.api.get(f"/actions/{first['id']}").json()["status"] == "approved"
    assert card(page, "pending-list", second["id"]) is not None
    assert page.execute_script("return window.__sameDocument") is True

    # The agent runs it: the history shows the outcome, exit code and output, live.
    claim = site.api.post("/servers/web-1/actions/claim", json={}).json()
    site.api.post(f"/actions/{claim['id']}/result", json={"lease_token": claim["lease_token"], "exit_code": 3, "stdout": "restarting nginx", "stderr": "unit failed"})
    wait_until(page, lambda d: "exit code 3" in field(card(d, "history-list", first["id"]), "outcome"), "the reported result")
    done = card(page, "history-list", first["id"])
    assert done is not None and field(done, "exit-code") == "3"
    done.find_element(By.CSS_SELECTOR, "details summary").click()
    assert done.find_element(By.CSS_SELECTOR, "pre.stdout").text == "restarting nginx"
    assert done.find_element(By.CSS_SELECTOR, "pre.stderr").text == "unit failed"

    # Maintenance toggles: db-1 enters maintenance, web-1 leaves it.
    db = page.find_element(By.CSS_SELECTOR, "#server-list [data-id='db-1']")
    db.find_element(By.CSS_SELECTOR, "button.toggle").click()
    wait_until(page, lambda d: "In maintenance" in d.find_element(By.CSS_SELECTOR, "#server-list [data-id='db-1'] .state").text, "db-1 paused")
    assert site.api.get("/servers/db-1").json()["is_paused"] is True
    web = page.find_element(By.CSS_SELECTOR, "#server-list [data-id='web-1']")
    web.find_element(By.CSS_SELECTOR, "button.toggle").click()
    wait_until(page, lambda d: "Normal" in d.find_element(By.CSS_SELECTOR, "#server-list [data-id='web-1'] .state").text, "web-1 unpaused")
    assert site.api.get("/servers/web-1").json()["is_paused"] is False
    second_card = card(page, "pending-list", second["id"])
    assert second_card is not None
    wait_until(page, lambda d: "needs a human decision" in field(card(d, "pending-list", second["id"]), "why"), "the new reason")
    page.find_element(By.ID, "history-section").location_once_scrolled_into_view
    page.save_screenshot(str(SCREENSHOTS / "servers-and-history.png"))
    # The whole page in one picture (the README's).
    rejected = site.api.post(f"/actions/{second['id']}/reject", json={"reason": "postgresql is being upgraded"})
    assert rejected.status_code == 200
    create(site, "db-1", "redis")
    fourth = create(site, "db-1", "cron")
    wait_until(page, lambda d: card(d, "pending-list", fourth["id"]) is not None, "the new actions")
    wait_until(page, lambda d: card(d, "history-list", second["id"]) is not None, "the rejection")
    page.set_window_size(1280, 1480)
    page.execute_script("window.scrollTo(0, 0)")
    page.save_screenshot(str(SCREENSHOTS / "overview.png"))


def test_reject_needs_a_reason(page: WebDriver, site: Site) -> None:
    paused_server(site)
    action = create(site, "web-1", "nginx")
    sign_in(page, ADMIN_KEY)
    signed_in(page)
    pending = wait_until(page, lambda d: card(d, "pending-list", action["id"]), "the pending action")
    form = pending.find_element(By.CSS_SELECTOR, "form.reject-form")
    assert not form.is_displayed()
    pending.find_element(By.CSS_SELECTOR, "button.open-reject").click()
    assert form.is_displayed()
    form.find_element(By.TAG_NAME, "textarea").send_keys("   ")
    form.find_element(By.CSS_SELECTOR, "button.confirm-reject").click()
    message = form.find_element(By.CSS_SELECTOR, ".field-error")
    wait_until(page, lambda d: message.is_displayed(), "the missing-reason message")
    assert "A reason is required" in message.text
    page.save_screenshot(str(SCREENSHOTS / "reject-needs-reason.png"))
    assert site.api.get(f"/actions/{action['id']}").json()["status"] == "pending"

    # A refresh of the list (pushed: another action arrives) keeps the open
    # form and what was typed.
    box = form.find_element(By.TAG_NAME, "textarea")
    box.clear()
    box.send_keys("nginx is being migrated")
    other = create(site, "web-1", "cron")
    wait_until(page, lambda d: card(d, "pending-list", other["id"]), "the other action, pushed")
    assert box.get_attribute("value") == "nginx is being migrated"
    form.find_element(By.CSS_SELECTOR, "button.confirm-reject").click()
    done = wait_until(page, lambda d: card(d, "history-list", action["id"]), "the rejected action in the history")
    assert field(done, "outcome") == "rejected by dashboard: nginx is being migrated"
    assert card(page, "pending-list", action["id"]) is None
    body = site.api.get(f"/actions/{action['id']}").json()
    assert (body["status"], body["rejection_reason"]) == ("rejected", "nginx is being migrated")


MARKUP = [
    '<script>window.__pwned = "script"</script>',
    '<img src="x" onerror="window.__pwned = \'img\'">',
    '"><svg onload="window.__pwned=\'svg\'">',
]


def test_markup_in_names_reasons_and_output_renders_as_text(page: WebDriver, site: Site) -> None:
    hostname = MARKUP[1]
    paused_server(site, "web-1", hostname)
    # A requester whose credential's name is markup asks over HTTP.
    issued = site.api.post("/credentials", json={"name": MARKUP[0], "role": "requester"})
    assert issued.status_code == 201, issued.text
    as_requester = {"X-API-Key": issued.json()["secret"]}
    asked = site.api.post("/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}, headers=as_requester)
    assert asked.status_code == 201, asked.text
    action = site.queue.get_action(asked.json()["id"])
    assert action.created_by == MARKUP[0]
    rejected = site.queue.create_action("web-1", "restart_service", "redis", created_by=MARKUP[2])
    site.queue.reject_action(rejected.id, MARKUP[1] + MARKUP[0], by=MARKUP[2])
    site.queue.unpause_server("web-1")
    ran = site.queue.create_action("web-1", "restart_service", "ssh", created_by="ops")
    claim = site.queue.claim_next("web-1")
    assert claim is not None and claim.id == ran.id
    site.queue.report_result(claim.id, claim.lease_token, 1, stdout=MARKUP[0], stderr=MARKUP[1])
    site.queue.pause_server("web-1")

    sign_in(page, ADMIN_KEY)
    signed_in(page)
    pending = wait_until(page, lambda d: card(d, "pending-list", action.id), "the pending action")
    assert field(pending, "requester") == MARKUP[0]
    server = page.find_element(By.CSS_SELECTOR, "#server-list [data-id='web-1'] .hostname")
    assert server.get_attribute("textContent") == hostname
    done = wait_until(page, lambda d: card(d, "history-list", rejected.id), "the rejected action")
    assert field(done, "outcome") == f"rejected by {MARKUP[2]}: {MARKUP[1]}{MARKUP[0]}"
    assert field(done, "requester") == MARKUP[2]
    output = wait_until(page, lambda d: card(d, "history-list", ran.id), "the failed action")
    output.find_element(By.CSS_SELECTOR, "details summary").click()
    assert output.find_element(By.CSS_SELECTOR, "pre.stdout").get_attribute("textContent") == MARKUP[0]
    assert output.find_element(By.CSS_SELECTOR, "pre.stderr").get_attribute("textContent") == MARKUP[1]
    page.save_screenshot(str(SCREENSHOTS / "markup-as-text.png"))

    # Nothing ran and no element was made from the data.
    assert page.execute_script("return window.__pwned === undefined") is True
    made = page.execute_script("return document.querySelectorAll('#app script, #app img, #app svg, #app [onerror], #app [onload]').length")
    assert made == 0


def test_two_tabs_approve_the_same_action_one_wins_the_other_sees_the_conflict(page: WebDriver, site: Site) -> None:
    paused_server(site)
    action = create(site, "web-1", "nginx")
    sign_in(page, ADMIN_KEY)
    signed_in(page)
    wait_until(page, lambda d: card(d, "pending-list", action["id"]), "the action in the first tab")
    first_tab = page.current_window_handle
    # The second tab is opened by the first (it inherits the tab's session, as a
    # person's "open in new tab" does), so one script can press both buttons in
    # the same task: neither tab can refresh in between, both requests race.
    page.execute_script("window.__other = window.open('/', '_blank')")
    second_tab = next(h for h in page.window_handles if h != first_tab)
    page.switch_to.window(second_tab)
    signed_in(page)
    wait_until(page, lambda d: card(d, "pending-list", action["id"]), "the action in the second tab")
    page.switch_to.window(first_tab)
    page.execute_script(
        """
        const selector = "#pending-list [data-id='" + arguments[0] + "'] button.approve";
        document.querySelector(selector).click();
        window.__other.document.querySelector(selector).click();
        """,
        action["id"],
    )
    conflicts = []
    for handle in (first_tab, second_tab):
        page.switch_to.window(handle)
        wait_until(page, lambda d: card(d, "pending-list", action["id"]) is None, "the action to leave the pending list")
        conflicts.append(error_text(page))
        if error_text(page):
            page.save_screenshot(str(SCREENSHOTS / "conflict.png"))
    assert sum(1 for text in conflicts if text) == 1, conflicts
    loser = next(text for text in conflicts if text)
    assert f"Could not approve #{action['id']}. Conflict (409): Cannot approve action with status 'approved' (must be pending)." in loser
    assert "Someone else may have acted on it first" in loser
    assert site.api.get(f"/actions/{action['id']}").json()["status"] == "approved"
    events = site.api.get("/events").json()
    assert [e["to_status"] for e in events if e["action_id"] == action["id"]] == ["pending", "approved"]


FOUR_EYES = {
    "actions": {
        "restart_service": {
            "command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}},
            "approval": {"four_eyes": True},
        },
    }
}


@pytest.mark.parametrize("site", [FOUR_EYES], indirect=True)
def test_a_refusal_from_the_api_is_shown_in_words(page: WebDriver, site: Site) -> None:
    """The core's four-eyes rule refuses the admin's approval of its own request
    (the page's key created it): a real 403, shown in words, nothing changed."""
    paused_server(site)
    action = create(site, "web-1", "nginx")
    assert action["created_by"] == "dashboard"
    sign_in(page, ADMIN_KEY)
    signed_in(page)
    pending = wait_until(page, lambda d: card(d, "pending-list", action["id"]), "the pending action")
    pending.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_until(page, lambda d: error_text(d), "the refusal")
    assert error_text(page) == (
        f"Could not approve #{action['id']}. Not allowed (403): "
        f"Four-eyes policy: 'dashboard' requested action {action['id']} and cannot approve it. "
        "Your role does not allow this."
    )
    assert card(page, "pending-list", action["id"]) is not None
    assert site.api.get(f"/actions/{action['id']}").json()["approvals"] == []
    page.save_screenshot(str(SCREENSHOTS / "refused-403.png"))
    page.find_element(By.ID, "error-close").click()
    assert not page.find_element(By.ID, "error").is_displayed()


def test_a_viewer_sees_no_decisions_and_the_api_refuses_them(page: WebDriver, site: Site) -> None:
    paused_server(site)
    action = create(site, "web-1", "nginx")
    issued = site.api.post("/credentials", json={"name": "vera", "role": "viewer"})
    assert issued.status_code == 201, issued.text
    viewer_key = issued.json()["secret"]
    sign_in(page, viewer_key)
    signed_in(page)
    pending = wait_until(page, lambda d: card(d, "pending-list", action["id"]), "the pending action")
    assert page.find_element(By.ID, "who-role").text == "viewer"
    assert pending.find_elements(By.CSS_SELECTOR, "button") == []
    assert page.find_elements(By.CSS_SELECTOR, "#server-list button") == []
    page.save_screenshot(str(SCREENSHOTS / "viewer.png"))
    refused = page.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch('/api/v1/actions/' + arguments[0] + '/approve', {method: 'POST', headers: {'X-API-Key': arguments[1]}})
          .then(r => r.json().then(body => done([r.status, body])));
        """,
        action["id"],
        viewer_key,
    )
    assert refused[0] == 403 and refused[1]["detail"]["code"] == "PERMISSION_DENIED", refused
    assert site.api.get(f"/actions/{action['id']}").json()["status"] == "pending"


POLICY = {
    "actions": {
        "restart_service": {
            "command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}},
            "approval": {"required": 2},
        },
        "clear_logs": {
            "command": "journalctl --vacuum-time=7d",
            "approval": {"auto_approve_budget": {"max": 1, "window_seconds": 3600}},
        },
    }
}


@pytest.mark.parametrize("site", [POLICY], indirect=True)
def test_approvals_so_far_and_an_exceeded_budget_are_shown(page: WebDriver, site: Site) -> None:
    """Each pending action shows its approvals so far and why it waits,
    including an auto-approval budget that ran out on a normal server
    (docs/contract/approvers-page.md#pending-actions)."""
    assert site.api.post("/servers", json={"id": "web-1"}).status_code == 201
    assert site.api.post("/servers", json={"id": "db-1"}).status_code == 201
    assert site.api.put("/servers/web-1/pause").status_code == 200
    operators = []
    for name in ("olga", "omar"):
        issued = site.api.post("/credentials", json={"name": name, "role": "operator"})
        assert issued.status_code == 201, issued.text
        operators.append(issued.json()["secret"])
    two = create(site, "web-1", "nginx")
    first_logs = site.api.post("/actions", json={"server_id": "db-1", "action_type": "clear_logs"}).json()
    held = site.api.post("/actions", json={"server_id": "db-1", "action_type": "clear_logs"}).json()
    assert first_logs["status"] == "approved" and held["status"] == "pending"

    sign_in(page, ADMIN_KEY)
    signed_in(page)
    wait_until(page, lambda d: card(d, "pending-list", held["id"]) is not None, "the held action")
    assert field(card(page, "pending-list", two["id"]), "approvals") == "none yet"
    why = field(card(page, "pending-list", held["id"]), "why")
    assert "auto-approval budget exceeded: 1 in the last 3600s" in why, why
    assert "maintenance" not in why

    olga = site.api.post(f"/actions/{two['id']}/approve", headers={"X-API-Key": operators[0]})
    assert olga.status_code == 200 and olga.json()["status"] == "pending"
    wait_until(page, lambda d: field(card(d, "pending-list", two["id"]), "approvals") == "olga (1 of 2)", "the first approval")
    page.save_screenshot(str(SCREENSHOTS / "approvals-and-budget.png"))
    # The page's own Approve adds the admin's: the second of two, so it leaves the pending list.
    card(page, "pending-list", two["id"]).find_element(By.CSS_SELECTOR, "button.approve").click()  # type: ignore[union-attr]
    wait_until(page, lambda d: card(d, "pending-list", two["id"]) is None, "the approved action to leave the pending list")
    done = site.api.get(f"/actions/{two['id']}").json()
    assert done["status"] == "approved" and [a["by"] for a in done["approvals"]] == ["olga", "dashboard"]


def test_a_thousand_pending_actions_are_paged_and_the_page_fits_a_phone(page: WebDriver, site: Site) -> None:
    servers = [f"web-{i}" for i in range(10)]
    for server_id in servers:
        paused_server(site, server_id, f"{server_id}.lan")
    for i in range(1000):
        site.queue.create_action(servers[i % 10], "restart_service", f"unit-{i}", created_by=f"alert-bot-{i % 7}")
    sign_in(page, ADMIN_KEY)
    signed_in(page)
    wait_until(page, lambda d: d.find_element(By.ID, "pending-range").text == "1–50 of 1000", "the first page")
    assert page.find_element(By.ID, "pending-total").text == "(1000)"
    assert len(page.find_elements(By.CSS_SELECTOR, "#pending-list article")) == 50
    page.find_element(By.ID, "pending-next").click()
    wait_until(page, lambda d: d.find_element(By.ID, "pending-range").text == "51–100 of 1000", "the second page")
    ids = [int(e.get_attribute("data-id") or 0) for e in page.find_elements(By.CSS_SELECTOR, "#pending-list article")]
    assert ids == list(range(950, 900, -1))

    # Load time of the whole view with 1,000 pending (navigation to first full
    # render, signed in from the tab's session): recorded, not asserted.
    page.refresh()
    signed_in(page)
    loaded = wait_until(page, lambda d: d.execute_script("return document.body.dataset.firstRenderMs"), "the first render")
    (SCREENSHOTS / "load-1000-pending.json").write_text(json.dumps({"pending": 1000, "first_render_ms": int(loaded)}) + "\n")
    page.save_screenshot(str(SCREENSHOTS / "pending-1000.png"))

    page.set_window_size(390, 844)
    wait_until(page, lambda d: d.execute_script("return window.innerWidth") <= 390, "the phone width")
    overflow = page.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    first = page.find_element(By.CSS_SELECTOR, "#pending-list article")
    approve_button = first.find_element(By.CSS_SELECTOR, "button.approve")
    assert approve_button.is_displayed() and approve_button.size["width"] >= 100
    page.save_screenshot(str(SCREENSHOTS / "phone.png"))


def test_swagger_ui_renders_from_this_origin_with_no_csp_violation(browser: WebDriver, site: Site) -> None:
    assert isinstance(browser, ChromeDriver)  # its console log is readable
    browser.get_log("browser")  # type: ignore[no-untyped-call]  # drops what earlier tests logged
    browser.get(site.url + "/docs")
    title = wait_until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"),
        "Swagger UI to render the API's title",
    )[0]
    assert "actionq Action Queue API" in title.text
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), "the operations")
    browser.save_screenshot(str(SCREENSHOTS / "docs.png"))
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(site.url + "/") for url in loaded), loaded
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    refused = [e["message"] for e in log if "Content Security Policy" in e["message"]]
    assert refused == []
