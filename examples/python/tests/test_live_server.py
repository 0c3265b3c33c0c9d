"""The real thing: `python -m actionq_api` under uvicorn on a free loopback port,
driven over HTTP with httpx, then stopped."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

import actionq

EXAMPLES = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_live_server_flow(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ACTIONQ_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    server = subprocess.Popen(
        [sys.executable, "-m", "actionq_api", "--port", str(port), "--data-dir", str(tmp_path / "data")],
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
        # The run script generates and prints a key when ACTIONQ_API_KEY is unset.
        key = ""
        deadline = time.monotonic() + 60
        while not key and time.monotonic() < deadline:
            line = lines.get(timeout=60)
            output.append(line)
            if line.strip().startswith("ACTIONQ_API_KEY="):
                key = line.strip().split("=", 1)[1]
        assert key, "".join(output)

        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base + "/api/v1", headers={"X-API-Key": key}, timeout=10) as http:
            while True:  # wait until uvicorn accepts connections
                try:
                    if httpx.get(base + "/docs", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, "".join(output)
                time.sleep(0.05)

            assert httpx.get(base + "/api/v1/events").status_code == 401
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
                (None, "pending"),
                ("pending", "approved"),
                ("approved", "executing"),
                ("executing", "completed"),
            ]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0
    # it served from a SQLite file under the data dir: the outcome is on disk
    stored = actionq.ActionQueue(tmp_path / "data" / "actionq.sqlite3")
    assert stored.get_action(action_id).stdout == "restarted"
