"""The limits and defaults of actionq, as the core names them.

The same values as Rust's ``actionq::limits`` and the C header's ``AQ_*``
macros, read from the compiled core (never restated here). The conventions
every host shares:

- durations are seconds (floats);
- "the default" is asked for by leaving a value out (``None``), never by ``0``;
  a lease of 0 seconds is an ``InvalidInputError``;
- a setting of 0 means zero (an output cap of 0 keeps no output, a busy timeout
  of 0 fails at once on a lock);
- lost leases are expired before every read unless a queue is opened with
  ``expire_leases_on_read=False``.
"""

from __future__ import annotations

from actionq._actionq import (
    ACTION_STATUSES,
    DASHBOARD,
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    DEFAULT_DURABILITY,
    DEFAULT_EVENTS_LIMIT,
    DEFAULT_EXPIRE_LEASES_ON_READ,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_LEASE_SECONDS,
    DEFAULT_NOTIFY_MAX_AGE_SECONDS,
    DEFAULT_OUTPUT_CAP_CHARS,
    DEFAULT_PAGE_LIMIT,
    DELIVERY_OUTCOMES,
    DURABILITIES,
    MAX_DELIVERY_ERROR_CHARS,
    MAX_EVENTS_LIMIT,
    MAX_HOSTNAME_CHARS,
    MAX_JOB_LEASE_SECONDS,
    MAX_LEASE_NAME_CHARS,
    MAX_NAME_CHARS,
    MAX_PAGE_LIMIT,
    MAX_PRUNE_AGE_SECONDS,
    MAX_REASON_CHARS,
    MAX_REQUEST_BODY_BYTES,
    MAX_SECRET_BYTES,
    MAX_SERVER_ID_CHARS,
    MAX_SINK_NAME_CHARS,
    MAX_WAIT_SECONDS,
    NOTIFY_RETRY_FIRST_SECONDS,
    NOTIFY_RETRY_MAX_SECONDS,
    ROLES,
)

__all__ = [
    "ACTION_STATUSES",
    "DASHBOARD",
    "DEFAULT_BUSY_TIMEOUT_SECONDS",
    "DEFAULT_DURABILITY",
    "DEFAULT_EVENTS_LIMIT",
    "DEFAULT_EXPIRE_LEASES_ON_READ",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_LEASE_SECONDS",
    "DEFAULT_NOTIFY_MAX_AGE_SECONDS",
    "DEFAULT_OUTPUT_CAP_CHARS",
    "DEFAULT_PAGE_LIMIT",
    "DELIVERY_OUTCOMES",
    "DURABILITIES",
    "MAX_DELIVERY_ERROR_CHARS",
    "MAX_EVENTS_LIMIT",
    "MAX_HOSTNAME_CHARS",
    "MAX_JOB_LEASE_SECONDS",
    "MAX_LEASE_NAME_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PAGE_LIMIT",
    "MAX_PRUNE_AGE_SECONDS",
    "MAX_REASON_CHARS",
    "MAX_REQUEST_BODY_BYTES",
    "MAX_SECRET_BYTES",
    "MAX_SERVER_ID_CHARS",
    "MAX_SINK_NAME_CHARS",
    "MAX_WAIT_SECONDS",
    "NOTIFY_RETRY_FIRST_SECONDS",
    "NOTIFY_RETRY_MAX_SECONDS",
    "ROLES",
]
