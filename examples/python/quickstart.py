"""actionq from Python in one page: a dashboard queues, an agent executes.

Run with ``python examples/python/quickstart.py`` after ``make test-python`` (or
``pip install .``). Uses an in-memory queue; pass a path for a SQLite file.
"""

from __future__ import annotations

import subprocess

import actionq


def main() -> None:
    queue = actionq.ActionQueue()  # or actionq.ActionQueue("data/actionq.sqlite3")

    # Dashboard side: a server in maintenance mode holds actions for approval.
    queue.create_server("web-1", hostname="web-1.lan")
    queue.pause_server("web-1")
    action = queue.create_action("web-1", "restart_service", "nginx", alert_id=42)
    print(f"queued #{action.id}: {action.command!r} ({action.status})")
    try:
        queue.create_action("web-1", "restart_service", "nginx")
    except actionq.ConflictError as err:
        print(f"refused: {err.message} (existing action #{err.existing_action_id})")
    try:
        queue.create_action("web-1", "restart_service", "nginx; reboot")
    except actionq.NotWhitelistedError as err:
        print(f"refused: {err.code} {err.http_status}: {err.message}")
    queue.approve_action(action.id, by="alice")

    # Agent side: claim, run (here: a harmless echo instead of argv), report.
    claim = queue.claim_next("web-1", lease_seconds=60)
    assert claim is not None
    run = subprocess.run(["echo", *claim.argv], capture_output=True, text=True, check=False)
    done = queue.report_result(claim.id, claim.lease_token, run.returncode, run.stdout, run.stderr)
    print(f"#{done.id} {done.status}, exit {done.exit_code}, stdout {done.stdout!r}")

    # Audit trail, read with a cursor.
    for event in queue.events_since(cursor=0):
        print(f"  event {event.id}: #{event.action_id} {event.from_status} -> {event.to_status} by {event.by}")


if __name__ == "__main__":
    main()
