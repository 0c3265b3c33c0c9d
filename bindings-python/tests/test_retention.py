"""Prune, export and keyset paging from Python, sync and async
(docs/contract/retention.md): the same names and results as the core."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

import actionq
from actionq import ActionQueue, AsyncActionQueue

START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def finished_and_live(q: ActionQueue) -> tuple[list[int], int]:
    q.create_server("web-1")
    done = []
    for n in range(3):
        a = q.create_action("web-1", "restart_service", service_name=f"s{n}")
        q.cancel_action(a.id)
        done.append(a.id)
    live = q.create_action("web-1", "clear_logs").id
    return done, live


def test_prune_export_and_keyset_pages(tmp_path: Path) -> None:
    clock = actionq.ManualClock(START)
    q = ActionQueue(str(tmp_path / "q.sqlite3"), clock=clock)
    done, live = finished_and_live(q)
    clock.advance(7200)
    first = q.list_actions(limit=2)
    assert [a.id for a in first.actions] == [live, done[2]] and first.next_before_id == done[2]
    rest = q.list_actions(limit=2, before_id=first.next_before_id)
    assert [a.id for a in rest.actions] == done[1::-1] and rest.next_before_id is None
    assert rest.to_dict()["next_before_id"] is None
    assert [a.id for a in q.list_server_actions("web-1", limit=1, before_id=live).actions] == [done[2]]
    lines = [json.loads(line) for line in q.export(datetime(2026, 3, 1, 1, tzinfo=timezone.utc))]
    assert [line["action"]["id"] for line in lines] == done
    assert all([e["to_status"] for e in line["events"]] == ["approved", "cancelled"] for line in lines)
    report = q.prune(3600)
    assert (report.pruned_actions, report.pruned_through) == (3, 6)
    audit = q.verify_audit()
    assert (audit.checked, audit.first_bad_event_id, audit.pruned_through) == (1, None, 6)
    assert q.list_actions().total == 1
    with pytest.raises(actionq.NotFoundError):
        q.get_action(done[0])


def test_bad_input_is_the_cores_error() -> None:
    q = ActionQueue()
    with pytest.raises(actionq.InvalidInputError):
        q.prune(-1)
    with pytest.raises(actionq.InvalidInputError):
        q.list_actions(before_id=0)
    with pytest.raises(actionq.InvalidInputError):
        q.export(datetime(2026, 1, 1))  # no UTC offset
    viewer = q.as_principal(actionq.Principal("v", "viewer"))
    with pytest.raises(actionq.PermissionDeniedError):
        viewer.prune(0)
    with pytest.raises(actionq.PermissionDeniedError):
        viewer.export(START)


def test_async_prune_and_export(tmp_path: Path) -> None:
    clock = actionq.ManualClock(START)

    async def main() -> None:
        aq = AsyncActionQueue(str(tmp_path / "q.sqlite3"), clock=clock)
        done, live = finished_and_live(aq._queue)
        clock.advance(7200)
        page = await aq.list_actions(limit=1, before_id=live)
        assert [a.id for a in page.actions] == [done[2]]
        lines = [json.loads(line) async for line in await aq.export(datetime(2030, 1, 1, tzinfo=timezone.utc))]
        assert [line["action"]["id"] for line in lines] == done
        report = await aq.prune(0)
        assert report.pruned_actions == 3
        assert (await aq.verify_audit()).pruned_through == report.pruned_through

    asyncio.run(main())
