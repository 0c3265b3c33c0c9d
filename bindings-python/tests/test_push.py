"""Waits instead of polling (docs/contract/push.md): ``claim_next`` and
``events_since`` with ``wait_seconds``, blocking (GIL released) and async
(no thread held while waiting), on every store; woken by another thread, by
another process on the same SQLite file, by another PostgreSQL queue.

Printed timings are measurements; assertions only say a waiter woke before
its wait ended."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import actionq
from actionq import ActionQueue, AsyncActionQueue, limits
from pg_support import fresh_url

LONG = 30.0


def until_waiters(queue: ActionQueue, n: int) -> None:
    """The test's own patience (not an assertion on speed)."""
    start = time.monotonic()
    while queue.waiters() < n:
        assert time.monotonic() - start < LONG, "no waiter registered"
        time.sleep(0.001)


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_max_wait_comes_from_the_core() -> None:
    assert limits.MAX_WAIT_SECONDS == 60


def test_a_claim_wait_is_woken_by_an_approval_from_another_thread(paused: ActionQueue) -> None:
    action = paused.create_action("web-1", "clear_logs")
    result: list[object] = []

    def agent() -> None:
        start = time.monotonic()
        result.append(paused.claim_next("web-1", wait_seconds=LONG))
        result.append(time.monotonic() - start)

    waiter = threading.Thread(target=agent)
    waiter.start()
    until_waiters(paused, 1)
    # This thread runs Python while the other waits: the wait released the GIL.
    paused.approve_action(action.id)
    approved = time.monotonic()
    waiter.join()
    claim, waited = result
    assert isinstance(claim, actionq.Claim) and claim.id == action.id
    assert isinstance(waited, float) and waited < LONG
    print(f"woken {1000 * (time.monotonic() - approved):.2f} ms after the approval returned")
    assert paused.waiters() == 0


def test_an_events_wait_is_woken_by_the_next_event(queue: ActionQueue) -> None:
    cursor = max((e.id for e in queue.events_since(0)), default=0)
    found: list[list[actionq.Event]] = []
    waiter = threading.Thread(target=lambda: found.append(queue.events_since(cursor, wait_seconds=LONG)))
    waiter.start()
    until_waiters(queue, 1)
    queue.pause_server("web-1")
    waiter.join()
    assert len(found[0]) == 1 and found[0][0].id > cursor
    assert queue.waiters() == 0


def test_a_wait_ends_empty_at_its_end_and_zero_answers_at_once(queue: ActionQueue) -> None:
    start = time.monotonic()
    assert queue.claim_next("web-1", wait_seconds=0.2) is None
    assert time.monotonic() - start >= 0.2
    assert queue.events_since(10_000, wait_seconds=0.2) == []
    start = time.monotonic()
    assert queue.claim_next("web-1", wait_seconds=0) is None
    assert queue.events_since(10_000, wait_seconds=0) == []
    assert time.monotonic() - start < LONG
    assert queue.waiters() == 0


@pytest.mark.parametrize("bad", [-0.5, 60.001, math.nan, math.inf])
def test_a_wait_out_of_range_is_refused(queue: ActionQueue, bad: float) -> None:
    action = queue.create_action("web-1", "clear_logs")
    with pytest.raises(actionq.InvalidInputError, match="wait must be between 0 and 60 seconds"):
        queue.claim_next("web-1", wait_seconds=bad)
    with pytest.raises(actionq.InvalidInputError):
        queue.events_since(0, wait_seconds=bad)
    with pytest.raises(actionq.InvalidInputError):
        asyncio.run(AsyncActionQueue.from_queue(queue).claim_next("web-1", wait_seconds=bad))
    with pytest.raises(actionq.InvalidInputError):
        asyncio.run(AsyncActionQueue.from_queue(queue).events_since(0, wait_seconds=bad))
    assert queue.get_action(action.id).status == "approved", "nothing was claimed"


def test_a_change_callback_runs_once_and_a_cancelled_one_never(queue: ActionQueue) -> None:
    calls: list[str] = []
    kept_called = threading.Event()

    def on_kept() -> None:
        calls.append("kept")
        kept_called.set()

    kept = queue.on_change(on_kept)
    cancelled = queue.on_change(lambda: calls.append("cancelled"))
    assert queue.waiters() == 2
    cancelled.cancel()
    queue.pause_server("web-1")
    queue.unpause_server("web-1")
    assert kept_called.wait(5), "a shared store's watch thread may be the one running it"
    assert calls == ["kept"]
    kept.cancel()
    assert queue.waiters() == 0


def test_a_change_callback_of_a_server_runs_only_for_that_server(queue: ActionQueue) -> None:
    queue.create_server("web-2")
    # A shared store's watch thread wakes everyone at its first look: let it take it.
    first_look = queue.on_change(lambda: None)
    time.sleep(0.3)
    first_look.cancel()
    calls: list[str] = []
    web_2_called = threading.Event()

    def on_web_2() -> None:
        calls.append("web-2")
        web_2_called.set()

    web_2 = queue.on_change(on_web_2, server_id="web-2")
    events = queue.on_change(lambda: calls.append("events"))
    queue.pause_server("web-1")
    time.sleep(0.3)  # ... and hears this commit too
    assert calls == ["events"]
    assert queue.waiters() == 1, "web-2's callback still waits"
    queue.pause_server("web-2")
    # The committing thread or a shared store's watch thread (which hears the
    # same commit) runs it, whichever takes it first: the latter may still be
    # waiting for the GIL when `pause_server` returns.
    assert web_2_called.wait(5)
    assert calls == ["events", "web-2"]
    web_2.cancel()
    events.cancel()
    assert queue.waiters() == 0


# ------------------------------------------------------------------ async


def _counting_claims(queue: ActionQueue) -> tuple[AsyncActionQueue, list[str]]:
    """An async queue over `queue` that lists the server of each claim try
    its waits make."""
    tries: list[str] = []

    class CountingClaims:
        def __getattr__(self, name: str) -> object:
            return getattr(queue, name)

        def claim_next(self, server_id: str, *args: object, **kwargs: object) -> object:
            tries.append(server_id)
            return queue.claim_next(server_id, *args, **kwargs)  # type: ignore[arg-type]

    aqueue = AsyncActionQueue.from_queue(queue)
    aqueue._queue = CountingClaims()  # type: ignore[assignment]
    return aqueue, tries


def test_an_async_claim_wait_is_not_retried_for_other_servers_changes(queue: ActionQueue) -> None:
    queue.create_server("web-2")
    aqueue, tries = _counting_claims(queue)

    async def main() -> None:
        claiming = asyncio.create_task(aqueue.claim_next("web-2", wait_seconds=LONG))
        while queue.waiters() < 1:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)  # a shared store's watch thread takes its first look
        before = len(tries)
        for _ in range(5):
            await aqueue.create_action("web-1", "clear_logs")
        queue.pause_server("web-1")
        await asyncio.sleep(0.3)  # ... and hears these commits too
        assert len(tries) == before, "web-1's changes made no claim try for web-2"
        action = await aqueue.create_action("web-2", "clear_logs")
        claim = await claiming
        assert claim is not None and claim.id == action.id

    asyncio.run(main())
    aqueue.close()
    assert queue.waiters() == 0


def test_an_async_claim_after_one_found_nothing_begins_its_wait_without_a_try(queue: ActionQueue) -> None:
    """An idle agent's renewed wait (most of a fleet's requests) takes no
    thread for a first look when nothing about its server changed since its
    last look found nothing; a change still wakes it, and a caller who may
    not claim there is refused as before."""
    aqueue, tries = _counting_claims(queue)
    assert not queue._claim_would_wait("web-1"), "no look yet"

    async def main() -> None:
        assert await aqueue.claim_next("web-1", wait_seconds=0.2) is None
        assert queue._claim_would_wait("web-1")
        before = len(tries)
        claiming = asyncio.create_task(aqueue.claim_next("web-1", wait_seconds=LONG))
        while queue.waiters() < 1:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        assert len(tries) == before, "the wait began asleep"
        action = await aqueue.create_action("web-1", "clear_logs")
        claim = await claiming
        assert claim is not None and claim.id == action.id
        assert len(tries) == before + 1

    asyncio.run(main())
    stranger = aqueue.as_principal(actionq.Principal("agent-2", "agent", server_id="web-2"))
    with pytest.raises(actionq.PermissionDeniedError):
        asyncio.run(stranger.claim_next("web-1", wait_seconds=LONG))
    with pytest.raises(actionq.InvalidInputError):
        queue._claim_would_wait("web-1", lease_seconds=0)
    aqueue.close()
    assert queue.waiters() == 0


def test_async_waits_are_woken(queue: ActionQueue) -> None:
    aqueue = AsyncActionQueue.from_queue(queue)

    async def main() -> None:
        queue.pause_server("web-1")
        action = await aqueue.create_action("web-1", "clear_logs")
        cursor = (await aqueue.events_since(0, limit=1000))[-1].id
        claiming = asyncio.create_task(aqueue.claim_next("web-1", wait_seconds=LONG))
        reading = asyncio.create_task(aqueue.events_since(cursor, wait_seconds=LONG))
        while queue.waiters() < 2:
            await asyncio.sleep(0.001)
        start = time.monotonic()
        await aqueue.approve_action(action.id)
        claim = await claiming
        events = await reading
        assert claim is not None and claim.id == action.id
        assert events and events[0].action_id == action.id
        assert time.monotonic() - start < LONG
        assert await aqueue.claim_next("web-1", wait_seconds=0.05) is None

    asyncio.run(main())
    aqueue.close()
    assert queue.waiters() == 0


def test_a_thousand_async_waits_hold_no_thread_and_cancelling_leaves_nothing(tmp_path: Path) -> None:
    queue = ActionQueue(tmp_path / "q.sqlite3")
    queue.create_server("web-1")
    aqueue = AsyncActionQueue.from_queue(queue)

    async def main() -> None:
        # Warm up: the thread pool at its size, the store's watch thread started.
        await asyncio.gather(*(aqueue.claim_next("web-1") for _ in range(50)))
        await aqueue.claim_next("web-1", wait_seconds=0.05)
        before = threads()
        tasks = [asyncio.create_task(aqueue.claim_next("web-1", wait_seconds=LONG)) for _ in range(1000)]
        while queue.waiters() < 1000:
            await asyncio.sleep(0.01)
        during = threads()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        print(f"threads: {before} before, {during} with 1000 awaiting waits")
        # Threads of earlier tests may still be ending: none is added.
        assert during <= before, "no thread per waiter"
        assert queue.waiters() == 0, "cancelled waits left nothing"
        # A wait after all that still works.
        claiming = asyncio.create_task(aqueue.claim_next("web-1", wait_seconds=LONG))
        while queue.waiters() < 1:
            await asyncio.sleep(0.001)
        action = await aqueue.create_action("web-1", "clear_logs")
        claim = await claiming
        assert claim is not None and claim.id == action.id

    asyncio.run(main())
    aqueue.close()
    assert queue.waiters() == 0


# ----------------------------------------------------- another process / queue

APPROVER = """
import sys, time
from pathlib import Path
import actionq
queue = actionq.ActionQueue(sys.argv[1])
go = Path(sys.argv[1] + ".go")
while not go.exists():
    time.sleep(0.001)
queue.approve_action(int(sys.argv[2]))
print(time.time())
"""


def test_another_process_on_the_sqlite_file_wakes_a_waiter(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    queue = ActionQueue(db)
    queue.create_server("web-1")
    queue.pause_server("web-1")
    action = queue.create_action("web-1", "clear_logs")
    child = subprocess.Popen([sys.executable, "-c", APPROVER, str(db), str(action.id)], stdout=subprocess.PIPE, text=True)
    threading.Timer(0.5, lambda: Path(str(db) + ".go").write_text("")).start()
    start = time.monotonic()
    claim = queue.claim_next("web-1", wait_seconds=LONG)
    woke = time.time()
    out, _ = child.communicate(timeout=LONG)
    assert child.returncode == 0
    assert claim is not None and claim.id == action.id
    assert time.monotonic() - start < LONG
    print(f"woken {1000 * (woke - float(out)):.1f} ms after the other process's approval returned")


def test_another_postgres_queue_wakes_a_waiter() -> None:
    url = fresh_url()
    waiting, writer = ActionQueue(url), ActionQueue(url)
    writer.create_server("web-1")
    writer.pause_server("web-1")
    action = writer.create_action("web-1", "clear_logs")
    found: list[object] = []
    waiter = threading.Thread(target=lambda: found.append(waiting.claim_next("web-1", wait_seconds=LONG)))
    waiter.start()
    until_waiters(waiting, 1)
    time.sleep(0.3)  # the listener's first look
    writer.approve_action(action.id)
    waiter.join()
    claim = found[0]
    assert isinstance(claim, actionq.Claim) and claim.id == action.id
    assert waiting.waiters() == 0


OUTPUT_WRITER = """
import sys, time
from pathlib import Path
import actionq
queue = actionq.ActionQueue(sys.argv[1])
go = Path(sys.argv[1] + ".go")
while not go.exists():
    time.sleep(0.001)
queue.append_output(int(sys.argv[2]), sys.argv[3], 1, "first\\n")
"""


def test_another_process_on_the_sqlite_file_wakes_an_async_output_reader(tmp_path: Path) -> None:
    """A chunk logs no event: the reader learns of it from the file's change alone."""
    db = tmp_path / "q.sqlite3"
    queue = ActionQueue(db)
    queue.create_server("web-1")
    action = queue.create_action("web-1", "clear_logs")
    claim = queue.claim_next("web-1")
    assert claim is not None and claim.id == action.id
    child = subprocess.Popen([sys.executable, "-c", OUTPUT_WRITER, str(db), str(action.id), claim.lease_token])
    aqueue = AsyncActionQueue.from_queue(queue)

    async def main() -> list[actionq.OutputChunk]:
        reading = asyncio.create_task(aqueue.output_since(action.id, 0, wait_seconds=LONG))
        while queue.waiters() < 1:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)  # the watch thread's first look
        Path(str(db) + ".go").write_text("")
        return await reading

    start = time.monotonic()
    chunks = asyncio.run(main())
    assert child.wait(timeout=LONG) == 0
    assert [c.stdout for c in chunks] == ["first\n"]
    assert time.monotonic() - start < LONG / 2, "woken by the chunk, not the wait's end"
    aqueue.close()
    assert queue.waiters() == 0


def test_output_without_a_server_is_refused() -> None:
    with pytest.raises(actionq.InvalidInputError, match="server_id"):
        ActionQueue().on_change(lambda: None, output=True)
