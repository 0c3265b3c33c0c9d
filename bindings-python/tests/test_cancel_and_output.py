"""Cancel while running and live output (docs/contract/cancel-and-output.md)
from Python, blocking and async, on every store: the waiting heartbeat wakes
on a cancel request, the cancelled report ends the action, output chunks
come back in order and a follower waits for the next one."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import actionq
from actionq import ActionQueue, AsyncActionQueue

LONG = 30.0


def executing(queue: ActionQueue) -> tuple[int, str]:
    queue.create_action("web-1", "clear_logs")
    claim = queue.claim_next("web-1")
    assert claim is not None
    return claim.id, claim.lease_token


def test_blocking_heartbeat_wakes_on_a_cancel_request(queue: ActionQueue) -> None:
    action, token = executing(queue)
    heard: list[actionq.Action] = []
    agent = threading.Thread(target=lambda: heard.append(queue.await_cancel(action, token, wait_seconds=LONG)))
    started = time.monotonic()
    agent.start()
    time.sleep(0.1)
    asked = queue.cancel_action(action, by="alice")
    assert (asked.status, asked.cancel_requested_by) == (actionq.ActionStatus.EXECUTING, "alice")
    agent.join(LONG)
    assert heard and heard[0].cancel_requested_by == "alice"
    assert time.monotonic() - started < LONG
    done = queue.report_cancelled(action, token, 143, "partial", None)
    assert (done.status, done.cancelled_by, done.exit_code) == (actionq.ActionStatus.CANCELLED, "alice", 143)
    with pytest.raises(actionq.ConflictError):
        queue.cancel_action(action)


def test_output_chunks_from_python(queue: ActionQueue) -> None:
    action, token = executing(queue)
    assert queue.append_output(action, token, 1, "one\n") is True
    assert queue.append_output(action, token, 1, "one\n") is False
    assert queue.append_output(action, token, 2, None, "err\n") is True
    with pytest.raises(actionq.InvalidInputError):
        queue.append_output(action, token, 0, "x")
    with pytest.raises(actionq.ConflictError):
        queue.append_output(action, "wrong", 3, "x")
    chunks = queue.output_since(action)
    assert [(c.seq, c.stdout, c.stderr) for c in chunks] == [(1, "one\n", ""), (2, "", "err\n")]
    assert chunks[0].to_dict()["seq"] == 1 and '"seq":1' in chunks[0].to_json()
    assert queue.output_since(action, after=2) == []


def test_async_forms(queue: ActionQueue) -> None:
    action, token = executing(queue)

    async def main() -> None:
        aq = AsyncActionQueue.from_queue(queue)
        follower = asyncio.create_task(aq.output_since(action, 0, wait_seconds=LONG))
        heartbeat = asyncio.create_task(aq.await_cancel(action, token, wait_seconds=LONG))
        await asyncio.sleep(0.1)
        assert await aq.append_output(action, token, 1, "line\n") is True
        chunks = await asyncio.wait_for(follower, LONG)
        assert [c.stdout for c in chunks] == ["line\n"]
        await aq.cancel_action(action, by="bob")
        heard = await asyncio.wait_for(heartbeat, LONG)
        assert heard.cancel_requested_by == "bob"
        done = await aq.report_cancelled(action, token, -15)
        assert (done.status, done.cancelled_by) == (actionq.ActionStatus.CANCELLED, "bob")
        aq.close()

    asyncio.run(main())
