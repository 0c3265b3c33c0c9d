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

Every error is an :class:`ActionQueueError` subclass carrying ``code``,
``http_status`` and ``message``.
"""

from __future__ import annotations

import sys
if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.9/3.10
    import enum

    class StrEnum(str, enum.Enum):
        """``enum.StrEnum`` for Python < 3.11."""

        def __str__(self) -> str:
            return str(self.value)

from actionq._actionq import (
    DEFAULT_WHITELIST_JSON,
    Action,
    ActionPage,
    ActionQueue,
    ActionQueueError,
    Claim,
    ConflictError,
    Event,
    InvalidInputError,
    NotFoundError,
    NotWhitelistedError,
    Server,
    StorageError,
    __version__,
)
from actionq._aio import AsyncActionQueue

class ActionStatus(StrEnum):
    """The statuses of an action, as a ``str`` enum.

    ``Action.status`` is a plain ``str``; members compare equal to it
    (``ActionStatus.PENDING == "pending"``), and pydantic fields typed
    ``ActionStatus`` accept it.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"


__all__ = [
    "DEFAULT_WHITELIST_JSON",
    "Action",
    "ActionPage",
    "ActionQueue",
    "ActionQueueError",
    "ActionStatus",
    "AsyncActionQueue",
    "Claim",
    "ConflictError",
    "Event",
    "InvalidInputError",
    "NotFoundError",
    "NotWhitelistedError",
    "Server",
    "StorageError",
    "__version__",
]
