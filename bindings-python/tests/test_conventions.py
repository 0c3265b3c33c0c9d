"""The conventions every host shares (README "Shared conventions"), through Python.

The same points as core/tests/host_conventions.rs and test_api.c's
`test_conventions`: limits from the core, lost leases expired before reads by
default, a lease of 0 refused and `None` for the default, seconds everywhere,
durability parsed by the core, `reject_action(id, reason, by)`, `service_name`
given twice refused by the core, the status enum built from the core's list.
"""

from __future__ import annotations

import enum
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import actionq
from actionq import limits


def wait_past(moment: datetime | None) -> None:
    """Returns once the wall clock is past `moment` (a lease's end)."""
    assert moment is not None
    while datetime.now(timezone.utc) <= moment:
        time.sleep(0.01)


def executing(queue: actionq.ActionQueue, service: str) -> actionq.Claim:
    queue.create_action("web-1", "restart_service", service)
    claim = queue.claim_next("web-1", lease_seconds=0.05)
    assert claim is not None and claim.status is actionq.ActionStatus.EXECUTING
    return claim


READS = {
    "get_action": lambda q, c: q.get_action(c.id).status,
    "list_actions": lambda q, c: q.list_actions().actions[0].status,
    "list_server_actions": lambda q, c: q.list_server_actions("web-1").actions[0].status,
    "events_since": lambda q, c: q.events_since(limit=limits.MAX_EVENTS_LIMIT)[-1].to_status,
}


@pytest.mark.parametrize("read", sorted(READS))
def test_lost_leases_are_expired_before_every_read(queue: actionq.ActionQueue, read: str) -> None:
    assert queue.expire_leases_on_read is limits.DEFAULT_EXPIRE_LEASES_ON_READ is True
    claim = executing(queue, "nginx")
    wait_past(claim.lease_expires_at)
    assert READS[read](queue, claim) is actionq.ActionStatus.FAILED
    assert queue.expire_leases() == [], f"{read} already expired it"


def test_the_sweep_before_reads_can_be_turned_off(tmp_path: Path) -> None:
    queue = actionq.ActionQueue(tmp_path / "q.sqlite3", expire_leases_on_read=False)
    assert queue.expire_leases_on_read is False
    queue.create_server("web-1")
    claim = executing(queue, "nginx")
    wait_past(claim.lease_expires_at)
    assert queue.get_action(claim.id).status == "executing"
    assert [a.id for a in queue.expire_leases()] == [claim.id]
    assert queue.get_action(claim.id).status == "failed"


def test_a_zero_lease_is_refused_and_none_is_the_default(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    with pytest.raises(actionq.InvalidInputError, match="lease must be more than 0 seconds"):
        queue.claim_next("web-1", lease_seconds=0)
    claim = queue.claim_next("web-1", lease_seconds=None)
    assert claim is not None
    assert claim.lease_expires_at is not None and claim.executed_at is not None
    granted = (claim.lease_expires_at - claim.executed_at).total_seconds()
    assert granted == limits.DEFAULT_LEASE_SECONDS == queue.default_lease_seconds
    with pytest.raises(actionq.InvalidInputError, match="lease must be more than 0 seconds"):
        queue.heartbeat(claim.id, claim.lease_token, lease_seconds=0)


def test_reject_takes_the_reason_then_the_actor(paused: actionq.ActionQueue) -> None:
    action = paused.create_action("web-1", "clear_logs")
    rejected = paused.reject_action(action.id, "not now", "alice")
    assert (rejected.rejection_reason, rejected.rejected_by) == ("not now", "alice")


def test_service_name_given_twice_is_the_cores_invalid_input(queue: actionq.ActionQueue) -> None:
    with pytest.raises(actionq.InvalidInputError, match="service_name given both on its own and in params"):
        queue.create_action("web-1", "restart_service", "a", params={"service_name": "a"})


def test_settings_are_seconds_and_durability_is_parsed_by_the_core(tmp_path: Path) -> None:
    assert limits.DURABILITIES == ("normal", "full") and limits.DEFAULT_DURABILITY == "normal"
    for durability in limits.DURABILITIES:
        actionq.ActionQueue(tmp_path / f"{durability}.sqlite3", durability=durability)
    with pytest.raises(actionq.InvalidInputError, match=r"Invalid durability 'FULL' \(must be one of: normal, full\)"):
        actionq.ActionQueue(tmp_path / "x.sqlite3", durability="FULL")  # type: ignore[arg-type]
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(actionq.InvalidInputError, match="busy_timeout_seconds must be a finite number of seconds"):
            actionq.ActionQueue(tmp_path / "x.sqlite3", busy_timeout_seconds=bad)
    # seconds, fractions included (the unit of every duration in every host)
    queue = actionq.ActionQueue(default_lease_seconds=90.5)
    assert queue.default_lease_seconds == 90.5


def test_defaults_are_the_cores_limits(queue: actionq.ActionQueue) -> None:
    assert queue.output_cap_chars == limits.DEFAULT_OUTPUT_CAP_CHARS
    assert queue.default_lease_seconds == limits.DEFAULT_LEASE_SECONDS
    for _ in range(max(limits.DEFAULT_PAGE_LIMIT, limits.DEFAULT_EVENTS_LIMIT) + 1):
        queue.create_action("web-1", "clear_logs")
    assert queue.list_actions().limit == limits.DEFAULT_PAGE_LIMIT
    assert len(queue.list_actions()) == limits.DEFAULT_PAGE_LIMIT
    assert len(queue.events_since()) == limits.DEFAULT_EVENTS_LIMIT
    with pytest.raises(actionq.InvalidInputError):
        queue.list_actions(limit=limits.MAX_PAGE_LIMIT + 1)
    with pytest.raises(actionq.InvalidInputError):
        queue.events_since(limit=limits.MAX_EVENTS_LIMIT + 1)


def test_the_status_enum_is_the_cores_list() -> None:
    assert [s.value for s in actionq.ActionStatus] == list(limits.ACTION_STATUSES)
    assert limits.ACTION_STATUSES == (
        "pending", "approved", "rejected", "cancelled", "executing", "completed", "failed",
    )
    assert issubclass(actionq.ActionStatus, str) and issubclass(actionq.ActionStatus, enum.Enum)
    plain: str = "pending"
    assert actionq.ActionStatus.PENDING == plain and str(actionq.ActionStatus.PENDING) == plain
    assert f"{actionq.ActionStatus.FAILED}" == "failed"
    assert actionq.ActionStatus.__module__ == "actionq"
