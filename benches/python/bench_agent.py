"""Agent share of `make bench`: the executor (`actionq-agent`, release build)
against the FastAPI backend (`actionq-server`, SQLite file, default settings)
on 127.0.0.1.

- agent_cycle_ms: median claim-run-report cycle of `true` over HTTP, from the
  agent's own per-action log line (`cycle_ms`: claim request sent to result
  acknowledged), over a backlog of N approved actions that the agent drains
  back to back (first WARM cycles left out: connection set-up, page cache).
- agent_idle_cpu_pct: CPU the agent uses (time on CPU, /proc/PID/task/*/schedstat)
  while idle, polling an empty queue at its default interval, over
  --idle-seconds of wall time.

    python bench_agent.py --dir DIR --agent PATH [--n N] [--idle-seconds S]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx

KEY = "bench-agent-key"
SERVER_ID = "bench-agent"
WARM = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid`, in seconds, from schedstat
    (nanoseconds; utime/stime in /proc/PID/stat count 10 ms ticks, too
    coarse for an idle process)."""
    total_ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total_ns += int(f.read().split()[0])
    return total_ns / 1e9


def start_server(db: str, whitelist: str, key: str) -> tuple[subprocess.Popen[bytes], str]:
    """`actionq-server` (this venv's) on a free loopback port, once it
    answers: the process and its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = os.path.join(os.path.dirname(sys.executable), "actionq-server")
    server = subprocess.Popen(
        [script, "--host", "127.0.0.1", "--port", str(port), "--database", db, "--whitelist", whitelist],
        env={**os.environ, "ACTIONQ_API_KEY": key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{base}/docs", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.time() > deadline:
            server.kill()
            raise RuntimeError("actionq-server did not start")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()

    db = os.path.join(args.dir, "agent.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    whitelist = os.path.join(args.dir, "agent-whitelist.json")
    with open(whitelist, "w") as f:
        json.dump({"actions": {"run_true": {"command": "true"}}}, f)
    server, base = start_server(db, whitelist, KEY)
    agent = None
    try:
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"X-API-Key": KEY}, timeout=30)
        assert api.post("/servers", json={"id": SERVER_ID, "hostname": None}).status_code == 201
        # An agent credential when the server issues them; else (a server that
        # predates them) the bootstrap key as X-API-Key.
        r = api.post("/credentials", json={"name": "bench-agent", "role": "agent", "server_id": SERVER_ID})
        if r.status_code == 201:
            token, header = r.json()["secret"], "X-Agent-Token"
        else:
            token, header = KEY, "X-API-Key"
        token_file = os.path.join(args.dir, "agent.token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, token.encode())
        os.close(fd)
        os.chmod(token_file, 0o600)
        config = os.path.join(args.dir, "agent.toml")
        with open(config, "w") as f:
            f.write(
                f'server_url = "{base}"\nserver_id = "{SERVER_ID}"\ntoken_file = "{token_file}"\n'
                f'auth_header = "{header}"\n'
                # What the agent trusts: the server's whitelist and the
                # claim-signing public key it generated beside its database.
                f'whitelist_file = "{whitelist}"\n'
                f'claim_public_key_file = "{os.path.join(args.dir, "claim-signing.pub")}"\n'
            )
        total = args.n + WARM
        for _ in range(total):
            r = api.post("/actions", json={"server_id": SERVER_ID, "action_type": "run_true"})
            assert r.status_code == 201 and r.json()["status"] == "approved", r.text
        log_path = os.path.join(args.dir, "agent.log")
        with open(log_path, "w") as log:
            agent = subprocess.Popen([args.agent, "--config", config], stdout=log, stderr=log)
        deadline = time.time() + 600
        while True:
            done = api.get("/actions", params={"server_id": SERVER_ID, "status": "completed", "limit": 1}).json()
            if done["total"] == total:
                break
            if agent.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"agent stopped or stalled: {open(log_path).read()[-2000:]}")
            time.sleep(0.2)
        with open(log_path) as f:
            lines = [json.loads(line) for line in f if line.startswith("{")]
        actions = sorted((e for e in lines if e.get("event") == "action"), key=lambda e: e["id"])[WARM:]
        assert len(actions) == args.n and all(e["status"] == "completed" for e in actions)

        def med(key: str) -> float:
            return statistics.median(e[key] for e in actions)

        cycles = sorted(e["cycle_ms"] for e in actions)
        time.sleep(2)  # let the last cycle settle: idle from here on
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
        print(json.dumps({
            "agent_cycle_ms": med("cycle_ms"),
            "agent_cycle_p90_ms": cycles[int(len(cycles) * 0.9)],
            "agent_claim_ms": med("claim_ms"),
            "agent_run_ms": med("run_ms"),
            "agent_report_ms": med("report_ms"),
            "agent_idle_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
            "agent_idle_seconds": t1 - t0,
        }))
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
