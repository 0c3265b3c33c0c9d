"""Push over HTTP (docs/contract/push.md#over-http): the claim that waits
(``wait_seconds``) and the events stream (``GET /events/stream``), against
real servers on loopback: ``actionq-server`` subprocesses where another
process, another replica, SIGTERM or the server's memory matter, uvicorn in a
thread otherwise."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

import actionq
from actionq import limits
from actionq.server import create_app, push
from test_live_server import free_port, live_server

V1 = "/api/v1"
API_KEY = "test-key-0123456789"  # the `client` fixture's (conftest.py)
AUTH = {"X-API-Key": API_KEY}


@contextmanager
def threaded(app: Any) -> Iterator[tuple[httpx.Client, int]]:
    """`app` under uvicorn in a thread on a free loopback port: a client
    (base URL /api/v1, the test key) and the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:  # readiness
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}{V1}", headers=AUTH, timeout=30) as http:
            yield http, port
    finally:
        app.state.actionq.closing.close()
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


def waiters(http: httpx.Client) -> int:
    """The server's open waits (``actionq_waiters`` on /metrics)."""
    base = str(http.base_url).removesuffix("/api/v1/")
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith("actionq_waiters "):
            return int(float(line.split()[1]))
    raise AssertionError("no actionq_waiters gauge")


def until(condition: Any, what: str, timeout: float = 30) -> None:
    """Readiness wait: `condition()` becomes true (the assertion is that it does)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def raw_claim(port: int, key: str, server_id: str, wait_seconds: float, lease_seconds: float | None = None) -> socket.socket:
    """A claim request sent on a socket of its own, its answer unread."""
    body = {"wait_seconds": wait_seconds}
    if lease_seconds is not None:
        body["lease_seconds"] = lease_seconds
    data = json.dumps(body).encode()
    head = (
        f"POST {V1}/servers/{server_id}/actions/claim HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"X-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head + data)
    return s


def messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """The messages of a ``text/event-stream``: fields by name, comments as ``comment``."""
    message: dict[str, str] = {}
    for line in lines:
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")


def all_events(http: httpx.Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = http.get("/events", params={"after": out[-1]["id"] if out else 0, "limit": 1000}).json()
        out += page
        if len(page) < 1000:
            return out


def pending_action(http: httpx.Client, server_id: str = "web-1", service: str = "nginx") -> int:
    """A new action waiting for approval (its server is in maintenance, so
    nothing approves it by itself)."""
    response = http.post("/actions", json={"server_id": server_id, "action_type": "restart_service", "service_name": service})
    assert response.status_code == 201, response.text
    action_id: int = response.json()["id"]
    return action_id


# The claim that waits ------------------------------------------------------


def test_a_wait_ends_with_204_and_out_of_range_is_422(client: TestClient) -> None:
    started = time.monotonic()
    assert client.post(f"{V1}/servers/web-1/actions/claim", json={"wait_seconds": 0.2}).status_code == 204
    assert time.monotonic() - started >= 0.2  # it waited
    # Out of the core's range: its 422, before anything is claimed or waited for.
    for wrong in (-1, limits.MAX_WAIT_SECONDS + 0.5):
        response = client.post(f"{V1}/servers/web-1/actions/claim", json={"wait_seconds": wrong})
        assert response.status_code == 422, (wrong, response.text)
        assert response.json()["detail"]["code"] == "VALIDATION_ERROR"
    # Not a number: the request's shape, FastAPI's 422.
    for shape in ("soon", None, True):
        response = client.post(f"{V1}/servers/web-1/actions/claim", json={"wait_seconds": shape})
        assert response.status_code == 422, (shape, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", "wait_seconds"]
    # The bounds are accepted; 0 answers at once.
    assert client.post(f"{V1}/servers/web-1/actions/claim", json={"wait_seconds": 0}).status_code == 204
    # Roles and scope are checked before any wait: a viewer is refused at once.
    viewer = client.app.state.actionq.queue.queue.issue_credential("vera", "viewer").secret  # type: ignore[attr-defined]
    refused = client.post(
        f"{V1}/servers/web-1/actions/claim", json={"wait_seconds": limits.MAX_WAIT_SECONDS}, headers={"X-API-Key": viewer}
    )
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "PERMISSION_DENIED"
    missing = client.post(f"{V1}/servers/nope/actions/claim", json={"wait_seconds": limits.MAX_WAIT_SECONDS})
    assert missing.status_code == 404


def test_an_agent_token_waits_for_its_own_server_only() -> None:
    app = create_app(api_key=API_KEY)
    queue: actionq.ActionQueue = app.state.actionq.queue.queue
    for sid in ("web-1", "web-2"):
        queue.create_server(sid)
    queue.pause_server("web-1")  # actions wait for a person's approval
    token = queue.issue_credential("web-1-agent", "agent", "web-1").secret
    with threaded(app) as (http, port), httpx.Client(
        base_url=f"http://127.0.0.1:{port}{V1}", headers={"X-Agent-Token": token}, timeout=60
    ) as as_agent:
        got: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: got.append(as_agent.post("/servers/web-1/actions/claim", json={"wait_seconds": 30}))
        )
        waiting.start()
        until(lambda: waiters(http) == 1, "the agent's wait")
        other = as_agent.post("/servers/web-2/actions/claim", json={"wait_seconds": 30})
        assert other.status_code == 403
        action = pending_action(http)
        assert http.post(f"/actions/{action}/approve").status_code == 200
        waiting.join(60)
        assert got[0].status_code == 200 and got[0].json()["id"] == action


def test_a_wait_is_woken_by_an_approval_from_another_process(tmp_path: Path) -> None:
    """The server waits on a SQLite file; another process approves on it."""
    db = tmp_path / "actionq.sqlite3"
    with live_server("--database", str(db)) as (http, _, _):
        assert http.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        assert http.put("/servers/web-1/pause").status_code == 200
        action = pending_action(http)
        got: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: got.append(http.post("/servers/web-1/actions/claim", json={"wait_seconds": 30}, timeout=60))
        )
        waiting.start()
        until(lambda: waiters(http) == 1, "the claim's wait")
        subprocess.run(
            [sys.executable, "-c", "import actionq, sys; actionq.ActionQueue(sys.argv[1]).approve_action(int(sys.argv[2]))", str(db), str(action)],
            check=True,
        )
        waiting.join(60)
        # A 200 is the wake: a wait that ran out answers 204.
        assert got[0].status_code == 200, got[0].text
        assert got[0].json()["id"] == action
        assert waiters(http) == 0


def test_a_wait_is_woken_by_an_approval_on_another_postgres_replica() -> None:
    from pg_support import fresh_url

    url = fresh_url()
    with live_server("--database", url) as (a, _, _), live_server("--database", url) as (b, _, _):
        assert a.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        assert b.put("/servers/web-1/pause").status_code == 200
        action = pending_action(a)
        got: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: got.append(a.post("/servers/web-1/actions/claim", json={"wait_seconds": 30}, timeout=60))
        )
        waiting.start()
        until(lambda: waiters(a) == 1, "the claim's wait on replica a")
        assert b.post(f"/actions/{action}/approve").status_code == 200
        waiting.join(60)
        assert got[0].status_code == 200, got[0].text
        assert got[0].json()["id"] == action
        assert b.get(f"/actions/{action}").json()["status"] == "executing"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _sockets(pid: int) -> int:
    open_sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            open_sockets += fd.readlink().name.startswith("socket:")
        except FileNotFoundError:  # closed between the listing and the look
            continue
    return open_sockets


def test_ten_thousand_dropped_waits_leave_memory_connections_and_actions_as_they_were(tmp_path: Path) -> None:
    """Clients that give up (close the connection) while waiting claim
    nothing, and their waits end: the server's waits, sockets and memory
    come back to where they were."""
    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc")
    with live_server("--database", str(tmp_path / "q.sqlite3")) as (http, _, pid):
        key = http.headers["X-API-Key"]
        port = http.base_url.port
        assert port is not None
        assert http.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        batch, total = 250, 10_000

        def drop_batch() -> None:
            sockets = [raw_claim(port, key, "web-1", limits.MAX_WAIT_SECONDS) for _ in range(batch)]
            until(lambda: waiters(http) == batch, f"{batch} open waits")
            for s in sockets:
                s.close()
            until(lambda: waiters(http) == 0, "the dropped waits to end")

        drop_batch()  # warm-up: the server's buffers and pools reach their size
        until(lambda: _sockets(pid) <= 3, "the dropped connections to close")
        sockets_before, rss_before = _sockets(pid), _rss_kib(pid)
        for _ in range(total // batch - 1):
            drop_batch()
        until(lambda: _sockets(pid) <= sockets_before, "the dropped connections to close")
        grown = _rss_kib(pid) - rss_before
        assert grown < 16 * 1024, f"RSS grew by {grown} KiB over {total} dropped waits"
        # Nothing was claimed: the next approved action goes to a live claim.
        events = all_events(http)
        assert [e for e in events if e.get("to_status") == "executing"] == []
        action = pending_action(http)  # web-1 is not paused: approved at once
        assert http.get(f"/actions/{action}").json()["status"] == "approved"
        assert http.post("/servers/web-1/actions/claim", json={"wait_seconds": 1}).json()["id"] == action


def test_a_claim_whose_answer_is_lost_is_ended_by_its_lease(tmp_path: Path) -> None:
    """The race the route cannot close: a claim made as its client leaves.
    Nobody has its lease token, so nothing runs it, and its lease ends it as
    it would any claim whose response the network lost; a client that left
    before the claim was made claimed nothing. Either way nothing is stranded."""
    app = create_app(tmp_path / "q.sqlite3", api_key=API_KEY)
    with threaded(app) as (http, port):
        assert http.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        # The answer of a claim made at once is lost for sure.
        action = pending_action(http)  # web-1 is not paused: approved at once
        assert http.get(f"/actions/{action}").json()["status"] == "approved"
        raw_claim(port, API_KEY, "web-1", 0, lease_seconds=0.5).close()
        until(lambda: http.get(f"/actions/{action}").json()["status"] == "failed", "the lost claim's lease to end it")
        assert "lease" in all_events(http)[-1]["detail"]
        # Claims that wait, their clients gone as the claim may be made:
        # each action ends claimable or failed by its lease, never executing.
        outcomes = set()
        for i in range(20):
            action = pending_action(http, service=f"svc{i}")
            raw_claim(port, API_KEY, "web-1", 30, lease_seconds=0.5).close()
            until(lambda: waiters(http) == 0, "the dropped wait to end")
            until(lambda: http.get(f"/actions/{action}").json()["status"] in ("approved", "failed"), "no stranded claim")
            status = http.get(f"/actions/{action}").json()["status"]
            outcomes.add(status)
            if status == "approved":  # nothing claimed: the next claim gets it
                claim = http.post("/servers/web-1/actions/claim", json={"lease_seconds": 30}).json()
                assert claim["id"] == action
                http.post(f"/actions/{action}/result", json={"lease_token": claim["lease_token"], "exit_code": 0})
        assert outcomes <= {"approved", "failed"}
        assert http.post("/servers/web-1/actions/claim", json={}).status_code == 204


def _exited(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return status.split("State:")[1].split()[0] == "Z"


def test_sigterm_ends_open_waits_and_streams_at_once(tmp_path: Path) -> None:
    # uvicorn stops gracefully, then ends by the signal it was sent (its
    # default action), as it does under systemd.
    with live_server("--database", str(tmp_path / "q.sqlite3"), exit_codes=(-signal.SIGTERM,)) as (http, _, pid):
        assert http.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        answers: list[int] = []
        streams_ended: list[bool] = []

        def claim() -> None:
            answers.append(http.post("/servers/web-1/actions/claim", json={"wait_seconds": 60}, timeout=120).status_code)

        def stream() -> None:
            with http.stream("GET", "/events/stream", timeout=120) as response:
                for _ in response.iter_lines():
                    pass
            streams_ended.append(True)

        threads = [threading.Thread(target=claim) for _ in range(8)] + [threading.Thread(target=stream) for _ in range(2)]
        for t in threads:
            t.start()
        until(lambda: waiters(http) == 10, "8 claim waits and 2 streams")
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        for t in threads:
            t.join(120)
        ended = time.monotonic() - started
        # The waits had a minute left: they ended at the signal, with 204.
        assert answers == [204] * 8 and streams_ended == [True, True]
        assert ended < 10, f"open waits held the shutdown for {ended:.1f} s"
        until(lambda: _exited(pid), "the server to exit", timeout=10)


# The events stream ---------------------------------------------------------


def test_a_stream_resumed_with_last_event_id_gets_every_event_once() -> None:
    app = create_app(api_key=API_KEY)
    with threaded(app) as (http, _):
        assert http.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        assert http.put("/servers/web-1/pause").status_code == 200
        total = 300
        done = threading.Event()

        def produce() -> None:
            for i in range(total):
                action = pending_action(http, service=f"svc{i}")
                if i % 3 == 0:
                    http.post(f"/actions/{action}/approve")
            done.set()

        producer = threading.Thread(target=produce)
        producer.start()
        seen: list[dict[str, Any]] = []
        connections = 0
        last: int | None = None
        while True:
            connections += 1
            # `after=0` would repeat everything: Last-Event-ID wins.
            headers = {} if last is None else {"Last-Event-ID": str(last)}
            with http.stream("GET", "/events/stream", params={"after": 0}, headers=headers, timeout=30) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                read_here = 0
                for message in messages(response.iter_lines()):
                    if "comment" in message:
                        if done.is_set() and len(seen) == len(all_events(http)):
                            break
                        continue
                    assert message["event"] == "action"
                    event = json.loads(message["data"])
                    assert int(message["id"]) == event["id"]
                    assert not seen or event["id"] > seen[-1]["id"], f"event {event['id']} again, or out of order"
                    seen.append(event)
                    last = event["id"]
                    read_here += 1
                    if read_here == 97:
                        break  # drop the connection mid-stream
                else:
                    raise AssertionError("the stream ended")
            if done.is_set() and len(seen) == len(all_events(http)):
                break
        producer.join()
        assert connections > 3
        assert seen == all_events(http)  # every event, once, in order, as /events gives it
        assert sum(1 for e in seen if e["kind"] == "action") == total + total // 3  # creates and approvals


def test_a_quiet_stream_sends_comment_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    assert push.STREAM_KEEPALIVE_SECONDS < 15  # the contract's longest quiet time
    monkeypatch.setattr(push, "STREAM_KEEPALIVE_SECONDS", 0.1)
    app = create_app(api_key=API_KEY)
    with threaded(app) as (http, _):
        with http.stream("GET", "/events/stream") as response:
            got = messages(response.iter_lines())
            assert next(got) == {"comment": "events after 0"}
            assert next(got) == {"comment": "keep-alive"}
            assert next(got) == {"comment": "keep-alive"}
            assert response.headers["cache-control"] == "no-cache"


def test_stream_refusals_are_ordinary_errors(client: TestClient) -> None:
    queue: actionq.ActionQueue = client.app.state.actionq.queue.queue  # type: ignore[attr-defined]
    agent = queue.issue_credential("a", "agent", "web-1").secret
    assert client.get(f"{V1}/events/stream", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get(f"{V1}/events/stream", headers={"X-API-Key": agent}).status_code == 401
    assert client.get(f"{V1}/events/stream", headers={"X-Agent-Token": agent, "X-API-Key": ""}).status_code == 401
    bad_id = client.get(f"{V1}/events/stream", headers={"Last-Event-ID": "twelve"})
    assert bad_id.status_code == 422
    negative = client.get(f"{V1}/events/stream", params={"after": -1})
    assert negative.status_code == 422, negative.text


def test_a_stream_shows_an_approval_from_another_process(tmp_path: Path) -> None:
    db = tmp_path / "actionq.sqlite3"
    app = create_app(db, api_key=API_KEY)
    with threaded(app) as (http, _):
        assert http.post("/servers", json={"id": "web-1", "hostname": None}).status_code == 201
        assert http.put("/servers/web-1/pause").status_code == 200
        action = pending_action(http)
        with http.stream("GET", "/events/stream", params={"after": all_events(http)[-1]["id"]}) as response:
            got = messages(response.iter_lines())
            assert "comment" in next(got)
            subprocess.run(
                [sys.executable, "-c", "import actionq, sys; actionq.ActionQueue(sys.argv[1]).approve_action(int(sys.argv[2]))", str(db), str(action)],
                check=True,
            )
            message = next(m for m in got if "comment" not in m)
            event = json.loads(message["data"])
            assert (event["action_id"], event["to_status"]) == (action, "approved")


# The stop machinery of a wait (push.until_stopped, push.Closing) ------------


def test_until_stopped_tells_a_stop_from_the_callers_cancel() -> None:
    """A stop ends the work and answers (False, None) once the work's
    cleanup ran; the work's result wins when it comes first; the caller's
    own cancel is raised, not taken for a stop, and cancels the work too.
    A shutdown ends the waits registered then, at once for one registered
    after it, and holds none that unregistered."""
    import asyncio

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        cleaned: list[str] = []

        async def work(name: str, seconds: float) -> str:
            try:
                await asyncio.sleep(seconds)
                return name
            finally:
                cleaned.append(name)

        stop = loop.create_future()
        loop.call_later(0.05, stop.set_result, None)
        assert await push.until_stopped(work("stopped", 30), stop) == (False, None)
        assert cleaned == ["stopped"], "answered before the work's cleanup"

        assert await push.until_stopped(work("first", 0), loop.create_future()) == (True, "first")

        caller = asyncio.ensure_future(push.until_stopped(work("caller", 30), loop.create_future()))
        await asyncio.sleep(0.05)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.sleep(0)
        assert "caller" in cleaned, "the work outlived its caller"

        closing = push.Closing()
        left = loop.create_future()
        unwatch = closing.watch(left)
        kept = loop.create_future()
        closing.watch(kept)
        unwatch()
        closing.close()
        await asyncio.sleep(0)
        assert kept.done(), "the shutdown did not end a registered wait"
        assert not left.done(), "a wait that unregistered was still held (and ended) by the shutdown"
        late = loop.create_future()
        closing.watch(late)
        assert late.done(), "a wait registered after the shutdown did not end at once"

    asyncio.run(scenario())
