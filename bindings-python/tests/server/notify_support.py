"""Real receivers on loopback for the notification tests: an HTTP receiver
whose answer each test sets (200, 500, a stall), and `actionq-server`
processes started with ``--notify``."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from serve_support import BIN, BOOTSTRAP_KEY, free_port

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; ``answer(n)`` (n: this request's number from 0)
    gives the status to send, after sleeping ``stall`` seconds if set."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[int], int] = lambda n: 200
    stall: Callable[[int], float] = lambda n: 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.requests if r.headers.get("x-answered") == "200"]

    def wait_for(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out; received {len(self.requests)} request(s)"
            time.sleep(0.02)


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with state.lock:
                n = len(state.requests)
                record = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                state.requests.append(record)
            stall = state.stall(n)
            if stall:
                time.sleep(stall)
            status = state.answer(n)
            record.headers["x-answered"] = str(status) if status != 200 else "200"
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up (its timeout)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Process:
    url: str
    admin: httpx.Client
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.admin.close()


def start_server(tmp: Path, database: str, notify_file: Path, name: str = "server") -> Process:
    """``actionq-server --notify`` on a free port, ready to serve."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env.update(ACTIONQ_API_KEY=BOOTSTRAP_KEY, PYTHONUNBUFFERED="1")
    log = tmp / f"{name}.log"
    process = subprocess.Popen(
        [str(BIN / "actionq-server"), "--port", str(port), "--database", database, "--notify", str(notify_file)],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    admin = httpx.Client(base_url=url + "/api/v1", headers={"X-API-Key": BOOTSTRAP_KEY}, timeout=30)
    return Process(url, admin, process, log)


@contextmanager
def running(tmp: Path, database: str, notify_file: Path, name: str = "server") -> Iterator[Process]:
    served = start_server(tmp, database, notify_file, name)
    try:
        yield served
    finally:
        served.stop()
    assert served.process.returncode == 0, served.log.read_text()
