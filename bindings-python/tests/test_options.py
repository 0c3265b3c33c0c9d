"""Opening a queue: paths, persistence, durability, whitelists."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import actionq

CUSTOM = {
    "actions": {
        "install_package": {
            "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
            "params": {"package": {"kind": "debian_package"}},
            "conflict": {"exclusive_group": "apt"},
        },
        "set_swappiness": {
            "command": "sysctl vm.swappiness={value}",
            "params": {"value": {"kind": "integer", "min": 0, "max": 100}},
        },
    }
}


def test_path_types_and_persistence(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    first = actionq.ActionQueue(str(db), durability="full")
    assert first.path == db
    first.create_server("web-1")
    action = first.create_action("web-1", "clear_logs")
    del first
    again = actionq.ActionQueue(db)  # os.PathLike
    assert again.get_action(action.id) == action
    assert repr(again) == f"ActionQueue({str(db)!r})"
    # two queues on one file see each other's writes
    other = actionq.ActionQueue(db)
    assert other.list_actions().total == 1


WRITES = 40

CHILD = """
import sys, actionq
q = actionq.ActionQueue(sys.argv[1], durability=sys.argv[2])
for i in range(int(sys.argv[3])):
    q.create_action("web-1", "restart_service", f"s{i}")
"""


def syncs_during_writes(durability: str, tmp_path: Path) -> int:
    """fsync + fdatasync calls of a child process committing WRITES writes, counted by strace."""
    db = tmp_path / f"{durability}.sqlite3"
    actionq.ActionQueue(db).create_server("web-1")
    trace = tmp_path / f"{durability}.strace"
    run = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace),
         sys.executable, "-c", CHILD, str(db), durability, str(WRITES)],
        capture_output=True, text=True, env=os.environ.copy(), check=False,
    )
    assert run.returncode == 0, run.stderr
    assert actionq.ActionQueue(db).list_actions().total == WRITES, "the child committed its writes"
    return sum("fsync(" in line or "fdatasync(" in line for line in trace.read_text().splitlines())


def test_full_durability_reaches_sqlite(tmp_path: Path) -> None:
    # PRAGMA synchronous is per connection, so the setting is observed from
    # outside the process: durability="full" syncs every commit, the default does not.
    assert shutil.which("strace"), "strace is missing; install it (make rust-tools)"
    normal = syncs_during_writes("normal", tmp_path)
    full = syncs_during_writes("full", tmp_path)
    assert full >= normal + WRITES, f"normal {normal}, full {full}"
    assert normal < WRITES, f"normal {normal}"


HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def hold_write_lock(db: Path) -> subprocess.Popen[str]:
    """Another process holding the write lock on `db` until a line arrives on its stdin.
    (Another process: locks of a second SQLite copy in this process would not conflict.)"""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    holder.communicate("release\n", timeout=60)
    assert holder.returncode == 0


# Syscalls the store's busy handler waits in: sched_yield for its first polls,
# then nanosleep/clock_nanosleep (as core/tests/sqlite_locking.rs).
WAITING_SYSCALLS = {"x86_64": {24, 35, 230}, "aarch64": {124, 101, 115}}


def in_busy_wait(tid: int) -> bool:
    """Whether thread `tid` of this process is in the busy handler's wait now
    (its syscall, from /proc/self/task/<tid>/syscall)."""
    try:
        nr = Path(f"/proc/self/task/{tid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return nr.lstrip("-").isdigit() and int(nr) in WAITING_SYSCALLS.get(os.uname().machine, set())


def test_busy_timeout_bounds_the_wait_for_a_lock(tmp_path: Path) -> None:
    db = tmp_path / "busy.sqlite3"
    fast = actionq.ActionQueue(db, busy_timeout_seconds=0.05)
    patient = actionq.ActionQueue(db, busy_timeout_seconds=600)
    fast.create_server("web-1")

    # 50 ms: the write gives up while the lock is still held (for at most 5 s;
    # the default timeout, 10 s, would outlast the hold and succeed).
    holder = hold_write_lock(db)
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def fast_write() -> None:
        try:
            fast.create_action("web-1", "clear_logs")
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            outcome.append(e)
        done.set()

    writer = threading.Thread(target=fast_write)
    writer.start()
    done.wait(5)
    release(holder)
    writer.join()
    assert isinstance(outcome[0], actionq.StorageError), outcome
    assert outcome[0].code == "STORAGE_ERROR" and "busy" in str(outcome[0])

    # 600 s: the write waits for the lock and succeeds after its release. The
    # writer is seen in the busy handler, then the lock stays held 2 s more while
    # the writer must keep waiting: a setter that took the value as
    # milliseconds (0.6 s) gives up within the hold.
    holder = hold_write_lock(db)
    released = threading.Event()
    finished = threading.Event()
    result: list[object] = []

    def patient_write() -> None:
        try:
            result.append(patient.create_action("web-1", "clear_logs").id)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            result.append(e)
        result.append(released.is_set())
        finished.set()

    writer = threading.Thread(target=patient_write)
    writer.start()
    assert writer.native_id is not None
    seen_waiting = False
    while not seen_waiting and not finished.is_set():
        seen_waiting = in_busy_wait(writer.native_id)
    assert seen_waiting, f"the write returned without waiting for the lock: {result}"
    assert not finished.wait(2), f"the 600 s write gave up while the lock was held 2 s: {result}"
    released.set()
    release(holder)
    writer.join()
    assert result == [1, True], "the write succeeded, after the lock was released"
    assert fast.create_action("web-1", "clear_logs").id == 2


def test_in_memory_queues_are_separate() -> None:
    a, b = actionq.ActionQueue(), actionq.ActionQueue(None)
    a.create_server("s1")
    with pytest.raises(actionq.NotFoundError):
        b.get_server("s1")
    assert a.path is None


def test_bad_settings_are_the_cores_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(actionq.InvalidInputError, match="durability"):
        actionq.ActionQueue(tmp_path / "a.db", durability="fast")  # type: ignore[arg-type]
    with pytest.raises(actionq.InvalidInputError, match="busy_timeout_seconds"):
        actionq.ActionQueue(tmp_path / "a.db", busy_timeout_seconds=-1)
    with pytest.raises(TypeError):
        actionq.ActionQueue(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        actionq.ActionQueue(whitelist=["not", "a", "config"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        actionq.ActionQueue(None, "positional whitelist")  # type: ignore[call-arg]


def test_unopenable_path_is_storage_error(tmp_path: Path) -> None:
    with pytest.raises(actionq.StorageError) as info:
        actionq.ActionQueue(tmp_path / "missing-dir" / "q.sqlite3")
    assert info.value.code == "STORAGE_ERROR" and info.value.http_status == 503


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 9999")
    with pytest.raises(actionq.StorageError, match="9999|newer"):
        actionq.ActionQueue(db)


def test_custom_whitelist_from_dict_and_text() -> None:
    for config in (CUSTOM, json.dumps(CUSTOM)):
        q = actionq.ActionQueue(whitelist=config)
        assert q.action_types == ["install_package", "set_swappiness"]
        q.create_server("s1")
        a = q.create_action("s1", "install_package", params={"package": "htop"})
        assert a.argv == ["apt-get", "install", "-y", "htop"]
        assert a.env == {"DEBIAN_FRONTEND": "noninteractive"}
        assert q.create_action("s1", "set_swappiness", params={"value": 10}).command == "sysctl vm.swappiness=10"
        with pytest.raises(actionq.NotWhitelistedError, match="value"):
            q.create_action("s1", "set_swappiness", params={"value": 101})
        with pytest.raises(actionq.NotWhitelistedError, match="value"):
            q.create_action("s1", "set_swappiness", params={"value": -1})
        with pytest.raises(TypeError):
            q.create_action("s1", "set_swappiness", params={"value": True})
        with pytest.raises(actionq.NotWhitelistedError):
            q.create_action("s1", "restart_service", "nginx")
        with pytest.raises(actionq.InvalidInputError):
            q.create_action("s1", "install_package", params={"package": "htop", "extra": "x"})
        # the config round-trips
        assert actionq.ActionQueue(whitelist=q.whitelist_json).action_types == q.action_types


def test_default_whitelist_json() -> None:
    q = actionq.ActionQueue()
    assert q.action_types == ["apt_update", "apt_upgrade_all", "clear_logs", "restart_service"]
    assert json.loads(q.whitelist_json) == json.loads(
        actionq.ActionQueue(whitelist=actionq.DEFAULT_WHITELIST_JSON).whitelist_json
    )


@pytest.mark.parametrize(
    "config",
    ['{"actions": {}}', "not json", {"actions": {"x": {"command": "rm {f}", "params": {"f": {"kind": "free_text"}}}}}],
)
def test_bad_whitelist_is_invalid_input(config: object) -> None:
    with pytest.raises(actionq.InvalidInputError, match="whitelist"):
        actionq.ActionQueue(whitelist=config)  # type: ignore[arg-type]


def test_lease_settings() -> None:
    q = actionq.ActionQueue(default_lease_seconds=30, max_lease_seconds=60)
    q.create_server("s1")
    q.create_action("s1", "clear_logs")
    with pytest.raises(actionq.InvalidInputError):
        q.claim_next("s1", lease_seconds=61)
    claim = q.claim_next("s1")
    assert claim is not None and claim.lease_expires_at is not None and claim.executed_at is not None
    assert round((claim.lease_expires_at - claim.executed_at).total_seconds()) == 30


def test_version() -> None:
    assert actionq.__version__.count(".") == 2
