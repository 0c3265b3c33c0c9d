"""Threads: the GIL policy (released around SQLite calls, kept for in-memory ones)
and one queue shared by many threads."""

from __future__ import annotations

import contextlib
import gc
import operator
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from datetime import datetime, timezone
from pathlib import Path

import pytest

import actionq
from lock_support import LOCK_HOLDER, WAITING_SYSCALLS



def test_blocked_sqlite_call_lets_other_threads_run(tmp_path: Path) -> None:
    """A SQLite call waiting for another process's write lock must not hold the
    GIL: while it waits, this thread keeps executing Python code. Deterministic: the
    call cannot finish before the other process commits, and we only let it commit
    after running Python code at a time later than the call's start (the action's
    `created_at` is taken inside the call, before the store waits for the lock).

    The lock holder is another process: POSIX file locks are per process, so a
    second SQLite library in this process (Python's `sqlite3`) would not block us.
    """
    db = tmp_path / "q.sqlite3"
    queue = actionq.ActionQueue(db, busy_timeout_seconds=20)
    queue.create_server("s1")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        outcome: dict[str, object] = {}
        started = threading.Event()

        def writer() -> None:
            started.set()
            try:
                outcome["action"] = queue.create_action("s1", "clear_logs")
            except BaseException as exc:  # reported below
                outcome["error"] = exc

        thread = threading.Thread(target=writer)
        thread.start()
        started.wait()
        # Run Python code for a while; meanwhile the writer is inside the call, waiting.
        last_spin = datetime.now(timezone.utc)
        stop_at = time.monotonic() + 0.3
        while time.monotonic() < stop_at:
            last_spin = datetime.now(timezone.utc)
        finished_while_locked = not thread.is_alive() or bool(outcome)
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        thread.join(30)
    finally:
        holder.stdin.close()
        holder.wait(30)

    assert "error" not in outcome, outcome.get("error")
    action = outcome["action"]
    assert isinstance(action, actionq.Action)
    assert not finished_while_locked
    assert action.created_at < last_spin



def in_busy_wait(native_id: int) -> bool:
    """Whether thread `native_id` of this process is in a busy-handler syscall now."""
    try:
        number = Path(f"/proc/self/task/{native_id}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return number.isdigit() and int(number) in WAITING_SYSCALLS


@pytest.mark.skipif(not WAITING_SYSCALLS, reason="needs Linux /proc on x86_64/aarch64")
def test_read_that_meets_a_lock_waits_without_the_gil(tmp_path: Path) -> None:
    """SQLite reads keep the GIL (test_gil_policy_per_store) because they first
    run where a lock makes them fail at once; one that meets a lock runs again
    with the GIL released and waits there. `expire_leases` is such a call: a
    look (a read), then, with a lease due, a write. Here another process holds
    the write lock while a lease is due: the sweep's thread is seen inside the
    busy handler *by Python code running on this thread*, which needs the GIL
    at that moment. Then the lock goes and the sweep completes. No durations:
    the sweep cannot end before the holder commits, which it does only on cue."""
    db = tmp_path / "q.sqlite3"
    queue = actionq.ActionQueue(db, busy_timeout_seconds=20)
    queue.create_server("s1")
    queue.create_action("s1", "clear_logs")
    claim = queue.claim_next("s1", lease_seconds=0.001)
    assert claim is not None and claim.lease_expires_at is not None
    while datetime.now(timezone.utc) <= claim.lease_expires_at:  # until the lease is due
        time.sleep(0.001)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdin is not None
    outcome: dict[str, object] = {}

    def sweep() -> None:
        try:
            outcome["expired"] = queue.expire_leases()
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=sweep)
    try:
        assert holder.stdout.readline().strip() == "locked"
        thread.start()
        assert thread.native_id is not None
        seen_waiting = False
        while not seen_waiting and thread.is_alive():  # Python bytecode, on this thread
            seen_waiting = in_busy_wait(thread.native_id)
        finished_while_locked = bool(outcome)
    finally:
        holder.stdin.write("commit\n")
        holder.stdin.close()
        holder.wait(30)
        thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert seen_waiting and not finished_while_locked, outcome
    expired = outcome["expired"]
    assert isinstance(expired, list) and [a.id for a in expired] == [claim.id]
    assert expired[0].status == "failed" and expired[0].exit_code == -1


@contextlib.contextmanager
def spinner(observe: Callable[[], None]) -> Iterator[None]:
    """Runs `observe` in a loop on another thread, which asks for the GIL every
    millisecond, for the duration of the block. Garbage collection is off inside:
    it could run finalizers (Python code, hence a thread switch) in the middle of
    the calls under observation."""
    stop = threading.Event()
    running = threading.Event()

    def spin() -> None:
        running.set()
        while not stop.is_set():
            observe()

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    thread = threading.Thread(target=spin)
    thread.start()
    gc.collect()
    gc.disable()
    try:
        running.wait()
        yield
    finally:
        gc.enable()
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)


@pytest.mark.parametrize(
    ("store", "call", "calls", "releases"),
    [
        ("memory", "get_action", 200_000, False),
        ("sqlite", "get_action", 20_000, False),
        ("sqlite", "list_actions", 20_000, False),
        ("sqlite", "pause_server", 2_000, True),
    ],
)
def test_gil_policy_per_store(tmp_path: Path, store: str, call: str, calls: int, releases: bool) -> None:
    """Calls that cannot wait keep the GIL: releasing it would cost more than the
    call (next to a busy thread, up to a switch interval). In-memory calls and
    SQLite reads are such calls (a read that meets a lock is run again without
    the GIL: see test_read_that_meets_a_lock_waits_without_the_gil); SQLite
    writes, which may wait for the disk or a lock, release it. Observed without
    timing assumptions: `list(map(...))` runs the calls back to back in C,
    without a bytecode boundary where the interpreter could switch threads. So a
    spinning thread can see the iterator *part-way* through only if a call
    itself released the GIL."""
    queue = actionq.ActionQueue(tmp_path / "q.sqlite3" if store == "sqlite" else None)
    queue.create_server("s1")
    action = queue.create_action("s1", "clear_logs")
    calls_by_name: dict[str, tuple[Callable[[Any], object], object]] = {
        "get_action": (queue.get_action, action.id),
        "list_actions": (queue.list_actions, None),
        "pause_server": (queue.pause_server, "s1"),
    }
    method, arg = calls_by_name[call]
    args = iter([arg] * calls)
    seen: list[int] = []
    with spinner(lambda: seen.append(operator.length_hint(args))):
        results = list(map(method, args))
    assert len(results) == calls
    part_way = [left for left in seen if 0 < left < calls]
    assert bool(part_way) is releases, f"{len(part_way)} of {len(seen)} observations part-way"


def test_closing_a_sqlite_queue_releases_the_gil(tmp_path: Path) -> None:
    """Dropping the last reference closes the store, which checkpoints the WAL
    (disk I/O): that too runs without the GIL. `del` and the assignments around
    it are bytecodes where the interpreter never switches threads, so the
    spinner can only see the "closing" phase if the close released the GIL."""
    queue = actionq.ActionQueue(tmp_path / "q.sqlite3")
    queue.create_server("s1")
    for _ in range(2_000):  # enough WAL for the close-time checkpoint to take a while
        queue.create_action("s1", "clear_logs")
    phase = ["open"]
    seen: set[str] = set()
    with spinner(lambda: seen.add(phase[0])):
        phase[0] = "closing"
        del queue
        phase[0] = "closed"
    assert "closing" in seen
    # and the file is intact: reopening finds every action
    assert actionq.ActionQueue(tmp_path / "q.sqlite3").list_actions(limit=1).total == 2_000


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_eight_threads_lose_nothing(tmp_path: Path, store: str) -> None:
    threads_n, per_thread = 8, 40
    queue = actionq.ActionQueue(tmp_path / "q.sqlite3" if store == "sqlite" else None)
    queue.create_server("web-1")
    barrier = threading.Barrier(threads_n)
    created: list[list[int]] = [[] for _ in range(threads_n)]
    claimed: list[list[int]] = [[] for _ in range(threads_n)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                created[i].append(queue.create_action("web-1", "clear_logs", created_by=f"t{i}").id)
                queue.list_actions(limit=5)
            barrier.wait()
            while (claim := queue.claim_next("web-1")) is not None:
                claimed[i].append(claim.id)
                queue.heartbeat(claim.id, claim.lease_token)
                queue.report_result(claim.id, claim.lease_token, i % 2, stdout=f"t{i}")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    all_created = [x for ids in created for x in ids]
    all_claimed = [x for ids in claimed for x in ids]
    total = threads_n * per_thread
    assert len(all_created) == len(set(all_created)) == total
    assert sorted(all_claimed) == sorted(all_created)  # each claimed exactly once
    done = queue.list_actions(status="completed", limit=1).total
    failed = queue.list_actions(status="failed", limit=1).total
    assert done + failed == total
    assert queue.list_actions(limit=1).total == total
    for ids in created:  # each thread's own creations got increasing ids
        assert ids == sorted(ids)
    events = []
    cursor = 0
    while batch := queue.events_since(cursor, 1000):
        events.extend(batch)
        cursor = batch[-1].id
    assert len(events) == 3 * total  # created (approved), executing, completed/failed
