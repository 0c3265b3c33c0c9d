"""actionq: an embeddable remediation action queue.

Open a queue on a SQLite file (or in memory), register servers, queue
whitelisted actions, approve them, let agents claim and report them, and read
the audit trail::

    import actionq

    queue = actionq.ActionQueue("data/actionq.sqlite3")
    queue.create_server("web-1", hostname="web-1.lan")
    action = queue.create_action("web-1", "restart_service", "nginx")
    claim = queue.claim_next("web-1")
    if claim is not None:
        queue.report_result(claim.id, claim.lease_token, 0, stdout="ok")

In asyncio code use :class:`AsyncActionQueue`: the same methods as coroutines,
which never block the event loop (``await aqueue.create_action(...)``).

Nobody needs to poll: ``queue.claim_next(server_id, wait_seconds=30)`` and
``queue.events_since(cursor, wait_seconds=30)`` return as soon as there is
something (committed here, in another process on the same SQLite file or on
another PostgreSQL replica), else nothing when the wait ends; the async forms
wait without holding a thread.

Identity: ``queue.issue_credential(name, role)`` gives a secret once;
``queue.authenticate(secret)`` gives its :class:`Principal`, and
``queue.as_principal(principal)`` the same queue acting as it: an
:class:`ActionQueue` whose every call the core checks against its permission
table (``PermissionDeniedError``) and records under the principal's name. A
host that authenticates people itself names them with ``queue.by(name)``.
Every operation, whoever acts, is one method (:data:`OPERATIONS` lists them).

Every error is an :class:`ActionQueueError` subclass carrying ``code``,
``http_status`` and ``message``. :class:`ActionStatus` is built from the
core's status list, and :mod:`actionq.limits` holds the core's limits and
defaults (the same values as Rust's ``actionq::limits`` and C's ``AQ_*``).
"""

from __future__ import annotations

from actionq import limits
from actionq._actionq import (
    DEFAULT_WHITELIST_JSON,
    OPERATIONS,
    Action,
    ActionPage,
    ActionQueue,
    ActionQueueError,
    ActionStatus,
    AuditReport,
    Claim,
    ClaimSigningKey,
    ClaimVerifyingKey,
    ConflictError,
    Credential,
    ChangeSubscription,
    Delivery,
    Event,
    Export,
    InvalidInputError,
    IssuedCredential,
    JobLease,
    ManualClock,
    NotFoundError,
    NotWhitelistedError,
    OutputChunk,
    PermissionDeniedError,
    Principal,
    PruneReport,
    Server,
    StorageError,
    UnauthenticatedError,
    __version__,
    action_digest,
    delivery_lease_name,
)
from actionq._aio import AsyncActionQueue, AsyncExport


__all__ = [
    "DEFAULT_WHITELIST_JSON",
    "OPERATIONS",
    "Action",
    "ActionPage",
    "ActionQueue",
    "ActionQueueError",
    "ActionStatus",
    "AsyncActionQueue",
    "AsyncExport",
    "AuditReport",
    "Claim",
    "ClaimSigningKey",
    "ClaimVerifyingKey",
    "ChangeSubscription",
    "ConflictError",
    "Credential",
    "Delivery",
    "Event",
    "Export",
    "InvalidInputError",
    "IssuedCredential",
    "JobLease",
    "ManualClock",
    "NotFoundError",
    "NotWhitelistedError",
    "OutputChunk",
    "PermissionDeniedError",
    "Principal",
    "PruneReport",
    "Server",
    "StorageError",
    "UnauthenticatedError",
    "__version__",
    "action_digest",
    "delivery_lease_name",
    "limits",
]
