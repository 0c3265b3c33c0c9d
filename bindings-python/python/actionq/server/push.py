"""Push over HTTP (docs/contract/push.md#over-http): the claim that waits and
the events stream, both built on the queue's own waits
(``AsyncActionQueue.claim_next``/``events_since`` with ``wait_seconds``, which
hold no thread while they wait).

A wait ends early in two cases, and then leaves nothing behind (its queue
wait is cancelled, which unregisters it):

- **the client goes away**: a watcher reads the request's ASGI ``receive``
  (the body has been read, so the next message is ``http.disconnect``);
- **the server shuts down**: :meth:`Closing.close` (called by
  ``actionq-server`` on SIGTERM/SIGINT, before uvicorn waits for open
  connections) ends every wait and stream at once, so a graceful shutdown
  never waits for a long-poll. A claim wait ended that way answers 204.

A claim that races a disconnect: the claim is one transaction on a worker
thread; if the client leaves while it runs, the claim is made and its answer
is lost, exactly as when the network drops any claim's response. Nobody holds
its lease token, so nobody runs it, and its lease ends it as today (``failed``,
lease lost) — it is never stranded. Every other disconnect claims nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

import actionq
from actionq import limits

__all__ = ["STREAM_KEEPALIVE_SECONDS", "Closing", "EventStream", "claim_waiting", "until_stopped"]

STREAM_KEEPALIVE_SECONDS = 10.0
"""Longest quiet time on an events stream before a comment line (the contract:
at least every 15 s), so proxies and clients keep an idle connection open."""

T = TypeVar("T")
_log = logging.getLogger("actionq.server")


class Closing:
    """Set once when the server shuts down; every open wait and stream ends then."""

    def __init__(self) -> None:
        self._closed = False
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = set()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Ends every wait and stream, now and from now on. Safe from a signal
        handler or another thread."""
        self._closed = True
        for loop, future in list(self._waiters):
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
                loop.call_soon_threadsafe(_finish, future)

    def watch(self, stop: asyncio.Future[Any]) -> Callable[[], None]:
        """Completes ``stop`` (on its loop) when the server shuts down, at once
        if it has; returns the function that unregisters it."""
        entry = (stop.get_loop(), stop)
        self._waiters.add(entry)
        if self._closed:  # closed before, or between the check and the registration
            _finish(stop)
        return functools.partial(self._waiters.discard, entry)


def _finish(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_stopped(work: Awaitable[T], stop: asyncio.Future[Any]) -> tuple[bool, T | None]:
    """``(True, result of work)``, or ``(False, None)`` if ``stop`` is done
    first, in which case ``work`` is cancelled (and its queue wait with it).
    An error of ``work`` is raised; ``stop`` is left as it is. Callbacks, not
    ``asyncio.wait``: one task (``work``'s) per call."""
    task = asyncio.ensure_future(work)

    def stopped(_: asyncio.Future[Any]) -> None:
        task.cancel()

    stop.add_done_callback(stopped)
    try:
        return True, await task
    except asyncio.CancelledError:
        # `work` cancelled by `stop`, not this task by its caller.
        current = asyncio.current_task()
        if stop.done() and task.cancelled() and (current is None or not current.cancelling()):
            return False, None
        raise
    finally:
        stop.remove_done_callback(stopped)
        task.cancel()


class _Watch:
    """The disconnect and shutdown watchers of one request, cancelled together:
    ``stopped`` completes when the client leaves or the server shuts down."""

    def __init__(self, receive: Receive, closing: Closing) -> None:
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gone = asyncio.ensure_future(_disconnected(receive))
        self.gone.add_done_callback(lambda _: _finish(self.stopped))
        self.unwatch = closing.watch(self.stopped)

    async def run(self, work: Awaitable[T]) -> tuple[bool, T | None]:
        """``work`` unless the client leaves or the server shuts down first."""
        return await until_stopped(work, self.stopped)

    def cancel(self) -> None:
        self.unwatch()
        self.gone.cancel()
        self.stopped.cancel()


async def claim_waiting(
    caller: actionq.AsyncActionQueue,
    server_id: str,
    lease_seconds: float | None,
    wait_seconds: float,
    receive: Receive,
    closing: Closing,
) -> actionq.Claim | None:
    """``claim_next`` with a wait that ends early (nothing claimed) when the
    client leaves or the server shuts down."""
    watch = _Watch(receive, closing)
    try:
        _, claim = await watch.run(caller.claim_next(server_id, lease_seconds, wait_seconds=wait_seconds))
        return claim
    finally:
        watch.cancel()


def _message(event: actionq.Event) -> bytes:
    # The event's JSON is one line (the core encodes it without newlines).
    return f"id: {event.id}\nevent: action\ndata: {event.to_json()}\n\n".encode()


class EventStream(Response):
    """``text/event-stream`` of the audit events after a cursor: one message
    per event (``id:``, ``event: action``, ``data:`` the event JSON), a comment
    line after :data:`STREAM_KEEPALIVE_SECONDS` of quiet. It ends when the
    client leaves or the server shuts down; a read error ends it too (the
    client resumes with ``Last-Event-ID``)."""

    media_type = "text/event-stream"
    _what = "events"

    def __init__(
        self, caller: actionq.AsyncActionQueue, cursor: int, first: list[Any], closing: Closing
    ) -> None:
        # Not Response.__init__: a body would give the stream a Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.caller = caller
        self.cursor = cursor
        self.first = first
        self.closing = closing

    async def _batches(self) -> AsyncGenerator[list[Any], None]:
        while True:
            yield await self.caller.events_since(
                self.cursor, limits.MAX_EVENTS_LIMIT, wait_seconds=STREAM_KEEPALIVE_SECONDS
            )

    def _opening(self) -> bytes:
        return b": events after %d\n\n" % self.cursor

    def _encode(self, items: list[Any]) -> bytes:
        self.cursor = items[-1].id
        return b"".join(_message(e) for e in items)

    async def _ended(self) -> bytes | None:
        """The last message when the stream is over (never, for events)."""
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        # At once: a first line (the client knows the stream is open) and
        # what the route read.
        opening = self._opening() + (self._encode(self.first) if self.first else b"")
        await send({"type": "http.response.body", "body": opening, "more_body": True})
        watch = _Watch(receive, self.closing)
        batches = self._batches()
        try:
            while not self.closing.closed:
                going, items = await watch.run(batches.__anext__())
                if not going or items is None:
                    break
                if items:
                    body = self._encode(items)
                else:
                    last = await self._ended()
                    if last is not None:
                        await send({"type": "http.response.body", "body": last, "more_body": True})
                        break
                    body = b": keep-alive\n\n"
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except (actionq.ActionQueueError, OSError) as error:
            _log.warning("%s stream ended after %d: %s", self._what, self.cursor, error)
        finally:
            watch.cancel()
            await batches.aclose()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class OutputStream(EventStream):
    """``text/event-stream`` of an action's live output after a chunk: one
    message per chunk (``id:`` its seq, ``event: output``, ``data:`` the chunk
    JSON), a comment line after :data:`STREAM_KEEPALIVE_SECONDS` of quiet,
    and, once the action has finished, one ``event: end`` message whose data
    is the action JSON; then it ends."""

    _what = "output"

    def __init__(
        self,
        caller: actionq.AsyncActionQueue,
        action_id: int,
        cursor: int,
        first: list[Any],
        closing: Closing,
    ) -> None:
        super().__init__(caller, cursor, first, closing)
        self.action_id = action_id

    async def _batches(self) -> AsyncGenerator[list[Any], None]:
        while True:
            yield await self.caller.output_since(self.action_id, self.cursor, wait_seconds=STREAM_KEEPALIVE_SECONDS)

    def _opening(self) -> bytes:
        return b": output of action %d after %d\n\n" % (self.action_id, self.cursor)

    def _encode(self, items: list[Any]) -> bytes:
        self.cursor = items[-1].seq
        return b"".join(f"id: {c.seq}\nevent: output\ndata: {c.to_json()}\n\n".encode() for c in items)

    async def _ended(self) -> bytes | None:
        action = await self.caller.get_action(self.action_id)
        if action.status in (actionq.ActionStatus.PENDING, actionq.ActionStatus.APPROVED, actionq.ActionStatus.EXECUTING):
            return None
        return f"event: end\ndata: {action.to_json()}\n\n".encode()
