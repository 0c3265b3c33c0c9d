"""Live output share of `make bench` (docs/contract/cancel-and-output.md#live-output):
the executor (`actionq-agent`, release build) against `actionq-server`
(SQLite file) on 127.0.0.1.

- live_output_latency_p50_ms / _p99_ms: from a line printed by a command
  (its own `date +%s.%N`) to the same line read from
  GET /actions/{id}/output/stream, the stream the page renders from, over
  --lines lines printed 50 ms apart.
- live_output_chatty_ratio: median claim-to-result cycle (the agent's
  `cycle_ms`) of a command printing 50 MB with live output on, over the same
  with `live_output = false`, same run (--runs of each, alternating agents).
- live_output_agent_peak_rss_kib: the agent's peak resident memory (VmHWM)
  after those runs with live output on.

    python bench_live_output.py --dir DIR --agent PATH [--lines N] [--runs N]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import threading
import time

import httpx

from bench_agent import start_server

KEY = "bench-live-key"
SERVER_ID = "bench-live"


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    db = os.path.join(args.dir, "live.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    whitelist = os.path.join(args.dir, "live-whitelist.json")
    with open(whitelist, "w") as f:
        json.dump({"actions": {
            "tick": {"command": f"sh -c 'i=0; while [ $i -lt {args.lines} ]; do date +%s.%N; sleep 0.05; i=$((i+1)); done'"},
            "chatty": {"command": "sh -c 'yes 0123456789abcdef | head -c 52428800'"},
        }}, f)
    server, base = start_server(db, whitelist, KEY)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"X-API-Key": KEY}, timeout=60)
        assert api.post("/servers", json={"id": SERVER_ID}).status_code == 201
        r = api.post("/credentials", json={"name": "bench-live", "role": "agent", "server_id": SERVER_ID})
        assert r.status_code == 201, r.text
        token_file = os.path.join(args.dir, "live.token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, r.json()["secret"].encode())
        os.close(fd)

        def start_agent(name: str, live: bool) -> tuple[subprocess.Popen[bytes], str]:
            config = os.path.join(args.dir, f"{name}.toml")
            with open(config, "w") as f:
                f.write(
                    f'server_url = "{base}"\nserver_id = "{SERVER_ID}"\ntoken_file = "{token_file}"\n'
                    f'whitelist_file = "{whitelist}"\n'
                    f'claim_public_key_file = "{os.path.join(args.dir, "claim-signing.pub")}"\n'
                    f"live_output = {'true' if live else 'false'}\n"
                )
            log_path = os.path.join(args.dir, f"{name}.log")
            log = open(log_path, "w")
            agent = subprocess.Popen([args.agent, "--config", config], stdout=log, stderr=log)
            agents.append(agent)
            return agent, log_path

        def stop(agent: subprocess.Popen[bytes]) -> None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=120)

        def wait_done(action: int) -> dict[str, object]:
            deadline = time.time() + 600
            while True:
                a: dict[str, object] = api.get(f"/actions/{action}").json()
                if a["status"] in ("completed", "failed", "cancelled"):
                    return a
                if time.time() > deadline:
                    raise RuntimeError(f"action {action} stalled")
                time.sleep(0.05)

        def cycle_ms(log_path: str, action: int) -> float:
            with open(log_path) as f:
                for line in f:
                    if line.startswith("{"):
                        e = json.loads(line)
                        if e.get("event") == "action" and e.get("id") == action:
                            return float(e["cycle_ms"])
            raise RuntimeError(f"no action line for {action}")

        # Latency: a reader on the stream, the page's source.
        agent, _ = start_agent("live-on", True)
        action = api.post("/actions", json={"server_id": SERVER_ID, "action_type": "tick"}).json()["id"]
        latencies: list[float] = []

        def read() -> None:
            with api.stream("GET", f"/actions/{action}/output/stream", timeout=httpx.Timeout(10, read=None)) as r:
                event = ""
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "output":
                        now = time.time()
                        chunk = json.loads(line[5:])
                        for printed in chunk["stdout"].split():
                            latencies.append((now - float(printed)) * 1000)
                    elif line.startswith("data:") and event == "end":
                        return

        reader = threading.Thread(target=read)
        reader.start()
        wait_done(action)
        reader.join(timeout=60)
        assert len(latencies) == args.lines, f"{len(latencies)} of {args.lines} lines seen"
        latencies.sort()
        stop(agent)

        # Cost on a chatty command: alternating agents, live output on and off.
        cycles: dict[bool, list[float]] = {True: [], False: []}
        rss = 0
        for _ in range(args.runs):
            for live in (True, False):
                agent, log_path = start_agent(f"chatty-{'on' if live else 'off'}", live)
                action = api.post("/actions", json={"server_id": SERVER_ID, "action_type": "chatty"}).json()["id"]
                assert wait_done(action)["status"] == "completed"
                time.sleep(0.2)  # the log line follows the result
                cycles[live].append(cycle_ms(log_path, action))
                if live:
                    rss = max(rss, peak_rss_kib(agent.pid))
                stop(agent)
        on, off = statistics.median(cycles[True]), statistics.median(cycles[False])
        print(json.dumps({
            "live_output_latency_p50_ms": latencies[len(latencies) // 2],
            "live_output_latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "live_output_chatty_on_ms": on,
            "live_output_chatty_off_ms": off,
            "live_output_chatty_ratio": on / off,
            "live_output_agent_peak_rss_kib": rss,
        }))
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
