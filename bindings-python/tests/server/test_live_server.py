"""The real thing: the `actionq-server` console script under uvicorn on a free
loopback port, driven over HTTP with httpx, then stopped."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import actionq
from lock_support import LOCK_HOLDER, needs_proc, threads_in_busy_wait

# The console script maturin installed next to this interpreter.
SCRIPT = Path(sys.executable).with_name("actionq-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(*args: str, exit_codes: tuple[int, ...] = (0,)) -> Iterator[tuple[httpx.Client, str, int]]:
    """Runs `actionq-server --port N *args` without ACTIONQ_API_KEY; yields a
    client (base URL /api/v1, the printed key), the output so far and the
    server's pid once uvicorn accepts connections, then stops the server with
    SIGINT and checks it exited cleanly (`exit_codes`: for a test that
    stopped it itself)."""
    assert SCRIPT.exists(), f"{SCRIPT} missing: run `make python-develop`"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ACTIONQ_API_KEY", "ACTIONQ_DATABASE")}
    env["PYTHONUNBUFFERED"] = "1"
    server = subprocess.Popen(
        [str(SCRIPT), "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert server.stdout is not None
    stdout = server.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    output: list[str] = []
    try:
        # The script generates a key when ACTIONQ_API_KEY is unset, writes it
        # to a mode-0600 file and prints the file's path (never the key), then
        # says where it serves from.
        key = ""
        key_file: Path | None = None
        deadline = time.monotonic() + 60
        while not output or not output[-1].startswith("actionq API on "):
            assert time.monotonic() < deadline, "".join(output)
            line = lines.get(timeout=60)
            output.append(line)
            if line.strip().startswith('export ACTIONQ_API_KEY="$(cat '):
                key_file = Path(line.strip().removeprefix('export ACTIONQ_API_KEY="$(cat ').removesuffix(')"'))
                assert key_file.stat().st_mode & 0o777 == 0o600, oct(key_file.stat().st_mode)
                key = key_file.read_text().strip()
        assert key, "".join(output)
        assert key not in "".join(output)

        base = f"http://127.0.0.1:{port}"
        while True:  # poll until uvicorn accepts connections (readiness, not a timed assertion)
            try:
                if httpx.get(base + "/docs", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.05)
        assert httpx.get(base + "/api/v1/events").status_code == 401
        with httpx.Client(base_url=base + "/api/v1", headers={"X-API-Key": key}, timeout=10) as http:
            yield http, "".join(output), server.pid
    finally:
        # Whatever it printed later never shows the key either.
        if key:
            while not lines.empty():
                assert key not in lines.get_nowait()
        if key_file is not None and key_file.name.startswith("actionq-api-key-"):
            key_file.unlink()  # the temporary file of an in-memory server
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode in exit_codes, (server.returncode, "".join(output))


def test_live_server_flow(tmp_path: Path) -> None:
    db = tmp_path / "data" / "actionq.sqlite3"  # its directory does not exist yet
    with live_server("--database", str(db)) as (http, output, _):
        assert str(db) in output
        assert http.post("/servers", json={"id": "web-1", "hostname": "web-1.lan"}).status_code == 201
        assert http.put("/servers/web-1/pause").json()["is_paused"] is True
        created = http.post(
            "/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}
        )
        assert created.status_code == 201 and created.json()["status"] == "pending"
        action_id = created.json()["id"]
        assert http.post("/servers/web-1/actions/claim").status_code == 204
        approved = http.post(f"/actions/{action_id}/approve")
        assert approved.json()["status"] == "approved" and approved.json()["approved_by"] == "dashboard"
        claimed = http.post("/servers/web-1/actions/claim", json={"lease_seconds": 60})
        assert claimed.status_code == 200 and claimed.json()["id"] == action_id
        token = claimed.json()["lease_token"]
        assert http.post(f"/actions/{action_id}/heartbeat", json={"lease_token": token}).status_code == 200
        result = http.post(
            f"/actions/{action_id}/result", json={"lease_token": token, "exit_code": 0, "stdout": "restarted"}
        )
        assert result.status_code == 200 and result.json()["status"] == "completed"
        events = http.get("/events").json()
        assert [(e["from_status"], e["to_status"]) for e in events] == [
            (None, None),  # the pause
            (None, "pending"),
            ("pending", "approved"),
            ("approved", "executing"),
            ("executing", "completed"),
        ]
    # it served from the SQLite file it was given: the outcome is on disk
    stored = actionq.ActionQueue(db)
    assert stored.get_action(action_id).stdout == "restarted"
    # The generated API key, the claim-signing key (private) and its public key
    # sit beside the database; the claim verified with that public key.
    data = db.parent
    assert (data / "api-key").stat().st_mode & 0o777 == 0o600
    assert (data / "claim-signing.key").stat().st_mode & 0o777 == 0o600
    assert f"agents pin its public key {data / 'claim-signing.pub'}" in output
    actionq.ClaimVerifyingKey.load(data / "claim-signing.pub").verify_json(claimed.text)


def test_the_host_header_must_be_the_bind_address_or_localhost() -> None:
    with live_server() as (http, output, _):
        port = http.base_url.port
        assert "Host headers served: 127.0.0.1, localhost" in output
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
            assert http.get("/events", headers={"Host": host}).status_code == 200, host
        # A DNS-rebound name pointing at 127.0.0.1 gets nothing.
        for path in ("/events", "/servers/web-1"):
            r = http.get(path, headers={"Host": "evil.example"})
            assert r.status_code == 400, (path, r.text)


CUSTOM_WHITELIST = {
    "actions": {
        "vacuum_journal": {
            "command": "journalctl --vacuum-time={days}d",
            "params": {"days": {"kind": "integer", "min": 1, "max": 30}},
        },
        "install_package": {
            "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
            "params": {"package": {"kind": "debian_package"}},
            "conflict": {"exclusive_group": "apt"},
        },
    }
}


def test_live_server_custom_whitelist(tmp_path: Path) -> None:
    config = tmp_path / "whitelist.json"
    config.write_text(json.dumps(CUSTOM_WHITELIST), encoding="utf-8")
    with live_server("--whitelist", str(config)) as (http, output, _):
        assert "in memory" in output
        assert http.post("/servers", json={"id": "web-1"}).status_code == 201
        vacuum = http.post("/actions", json={"server_id": "web-1", "action_type": "vacuum_journal", "params": {"days": "3"}})
        assert vacuum.status_code == 201, vacuum.text
        assert vacuum.json()["argv"] == ["journalctl", "--vacuum-time=3d"]
        install = http.post(
            "/actions", json={"server_id": "web-1", "action_type": "install_package", "params": {"package": "htop"}}
        )
        assert install.status_code == 201, install.text
        assert install.json()["argv"] == ["apt-get", "install", "-y", "htop"]
        assert install.json()["env"] == {"DEBIAN_FRONTEND": "noninteractive"}
        refused = http.post("/actions", json={"server_id": "web-1", "action_type": "vacuum_journal", "params": {"days": "99"}})
        assert refused.status_code == 403 and refused.json()["detail"]["code"] == "FORBIDDEN"
        # the default whitelist's types are not served by this app
        default = http.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"})
        assert default.status_code == 422 and default.json()["detail"][0]["loc"] == ["body", "action_type"]
        schema = httpx.get(str(http.base_url).removesuffix("/api/v1/") + "/openapi.json").json()
        assert sorted(schema["components"]["schemas"]["ActionType"]["enum"]) == ["install_package", "vacuum_journal"]



@needs_proc
def test_requests_are_served_while_a_write_waits_on_a_lock(tmp_path: Path) -> None:
    """Never block the event loop on a SQLite lock wait. Another
    process holds the file's write lock; a create sent to the live server waits
    for it (seen: a server thread inside the busy handler). Meanwhile the server
    answers other requests; after the release the create succeeds. No durations
    asserted: the create cannot finish before the release, sent only once the
    other requests were answered (the server's busy timeout is actionq's
    default, 10 s: a blocked loop would answer them only after it, with a 503
    for the create)."""
    db = tmp_path / "actionq.sqlite3"
    with live_server("--database", str(db)) as (http, _, pid):
        assert http.post("/servers", json={"id": "web-1"}).status_code == 201
        first = http.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
        idle = threads_in_busy_wait(pid)
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdin is not None
        created: queue.Queue[httpx.Response | BaseException] = queue.Queue()

        def create() -> None:
            body = {"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}
            try:
                created.put(http.post("/actions", json=body, timeout=60))
            except BaseException as exc:  # reported below
                created.put(exc)

        poster = threading.Thread(target=create)
        try:
            assert holder.stdout.readline().strip() == "locked"
            poster.start()
            deadline = time.monotonic() + 60  # bound of the handshake, not a timing
            while not threads_in_busy_wait(pid) - idle:
                assert created.empty(), created.get()
                assert time.monotonic() < deadline, "the create never waited for the lock"
            # the create waits for the lock; the server answers meanwhile
            assert http.get(f"/actions/{first['id']}").json() == first
            assert http.get("/actions").json()["total"] == 1
            assert http.get("/servers/web-1").json()["id"] == "web-1"
            assert http.get("/events").json()[0]["action_id"] == first["id"]
            assert created.empty(), created.get()  # still waiting: it cannot end before the release
        finally:
            holder.stdin.write("commit\n")
            holder.stdin.close()
            holder.wait(30)
            if poster.is_alive():
                poster.join(60)
        response = created.get(timeout=1)
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 201, response.text
        assert response.json()["service_name"] == "nginx.service"
        assert http.get("/actions").json()["total"] == 2


def test_two_servers_on_one_postgres_database() -> None:
    """Two `actionq-server` processes on one PostgreSQL database (replicas
    behind a load balancer): duplicate creates sent through both at once have
    one winner per key, and agents claiming through both get every approved
    action exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    from pg_support import fresh_url

    url = fresh_url()
    with live_server("--database", url) as (a, out_a, _), live_server("--database", url) as (b, _, _):
        assert url not in out_a
        assert a.post("/servers", json={"id": "dup", "hostname": None}).status_code == 201
        assert b.put("/servers/dup/pause").status_code == 200
        assert b.post("/servers", json={"id": "claims", "hostname": None}).status_code == 201
        clients = [a, b] * 4

        # Every thread starts its creates at once: the duplicates really race.
        start = threading.Barrier(len(clients), timeout=60)

        def create_all(i: int) -> list[tuple[int, int, int]]:
            http = clients[i]
            out: list[tuple[int, int, int]] = []
            start.wait()
            for k in range(10):
                k = (k + i) % 10
                r = http.post(
                    "/actions",
                    json={"server_id": "dup", "action_type": "restart_service", "service_name": f"svc-{k}"},
                )
                assert r.status_code in (201, 409), r.text
                out.append((k, r.status_code, r.json()["id"] if r.status_code == 201 else 0))
            return out

        with ThreadPoolExecutor(len(clients)) as pool:
            results = [row for rows in pool.map(create_all, range(len(clients))) for row in rows]
        for k in range(10):
            codes = sorted(code for key, code, _ in results if key == k)
            assert codes == [201] + [409] * (len(clients) - 1), (k, codes)

        approved: set[int] = set()
        for i in range(60):
            http = clients[i % 2]
            r = http.post(
                "/actions",
                json={"server_id": "claims", "action_type": "restart_service", "service_name": f"c{i}"},
            )
            assert r.status_code == 201 and r.json()["status"] == "approved", r.text
            approved.add(r.json()["id"])

        # Each thread claims one action and holds it until every thread holds
        # one (so both processes served claims while the others were
        # claiming), then claims until none is left.
        holding = threading.Barrier(len(clients), timeout=60)

        def claim_all(i: int) -> list[int]:
            http = clients[i]
            got: list[int] = []
            while True:
                r = http.post("/servers/claims/actions/claim", json={})
                if r.status_code == 204:
                    return got
                assert r.status_code == 200, r.text
                got.append(r.json()["id"])
                if len(got) == 1:
                    holding.wait()

        with ThreadPoolExecutor(len(clients)) as pool:
            by_thread = list(pool.map(claim_all, range(len(clients))))
        claimed = [i for ids in by_thread for i in ids]
        assert len(claimed) == len(set(claimed)), "an action was claimed twice"
        assert set(claimed) == approved
        # Threads 0, 2, ... talk to process a, 1, 3, ... to process b.
        by_process = {name: sum(len(ids) for ids in by_thread[n::2]) for n, name in enumerate("ab")}
        print(f"claims per thread {[len(ids) for ids in by_thread]}, per process {by_process}")
        assert all(by_thread), f"a thread claimed nothing: {[len(ids) for ids in by_thread]}"
        assert by_process["a"] > 0 and by_process["b"] > 0, by_process
