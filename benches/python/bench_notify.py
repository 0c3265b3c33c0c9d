"""Notifications share of `make bench` (docs/contract/notifications.md):

- latency, commit -> receiver: `actionq-server --notify` with two webhook
  sinks on loopback receivers; one create at a time, each message's arrival
  time at the receiver minus its event's time (`data.event.at`, the commit's
  clock on this machine): p50 and p99 over both sinks;
- create throughput with the two sinks configured against none: two
  servers (each on its own SQLite file), driven in interleaved rounds by the
  same client (http.client, one keep-alive connection), measured in the same
  run. The ratio is with / without. After each round with sinks the bench
  waits until every message arrived, so no round pays for another's
  deliveries; that wait counted in, the round's creates per second are the
  end-to-end rate (creates whose messages all arrived, per second).

    python bench_notify.py --dir DIR --n N

Prints one JSON line: notify_latency_p50_ms, notify_latency_p99_ms,
notify_create_with_sinks_per_s, notify_create_without_per_s,
notify_create_ratio, notify_create_end_to_end_per_s,
notify_end_to_end_ratio (end-to-end with sinks / without).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

KEY = "bench-key"
SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdef").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """Answers 200 to every POST and keeps (arrival time, event time) by webhook-id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[float, float]] = {}
        self.cut = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                arrived = time.time()
                try:
                    at = datetime.fromisoformat(json.loads(body)["data"]["event"]["at"]).timestamp()
                except ValueError:
                    # A cut request (its sender gave up): refused, so it is sent again.
                    receiver.cut += 1
                    self.send_response(400)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.arrivals[self.headers["webhook-id"]] = (arrived, at)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def serve_receivers(n: int, conn: Any) -> None:
    """In a child process (so receiving never competes with the bench client
    for its GIL): `n` receivers; answers "urls", "count" and "arrivals"."""
    receivers = [Receiver() for _ in range(n)]
    while True:
        ask = conn.recv()
        if ask == "urls":
            conn.send([r.url for r in receivers])
        elif ask == "count":
            conn.send(sum(len(r.arrivals) for r in receivers))
        elif ask == "arrivals":
            conn.send([list(r.arrivals.values()) for r in receivers])
        elif ask == "cut":
            conn.send(sum(r.cut for r in receivers))
        else:
            return


def ask(conn: Any, what: str) -> Any:
    conn.send(what)
    return conn.recv()


def start(folder: Path, name: str, sinks: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [str(Path(sys.executable).parent / "actionq-server"), "--port", str(port),
            "--database", str(folder / f"{name}.sqlite3")]
    if sinks:
        text = "".join(
            f'[[sink]]\nname = "s{i}"\nkind = "webhook"\nurl = "{url}"\nsecret = "{SECRET}"\n{os.environ.get("BENCH_NOTIFY_EXTRA", "")}\n'
            for i, url in enumerate(sinks)
        )
        (folder / f"{name}.toml").write_text(text)
        argv += ["--notify", str(folder / f"{name}.toml")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env["ACTIONQ_API_KEY"] = KEY
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit(f"{name}: actionq-server did not start")
        time.sleep(0.05)
    return proc, port


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"X-API-Key": KEY, "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            self.conn.request("POST", "/api/v1" + path, json.dumps(body), self.headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # uvicorn closes a connection idle past its keep-alive: open another.
            self.conn.close()
            self.conn.request("POST", "/api/v1" + path, json.dumps(body), self.headers)
            response = self.conn.getresponse()
        data = response.read()
        assert response.status in (200, 201), (response.status, data)
        return json.loads(data)


def creates(client: Client, start_n: int, n: int) -> float:
    started = time.perf_counter()
    for i in range(start_n, start_n + n):
        client.post("/actions", {"server_id": "web-1", "action_type": "restart_service", "service_name": f"svc{i}"})
    return n / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    folder = Path(args.dir) / "notify"
    shutil.rmtree(folder, ignore_errors=True)
    parent, child = multiprocessing.Pipe()
    receiving = multiprocessing.Process(target=serve_receivers, args=(2, child), daemon=True)
    receiving.start()
    with_sinks, with_port = start(folder, "with", ask(parent, "urls"))
    without, without_port = start(folder, "without", [])
    try:
        a, b = Client(with_port), Client(without_port)
        for c in (a, b):
            c.post("/servers", {"id": "web-1"})
        # Latency: one create at a time, each message awaited.
        samples: list[float] = []
        latency_n = 0 if os.environ.get("BENCH_NOTIFY_EXTRA") else max(50, min(args.n // 5, 300))
        for i in range(latency_n):
            a.post("/actions", {"server_id": "web-1", "action_type": "restart_service", "service_name": f"lat{i}"})
            deadline = time.time() + 10
            while ask(parent, "count") < 2 * (i + 1):
                if time.time() > deadline:
                    raise SystemExit("a notification did not arrive within 10 s")
                time.sleep(0.0005)
        for arrivals in ask(parent, "arrivals"):
            samples += [(arrived - at) * 1000 for arrived, at in arrivals]
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] if samples else 0.0
        # Throughput: interleaved rounds.
        rounds, per_round = 5, max(args.n // 5, 50)
        rates: dict[str, list[float]] = {"with": [], "without": [], "end_to_end": []}
        expected = ask(parent, "count")
        for r in range(rounds):
            order = [("with", a), ("without", b)] if r % 2 == 0 else [("without", b), ("with", a)]
            for name, client in order:
                started = time.perf_counter()
                rates[name].append(creates(client, 10_000 + r * per_round, per_round))
                if name == "with":
                    expected += 2 * per_round
                    deadline = time.time() + 120
                    while ask(parent, "count") < expected:
                        if time.time() > deadline:
                            raise SystemExit("the round's notifications did not arrive within 120 s")
                        time.sleep(0.002)
                    rates["end_to_end"].append(per_round / (time.perf_counter() - started))
        with_rate, without_rate = statistics.median(rates["with"]), statistics.median(rates["without"])
        end_to_end = statistics.median(rates["end_to_end"])
        print(json.dumps({
            "notify_latency_p50_ms": round(statistics.median(samples), 2) if samples else 0.0,
            "notify_latency_p99_ms": round(p99, 2),
            "notify_latency_samples": len(samples),
            "notify_create_with_sinks_per_s": round(with_rate, 1),
            "notify_create_without_per_s": round(without_rate, 1),
            "notify_create_ratio": round(with_rate / without_rate, 3),
            "notify_create_end_to_end_per_s": round(end_to_end, 1),
            "notify_end_to_end_ratio": round(end_to_end / without_rate, 3),
            "notify_cut_requests": ask(parent, "cut"),
        }))
    finally:
        for proc in (with_sinks, without):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
