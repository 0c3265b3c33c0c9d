"""The operations every host offers (the core's ``actionq.OPERATIONS``) are the
public methods of ``ActionQueue`` and ``AsyncActionQueue``, with one signature
in both: an operation added to the core and not here, or a public method here
that is no operation and not listed below, fails."""

from __future__ import annotations

import inspect
from typing import Any

import actionq
from actionq import ActionQueue, AsyncActionQueue, _actionq

OPERATION_PROPERTIES = {"lease_expiries"}
"""Operations read as properties, as they always were in Python: a process-local
counter, which never blocks (so not a coroutine either)."""

NOT_OPERATIONS = {
    # who acts: views of the same queue, made without I/O (so not coroutines)
    "as_principal",
    "by",
    "principal",
    # create_action with the request as JSON text (what actionq.server passes)
    "create_action_json",
    # read-only settings the queue was opened with
    "path",
    "whitelist_json",
    "action_types",
    "output_cap_chars",
    "default_lease_seconds",
    "expire_leases_on_read",
    # waiting: the change callback async waits are built on, and its count
    "on_change",
    "waiters",
}
"""Public attributes of both classes that are not operations."""

ASYNC_ONLY = {"from_queue", "open", "queue", "close"}
"""What ``AsyncActionQueue`` adds: ways to build it, its blocking queue, and
stopping its thread pool."""


def public(cls: type) -> dict[str, Any]:
    return {name: attr for name, attr in vars(cls).items() if not name.startswith("_")}


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each parameter but the receiver; annotations
    left out (the compiled methods have none)."""
    return [(p.name, p.kind, p.default) for p in list(inspect.signature(function).parameters.values())[1:]]


def test_operations_come_from_the_core() -> None:
    assert isinstance(actionq.OPERATIONS, tuple) and len(set(actionq.OPERATIONS)) == len(actionq.OPERATIONS)
    assert {"create_action", "approve_action", "claim_next", "authenticate"} <= set(actionq.OPERATIONS)
    assert actionq.OPERATIONS is _actionq.OPERATIONS


def test_both_queue_classes_offer_every_operation_and_nothing_unlisted() -> None:
    operations = set(actionq.OPERATIONS)
    assert OPERATION_PROPERTIES <= operations and not NOT_OPERATIONS & operations
    for cls, extra in ((ActionQueue, set()), (AsyncActionQueue, ASYNC_ONLY)):
        names = set(public(cls))
        assert operations - names == set(), f"{cls.__name__} lacks these operations"
        assert names - operations - NOT_OPERATIONS - extra == set(), f"{cls.__name__}: neither operations nor listed"


def test_operations_are_methods_and_coroutines() -> None:
    sync, aio = public(ActionQueue), public(AsyncActionQueue)
    for name in actionq.OPERATIONS:
        if name in OPERATION_PROPERTIES:
            assert inspect.isdatadescriptor(sync[name]) and isinstance(aio[name], property), name
            continue
        assert callable(sync[name]) and not inspect.isdatadescriptor(sync[name]), name
        assert inspect.iscoroutinefunction(aio[name]), name


def test_sync_and_async_signatures_match() -> None:
    sync, aio = public(ActionQueue), public(AsyncActionQueue)
    for name, attr in sync.items():
        if inspect.isdatadescriptor(attr):
            assert isinstance(aio[name], property), name
            continue
        expected, got = parameters(attr), parameters(aio[name])
        assert all(default is not ... for _, _, default in got), name
        # A default the compiled method computes from a core constant shows as
        # `...`; the coroutine names the constant (actionq.limits), so only
        # that there is a default is compared (test_async compares the calls).
        shown = [(n, k, ... if e is ... and d is not inspect.Parameter.empty else d) for (n, k, d), (_, _, e) in zip(got, expected)]
        assert len(got) == len(expected) and shown == expected, name
        assert inspect.iscoroutinefunction(aio[name]) == (name in actionq.OPERATIONS or name == "create_action_json")
    # the constructor and `open`: ActionQueue's parameters, plus max_workers
    opening = [
        *[(p.name, p.kind, p.default) for p in inspect.signature(ActionQueue).parameters.values()],
        ("max_workers", inspect.Parameter.KEYWORD_ONLY, None),
    ]
    assert parameters(AsyncActionQueue.__init__) == opening
    assert [(p.name, p.kind, p.default) for p in inspect.signature(AsyncActionQueue.open).parameters.values()] == opening
