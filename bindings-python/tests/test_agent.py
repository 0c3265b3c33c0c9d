"""Agent side: claim, heartbeat, result, lease expiry."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

import actionq


def test_claim_returns_oldest_with_token(queue: actionq.ActionQueue) -> None:
    first = queue.create_action("web-1", "clear_logs")
    second = queue.create_action("web-1", "restart_service", "nginx")
    claim = queue.claim_next("web-1")
    assert isinstance(claim, actionq.Claim)
    assert claim.id == first.id
    assert claim.status == "executing"
    assert claim.executed_at is not None
    assert claim.lease_expires_at is not None
    assert timedelta(seconds=299) <= claim.lease_expires_at - claim.executed_at <= timedelta(seconds=301)
    uuid.UUID(claim.lease_token)
    # every Action attribute is on the claim, and .action is the plain Action
    assert isinstance(claim.action, actionq.Action)
    assert claim.action == queue.get_action(first.id)
    for name in claim.action.to_dict():
        assert getattr(claim, name) == getattr(claim.action, name)
    assert claim.to_dict() == {**claim.action.to_dict(), "lease_token": claim.lease_token}
    # the token is never shown by get/list
    assert "lease_token" not in queue.get_action(first.id).to_dict()
    assert claim.lease_token not in repr(claim)
    nxt = queue.claim_next("web-1", lease_seconds=60)
    assert nxt is not None and nxt.id == second.id
    assert queue.claim_next("web-1") is None


def test_claim_skips_pending_and_unknown_server(paused: actionq.ActionQueue) -> None:
    paused.create_action("web-1", "clear_logs")
    assert paused.claim_next("web-1") is None
    with pytest.raises(actionq.NotFoundError):
        paused.claim_next("nope")


@pytest.mark.parametrize("lease", [0, -1, 0.0, float("nan"), 86_401, float("inf")])
def test_lease_range_is_checked_by_core(queue: actionq.ActionQueue, lease: float) -> None:
    queue.create_action("web-1", "clear_logs")
    with pytest.raises(actionq.InvalidInputError, match="lease"):
        queue.claim_next("web-1", lease_seconds=lease)
    # nothing was claimed
    assert queue.list_actions(status="approved").total == 1


def test_heartbeat_extends_lease(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    claim = queue.claim_next("web-1", lease_seconds=30)
    assert claim is not None and claim.lease_expires_at is not None
    beat = queue.heartbeat(claim.id, claim.lease_token, lease_seconds=600)
    assert beat.status == "executing"
    assert beat.lease_expires_at is not None and beat.lease_expires_at > claim.lease_expires_at
    assert queue.heartbeat(claim.id, claim.lease_token).status == "executing"
    with pytest.raises(actionq.ConflictError, match="Lease token does not match"):
        queue.heartbeat(claim.id, str(uuid.uuid4()))
    with pytest.raises(actionq.InvalidInputError):
        queue.heartbeat(claim.id, claim.lease_token, lease_seconds=-3)
    with pytest.raises(actionq.NotFoundError):
        queue.heartbeat(999, claim.lease_token)


def test_report_success_and_failure(queue: actionq.ActionQueue) -> None:
    ok = queue.create_action("web-1", "clear_logs")
    bad = queue.create_action("web-1", "restart_service", "nginx")
    c1 = queue.claim_next("web-1")
    c2 = queue.claim_next("web-1")
    assert c1 is not None and c2 is not None
    done = queue.report_result(c1.id, c1.lease_token, 0, stdout="Vacuumed 1G", stderr="")
    assert done.id == ok.id
    assert done.status == "completed" and done.exit_code == 0
    assert done.stdout == "Vacuumed 1G" and done.stderr == ""
    assert done.completed_at is not None
    failed = queue.report_result(c2.id, c2.lease_token, 3, stderr="unit not found")
    assert failed.id == bad.id
    assert failed.status == "failed" and failed.exit_code == 3 and failed.stdout is None
    # a stale agent can never overwrite the outcome
    with pytest.raises(actionq.ConflictError, match="Cannot report result for action with status 'completed'"):
        queue.report_result(c1.id, c1.lease_token, 1)
    assert queue.get_action(ok.id).status == "completed"


def test_report_with_wrong_token(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    claim = queue.claim_next("web-1")
    assert claim is not None
    with pytest.raises(actionq.ConflictError) as info:
        queue.report_result(claim.id, "not-the-token", 0)
    assert info.value.code == "CONFLICT"
    assert queue.get_action(claim.id).status == "executing"


def test_report_out_of_range_exit_code_is_overflow(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    claim = queue.claim_next("web-1")
    assert claim is not None
    with pytest.raises(OverflowError):
        queue.report_result(claim.id, claim.lease_token, 2**40)


def test_output_is_capped(tmp_path: object) -> None:
    q = actionq.ActionQueue(output_cap_chars=5)
    assert q.output_cap_chars == 5
    q.create_server("s1")
    q.create_action("s1", "clear_logs")
    claim = q.claim_next("s1")
    assert claim is not None
    done = q.report_result(claim.id, claim.lease_token, 0, stdout="ééééééé", stderr="abcdefgh")
    assert done.stdout == "ééééé" and done.stderr == "abcde"
    assert actionq.ActionQueue().output_cap_chars == 10_000


def test_expire_leases(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    kept = queue.create_action("web-1", "restart_service", "nginx")
    short = queue.claim_next("web-1", lease_seconds=0.05)
    long = queue.claim_next("web-1", lease_seconds=600)
    assert short is not None and long is not None and long.id == kept.id
    time.sleep(0.1)
    expired = queue.expire_leases()
    assert [a.id for a in expired] == [short.id]
    lost = expired[0]
    assert lost.status == "failed" and lost.exit_code == -1
    assert lost.stderr is not None and "lease expired" in lost.stderr
    assert queue.get_action(short.id) == lost
    assert queue.get_action(long.id).status == "executing"
    assert queue.expire_leases() == []
    with pytest.raises(actionq.ConflictError):
        queue.report_result(short.id, short.lease_token, 0)


def test_expired_lease_cannot_heartbeat(queue: actionq.ActionQueue) -> None:
    queue.create_action("web-1", "clear_logs")
    claim = queue.claim_next("web-1", lease_seconds=0.05)
    assert claim is not None
    time.sleep(0.1)
    with pytest.raises(actionq.ConflictError, match="expired"):
        queue.heartbeat(claim.id, claim.lease_token)
