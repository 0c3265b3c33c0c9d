"""`actionq-server` as a subprocess on a free loopback port, with a known
bootstrap key and credentials of each people role, for the tests that drive it
from outside (the `actionq` command line, the MCP endpoint)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

import actionq

BIN = Path(sys.executable).parent
BOOTSTRAP_KEY = "bootstrap-key-for-tests-0123456789"

WHITELIST = json.loads(actionq.DEFAULT_WHITELIST_JSON)
# One type that two people must approve, so a pending action can wait for
# more than a paused server.
WHITELIST["actions"]["clear_logs"]["approval"] = {"required": 2}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    """A running server: its URL, an admin client, and a secret per role."""

    url: str
    admin: httpx.Client
    secrets: dict[str, str]

    def credential(self, name: str, role: str) -> str:
        issued = self.admin.post("/credentials", json={"name": name, "role": role})
        assert issued.status_code == 201, issued.text
        secret: str = issued.json()["secret"]
        return secret


@contextmanager
def serve(tmp: Path) -> Iterator[Served]:
    """Runs ``actionq-server`` on a SQLite file in ``tmp`` until the block ends,
    then stops it with SIGINT and checks it exited cleanly."""
    port = free_port()
    whitelist = tmp / "whitelist.json"
    whitelist.write_text(json.dumps(WHITELIST), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env.update(ACTIONQ_API_KEY=BOOTSTRAP_KEY, PYTHONUNBUFFERED="1")
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(BIN / "actionq-server"),
            "--port",
            str(port),
            "--database",
            str(tmp / "actionq.sqlite3"),
            "--whitelist",
            str(whitelist),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # readiness: until uvicorn accepts connections
            try:
                if httpx.get(url + "/docs", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp / "server.log").read_text()
            time.sleep(0.05)
        with httpx.Client(base_url=url + "/api/v1", headers={"X-API-Key": BOOTSTRAP_KEY}, timeout=30) as admin:
            served = Served(url, admin, {})
            for name, role in (("alice", "operator"), ("bob", "operator"), ("vera", "viewer"), ("rita", "requester")):
                served.secrets[name] = served.credential(name, role)
            yield served
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert server.returncode == 0, (tmp / "server.log").read_text()
