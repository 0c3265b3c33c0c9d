"""The approval policy (docs/contract/approval-policy.md) and the tamper-evident
audit (docs/contract/audit.md#tamper-evident-audit) through the Python binding:
the whitelist's ``approval`` object, ``approvals``/``digest``/``whitelist_version``
on records, ``digest_matches()`` and ``action_digest`` for agents, and
``verify_audit()``. The rules themselves are the core's (tested there); this
checks that every one reaches Python, on both stores."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import actionq

START = datetime(2026, 1, 1, tzinfo=timezone.utc)

POLICY: dict[str, Any] = {
    "actions": {
        "two_keys": {
            "command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}},
            "approval": {"required": 2, "four_eyes": True},
        },
        "short_lived": {"command": "journalctl --vacuum-time=1d", "approval": {"ttl_seconds": 60}},
        "budgeted": {
            "command": "apt-get update",
            "approval": {"auto_approve_budget": {"max": 1, "window_seconds": 3600}},
        },
    }
}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "memory" else str(tmp_path / "q.sqlite3")


def open_queue(store: str | None, clock: actionq.ManualClock | None = None) -> actionq.ActionQueue:
    q = actionq.ActionQueue(store, whitelist=POLICY, clock=clock)
    q.create_server("web-1")
    return q


def test_required_and_four_eyes(store: str | None) -> None:
    q = open_queue(store)
    q.pause_server("web-1")
    action = q.create_action("web-1", "two_keys", "nginx", created_by="carol")
    assert action.approvals == [] and len(action.digest) == 64
    with pytest.raises(actionq.ActionQueueError) as refused:
        q.approve_action(action.id, by="carol")
    assert refused.value.code == "PERMISSION_DENIED"
    first = q.approve_action(action.id, by="alice")
    assert first.status == "pending"
    assert [a["by"] for a in first.approvals] == ["alice"]
    assert first.approvals[0]["digest"] == action.digest
    assert first.approvals[0]["at"].tzinfo is timezone.utc
    assert q.approve_action(action.id, by="alice") == first
    assert q.events_since()[-1].detail == "1 of 2"
    second = q.approve_action(action.id, by="bob")
    assert (second.status, second.approved_by) == ("approved", "bob")
    assert second.to_dict()["approvals"] == second.approvals
    claim = q.claim_next("web-1")
    assert claim is not None and claim.digest == action.digest
    assert claim.digest_matches()
    assert claim.digest == actionq.action_digest(
        claim.server_id, claim.action_type, claim.argv, claim.env, claim.whitelist_version
    )
    assert claim.whitelist_version == q.create_action("web-1", "budgeted").whitelist_version


def test_ttl_and_budget(store: str | None) -> None:
    clock = actionq.ManualClock(START)
    q = open_queue(store, clock)
    assert q.create_action("web-1", "budgeted").status == "approved"
    held = q.create_action("web-1", "budgeted")
    assert held.status == "pending"
    assert q.events_since()[-1].detail == "auto-approval budget exceeded: 1 in the last 3600s"
    q.pause_server("web-1")
    short = q.create_action("web-1", "short_lived")
    clock.advance(60)
    seen = q.get_action(short.id)
    assert (seen.status, seen.rejected_by, seen.rejection_reason) == (
        "rejected",
        "system",
        "approval expired after 60s",
    )
    assert q.expire_approvals() == []


def sweep_setup(store: str | None) -> tuple[actionq.ActionQueue, actionq.ManualClock, int, int]:
    """A queue that does not sweep before reads, with two `short_lived` (ttl 60 s)
    actions made 30 s apart; the clock is 61 s after the first."""
    clock = actionq.ManualClock(START)
    q = actionq.ActionQueue(store, whitelist=POLICY, clock=clock, expire_leases_on_read=False)
    q.create_server("web-1")
    q.pause_server("web-1")
    first = q.create_action("web-1", "short_lived").id
    clock.advance(30)
    second = q.create_action("web-1", "short_lived").id
    clock.advance(31)
    assert q.get_action(first).status == "pending", "reads do not sweep"
    return q, clock, first, second


def assert_expired(expired: list[actionq.Action], expected_id: int) -> None:
    assert [a.id for a in expired] == [expected_id]
    assert (expired[0].status, expired[0].rejected_by) == ("rejected", "system")


def test_expire_approvals_rejects_exactly_the_action_past_its_ttl(store: str | None) -> None:
    q, clock, first, second = sweep_setup(store)
    assert_expired(q.expire_approvals(), first)
    clock.advance(30)
    acting = q.as_principal(actionq.Principal("olga", "operator"))
    with pytest.raises(actionq.PermissionDeniedError):
        q.as_principal(actionq.Principal("victor", "viewer")).expire_approvals()
    assert q.get_action(second).status == "pending", "a refusal expires nothing"
    assert_expired(acting.expire_approvals(), second)
    assert acting.expire_approvals() == []


def test_async_expire_approvals_rejects_exactly_the_action_past_its_ttl(store: str | None) -> None:
    q, clock, first, second = sweep_setup(store)

    async def main() -> None:
        aq = actionq.AsyncActionQueue.from_queue(q)
        assert_expired(await aq.expire_approvals(), first)
        clock.advance(30)
        assert_expired(await aq.as_principal(actionq.Principal("ada", "admin")).expire_approvals(), second)
        aq.close()

    asyncio.run(main())


def test_verify_audit_and_tampering(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    q = actionq.ActionQueue(path)
    q.create_server("web-1")
    for _ in range(5):
        q.create_action("web-1", "clear_logs")
    report = q.verify_audit()
    assert (report.checked, report.first_bad_event_id) == (5, None)
    assert report.to_dict() == {"checked": 5, "first_bad_event_id": None, "pruned_through": None}
    assert report.to_json() == '{"checked":5,"first_bad_event_id":null,"pruned_through":null}'
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE action_events SET actor = 'mallory' WHERE id = 3")
    assert q.verify_audit() == q.verify_audit()
    bad = q.verify_audit()
    assert (bad.checked, bad.first_bad_event_id) == (2, 3)
    assert repr(bad) == "AuditReport(checked=2, first_bad_event_id=3, pruned_through=None)"


def test_async_queue_offers_the_same(store: str | None) -> None:
    async def main() -> None:
        aq = actionq.AsyncActionQueue(store, whitelist=POLICY)
        await aq.create_server("web-1")
        await aq.create_action("web-1", "budgeted")
        report = await aq.verify_audit()
        assert report.first_bad_event_id is None and report.checked == 1
        assert await aq.expire_approvals() == []

    asyncio.run(main())


def test_readme_policy_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The book's whitelist config and Python walk-through of the policies
    (docs/guide/policy-and-audit.md), as written: the page marks the block
    ``no_run`` for the book's own test, which cannot give it ``POLICY``."""
    import json
    import re

    page = Path(__file__).parents[2] / "docs" / "guide" / "policy-and-audit.md"
    section = page.read_text(encoding="utf-8")
    config = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    code = section.split("Python, the same config as a dict:", 1)[1]
    code = re.search(r"```python[^\n]*\n(.*?)```", code, re.S).group(1)  # type: ignore[union-attr]
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(page), "exec"), {"POLICY": config})
