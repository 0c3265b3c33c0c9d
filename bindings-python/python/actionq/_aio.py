"""`AsyncActionQueue`: :class:`actionq.ActionQueue` for asyncio hosts.

Every public method of ``ActionQueue`` is here as a coroutine method with the
same parameters, the same records and the same errors: the class body below
does not list them, they are derived from ``ActionQueue`` when this module is
imported, so the two cannot drift apart (the stub ``_aio.pyi`` types them and
the tests compare both). The read-only properties are shared as they are.

A call on a SQLite queue can wait: for the disk, or up to the busy timeout for
another process's write lock. So each one runs on a small thread pool owned by
the queue, and the coroutine awaits it; the event loop keeps serving meanwhile
(the binding releases the GIL while a call waits). A call on an
in-memory queue never waits and costs about a microsecond, less than a thread
hand-off, so it runs in the coroutine itself.

Cancelling an awaiting coroutine does not stop its call: the call finishes on
its worker (a create still creates) and only its result is dropped, as with any
blocking call handed to a thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from actionq._actionq import ActingQueue, ActionQueue, Principal

__all__ = ["DEFAULT_MAX_WORKERS", "AsyncActingQueue", "AsyncActionQueue"]

DEFAULT_MAX_WORKERS = 8
"""Threads per SQLite queue: calls that may run at once. One writer and four
readers (the store's default pool) can work in parallel; the spare threads let
reads proceed while writes queue for a lock."""


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

    def __init__(self, *args: Any, max_workers: int | None = None, **options: Any) -> None:
        self._adopt(ActionQueue(*args, **options), max_workers)

    def _adopt(self, queue: ActionQueue, max_workers: int | None) -> None:
        if not isinstance(queue, ActionQueue):
            raise TypeError(f"expected an actionq.ActionQueue, not {type(queue).__name__}")
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1 (got {max_workers})")
        self._queue = queue
        self._executor = (
            None
            if queue.path is None  # in memory: calls never wait
            else ThreadPoolExecutor(
                max_workers=max_workers or DEFAULT_MAX_WORKERS, thread_name_prefix="actionq"
            )
        )

    @classmethod
    def from_queue(cls, queue: ActionQueue, *, max_workers: int | None = None) -> AsyncActionQueue:
        """Wraps an open ``ActionQueue`` (both may be used; they are one queue)."""
        self = cls.__new__(cls)
        self._adopt(queue, max_workers)
        return self

    @classmethod
    async def open(cls, *args: Any, max_workers: int | None = None, **options: Any) -> AsyncActionQueue:
        """Opens the queue (arguments as ``ActionQueue``) off the event loop."""
        loop = asyncio.get_running_loop()
        queue = await loop.run_in_executor(None, functools.partial(ActionQueue, *args, **options))
        return cls.from_queue(queue, max_workers=max_workers)

    @property
    def queue(self) -> ActionQueue:
        """The underlying (blocking) ``ActionQueue``."""
        return self._queue

    def close(self) -> None:
        """Stops the thread pool once the calls already started finish (without
        waiting for them); later calls raise ``RuntimeError``. The queue itself
        closes when the last reference to it goes."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"Async{self._queue!r}"


def _coroutine_method(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``await AsyncActionQueue.<name>(...)``: ``ActionQueue.<name>`` off the loop."""

    async def call(self: AsyncActionQueue, /, *args: Any, **kwargs: Any) -> Any:
        if self._executor is None:
            return method(self._queue, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(method, self._queue, *args, **kwargs))

    call.__name__ = name
    call.__qualname__ = f"AsyncActionQueue.{name}"
    call.__doc__ = (method.__doc__ or "").strip() + "\n\n(Awaitable: runs off the event loop.)"
    call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return call


def _shared_property(name: str) -> property:
    def get(self: AsyncActionQueue) -> Any:
        return getattr(self._queue, name)

    get.__name__ = name
    return property(get, doc=getattr(ActionQueue, name).__doc__)


def _derive() -> None:
    """Adds ``ActionQueue``'s public methods (as coroutines) and properties."""
    for name, attr in vars(ActionQueue).items():
        if name.startswith("_"):
            continue
        if inspect.isdatadescriptor(attr):  # a #[getter]: never blocks
            setattr(AsyncActionQueue, name, _shared_property(name))
        elif callable(attr):
            setattr(AsyncActionQueue, name, _coroutine_method(name, attr))
    # The constructor and `open` take ActionQueue's arguments, plus max_workers.
    opening = list(inspect.signature(ActionQueue).parameters.values())
    opening.append(inspect.Parameter("max_workers", inspect.Parameter.KEYWORD_ONLY, default=None))
    for first, function in (("self", AsyncActionQueue.__init__), ("cls", vars(AsyncActionQueue)["open"].__func__)):
        head = inspect.Parameter(first, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        function.__signature__ = inspect.Signature([head, *opening])


_derive()


class AsyncActingQueue:
    """``ActingQueue`` for asyncio: the queue as one principal sees it, its
    methods as coroutines run like :class:`AsyncActionQueue`'s (on the same
    thread pool). Made by ``AsyncActionQueue.as_principal(principal)``; cheap,
    one per request is fine."""

    __slots__ = ("_acting", "_owner")

    _acting: ActingQueue
    _owner: AsyncActionQueue

    def __init__(self, owner: AsyncActionQueue, principal: Principal) -> None:
        self._owner = owner
        self._acting = owner.queue.as_principal(principal)

    @property
    def principal(self) -> Principal:
        """Who is acting."""
        return self._acting.principal

    def __repr__(self) -> str:
        return f"Async{self._acting!r}"


def _acting_coroutine(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``await AsyncActingQueue.<name>(...)``: ``ActingQueue.<name>`` off the loop."""

    async def call(self: AsyncActingQueue, /, *args: Any, **kwargs: Any) -> Any:
        executor = self._owner._executor
        if executor is None:
            return method(self._acting, *args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(method, self._acting, *args, **kwargs))

    call.__name__ = name
    call.__qualname__ = f"AsyncActingQueue.{name}"
    call.__doc__ = (method.__doc__ or "").strip() + "\n\n(Awaitable: runs off the event loop.)"
    call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return call


def _as_principal(self: AsyncActionQueue, principal: Principal) -> AsyncActingQueue:
    """The queue as ``principal`` sees it: an :class:`AsyncActingQueue`
    (not a coroutine: making it does no I/O)."""
    return AsyncActingQueue(self, principal)


def _derive_acting() -> None:
    """Adds ``ActingQueue``'s public methods to ``AsyncActingQueue`` as
    coroutines; ``AsyncActionQueue.as_principal`` returns one."""
    for name, attr in vars(ActingQueue).items():
        if name.startswith("_") or inspect.isdatadescriptor(attr) or not callable(attr):
            continue
        setattr(AsyncActingQueue, name, _acting_coroutine(name, attr))
    _as_principal.__signature__ = inspect.signature(ActionQueue.as_principal)  # type: ignore[attr-defined]
    AsyncActionQueue.as_principal = _as_principal  # type: ignore[attr-defined]


_derive_acting()
