"""Shared fixtures: every behavioural test runs on every store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import actionq
from pg_support import fresh_url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[actionq.ActionQueue]:
    """A fresh queue, in memory, on a SQLite file or in a PostgreSQL schema,
    with server `web-1` registered."""
    if request.param == "memory":
        q = actionq.ActionQueue()
    elif request.param == "postgres":
        q = actionq.ActionQueue(fresh_url())
    else:
        q = actionq.ActionQueue(tmp_path / "actionq.sqlite3")
    q.create_server("web-1", "web-1.lan")
    yield q


@pytest.fixture
def paused(queue: actionq.ActionQueue) -> actionq.ActionQueue:
    """The queue with `web-1` in maintenance mode (new actions start pending)."""
    queue.pause_server("web-1")
    return queue
