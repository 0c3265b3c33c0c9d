"""What a dashboard or a metrics scrape reads about the whole queue from
Python: ``list_servers()``, ``count_actions()`` and ``lease_expiries``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

import actionq


def test_list_servers_by_id(queue: actionq.ActionQueue) -> None:
    queue.create_server("db-1", hostname="db.lan")
    queue.pause_server("db-1")
    servers = queue.list_servers()
    assert [(s.id, s.hostname, s.is_paused) for s in servers] == [("db-1", "db.lan", True), ("web-1", "web-1.lan", False)]
    assert servers[0] == queue.get_server("db-1")


def test_count_actions_per_server_and_status(queue: actionq.ActionQueue) -> None:
    assert queue.count_actions() == []
    queue.create_server("db-1")
    queue.pause_server("db-1")
    for name in ("a", "b", "c"):
        queue.create_action("db-1", "restart_service", name)
    rejected = queue.create_action("db-1", "restart_service", "d")
    queue.reject_action(rejected.id, "no")
    queue.create_action("web-1", "clear_logs")
    counts = queue.count_actions()
    assert counts == [("db-1", "pending", 3), ("db-1", "rejected", 1), ("web-1", "approved", 1)]
    assert all(type(status) is actionq.ActionStatus for _, status, _ in counts)


def test_acting_queue_counts_and_lists_for_every_role_but_agent(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    viewer = queue.as_principal(actionq.Principal("victor", "viewer"))
    assert viewer.count_actions() == queue.count_actions() == [("web-1", "approved", 1)]
    assert viewer.list_servers() == queue.list_servers()
    agent = queue.as_principal(actionq.Principal("web-1-agent", "agent", "web-1"))
    for read in (agent.count_actions, agent.list_servers):
        with pytest.raises(actionq.PermissionDeniedError):
            read()

    async def main() -> None:
        aq = actionq.AsyncActionQueue.from_queue(queue)
        assert await aq.as_principal(actionq.Principal("olga", "operator")).count_actions() == [
            ("web-1", "approved", 1)
        ]
        aq.close()

    asyncio.run(main())


def test_lease_expiries_count_what_any_read_expired(tmp_path: Path) -> None:
    # On a SQLite file, reads run on a second (fast) store first: its expiries count too.
    clock = actionq.ManualClock(datetime(2026, 3, 1, 12, tzinfo=timezone.utc))
    for path in (None, tmp_path / "q.sqlite3"):
        queue = actionq.ActionQueue(path, clock=clock)
        queue.create_server("web-1")
        for name in ("a", "b", "c"):
            queue.create_action("web-1", "restart_service", name)
            queue.claim_next("web-1", lease_seconds=10)
        assert queue.lease_expiries == 0
        clock.advance(10)
        assert queue.get_action(1).status == "failed"  # a read expired all three
        assert queue.lease_expiries == 3
        assert queue.expire_leases() == []
        assert queue.lease_expiries == 3
        assert actionq.ActionQueue(path, clock=clock).lease_expiries == 0  # each queue object counts its own


def test_async_queue_offers_them(tmp_path: Path) -> None:
    async def main() -> None:
        queue = actionq.AsyncActionQueue(tmp_path / "q.sqlite3")
        await queue.create_server("web-1")
        await queue.create_action("web-1", "clear_logs")
        assert await queue.count_actions() == [("web-1", "approved", 1)]
        assert [s.id for s in await queue.list_servers()] == ["web-1"]
        assert queue.lease_expiries == 0
        queue.close()

    asyncio.run(main())
