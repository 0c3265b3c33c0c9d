"""HTTP share of `make bench`: POST /api/v1/actions through the FastAPI backend
(actionq.server, over actionq) vs the STATUS QUO (SQLAlchemy async, same routes
and models), both under uvicorn[standard] (uvloop, httptools) on 127.0.0.1, in
interleaved rounds.

Both servers are driven by the same clients, one request at a time over one
keep-alive connection: the standard library's http.client (thin: most of the
time measured is the server's) and httpx (the project's client; it spends
several hundred microseconds of its own per request, which dilutes any server
difference).

    python bench_http.py --dir DIR --n N

Prints one JSON line: http_create_{actionq,sq}_per_s and http_create_ratio
(actionq / status quo) with http.client, the same with an `_httpx` suffix.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import http.client
from urllib.parse import urlsplit

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(impl: str, db: str) -> tuple[subprocess.Popen[bytes], str]:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(db + suffix)
        except FileNotFoundError:
            pass
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "serve.py"), "--impl", impl, "--db", db,
         "--port", str(port), "--key", KEY],
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.time() + 60
    while True:
        try:
            httpx.get(f"{base}/actions/1", headers={"X-API-Key": KEY}, timeout=1)
            return proc, base
        except httpx.TransportError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"{impl} server did not start")
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    servers = {
        impl: start(impl, os.path.join(args.dir, f"http-{impl}.db"))
        for impl in ("actionq", "status_quo")
    }
    rates: dict[str, list[float]] = {impl: [] for impl in servers}
    rates_httpx: dict[str, list[float]] = {impl: [] for impl in servers}
    try:
        with httpx.Client(headers={"X-API-Key": KEY}, timeout=30) as client:
            for impl, (_, base) in servers.items():
                r = client.post(f"{base}/servers", json={"id": "bench-0", "hostname": None})
                assert r.status_code == 201, r.text
                for i in range(50):  # warm-up
                    body = {"server_id": "bench-0", "action_type": "restart_service",
                            "service_name": f"warm-{i}.service"}
                    assert client.post(f"{base}/actions", json=body).status_code == 201
            order = list(servers)
            for round_ in range(args.rounds):
                for impl in order[round_ % 2:] + order[:round_ % 2]:
                    base = servers[impl][1]
                    url = urlsplit(base)
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
                    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
                    start_t = time.perf_counter()
                    for i in range(args.n):
                        body = json.dumps({"server_id": "bench-0", "action_type": "restart_service",
                                           "service_name": f"r{round_}-{i}.service"})
                        conn.request("POST", f"{url.path}/actions", body, headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        if resp.status != 201:
                            raise RuntimeError(f"{impl}: {resp.status} {data!r}")
                        json.loads(data)
                    rates[impl].append(args.n / (time.perf_counter() - start_t))
                    conn.close()
                    start_t = time.perf_counter()
                    for i in range(args.n):
                        body = {"server_id": "bench-0", "action_type": "restart_service",
                                "service_name": f"x{round_}-{i}.service"}
                        r = client.post(f"{base}/actions", json=body)
                        if r.status_code != 201:
                            raise RuntimeError(f"{impl}: {r.status_code} {r.text}")
                        r.json()
                    rates_httpx[impl].append(args.n / (time.perf_counter() - start_t))
        # The stack's floor: GET /servers/{id} on the actionq app does almost no
        # store work (~5 us), so its rate is what FastAPI + uvicorn + the client
        # cost per request. Even a free create could not beat it, which caps the
        # ratio at floor / status quo.
        base = servers["actionq"][1]
        url = urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        floors = []
        for _ in range(args.rounds):
            start_t = time.perf_counter()
            for _ in range(args.n):
                conn.request("GET", f"{url.path}/servers/bench-0", headers={"X-API-Key": KEY})
                resp = conn.getresponse()
                json.loads(resp.read())
                assert resp.status == 200
            floors.append(args.n / (time.perf_counter() - start_t))
        conn.close()
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    floor = sorted(floors)[len(floors) // 2]
    med = {impl: sorted(v)[len(v) // 2] for impl, v in rates.items()}
    medx = {impl: sorted(v)[len(v) // 2] for impl, v in rates_httpx.items()}
    print(json.dumps({
        "http_create_actionq_per_s": med["actionq"],
        "http_create_sq_per_s": med["status_quo"],
        "http_create_ratio": med["actionq"] / med["status_quo"],
        "http_floor_get_server_per_s": floor,
        "http_create_ratio_ceiling": floor / med["status_quo"],
        "http_create_actionq_httpx_per_s": medx["actionq"],
        "http_create_sq_httpx_per_s": medx["status_quo"],
        "http_create_ratio_httpx": medx["actionq"] / medx["status_quo"],
    }))


if __name__ == "__main__":
    main()
