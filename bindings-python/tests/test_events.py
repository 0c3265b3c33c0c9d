"""The audit trail read with a cursor."""

from __future__ import annotations

from datetime import timezone

import pytest

import actionq


def test_events_follow_the_life_of_actions(paused: actionq.ActionQueue) -> None:
    a = paused.create_action("web-1", "clear_logs", created_by="alerts")
    paused.approve_action(a.id)
    claim = paused.claim_next("web-1")
    assert claim is not None
    paused.report_result(claim.id, claim.lease_token, 2)
    b = paused.create_action("web-1", "restart_service", "nginx")
    paused.reject_action(b.id, "no")

    events = paused.events_since()
    pause, events = events[0], events[1:]
    assert (pause.kind, pause.subject, pause.action_id, pause.to_status, pause.detail) == (
        "server",
        "web-1",
        None,
        None,
        "paused",
    )
    assert all((e.kind, e.subject) == ("action", "web-1") for e in events)
    steps = [(e.action_id, e.from_status, e.to_status, e.by) for e in events]
    assert steps == [
        (a.id, None, "pending", "alerts"),
        (a.id, "pending", "approved", "dashboard"),
        (a.id, "approved", "executing", "agent"),
        (a.id, "executing", "failed", "agent"),
        (b.id, None, "pending", "dashboard"),
        (b.id, "pending", "rejected", "dashboard"),
    ]
    assert events[-1].detail is not None and "no" in events[-1].detail
    assert all(e.at.tzinfo is timezone.utc for e in events)
    ids = [e.id for e in events]
    assert ids == sorted(set(ids))

    # the cursor resumes after the last seen event; limit bounds the page
    assert paused.events_since(cursor=ids[2], limit=2) == events[3:5]
    assert paused.events_since(cursor=ids[-1]) == []
    assert events[0].to_dict() == {
        "id": events[0].id,
        "action_id": a.id,
        "from_status": None,
        "to_status": "pending",
        "by": "alerts",
        "at": events[0].at,
        "detail": events[0].detail,
        "kind": "action",
        "subject": "web-1",
    }
    assert repr(events[0]).startswith("Event(id=")


@pytest.mark.parametrize(("cursor", "limit"), [(-1, 10), (0, 0), (0, 1001)])
def test_events_arguments_checked_by_core(queue: actionq.ActionQueue, cursor: int, limit: int) -> None:
    with pytest.raises(actionq.InvalidInputError):
        queue.events_since(cursor, limit)
