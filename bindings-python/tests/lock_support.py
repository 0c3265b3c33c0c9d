"""Shared by the tests that make a queue call wait on a SQLite lock: another
process holding the write lock, and seeing a thread wait in the core's busy
handler through /proc (as core/tests/sqlite_locking.rs does)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

# Another process: POSIX file locks are per process, so a second SQLite library
# in this process (Python's `sqlite3`) would not block the queue.
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=20)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""

# Syscalls the core's busy handler waits in: sched_yield for its first polls,
# then nanosleep/clock_nanosleep.
WAITING_SYSCALLS = {"x86_64": {24, 35, 230}, "aarch64": {124, 101, 115}}.get(platform.machine(), set())

needs_proc = pytest.mark.skipif(
    not WAITING_SYSCALLS or not Path("/proc/self/task").is_dir(), reason="needs Linux /proc on x86_64/aarch64"
)


def threads_in_busy_wait(pid: int | str = "self") -> set[str]:
    """The threads of process `pid` inside one of the busy handler's syscalls."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            number = (task / "syscall").read_text().split()[0]
        except (OSError, IndexError):
            continue
        if number.isdigit() and int(number) in WAITING_SYSCALLS:
            found.add(task.name)
    return found


class LockHolder:
    """Another process holding the SQLite write lock of `db` (BEGIN IMMEDIATE)
    from construction until `release()`."""

    def __init__(self, db: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.write("commit\n")
            self.process.stdin.close()
        assert self.process.wait(30) == 0
