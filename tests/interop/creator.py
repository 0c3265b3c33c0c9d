"""The Python host of the interop test (tests/test_interop.py): creates actions
on one SQLite file through ``actionq.ActionQueue`` while C agents claim them and
a Rust reader follows the events.

Usage: ``python creator.py DB HANDSHAKE_DIR COUNT``. Opens the queue, registers
the servers (``web-1``, ``web-2``, and ``maint-1`` in maintenance mode), writes
``HANDSHAKE_DIR/creator.ready`` and waits for ``HANDSHAKE_DIR/go``. Then it
creates the first half of COUNT actions, round-robin over the servers (those of
``maint-1`` wait as pending: it approves each right after creating it), waits
until an agent has claimed one of them and the reader has caught up
(``reader.caught-up``), and creates the second half. It prints
``{"created": [{"id", "server_id", "action_type", "service_name", "phase"}]}``
on stdout. Any error (a busy lock included) is printed on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import actionq

SERVERS = ["web-1", "web-2", "maint-1"]
PAUSED = "maint-1"
CREATOR = "interop-creator"
# Lock waits are absorbed by the busy timeout, never reported.
BUSY_TIMEOUT_SECONDS = 60.0
# Failure timeout of the waits (not a correctness bound).
DEADLINE_SECONDS = 240.0


def publish(path: Path, text: str) -> None:
    """Writes ``path`` atomically (a reader of it sees all or nothing)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def wait_until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"creator: {what} never happened")
        time.sleep(0.001)  # pacing only: `done` decides


def create(queue: actionq.ActionQueue, i: int, phase: int) -> dict[str, Any]:
    server_id = SERVERS[i % len(SERVERS)]
    if i % 5 == 4:
        action = queue.create_action(server_id, "clear_logs", created_by=CREATOR)
    else:
        action = queue.create_action(server_id, "restart_service", f"interop-{i}.service", created_by=CREATOR)
    if server_id == PAUSED:
        assert action.status == actionq.ActionStatus.PENDING, action
        queue.approve_action(action.id, by=CREATOR)
    else:
        assert action.status == actionq.ActionStatus.APPROVED, action
    return {
        "id": action.id,
        "server_id": server_id,
        "action_type": action.action_type,
        "service_name": action.service_name,
        "phase": phase,
    }


def main() -> int:
    db, directory, count_text = sys.argv[1:]
    hs = Path(directory)
    count = int(count_text)
    queue = actionq.ActionQueue(db, busy_timeout_seconds=BUSY_TIMEOUT_SECONDS)
    for server_id in SERVERS:
        queue.create_server(server_id, f"{server_id}.lan")
    queue.pause_server(PAUSED)
    publish(hs / "creator.ready", "ready")
    wait_until("go", (hs / "go").exists)

    half = count // 2
    created = [create(queue, i, 1) for i in range(half)]

    def claimed() -> bool:
        return any(queue.list_actions(status=s, limit=1).total for s in ("executing", "completed", "failed"))

    wait_until("a claim by an agent", claimed)
    wait_until("the reader catching up", (hs / "reader.caught-up").exists)
    created += [create(queue, i, 2) for i in range(half, count)]
    print(json.dumps({"created": created}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except actionq.ActionQueueError as e:
        print(f"creator: {type(e).__name__} [{e.code}]: {e}", file=sys.stderr)
        sys.exit(1)
