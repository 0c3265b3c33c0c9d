"""The Python binding's share of `make bench` (spawned by the Rust driver).

    python bench_binding.py create --db PATH --n N        # creates/s, server bench-0 exists
    python bench_binding.py get --db PATH --n N --ids M   # get_action/s over ids 1..M
    python bench_binding.py gil --db PATH [--seconds S]   # GIL effect, see below
    python bench_binding.py auth --db PATH --n N          # cost of authenticating, see below

Each prints one JSON line.

Auth: what authenticating adds to a request from Python on SQLite: the same
get_action as the trusted call (``queue.get_action(id)``) and as a request
with a credential does it (``queue.as_principal(queue.authenticate(secret))
.get_action(id)``: the digest lookup, the principal, the permission check);
``auth_overhead_us`` is the difference per request (median of 5 rounds).

GIL: the binding releases the GIL only around calls that can wait (SQLite
writes, and a SQLite read that met a lock) and keeps it for the rest (the
in-memory store, SQLite reads that find no lock). The `gil` mode shows what that
choice is about: get_action rates on both stores, alone and next to a busy
pure-Python thread. Each released call must win the GIL back, which next to a
busy thread costs up to a switch interval (5 ms): the convoy reads showed when
they released it (`gil_get_sqlite_busy_thread_per_s` ~200/s). Kept, they share
the interpreter with the busy thread (`gil_busy_thread_spins_*` is its
progress). `gil_create_sqlite_{1,2}thread_per_s` checks
that threads sharing one queue lose nothing to GIL hand-offs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time

import actionq


def create(db: str, n: int) -> dict[str, float]:
    queue = actionq.ActionQueue(db)
    create_action = queue.create_action
    start = time.perf_counter()
    for i in range(n):
        create_action("bench-0", "restart_service", f"svc-{i}.service")
    return {"per_s": n / (time.perf_counter() - start)}


def get(db: str, n: int, ids: int) -> dict[str, float]:
    queue = actionq.ActionQueue(db)
    rng = random.Random(1)
    picks = [rng.randrange(ids) + 1 for _ in range(n)]
    get_action = queue.get_action
    start = time.perf_counter()
    for action_id in picks:
        get_action(action_id)
    return {"per_s": n / (time.perf_counter() - start)}


def _rate(queue: actionq.ActionQueue, seconds: float, busy: bool) -> tuple[float, float]:
    """get_action calls per second for `seconds`, optionally next to a thread
    spinning in pure Python; also returns that thread's loop iterations/s."""
    stop = threading.Event()
    spins = [0]

    def spin() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(1000):
                n += 1
        spins[0] = n

    thread = threading.Thread(target=spin) if busy else None
    if thread:
        thread.start()
        time.sleep(0.05)
    get_action = queue.get_action
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for i in range(1, 101):
            get_action(i)
        calls += 100
    elapsed = time.perf_counter() - start
    stop.set()
    if thread:
        thread.join()
    return calls / elapsed, spins[0] / elapsed


def gil(db: str, seconds: float) -> dict[str, float]:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(db + suffix)
        except FileNotFoundError:
            pass
    out: dict[str, float] = {}
    for name, queue in (("mem", actionq.ActionQueue(None)), ("sqlite", actionq.ActionQueue(db))):
        queue.create_server("bench-0")
        for i in range(100):
            queue.create_action("bench-0", "restart_service", f"svc-{i}.service")
        alone, _ = _rate(queue, seconds, busy=False)
        shared, spins = _rate(queue, seconds, busy=True)
        out[f"gil_get_{name}_per_s"] = alone
        out[f"gil_get_{name}_busy_thread_per_s"] = shared
        out[f"gil_busy_thread_spins_{name}_per_s"] = spins
    # SQLite creates from 1 and from 2 Python threads sharing one queue: the
    # store serializes writers, so two threads cannot do more, but they should
    # not do less either (no GIL hand-off convoy).
    sql = actionq.ActionQueue(db)
    for threads in (1, 2):
        n = int(2000 * seconds) // threads * threads
        barrier = threading.Barrier(threads + 1)

        def work(tag: int, count: int) -> None:
            barrier.wait()
            for i in range(count):
                sql.create_action("bench-0", "restart_service", f"t{threads}-{tag}-{i}.service")

        workers = [threading.Thread(target=work, args=(k, n // threads)) for k in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        out[f"gil_create_sqlite_{threads}thread_per_s"] = n / (time.perf_counter() - start)
    out["gil_switch_interval_ms"] = sys.getswitchinterval() * 1000
    return out


def auth(db: str, n: int) -> dict[str, float]:
    queue = actionq.ActionQueue(db)
    queue.create_server("auth-0")
    action_id = queue.create_action("auth-0", "clear_logs").id
    secret = queue.issue_credential("bench-viewer", "viewer").secret
    get_action, authenticate, as_principal = queue.get_action, queue.authenticate, queue.as_principal

    def trusted() -> float:
        start = time.perf_counter()
        for _ in range(n):
            get_action(action_id)
        return (time.perf_counter() - start) / n

    def authenticated() -> float:
        start = time.perf_counter()
        for _ in range(n):
            as_principal(authenticate(secret)).get_action(action_id)
        return (time.perf_counter() - start) / n

    def authenticate_only() -> float:
        start = time.perf_counter()
        for _ in range(n):
            authenticate(secret)
        return (time.perf_counter() - start) / n

    rounds = [(trusted(), authenticated(), authenticate_only()) for _ in range(5)]
    overhead = sorted(a - t for t, a, _ in rounds)[len(rounds) // 2]
    return {
        "auth_overhead_us": overhead * 1e6,
        "auth_authenticate_us": sorted(o for _, _, o in rounds)[len(rounds) // 2] * 1e6,
        "auth_get_trusted_us": sorted(t for t, _, _ in rounds)[len(rounds) // 2] * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["create", "get", "gil", "auth"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ids", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    if args.mode == "create":
        result = create(args.db, args.n)
    elif args.mode == "get":
        result = get(args.db, args.n, args.ids)
    elif args.mode == "auth":
        result = auth(args.db, args.n)
    else:
        result = gil(args.db, args.seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
