"""Processes: several on one SQLite file, and interpreter shutdown."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import actionq


WORKERS = 4
HANDSHAKE_SECONDS = 60.0  # bound on each wait: generous, so a loaded machine only slows a run


def wait_for_all(folder: Path, stage: str, count: int, who: str) -> None:
    """Waits until `count` `<stage>-<pid>` markers exist in `folder`, failing after the bound."""
    deadline = time.monotonic() + HANDSHAKE_SECONDS
    while (seen := len(list(folder.glob(f"{stage}-*")))) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{who}: {seen} of {count} {stage} markers after {HANDSHAKE_SECONDS} s")
        time.sleep(0.0002)


def claim_all(db: str, folder: str, workers: int) -> None:
    """One worker process. Opens the queue, writes ready-<pid> and waits until all
    `workers` are ready; claims one action and holds it until every worker holds
    one (so all of them were in the race at once); then claims and completes
    actions until none is left. Writes the claimed ids to result-<pid>."""
    here, me = Path(folder), os.getpid()
    queue = actionq.ActionQueue(db)
    (here / f"ready-{me}").touch()
    wait_for_all(here, "ready", workers, f"worker {me}")
    claim = queue.claim_next("web-1")
    (here / f"holding-{me}").touch()
    wait_for_all(here, "holding", workers, f"worker {me}")
    claimed: list[int] = []
    while claim is not None:
        claimed.append(claim.id)
        queue.report_result(claim.id, claim.lease_token, 0, stdout=f"worker {me}")
        claim = queue.claim_next("web-1")
    (here / f"result-{me}").write_text(" ".join(map(str, claimed)))


def test_processes_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"
    queue = actionq.ActionQueue(db)
    queue.create_server("web-1")
    created = {queue.create_action("web-1", "clear_logs").id for _ in range(120)}
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=claim_all, args=(str(db), str(tmp_path), WORKERS)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=2 * HANDSHAKE_SECONDS + 60)
        if p.is_alive():
            p.kill()
        assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"
    pids = {p.pid for p in procs}
    assert len(pids) == WORKERS
    assert {int(f.name.removeprefix("ready-")) for f in tmp_path.glob("ready-*")} == pids
    by_worker = {pid: [int(i) for i in (tmp_path / f"result-{pid}").read_text().split()] for pid in pids}
    spread = sorted(len(ids) for ids in by_worker.values())
    print(f"{WORKERS} workers ready and holding a claim at once; claims per worker: {spread}")
    for pid, ids in by_worker.items():
        assert ids, f"worker {pid} claimed nothing, so it never raced; claims per worker: {spread}"
    claimed = [i for ids in by_worker.values() for i in ids]
    assert sorted(claimed) == sorted(created)  # each exactly once, none lost
    assert queue.list_actions(status="completed", limit=1).total == len(created)
    for pid, ids in by_worker.items():
        assert all(queue.get_action(i).stdout == f"worker {pid}" for i in ids)


# The child: a daemon thread creates actions in a loop (writes release the
# GIL; reads on the fast store keep it) while the interpreter exits. A switch
# interval of 100 s means neither thread is ever forced off the GIL: the writer
# gives it up only inside a binding call, the main thread only in sleep(0). So
# when the exit handler holds the GIL and sees `inside` set, the writer is
# inside a GIL-released call, and the interpreter exits under it. A write
# that kept the GIL would never let the main thread run again (the run times
# out).
EXIT_WHILE_BUSY = """
import atexit, sys, threading, time
import actionq
sys.setswitchinterval(100)
queue = actionq.ActionQueue(sys.argv[1])
queue.create_server("s1")
inside = False
returned = 0

def writer() -> None:
    global inside, returned
    while True:
        inside = True
        queue.create_action("s1", "clear_logs")
        inside = False
        returned += 1

def exit_inside_a_call() -> None:
    while not (inside and returned >= 50):
        time.sleep(0)
    print(f"exiting inside a call after {returned} writes", flush=True)

atexit.register(exit_inside_a_call)
threading.Thread(target=writer, daemon=True).start()
"""


def test_interpreter_exit_with_busy_daemon_thread(tmp_path: Path) -> None:
    """Exiting while a daemon thread is inside a GIL-released write, and closing
    the store at shutdown, neither crashes nor hangs nor loses a write that
    returned, and the one in flight is whole or absent (the audit chain, which
    covers every action, verifies)."""
    db = tmp_path / "exit.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_BUSY, str(db)], timeout=60, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[:5] == ["exiting", "inside", "a", "call", "after"], done.stdout
    returned = int(words[5])
    queue = actionq.ActionQueue(db)
    total = queue.list_actions(limit=1).total
    # Every write that returned is there. More may be: the exit handler's
    # print gives up the GIL, so the writer can finish its call in flight and
    # more before the interpreter exits under the next one.
    assert returned <= total, (returned, total)
    report = queue.verify_audit()
    assert (report.checked, report.first_bad_event_id) == (total, None)
