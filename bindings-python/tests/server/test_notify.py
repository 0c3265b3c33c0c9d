"""Notifications (docs/contract/notifications.md) with real receivers on
loopback: signed webhooks verified by the ``standardwebhooks`` library,
receivers that fail, stall or hang, Apprise ``json://`` and ``mailto://``
(to a local aiosmtpd server), a restart while a message is undelivered, two
server processes on one PostgreSQL database, and a 10,000-event backlog."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

import actionq
from actionq.server import create_app, notify
from actionq.server.notify import NotifyConfigError, load_config

from notify_support import SECRET, Receiver, receiver, running
from pg_support import fresh_url
from serve_support import BIN, BOOTSTRAP_KEY, free_port

AUTH = {"X-API-Key": BOOTSTRAP_KEY}
PAGE = "https://aq.example.lan/"


def write(tmp: Path, text: str, name: str = "notify.toml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def webhook_sink(url: str, name: str = "ops", extra: str = "") -> str:
    return f'[[sink]]\nname = "{name}"\nkind = "webhook"\nurl = "{url}"\nsecret = "{SECRET}"\n{extra}\n'


@contextmanager
def app(tmp: Path, notify_text: str, db: str | None = None) -> Iterator[TestClient]:
    config = load_config(write(tmp, f'page_url = "{PAGE}"\n' + notify_text), page_url="http://unused/")
    database = db or str(tmp / "q.sqlite3")
    with TestClient(create_app(database, api_key=BOOTSTRAP_KEY, notify_config=config), headers=AUTH) as client:
        yield client


def sinks(client: Any) -> dict[str, dict[str, Any]]:
    got = client.get("/api/v1/notifications")
    assert got.status_code == 200, got.text
    return {s["name"]: s for s in got.json()}


def verified(received: Receiver) -> list[dict[str, Any]]:
    """Every delivered webhook, verified with the standardwebhooks library."""
    hook = Webhook(SECRET)
    return [hook.verify(r.body, r.headers) for r in received.delivered()]


def test_a_bad_file_is_refused_at_start_naming_the_problem(tmp_path: Path) -> None:
    cases = {
        "": "no [[sink]] table",
        "[[sink]\n": "not valid TOML",
        '[[sink]]\nname = "Ops"\nkind = "webhook"\nurl = "http://x"\n': "name must be",
        '[[sink]]\nname = "a"\nkind = "sms"\nurl = "http://x"\n': "kind must be one of",
        '[[sink]]\nname = "a"\nkind = "webhook"\nurl = "http://x"\n': "exactly one of secret and secret_file",
        '[[sink]]\nname = "a"\nkind = "webhook"\nurl = "http://x"\nsecret = "s3cr3t-value"\n': "must be 'whsec_'",
        '[[sink]]\nname = "a"\nkind = "webhook"\nurl = "http://x"\nsecret_file = "missing.whsec"\n': "cannot read secret_file",
        '[[sink]]\nname = "a"\nkind = "apprise"\nurl = "bogus://x"\n': "Apprise does not take this url",
        webhook_sink("http://x", extra='statuses = ["waiting"]'): "statuses must be",
        webhook_sink("http://x", extra="max_age_seconds = 0"): "max_age_seconds must be",
        webhook_sink("http://x", extra="colour = 1"): "unknown key(s) ['colour']",
        webhook_sink("http://x") + webhook_sink("http://y"): "sink name(s) used twice: ['ops']",
    }
    for text, problem in cases.items():
        path = write(tmp_path, text)
        with pytest.raises(NotifyConfigError) as refused:
            load_config(path, page_url=PAGE)
        assert str(path) in str(refused.value) and problem in str(refused.value), (text, str(refused.value))
        assert "s3cr3t" not in str(refused.value)
    # The command line refuses it before serving, naming it.
    bad = write(tmp_path, '[[sink]]\nname = "a"\nkind = "sms"\nurl = "http://x"\n')
    done = subprocess.run(
        [str(BIN / "actionq-server"), "--port", "1", "--notify", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ACTIONQ_API_KEY": BOOTSTRAP_KEY, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2 and "kind must be one of" in done.stderr, done.stderr
    # A secret from a file, relative to the notify file's folder.
    write(tmp_path, SECRET + "\n", "ops.whsec")
    ok = load_config(write(tmp_path, '[[sink]]\nname = "a"\nkind = "webhook"\nurl = "http://x"\nsecret_file = "ops.whsec"\n'), PAGE)
    assert ok.sinks[0].secret is not None and "whsec" not in repr(ok)


def test_webhooks_are_signed_filtered_and_link_to_the_action(tmp_path: Path) -> None:
    with receiver() as rx:
        text = webhook_sink(rx.url + "/hook", extra='statuses = ["pending", "approved"]\nservers = ["web-*"]')
        with app(tmp_path, text) as c:
            for server in ("web-1", "db-1"):
                assert c.post("/api/v1/servers", json={"id": server}).status_code == 201
                assert c.put(f"/api/v1/servers/{server}/pause").status_code == 200
            created = c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
            assert c.post("/api/v1/actions", json={"server_id": "db-1", "action_type": "clear_logs"}).status_code == 201
            assert c.post(f"/api/v1/actions/{created['id']}/approve").status_code == 200
            rx.wait_for(lambda: len(rx.delivered()) == 2)
            time.sleep(0.3)  # nothing else arrives: db-1 is not a web-* server
            messages = verified(rx)
            assert [m["type"] for m in messages] == ["action.pending", "action.approved"]
            first = messages[0]
            assert first["data"]["action"]["id"] == created["id"]
            assert first["data"]["event"]["to_status"] == "pending"
            assert first["data"]["url"] == f"https://aq.example.lan/#action/{created['id']}"
            assert first["timestamp"] == first["data"]["event"]["at"]
            ids = [r.headers["webhook-id"] for r in rx.delivered()]
            assert ids == [f"aq-{m['data']['event']['id']}" for m in messages]
            assert rx.delivered()[0].path == "/hook"
            status = sinks(c)["ops"]
            assert status["kind"] == "webhook" and status["last_error"] is None and status["dead"] == 0
            assert status["lag_events"] == 0 and status["last_success_at"] is not None
            assert set(status) == {"name", "kind", "cursor", "lag_events", "last_error", "last_success_at", "dead"}
            metrics = c.get("/metrics").text
            assert 'actionq_notifications_sent_total{sink="ops"} 2.0' in metrics
            assert SECRET not in metrics and SECRET not in c.get("/api/v1/notifications").text
            # A tampered body fails verification (the check can fail).
            tampered = rx.delivered()[0]
            with pytest.raises(Exception):
                Webhook(SECRET).verify(tampered.body.replace(b"pending", b"rejected"), tampered.headers)


def test_a_sink_runs_under_the_lease_the_core_names(tmp_path: Path) -> None:
    with receiver() as rx, app(tmp_path, webhook_sink(rx.url)) as c:
        assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
        assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
        rx.wait_for(lambda: len(rx.delivered()) == 1)
        lease = actionq.delivery_lease_name("ops")
        assert lease == "delivery:ops"
        # The sink's delivery holds it: nobody else takes it meanwhile.
        with pytest.raises(actionq.ConflictError, match="is held by"):
            actionq.ActionQueue(tmp_path / "q.sqlite3").take_lease(lease, "someone-else", 30)


def test_a_new_sink_starts_at_the_end_of_the_log_as_of_the_servers_start(tmp_path: Path) -> None:
    with receiver() as rx, app(tmp_path, webhook_sink(rx.url)) as c:
        # At once, while the delivery process may still be starting.
        assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
        assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
        rx.wait_for(lambda: len(rx.delivered()) == 1)


def test_a_delivery_process_that_dies_is_started_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "WATCH_SECONDS", 0.2)

    def delivering() -> list[multiprocessing.process.BaseProcess]:
        return [p for p in multiprocessing.active_children() if p.name == "actionq-notify"]

    with receiver() as rx, app(tmp_path, webhook_sink(rx.url)) as c:
        # On a SQLite file the sinks are delivered by a process of the server's.
        (first,) = delivering()
        first.kill()
        first.join()
        assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
        assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
        rx.wait_for(lambda: len(rx.delivered()) == 1)
        (second,) = delivering()
        assert second.pid != first.pid
        # When the cores are short, the requests go first.
        assert second.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, second.pid) > os.getpriority(os.PRIO_PROCESS, 0)


def test_a_webhook_the_environment_proxies_goes_through_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with receiver() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        # A host nobody resolves: only the proxy can take it there.
        with app(tmp_path, webhook_sink("http://hooks.invalid/hook")) as c:
            assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
            assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
            proxy.wait_for(lambda: len(proxy.delivered()) == 1)
            assert proxy.delivered()[0].path == "http://hooks.invalid/hook"
            verified(proxy)


def test_a_failing_receiver_is_retried_with_the_same_id_and_never_slows_a_create(tmp_path: Path) -> None:
    release = threading.Event()
    with receiver() as rx:
        # Try 0 hangs until released (the creates meanwhile must not wait for
        # it), then it and try 1 answer 500; try 2 is delivered.
        rx.stall = lambda n: float(release.wait(30)) * 0.0 if n == 0 else 0.0
        rx.answer = lambda n: 500 if n in (0, 1) else 200
        with app(tmp_path, webhook_sink(rx.url)) as c:
            assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
            first = c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"})
            assert first.status_code == 201
            rx.wait_for(lambda: len(rx.requests) == 1)
            # The receiver holds the first try open: creates still answer.
            for _ in range(3):
                assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}).status_code in (201, 409)
            release.set()
            rx.wait_for(lambda: len(rx.delivered()) >= 1, timeout=60)
            assert rx.delivered()[0] is rx.requests[2]
            ids = [r.headers["webhook-id"] for r in rx.requests[:3]]
            assert ids[0] == ids[1] == ids[2], ids
            status = sinks(c)["ops"]
            metrics = c.get("/metrics").text
            assert 'actionq_notifications_failed_total{sink="ops"} 2.0' in metrics, metrics
            assert status["dead"] == 0


def test_a_stalled_receiver_times_out_and_the_message_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "SEND_TIMEOUT_SECONDS", 0.5)
    with receiver() as rx:
        rx.stall = lambda n: 2.0 if n == 0 else 0.0
        with app(tmp_path, webhook_sink(rx.url)) as c:
            assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
            assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
            rx.wait_for(lambda: len(rx.requests) >= 2, timeout=30)
            rx.wait_for(lambda: sinks(c)["ops"]["lag_events"] == 0, timeout=30)
            assert sinks(c)["ops"]["last_error"] is None
            assert 'actionq_notifications_failed_total{sink="ops"} 1.0' in c.get("/metrics").text
            assert len({r.headers["webhook-id"] for r in rx.requests}) == 1


def test_a_message_too_old_to_retry_is_dead_lettered_and_counted(tmp_path: Path) -> None:
    with receiver() as rx:
        rx.answer = lambda n: 500 if n == 0 else 200
        with app(tmp_path, webhook_sink(rx.url, extra="max_age_seconds = 1")) as c:
            assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
            assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
            rx.wait_for(lambda: sinks(c)["ops"]["dead"] == 1)
            status = sinks(c)["ops"]
            assert status["last_error"] == "HTTP 500" and status["lag_events"] == 0
            assert 'actionq_notifications_dead_total{sink="ops"} 1.0' in c.get("/metrics").text
            # The next message is delivered; the dead one is not retried.
            assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}).status_code == 201
            rx.wait_for(lambda: len(rx.delivered()) == 1)
            assert sinks(c)["ops"]["last_error"] is None


def test_only_admins_see_the_sinks(tmp_path: Path) -> None:
    with receiver() as rx, app(tmp_path, webhook_sink(rx.url)) as c:
        for role in ("operator", "viewer", "requester"):
            secret = c.post("/api/v1/credentials", json={"name": f"{role}-1", "role": role}).json()["secret"]
            refused = c.get("/api/v1/notifications", headers={"X-API-Key": secret})
            assert refused.status_code == 403 and refused.json()["detail"]["code"] == "PERMISSION_DENIED"
        assert list(sinks(c)) == ["ops"]


def test_a_sink_secret_never_shows_in_a_response_a_log_line_or_a_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Receivers that refuse the connection, so every try fails and its
    error is kept, logged and counted: the signing secret and the tokens in
    the sinks' URLs (an Apprise URL carries its service's credentials) appear
    nowhere a person or a scraper reads."""
    closed = free_port()
    token = "tok-SEKRIT-4711"
    text = webhook_sink(f"http://127.0.0.1:{closed}/hook?token={token}") + (
        f'[[sink]]\nname = "phone"\nkind = "apprise"\nurl = "json://user:{token}@127.0.0.1:{closed}/in"\n'
    )
    caplog.set_level("DEBUG")
    with app(tmp_path, text) as c:
        assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
        assert c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
        deadline = time.monotonic() + 30
        while not all(s["last_error"] for s in sinks(c).values()):
            assert time.monotonic() < deadline, sinks(c)
            time.sleep(0.05)
        seen = {
            "notifications": c.get("/api/v1/notifications").text,
            "metrics": c.get("/metrics").text,
            "page": c.get("/").text,
            "log": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        }
    assert 'actionq_notifications_failed_total{sink="phone"}' in seen["metrics"]
    assert "notification try failed" in seen["log"]
    for secret in (SECRET, SECRET.removeprefix("whsec_"), token):
        for where, what in seen.items():
            assert secret not in what, f"{secret!r} in the {where}"


def test_apprise_json_and_mailto_sinks(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails: list[Any] = []

    class Inbox(Message):
        def handle_message(self, message: Any) -> None:
            mails.append(message)

    port = free_port()
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with receiver() as rx:
            text = (
                f'[[sink]]\nname = "json"\nkind = "apprise"\nurl = "json://{rx.url[len("http://"):]}/apprise"\n'
                f'[[sink]]\nname = "mail"\nkind = "apprise"\n'
                f'url = "mailto://127.0.0.1:{port}?from=aq@example.lan&to=ops@example.lan"\nstatuses = ["pending"]\n'
            )
            with app(tmp_path, text) as c:
                assert c.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
                assert c.put("/api/v1/servers/web-1/pause").status_code == 200
                created = c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
                rx.wait_for(lambda: len(rx.delivered()) == 1)
                rx.wait_for(lambda: len(mails) == 1)
                body = json.loads(rx.delivered()[0].body)
                (tmp_path / "apprise-json-body.json").write_text(json.dumps(body, indent=2))
                assert body["title"] == "actionq: clear_logs on web-1 is pending"
                for part in ("Server: web-1", "Command: ", "Waits for approval: server web-1 is in maintenance mode",
                             f"Open: https://aq.example.lan/#action/{created['id']}"):
                    assert part in body["message"], body["message"]
                mail = mails[0]
                assert mail["To"] == "ops@example.lan" and "clear_logs on web-1 is pending" in mail["Subject"]
                assert f"#action/{created['id']}" in mail.get_payload() if not mail.is_multipart() else True
                assert {s["kind"] for s in sinks(c).values()} == {"apprise"}
    finally:
        smtp.stop()


def test_a_restart_delivers_an_undelivered_message_once(tmp_path: Path) -> None:
    with receiver() as rx:
        failing = True
        rx.answer = lambda n: 500 if failing else 200
        notify_file = write(tmp_path, webhook_sink(rx.url))
        database = str(tmp_path / "q.sqlite3")
        with running(tmp_path, database, notify_file, "first") as first:
            assert first.admin.post("/servers", json={"id": "web-1"}).status_code == 201
            created = first.admin.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
            rx.wait_for(lambda: len(rx.requests) >= 1)
        assert rx.delivered() == []
        failing = False
        with running(tmp_path, database, notify_file, "second") as second:
            rx.wait_for(lambda: len(rx.delivered()) == 1)
            time.sleep(1.0)
            status = second.admin.get("/notifications").json()[0]
            assert status["lag_events"] == 0
        messages = verified(rx)
        assert len(messages) == 1 and messages[0]["data"]["action"]["id"] == created["id"]
        with running(tmp_path, database, notify_file, "third"):
            time.sleep(1.5)
        assert len(rx.delivered()) == 1, "a third start sends nothing again"


def test_two_servers_on_one_postgres_database_deliver_each_event_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = fresh_url()
    with receiver() as rx:
        notify_file = write(tmp_path, webhook_sink(rx.url))
        with running(tmp_path, database, notify_file, "a") as a, running(tmp_path, database, notify_file, "b") as b:
            for server in ("web-1", "web-2"):
                assert a.admin.post("/servers", json={"id": server}).status_code == 201
            created = 0
            for n in range(20):
                replica = (a, b)[n % 2]
                answer = replica.admin.post("/actions", json={"server_id": f"web-{n % 2 + 1}", "action_type": "restart_service", "service_name": f"svc{n}"})
                assert answer.status_code == 201, answer.text
                created += 1
            rx.wait_for(lambda: len(rx.delivered()) >= created, timeout=60)
            time.sleep(1.0)
        ids = [r.headers["webhook-id"] for r in rx.delivered()]
        assert len(ids) == created and len(set(ids)) == created, ids
        numbers = [int(i[3:]) for i in ids]
        assert numbers == sorted(numbers), "in event order"
        verified(rx)


def test_a_10000_event_backlog_drains_in_order(tmp_path: Path) -> None:
    database = tmp_path / "q.sqlite3"
    queue = actionq.ActionQueue(database)
    queue.register_delivery("ops", "webhook")
    queue.create_server("web-1")
    queue.pause_server("web-1")
    for n in range(5000):
        action = queue.create_action("web-1", "restart_service", service_name=f"svc{n}")
        queue.cancel_action(action.id)
    assert queue.list_deliveries()[0].lag_events == 10_001  # and the pause event
    del queue
    with receiver() as rx:
        with app(tmp_path, webhook_sink(rx.url, extra='statuses = ["pending", "cancelled"]'), db=str(database)) as c:
            rx.wait_for(lambda: len(rx.delivered()) == 10_000, timeout=300)
            rx.wait_for(lambda: sinks(c)["ops"]["lag_events"] == 0)
        numbers = [int(r.headers["webhook-id"][3:]) for r in rx.delivered()]
        assert numbers == sorted(numbers) and len(set(numbers)) == 10_000
