"""Several processes on one SQLite file: every action is claimed exactly once."""

from __future__ import annotations

import multiprocessing
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
