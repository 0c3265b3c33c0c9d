"""Processes: several on one SQLite file, and interpreter shutdown."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import actionq


def claim_all(db: str, worker: int) -> list[int]:
    """Claims and completes actions until none is left; returns the claimed ids."""
    queue = actionq.ActionQueue(db)
    claimed = []
    while (claim := queue.claim_next("web-1")) is not None:
        claimed.append(claim.id)
        queue.report_result(claim.id, claim.lease_token, 0, stdout=f"worker {worker}")
    return claimed


def test_processes_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"
    queue = actionq.ActionQueue(db)
    queue.create_server("web-1")
    created = {queue.create_action("web-1", "clear_logs").id for _ in range(120)}
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(claim_all, [(str(db), w) for w in range(4)])
    claimed = [i for ids in results for i in ids]
    assert sorted(claimed) == sorted(created)  # each exactly once, none lost
    assert queue.list_actions(status="completed", limit=1).total == len(created)
    workers = {a.stdout for a in queue.list_actions(limit=100).actions}
    assert workers <= {f"worker {w}" for w in range(4)}


EXIT_WHILE_BUSY = """
import sys, threading, time
import actionq
queue = actionq.ActionQueue(sys.argv[1])
queue.create_server("s1")
for _ in range(300):
    queue.create_action("s1", "clear_logs")

def reader() -> None:
    while True:
        queue.list_actions(limit=1)

threading.Thread(target=reader, daemon=True).start()
time.sleep(0.2)
"""


def test_interpreter_exit_with_busy_daemon_thread(tmp_path: Path) -> None:
    """Exiting while a daemon thread is inside (GIL-released) SQLite calls, and
    closing the store at shutdown, neither crashes nor hangs nor loses writes."""
    db = tmp_path / "exit.sqlite3"
    done = subprocess.run([sys.executable, "-c", EXIT_WHILE_BUSY, str(db)], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert actionq.ActionQueue(db).list_actions(limit=1).total == 300
