"""actionq.ManualClock: a Python host drives the queue's time, as a Rust host can."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import actionq

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_queue_reads_time_from_the_manual_clock(store: str, tmp_path: Path) -> None:
    clock = actionq.ManualClock(START)
    q = actionq.ActionQueue(None if store == "memory" else tmp_path / "q.sqlite3", clock=clock)
    assert q.create_server("web-1").created_at == START
    clock.advance(1.5)
    action = q.create_action("web-1", "restart_service", "nginx")
    assert action.created_at == START + timedelta(seconds=1.5)
    claim = q.claim_next("web-1", lease_seconds=30)
    assert claim is not None
    assert claim.lease_expires_at == START + timedelta(seconds=31.5)
    clock.advance(29.999999)
    assert q.expire_leases() == []
    clock.advance(0.000001)
    (lost,) = q.expire_leases()
    assert (lost.id, lost.status, lost.exit_code) == (action.id, "failed", -1)


def test_set_now_and_repr() -> None:
    clock = actionq.ManualClock(datetime(2026, 5, 5, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 5, 5, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert clock.now().tzinfo == timezone.utc
    clock.set(START)
    clock.advance(-60)
    assert clock.now() == START - timedelta(minutes=1)
    assert repr(clock) == "ManualClock(2025-12-31T23:59:00+00:00)"


def test_bad_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        actionq.ManualClock(datetime(2026, 1, 1))
    clock = actionq.ManualClock(START)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 1, 1))
    for bad in (math.nan, math.inf, 1e300):
        with pytest.raises(actionq.InvalidInputError, match="finite"):
            clock.advance(bad)
    assert clock.now() == START
    with pytest.raises(TypeError):
        actionq.ManualClock("2026-01-01T00:00:00Z")  # type: ignore[arg-type]
