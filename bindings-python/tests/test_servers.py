"""Servers: create, get, pause, unpause."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import actionq


def test_create_and_get(queue: actionq.ActionQueue) -> None:
    server = queue.create_server("db-1", hostname="db-1.lan")
    assert server.id == "db-1"
    assert server.hostname == "db-1.lan"
    assert server.is_paused is False
    assert server.paused_at is None
    assert server.created_at.tzinfo is timezone.utc
    assert abs((datetime.now(timezone.utc) - server.created_at).total_seconds()) < 60
    assert queue.get_server("db-1") == server


def test_create_without_hostname(queue: actionq.ActionQueue) -> None:
    assert queue.create_server("db-2").hostname is None


def test_duplicate_server_is_conflict(queue: actionq.ActionQueue) -> None:
    with pytest.raises(actionq.ConflictError) as info:
        queue.create_server("web-1")
    assert info.value.code == "CONFLICT"
    assert info.value.http_status == 409
    assert "web-1" in info.value.message


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "semi;colon", "x" * 101, "ünï"])
def test_invalid_server_id(queue: actionq.ActionQueue, bad: str) -> None:
    with pytest.raises(actionq.InvalidInputError) as info:
        queue.create_server(bad)
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.http_status == 422


def test_unknown_server(queue: actionq.ActionQueue) -> None:
    for call in (queue.get_server, queue.pause_server, queue.unpause_server):
        with pytest.raises(actionq.NotFoundError) as info:
            call("nope")
        assert info.value.message == "Server 'nope' not found"
        assert info.value.http_status == 404


def test_pause_unpause_idempotent(queue: actionq.ActionQueue) -> None:
    first = queue.pause_server("web-1")
    assert first.is_paused is True
    assert first.paused_at is not None and first.paused_at.tzinfo is timezone.utc
    again = queue.pause_server("web-1")
    assert again.is_paused is True
    assert queue.get_server("web-1").is_paused is True
    resumed = queue.unpause_server("web-1")
    assert resumed.is_paused is False and resumed.paused_at is None
    assert queue.unpause_server("web-1") == resumed
