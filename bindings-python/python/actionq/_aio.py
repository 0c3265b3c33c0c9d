"""`AsyncActionQueue`: :class:`actionq.ActionQueue` for asyncio hosts.

Every operation of ``ActionQueue`` is here as a coroutine method with the same
parameters, the same records and the same errors, written out below: each
awaits the blocking method of the same name (the tests hold both classes to the
core's ``actionq.OPERATIONS`` and to one signature per method). The read-only
properties read the blocking queue's. ``as_principal`` and ``by`` return an ``AsyncActionQueue`` too, over the
queue acting as that principal or name, on the same thread pool.

A call on a SQLite or PostgreSQL queue can wait: for the disk or the network,
or up to the busy timeout for another process's lock. So each one runs on a
small thread pool owned by the queue, and the coroutine awaits it; the event
loop keeps serving meanwhile (the binding releases the GIL while a call waits).
A call on an in-memory queue never waits and costs about a microsecond, less
than a thread hand-off, so it runs in the coroutine itself.

``claim_next`` and ``events_since`` with ``wait_seconds`` hold no thread while
they wait: each try runs without a wait (as any call), and between tries the
coroutine awaits a future that the queue's change callback
(``ActionQueue.on_change``, registered before the try, so no change is missed)
completes through ``loop.call_soon_threadsafe``. Cancelling such a wait
unregisters its callback and leaves nothing behind.

Cancelling an awaiting coroutine does not stop its call: the call finishes on
its worker (a create still creates) and only its result is dropped, as with any
blocking call handed to a thread.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, TypeVar, cast

from actionq import limits
from actionq._actionq import (
    Action,
    ActionPage,
    ActionQueue,
    ActionStatus,
    AuditReport,
    ChangeSubscription,
    Claim,
    Credential,
    Delivery,
    Event,
    OutputChunk,
    Export,
    IssuedCredential,
    JobLease,
    ManualClock,
    Principal,
    PruneReport,
    Server,
    _calls_may_wait,
)

__all__ = ["DEFAULT_MAX_WORKERS", "AsyncActionQueue", "AsyncExport"]

DEFAULT_MAX_WORKERS = 8
"""Threads per SQLite or PostgreSQL queue: calls that may run at once. One
writer and four readers (the SQLite store's default pool) can work in parallel;
the spare threads let reads proceed while writes queue for a lock."""

T = TypeVar("T")


def _wake_threadsafe(loop: asyncio.AbstractEventLoop, woken: asyncio.Future[bool]) -> None:
    """The change callback: completes ``woken`` with ``True`` on its loop (from any thread)."""
    try:
        loop.call_soon_threadsafe(_settle, woken, True)
    except RuntimeError:
        pass  # the loop is closed: nobody awaits any more


def _settle(woken: asyncio.Future[bool], changed: bool) -> None:
    """Completes ``woken`` with ``changed`` unless the change or the timer came first."""
    if not woken.done():
        woken.set_result(changed)


class AsyncActionQueue:
    """The remediation action queue for asyncio: ``ActionQueue``'s methods as
    coroutines that never block the event loop (see the module docstring).

    ``AsyncActionQueue(path, **options)`` opens the queue like
    ``ActionQueue(path, **options)``, synchronously (opening may migrate the file
    or wait for its lock); inside a running loop prefer
    ``await AsyncActionQueue.open(path, **options)``, or wrap an open queue with
    :meth:`from_queue`. ``max_workers`` bounds the thread pool (default
    :data:`DEFAULT_MAX_WORKERS`).
    """

    __slots__ = ("_queue", "_executor")

    _queue: ActionQueue
    _executor: ThreadPoolExecutor | None

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        whitelist: str | Mapping[str, Any] | None = None,
        output_cap_chars: int | None = None,
        durability: Literal["normal", "full"] | None = None,
        busy_timeout_seconds: float | None = None,
        default_lease_seconds: float | None = None,
        max_lease_seconds: float | None = None,
        expire_leases_on_read: bool | None = None,
        clock: ManualClock | None = None,
        max_workers: int | None = None,
    ) -> None:
        queue = ActionQueue(
            path,
            whitelist=whitelist,
            output_cap_chars=output_cap_chars,
            durability=durability,
            busy_timeout_seconds=busy_timeout_seconds,
            default_lease_seconds=default_lease_seconds,
            max_lease_seconds=max_lease_seconds,
            expire_leases_on_read=expire_leases_on_read,
            clock=clock,
        )
        self._adopt(queue, max_workers)

    def _adopt(self, queue: ActionQueue, max_workers: int | None) -> None:
        if not isinstance(queue, ActionQueue):
            raise TypeError(f"expected an actionq.ActionQueue, not {type(queue).__name__}")
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1 (got {max_workers})")
        self._queue = queue
        self._executor = (
            ThreadPoolExecutor(max_workers=max_workers or DEFAULT_MAX_WORKERS, thread_name_prefix="actionq")
            if _calls_may_wait(queue)
            else None  # in memory: calls never wait
        )

    @classmethod
    def from_queue(cls, queue: ActionQueue, *, max_workers: int | None = None) -> AsyncActionQueue:
        """Wraps an open ``ActionQueue`` (both may be used; they are one queue)."""
        self = cls.__new__(cls)
        self._adopt(queue, max_workers)
        return self

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        whitelist: str | Mapping[str, Any] | None = None,
        output_cap_chars: int | None = None,
        durability: Literal["normal", "full"] | None = None,
        busy_timeout_seconds: float | None = None,
        default_lease_seconds: float | None = None,
        max_lease_seconds: float | None = None,
        expire_leases_on_read: bool | None = None,
        clock: ManualClock | None = None,
        max_workers: int | None = None,
    ) -> AsyncActionQueue:
        """Opens the queue (arguments as ``ActionQueue``) off the event loop."""
        opening = functools.partial(
            ActionQueue,
            path,
            whitelist=whitelist,
            output_cap_chars=output_cap_chars,
            durability=durability,
            busy_timeout_seconds=busy_timeout_seconds,
            default_lease_seconds=default_lease_seconds,
            max_lease_seconds=max_lease_seconds,
            expire_leases_on_read=expire_leases_on_read,
            clock=clock,
        )
        queue = await asyncio.get_running_loop().run_in_executor(None, opening)
        return cls.from_queue(queue, max_workers=max_workers)

    def _view(self, queue: ActionQueue) -> AsyncActionQueue:
        """``queue`` (a view of this one) on this queue's thread pool."""
        view = type(self).__new__(type(self))
        view._queue = queue
        view._executor = self._executor
        return view

    async def _run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``: on the thread pool if calls may wait, else here."""
        if self._executor is None:
            return call(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(call, *args, **kwargs)
        )

    async def _waiting(
        self,
        wait_seconds: float | None,
        server_id: str | None,
        call: Callable[..., T],
        /,
        *args: Any,
        output: bool = False,
        asleep_first: Callable[[], bool] | None = None,
    ) -> T:
        """``call(*args)`` (a call that may find nothing) tried again at each
        change of the queue concerning ``server_id`` (any event when ``None``;
        its live output with ``output``) until it finds something or
        ``wait_seconds`` (checked by the core) ends. Between tries only a
        future is awaited: no thread. When ``asleep_first()`` (a check that
        reads no store) says the first try would find nothing, it is skipped."""
        loop = asyncio.get_running_loop()
        if not wait_seconds or not 0 < wait_seconds <= limits.MAX_WAIT_SECONDS:
            # No wait (None, 0) is one try; a wait out of range is refused by
            # the core (InvalidInputError) before anything is tried.
            return await self._run(call, *args, wait_seconds=wait_seconds)
        deadline = loop.time() + wait_seconds
        first = True
        while True:
            # True on a change, False when the timer ends the wait: a future
            # and a timer, no task (an idle fleet's renewals are most requests).
            woken: asyncio.Future[bool] = loop.create_future()
            subscription = self._queue.on_change(
                functools.partial(_wake_threadsafe, loop, woken), server_id, output=output
            )
            timer: asyncio.TimerHandle | None = None
            try:
                if first and asleep_first is not None and asleep_first():
                    # What the try would find: nothing (a claim's None).
                    found = cast(T, None)
                else:
                    found = await self._run(call, *args)
                first = False
                remaining = deadline - loop.time()
                if found or remaining <= 0:
                    return found
                timer = loop.call_later(remaining, _settle, woken, False)
                if not await woken:
                    return found
            finally:
                subscription.cancel()
                woken.cancel()
                if timer is not None:
                    timer.cancel()

    @property
    def queue(self) -> ActionQueue:
        """The underlying (blocking) ``ActionQueue``."""
        return self._queue

    def close(self) -> None:
        """Stops the thread pool, shared with the views ``as_principal`` and
        ``by`` made, once the calls already started finish (without waiting for
        them); later calls raise ``RuntimeError``. The queue itself closes when
        the last reference to it goes."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"Async{self._queue!r}"

    # Who acts (no I/O: not coroutines) ----------------------------------------

    @property
    def principal(self) -> Principal | None:
        """The principal this queue acts as (``as_principal``), else ``None``."""
        return self._queue.principal

    def as_principal(self, principal: Principal) -> AsyncActionQueue:
        """This queue as ``principal`` sees it (``ActionQueue.as_principal``),
        on the same thread pool; cheap, one per request is fine."""
        return self._view(self._queue.as_principal(principal))

    def by(self, name: str) -> AsyncActionQueue:
        """This queue acting as the trusted host for ``name``
        (``ActionQueue.by``), on the same thread pool."""
        return self._view(self._queue.by(name))

    # Settings (read-only, never block) ----------------------------------------

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for an in-memory or PostgreSQL queue."""
        return self._queue.path

    @property
    def whitelist_json(self) -> str:
        """The whitelist in force, as JSON config text."""
        return self._queue.whitelist_json

    @property
    def action_types(self) -> list[str]:
        """The whitelisted action types, sorted."""
        return self._queue.action_types

    @property
    def output_cap_chars(self) -> int:
        """Maximum characters kept of ``stdout``/``stderr``."""
        return self._queue.output_cap_chars

    @property
    def default_lease_seconds(self) -> float:
        """The lease a claim or heartbeat gets when it names none, in seconds."""
        return self._queue.default_lease_seconds

    @property
    def expire_leases_on_read(self) -> bool:
        """Whether reads first fail the actions whose lease ran out."""
        return self._queue.expire_leases_on_read

    # Waiting (no I/O: not coroutines) ----------------------------------------

    def on_change(
        self, callback: Callable[[], object], server_id: str | None = None, *, output: bool = False
    ) -> ChangeSubscription:
        """``callback()`` once at the queue's next change concerning
        ``server_id`` (``ActionQueue.on_change``)."""
        return self._queue.on_change(callback, server_id, output=output)

    def waiters(self) -> int:
        """Waits registered now (``ActionQueue.waiters``)."""
        return self._queue.waiters()

    # Servers -------------------------------------------------------------------

    async def create_server(self, id: str, hostname: str | None = None) -> Server:
        """Registers a server (``ActionQueue.create_server``)."""
        return await self._run(self._queue.create_server, id, hostname)

    async def get_server(self, id: str) -> Server:
        """The server ``id`` (``ActionQueue.get_server``)."""
        return await self._run(self._queue.get_server, id)

    async def list_servers(self) -> list[Server]:
        """Every registered server, by id (``ActionQueue.list_servers``)."""
        return await self._run(self._queue.list_servers)

    async def pause_server(self, id: str) -> Server:
        """Maintenance mode on (``ActionQueue.pause_server``)."""
        return await self._run(self._queue.pause_server, id)

    async def unpause_server(self, id: str) -> Server:
        """Maintenance mode off (``ActionQueue.unpause_server``)."""
        return await self._run(self._queue.unpause_server, id)

    # Actions -------------------------------------------------------------------

    async def create_action(
        self,
        server_id: str,
        action_type: str,
        service_name: str | None = None,
        *,
        params: Mapping[str, str | int] | None = None,
        alert_id: int | None = None,
        created_by: str = limits.DASHBOARD,
    ) -> Action:
        """Queues a whitelisted action (``ActionQueue.create_action``)."""
        return await self._run(
            self._queue.create_action,
            server_id,
            action_type,
            service_name,
            params=params,
            alert_id=alert_id,
            created_by=created_by,
        )

    async def create_action_json(self, request: str) -> Action:
        """Queues an action from a create request in JSON
        (``ActionQueue.create_action_json``)."""
        return await self._run(self._queue.create_action_json, request)

    async def get_action(self, id: int) -> Action:
        """The action ``id`` (``ActionQueue.get_action``)."""
        return await self._run(self._queue.get_action, id)

    async def list_actions(
        self,
        status: ActionStatus | str | None = None,
        server_id: str | None = None,
        action_type: str | None = None,
        limit: int = limits.DEFAULT_PAGE_LIMIT,
        offset: int = 0,
        before_id: int | None = None,
    ) -> ActionPage:
        """A page of actions, newest first (``ActionQueue.list_actions``)."""
        return await self._run(self._queue.list_actions, status, server_id, action_type, limit, offset, before_id)

    async def list_server_actions(
        self,
        server_id: str,
        status: ActionStatus | str | None = None,
        limit: int = limits.DEFAULT_PAGE_LIMIT,
        offset: int = 0,
        before_id: int | None = None,
    ) -> ActionPage:
        """A page of one server's actions (``ActionQueue.list_server_actions``)."""
        return await self._run(self._queue.list_server_actions, server_id, status, limit, offset, before_id)

    async def count_actions(self) -> list[tuple[str, ActionStatus, int]]:
        """``(server_id, status, count)`` per pair (``ActionQueue.count_actions``)."""
        return await self._run(self._queue.count_actions)

    async def events_since(
        self,
        cursor: int = 0,
        limit: int = limits.DEFAULT_EVENTS_LIMIT,
        wait_seconds: float | None = None,
    ) -> list[Event]:
        """Audit events after ``cursor``, oldest first; with ``wait_seconds``, an
        empty answer waits for the next event, holding no thread
        (``ActionQueue.events_since``)."""
        return await self._waiting(wait_seconds, None, self._queue.events_since, cursor, limit)

    # Decisions -----------------------------------------------------------------

    async def approve_action(self, id: int, by: str | None = None) -> Action:
        """pending → approved (``ActionQueue.approve_action``)."""
        return await self._run(self._queue.approve_action, id, by)

    async def reject_action(self, id: int, reason: str, by: str | None = None) -> Action:
        """pending → rejected (``ActionQueue.reject_action``)."""
        return await self._run(self._queue.reject_action, id, reason, by)

    async def cancel_action(self, id: int, by: str | None = None) -> Action:
        """pending | approved → cancelled (``ActionQueue.cancel_action``)."""
        return await self._run(self._queue.cancel_action, id, by)

    # The agent side ------------------------------------------------------------

    async def claim_next(
        self,
        server_id: str,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
    ) -> Claim | None:
        """Claims the server's oldest approved action; with ``wait_seconds``,
        waits for one, holding no thread (``ActionQueue.claim_next``)."""
        return await self._waiting(
            wait_seconds,
            server_id,
            self._queue.claim_next,
            server_id,
            lease_seconds,
            asleep_first=functools.partial(self._queue._claim_would_wait, server_id, lease_seconds),
        )

    async def heartbeat(self, id: int, lease_token: str, lease_seconds: float | None = None) -> Action:
        """Extends the lease (``ActionQueue.heartbeat``)."""
        return await self._run(self._queue.heartbeat, id, lease_token, lease_seconds)

    async def await_cancel(
        self,
        id: int,
        lease_token: str,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
    ) -> Action:
        """Extends the lease, then waits for a cancel request, holding no
        thread (``ActionQueue.await_cancel``): one renewal, then a look that
        writes nothing at each change of the queue."""
        if wait_seconds and not 0 < wait_seconds <= limits.MAX_WAIT_SECONDS:
            # Refused by the core (InvalidInputError) before anything is done.
            return await self._run(self._queue.await_cancel, id, lease_token, lease_seconds, wait_seconds)
        renewed = await self._run(self._queue.await_cancel, id, lease_token, lease_seconds)
        if not wait_seconds or renewed.cancel_requested_at is not None:
            return renewed
        asked = await self._waiting(wait_seconds, renewed.server_id, self._queue._cancel_request, id)
        return renewed if asked is None else asked

    async def report_result(
        self,
        id: int,
        lease_token: str,
        exit_code: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> Action:
        """Finishes the claimed action (``ActionQueue.report_result``)."""
        return await self._run(self._queue.report_result, id, lease_token, exit_code, stdout, stderr)

    async def report_cancelled(
        self,
        id: int,
        lease_token: str,
        exit_code: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> Action:
        """Finishes the claimed action stopped on a cancel request
        (``ActionQueue.report_cancelled``)."""
        return await self._run(self._queue.report_cancelled, id, lease_token, exit_code, stdout, stderr)

    async def append_output(
        self,
        id: int,
        lease_token: str,
        seq: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> bool:
        """Adds a chunk of live output (``ActionQueue.append_output``)."""
        return await self._run(self._queue.append_output, id, lease_token, seq, stdout, stderr)

    async def output_since(self, id: int, after: int = 0, wait_seconds: float | None = None) -> list[OutputChunk]:
        """Live output after chunk ``after``; with ``wait_seconds``, waits for
        a chunk or the action's end, holding no thread (``ActionQueue.output_since``)."""
        # Chunks wake the output readers of the action's server (one read to
        # learn it; NotFound for an unknown action, as the core's own answer).
        server_id = (await self._run(self._queue.get_action, id)).server_id if wait_seconds else None
        return await self._waiting(
            wait_seconds, server_id, self._queue.output_since, id, after, output=server_id is not None
        )

    # Expiry and audit ----------------------------------------------------------

    async def expire_leases(self) -> list[Action]:
        """Fails the actions whose lease ran out (``ActionQueue.expire_leases``)."""
        return await self._run(self._queue.expire_leases)

    async def expire_approvals(self) -> list[Action]:
        """Rejects the pending actions whose approval ttl ran out
        (``ActionQueue.expire_approvals``)."""
        return await self._run(self._queue.expire_approvals)

    @property
    def lease_expiries(self) -> int:
        """Actions this queue object failed for a lost lease
        (``ActionQueue.lease_expiries``; a counter: never blocks)."""
        return self._queue.lease_expiries

    async def verify_audit(self) -> AuditReport:
        """Walks the audit chain (``ActionQueue.verify_audit``)."""
        return await self._run(self._queue.verify_audit)

    async def prune(self, older_than_seconds: int) -> PruneReport:
        """Deletes old finished history behind a checkpoint (``ActionQueue.prune``)."""
        return await self._run(self._queue.prune, older_than_seconds)

    async def export(self, before: datetime) -> AsyncExport:
        """Old finished actions as JSON Lines (``ActionQueue.export``), an async
        iterator: ``async for line in await queue.export(before)``."""
        return AsyncExport(self, await self._run(self._queue.export, before))

    # Credentials ---------------------------------------------------------------

    async def issue_credential(self, name: str, role: str, server_id: str | None = None) -> IssuedCredential:
        """Issues a credential, secret shown this once (``ActionQueue.issue_credential``)."""
        return await self._run(self._queue.issue_credential, name, role, server_id)

    async def list_credentials(self) -> list[Credential]:
        """Every credential, never a secret (``ActionQueue.list_credentials``)."""
        return await self._run(self._queue.list_credentials)

    async def revoke_credential(self, id: int) -> Credential:
        """Revokes credential ``id`` at once (``ActionQueue.revoke_credential``)."""
        return await self._run(self._queue.revoke_credential, id)

    async def authenticate(self, secret: str) -> Principal:
        """The principal a secret belongs to (``ActionQueue.authenticate``)."""
        return await self._run(self._queue.authenticate, secret)

    async def take_lease(self, name: str, holder: str, ttl_seconds: float) -> JobLease:
        """Takes or renews a job lease (``ActionQueue.take_lease``)."""
        return await self._run(self._queue.take_lease, name, holder, ttl_seconds)

    async def release_lease(self, name: str, holder: str) -> bool:
        """Gives up a job lease (``ActionQueue.release_lease``)."""
        return await self._run(self._queue.release_lease, name, holder)

    async def register_delivery(self, name: str, kind: str) -> Delivery:
        """A sink's delivery cursor (``ActionQueue.register_delivery``)."""
        return await self._run(self._queue.register_delivery, name, kind)

    async def record_delivery(
        self,
        name: str,
        holder: str,
        event_id: int,
        outcome: Literal["skipped", "sent", "failed", "dead"],
        error: str | None = None,
    ) -> Delivery:
        """Records an event's delivery outcome (``ActionQueue.record_delivery``)."""
        return await self._run(self._queue.record_delivery, name, holder, event_id, outcome, error)

    async def record_sent(self, name: str, holder: str, through_event_id: int, sent: int) -> Delivery:
        """Records a batch of sent or skipped events (``ActionQueue.record_sent``)."""
        return await self._run(self._queue.record_sent, name, holder, through_event_id, sent)

    async def list_deliveries(self) -> list[Delivery]:
        """Every sink's delivery cursor (``ActionQueue.list_deliveries``)."""
        return await self._run(self._queue.list_deliveries)


class AsyncExport:
    """``AsyncActionQueue.export()``'s async iterator: each step is one step of
    ``Export`` (a page read now and then) on the queue's thread pool."""

    def __init__(self, queue: AsyncActionQueue, lines: Export) -> None:
        self._queue = queue
        self._lines = lines

    def __aiter__(self) -> AsyncExport:
        return self

    async def __anext__(self) -> str:
        line: str | None = await self._queue._run(next, self._lines, None)
        if line is None:
            raise StopAsyncIteration
        return line
