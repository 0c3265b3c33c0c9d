"""AsyncActionQueue: ActionQueue's methods as coroutines (same signatures, records
and errors), and an event loop that keeps serving while a call waits on a lock."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

import actionq
from lock_support import LockHolder, needs_proc, threads_in_busy_wait
from actionq import ActionQueue, AsyncActionQueue, limits

T = TypeVar("T")
PACKAGE = Path(actionq.__file__).parent

# What AsyncActionQueue adds to ActionQueue's API: ways to build it, its
# underlying queue, and stopping its thread pool (test_operations.py compares
# the two classes' methods and signatures).
EXTRAS = {"from_queue", "open", "queue", "close"}
# ActionQueue methods AsyncActionQueue offers as plain methods, not coroutines:
# as_principal and by return a view (an AsyncActionQueue), making which does no I/O.
VIEWS = {"as_principal", "by"}
# ... and the waiting building blocks: registering a change callback and
# counting waiters, which do no I/O either.
PLAIN = {"on_change", "waiters"}


def stub_class(name: str) -> ast.ClassDef:
    tree = ast.parse((PACKAGE / "_actionq.pyi").read_text(encoding="utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def async_class() -> ast.ClassDef:
    tree = ast.parse((PACKAGE / "_aio.py").read_text(encoding="utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AsyncActionQueue")


def dump(nodes: list[ast.expr] | list[ast.arg]) -> list[str]:
    return [ast.dump(n) for n in nodes]


def without_positional_self(args: ast.arguments) -> ast.arguments:
    """``args`` with a receiver that the stub may mark positional-only (``self, /``) as a plain one."""
    return ast.arguments(
        posonlyargs=[],
        args=[*args.posonlyargs, *args.args],
        vararg=args.vararg,
        kwonlyargs=args.kwonlyargs,
        kw_defaults=args.kw_defaults,
        kwarg=args.kwarg,
        defaults=args.defaults,
    )


def test_async_types_mirror_the_stubs() -> None:
    """Every ActionQueue method typed in `_actionq.pyi` is defined in `_aio.py`
    with the same typed parameters and return type, as an `async def` unless it
    is a property or a view; a view returns an AsyncActionQueue."""
    # Private helpers of the async class (`_cancel_request`) are not mirrored.
    sync = {
        n.name: n
        for n in stub_class("ActionQueue").body
        if isinstance(n, ast.FunctionDef) and (not n.name.startswith("_") or n.name == "__new__")
    }
    aio = {
        n.name: n
        for n in async_class().body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and (not n.name.startswith("_") or n.name == "__init__")
    }
    assert set(aio) - set(sync) == EXTRAS | {"__init__"}
    assert set(sync) - set(aio) == {"__new__"}
    for name, node in sync.items():
        if name == "__new__":  # the constructor and `open`: its parameters plus max_workers
            for opener in (aio["__init__"], aio["open"]):
                assert dump(opener.args.args[1:]) == dump(node.args.args[1:])
                assert dump(opener.args.kwonlyargs[:-1]) == dump(node.args.kwonlyargs)
                assert dump(opener.args.defaults) == dump(node.args.defaults)
                assert dump(opener.args.kw_defaults[:-1]) == dump(node.args.kw_defaults)  # type: ignore[arg-type]
                assert opener.args.kwonlyargs[-1].arg == "max_workers"
            continue
        other = aio[name]
        is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
        plain = is_property or name in VIEWS or name in PLAIN
        assert isinstance(other, ast.FunctionDef if plain else ast.AsyncFunctionDef), name
        # defaults: the stub may write `...` where the code names the core's constant
        sync_args, aio_args = without_positional_self(node.args), without_positional_self(other.args)
        assert dump(aio_args.args) == dump(sync_args.args), name
        assert dump(aio_args.kwonlyargs) == dump(sync_args.kwonlyargs), name
        assert len(aio_args.defaults) == len(sync_args.defaults), name
        returns = "AsyncActionQueue" if name in VIEWS else ast.unparse(node.returns)  # type: ignore[arg-type]
        # An iterator the core reads as it is consumed has its async form.
        returns = {"Export": "AsyncExport"}.get(returns, returns)
        assert ast.unparse(other.returns) == returns, name  # type: ignore[arg-type]


# Same records, same errors --------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def queues(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ActionQueue, AsyncActionQueue]]:
    """One queue seen both ways: its ActionQueue and an AsyncActionQueue on it."""
    queue = ActionQueue(None if request.param == "memory" else tmp_path / "q.sqlite3")
    aqueue = AsyncActionQueue.from_queue(queue)
    yield queue, aqueue
    aqueue.close()


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


def test_same_records_as_action_queue(queues: tuple[ActionQueue, AsyncActionQueue]) -> None:
    queue, aqueue = queues

    async def scenario() -> None:
        server = await aqueue.create_server("web-1", hostname="web-1.lan")
        assert server == queue.get_server("web-1") == await aqueue.get_server("web-1")
        assert (await aqueue.pause_server("web-1")).is_paused
        pending = await aqueue.create_action("web-1", "restart_service", "nginx", alert_id=7)
        assert pending == queue.get_action(pending.id) == await aqueue.get_action(pending.id)
        assert pending.status == "pending"
        assert (await aqueue.unpause_server("web-1")).is_paused is False
        approved = await aqueue.approve_action(pending.id, by="alice")
        assert approved.approved_by == "alice" and approved == queue.get_action(pending.id)
        other = await aqueue.create_action_json('{"server_id": "web-1", "action_type": "clear_logs"}')
        assert (await aqueue.cancel_action(other.id)).status == "cancelled"
        assert await aqueue.list_actions(server_id="web-1", limit=5) == queue.list_actions(server_id="web-1", limit=5)
        assert await aqueue.list_server_actions("web-1", "approved") == queue.list_server_actions("web-1", "approved")
        claim = await aqueue.claim_next("web-1", 60)
        assert isinstance(claim, actionq.Claim) and claim.id == pending.id
        assert await aqueue.claim_next("web-1") is None
        beat = await aqueue.heartbeat(claim.id, claim.lease_token, 120)
        assert beat == queue.get_action(claim.id)
        done = await aqueue.report_result(claim.id, claim.lease_token, 0, stdout="ok")
        assert done.status == "completed" and done == queue.get_action(claim.id)
        assert await aqueue.expire_leases() == []
        assert await aqueue.events_since(0, 100) == queue.events_since(0, 100)
        # the defaults the coroutines name are the compiled methods'
        assert await aqueue.list_actions() == queue.list_actions() and queue.list_actions().limit == limits.DEFAULT_PAGE_LIMIT
        assert await aqueue.list_server_actions("web-1") == queue.list_server_actions("web-1")
        assert await aqueue.events_since() == queue.events_since()
        assert (await aqueue.create_action("web-1", "clear_logs")).created_by == limits.DASHBOARD
        assert aqueue.action_types == queue.action_types
        assert aqueue.path == queue.path and aqueue.whitelist_json == queue.whitelist_json
        assert aqueue.output_cap_chars == queue.output_cap_chars and aqueue.queue is queue

    run(scenario())


def test_same_errors_as_action_queue(queues: tuple[ActionQueue, AsyncActionQueue]) -> None:
    queue, aqueue = queues
    queue.create_server("web-1")
    first = queue.create_action("web-1", "restart_service", "nginx")
    queue.pause_server("web-1")
    queue.create_action("web-1", "restart_service", "nginx")  # pending: a second one collides

    def sync_error(call: Callable[[], object]) -> actionq.ActionQueueError:
        with pytest.raises(actionq.ActionQueueError) as caught:
            call()
        return caught.value

    async def async_error(call: Callable[[], Awaitable[object]]) -> actionq.ActionQueueError:
        with pytest.raises(actionq.ActionQueueError) as caught:
            await call()
        return caught.value

    async def scenario() -> None:
        cases: list[tuple[Callable[[], object], Callable[[], Awaitable[object]]]] = [
            (lambda: queue.get_action(999), lambda: aqueue.get_action(999)),
            (lambda: queue.get_server("nope"), lambda: aqueue.get_server("nope")),
            (lambda: queue.create_action("web-1", "rm_rf"), lambda: aqueue.create_action("web-1", "rm_rf")),
            (
                lambda: queue.create_action("web-1", "restart_service", "nginx"),
                lambda: aqueue.create_action("web-1", "restart_service", "nginx"),
            ),
            (lambda: queue.approve_action(first.id), lambda: aqueue.approve_action(first.id)),
            (lambda: queue.list_actions(limit=0), lambda: aqueue.list_actions(limit=0)),
            (lambda: queue.heartbeat(first.id, "stale"), lambda: aqueue.heartbeat(first.id, "stale")),
        ]
        for sync_call, async_call in cases:
            expected, got = sync_error(sync_call), await async_error(async_call)
            assert type(got) is type(expected)
            assert (got.code, got.http_status, got.message, got.existing_action_id) == (
                expected.code,
                expected.http_status,
                expected.message,
                expected.existing_action_id,
            )
        # argument errors too: the same parameters refuse the same arguments...
        with pytest.raises(TypeError) as caught:
            await aqueue.create_action("web-1", "restart_service", "a", no_such_argument=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError) as expected_error:
            queue.create_action("web-1", "restart_service", "a", no_such_argument=1)  # type: ignore[call-arg]
        assert str(caught.value) == "Async" + str(expected_error.value)
        # ...and a value of the wrong type reaches the same method
        with pytest.raises(TypeError) as caught:
            await aqueue.get_action("1")  # type: ignore[arg-type]
        with pytest.raises(TypeError) as expected_error:
            queue.get_action("1")  # type: ignore[arg-type]
        assert str(caught.value) == str(expected_error.value)

    run(scenario())


def test_open_and_constructor(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"

    async def scenario() -> None:
        aqueue = await AsyncActionQueue.open(db, busy_timeout_seconds=5, max_workers=2)
        await aqueue.create_server("web-1")
        assert repr(aqueue) == f"AsyncActionQueue({str(db)!r})"
        aqueue.close()
        with pytest.raises(RuntimeError):
            await aqueue.get_server("web-1")

    run(scenario())
    built = AsyncActionQueue(db, output_cap_chars=5)
    assert built.output_cap_chars == 5 and built.path == db
    assert run(built.get_server("web-1")).id == "web-1"
    with pytest.raises(ValueError):
        AsyncActionQueue(None, max_workers=0)
    with pytest.raises(TypeError):
        AsyncActionQueue.from_queue("q.sqlite3")  # type: ignore[arg-type]


# The loop keeps serving while a call waits ----------------------------------


@needs_proc
def test_loop_keeps_serving_while_a_call_waits_on_a_lock(tmp_path: Path) -> None:
    """A create waits for another process's write lock (busy timeout 60 s). Once
    its worker thread is seen inside the busy handler, the loop still runs other
    coroutines (a ping-pong between two tasks) and serves other queue calls
    (reads, which WAL lets through); the create is still waiting all along, and
    completes once the lock is released. No durations: the create cannot end
    before the release, which the test sends only after the rest was served."""
    db = tmp_path / "q.sqlite3"
    aqueue = AsyncActionQueue(db, busy_timeout_seconds=60)
    sync = aqueue.queue
    sync.create_server("web-1")
    before = sync.create_action("web-1", "clear_logs")
    idle = set(threads_in_busy_wait())
    holder = LockHolder(db)

    async def scenario() -> actionq.Action:
        create = asyncio.create_task(aqueue.create_action("web-1", "restart_service", "nginx"))
        polls = 0
        # the poll is itself a coroutine the loop keeps running
        while not (set(threads_in_busy_wait()) - idle):
            assert not create.done(), create
            polls += 1
            await asyncio.sleep(0)
        # meanwhile: other coroutines...
        pings: asyncio.Queue[int] = asyncio.Queue()
        pongs: asyncio.Queue[int] = asyncio.Queue()

        async def ponger() -> None:
            while (n := await pings.get()) >= 0:
                await pongs.put(n + 1)

        pong_task = asyncio.create_task(ponger())
        for n in range(100):
            await pings.put(n)
            assert await pongs.get() == n + 1
        await pings.put(-1)
        await pong_task
        # ...and other queue calls
        assert (await aqueue.get_action(before.id)) == before
        assert (await aqueue.list_actions()).total == 1
        assert await aqueue.get_server("web-1") == sync.get_server("web-1")
        assert not create.done(), create  # still waiting: it cannot end before the release
        await asyncio.get_running_loop().run_in_executor(None, holder.release)
        return await create

    try:
        created = asyncio.run(scenario())
    finally:
        holder.release()
    assert created.status == "approved" and created.service_name == "nginx.service"
    assert sync.list_actions().total == 2
    aqueue.close()


@needs_proc
def test_a_busy_timeout_is_the_same_storage_error(tmp_path: Path) -> None:
    """Past its busy timeout the awaited call raises StorageError, as the blocking one does."""
    db = tmp_path / "q.sqlite3"
    aqueue = AsyncActionQueue(db, busy_timeout_seconds=0.05)
    aqueue.queue.create_server("web-1")
    holder = LockHolder(db)
    try:
        with pytest.raises(actionq.StorageError) as sync_error:
            aqueue.queue.create_action("web-1", "clear_logs")
        with pytest.raises(actionq.StorageError) as async_error:
            run(aqueue.create_action("web-1", "clear_logs"))
    finally:
        holder.release()
    assert async_error.value.message == sync_error.value.message
    assert run(aqueue.create_action("web-1", "clear_logs")).status == "approved"
    aqueue.close()


def test_in_memory_calls_run_in_the_coroutine() -> None:
    """An in-memory call never waits, so it needs no worker thread: its
    coroutine finishes at its first step, without ever suspending."""
    aqueue = AsyncActionQueue()
    step = aqueue.create_server("web-1").__await__()
    with pytest.raises(StopIteration) as finished:
        next(step)
    assert isinstance(finished.value.value, actionq.Server) and finished.value.value.id == "web-1"
