"""Type stubs of the extension module ``actionq._actionq`` (import ``actionq``)."""

import os
import sys
from pathlib import Path
from datetime import datetime
from typing import Any, Callable, ClassVar, Literal, Mapping, final

if sys.version_info >= (3, 11):
    from enum import StrEnum as _StrEnum
else:
    from enum import Enum

    class _StrEnum(str, Enum): ...

__all__ = [
    "ActionQueue",
    "Principal",
    "Credential",
    "IssuedCredential",
    "AuditReport",
    "PruneReport",
    "Export",
    "action_digest",
    "delivery_lease_name",
    "ManualClock",
    "Action",
    "ActionPage",
    "Claim",
    "ChangeSubscription",
    "ClaimSigningKey",
    "ClaimVerifyingKey",
    "Event",
    "Server",
    "ActionQueueError",
    "InvalidInputError",
    "NotFoundError",
    "NotWhitelistedError",
    "OutputChunk",
    "ConflictError",
    "StorageError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "ActionStatus",
    "ACTION_STATUSES",
    "DASHBOARD",
    "DEFAULT_BUSY_TIMEOUT_SECONDS",
    "DEFAULT_DURABILITY",
    "DEFAULT_EVENTS_LIMIT",
    "DEFAULT_EXPIRE_LEASES_ON_READ",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_LEASE_SECONDS",
    "DEFAULT_OUTPUT_CAP_CHARS",
    "DEFAULT_PAGE_LIMIT",
    "DURABILITIES",
    "MAX_EVENTS_LIMIT",
    "MAX_HOSTNAME_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PAGE_LIMIT",
    "MAX_REASON_CHARS",
    "MAX_SERVER_ID_CHARS",
    "MAX_SECRET_BYTES",
    "MAX_REQUEST_BODY_BYTES",
    "MAX_WAIT_SECONDS",
    "ROLES",
    "MAX_LEASE_NAME_CHARS",
    "MAX_JOB_LEASE_SECONDS",
    "MAX_PRUNE_AGE_SECONDS",
    "MAX_SINK_NAME_CHARS",
    "MAX_DELIVERY_ERROR_CHARS",
    "DEFAULT_NOTIFY_MAX_AGE_SECONDS",
    "NOTIFY_RETRY_FIRST_SECONDS",
    "NOTIFY_RETRY_MAX_SECONDS",
    "DELIVERY_OUTCOMES",
    "JobLease",
    "Delivery",
    "OPERATIONS",
    "DEFAULT_WHITELIST_JSON",
    "__version__",
]

DEFAULT_WHITELIST_JSON: str
__version__: str

def action_digest(
    server_id: str, action_type: str, argv: list[str], env: Mapping[str, str], whitelist_version: str
) -> str:
    """The hex SHA-256 payload digest of an action (what ``Action.digest`` holds)."""

def delivery_lease_name(sink: str) -> str:
    """The name of the job lease that guards sink ``sink``'s delivery cursor
    (``take_lease`` it before ``record_delivery``)."""

# The core's names, lists, limits and defaults (re-exported by ``actionq.limits``).
ACTION_STATUSES: tuple[str, ...]
DURABILITIES: tuple[str, ...]
DEFAULT_DURABILITY: str
DASHBOARD: str
DEFAULT_PAGE_LIMIT: int
MAX_PAGE_LIMIT: int
DEFAULT_EVENTS_LIMIT: int
MAX_EVENTS_LIMIT: int
MAX_SERVER_ID_CHARS: int
MAX_HOSTNAME_CHARS: int
MAX_NAME_CHARS: int
MAX_REASON_CHARS: int
DEFAULT_OUTPUT_CAP_CHARS: int
DEFAULT_LEASE_SECONDS: int
DEFAULT_MAX_LEASE_SECONDS: int
DEFAULT_EXPIRE_LEASES_ON_READ: bool
DEFAULT_BUSY_TIMEOUT_SECONDS: int
MAX_WAIT_SECONDS: int
ROLES: tuple[str, ...]
OPERATIONS: tuple[str, ...]
"""The operations every host offers under the same name (the core's list):
each is a method of ``ActionQueue`` and ``AsyncActionQueue``."""
MAX_SECRET_BYTES: int
MAX_REQUEST_BODY_BYTES: int
MAX_LEASE_NAME_CHARS: int
MAX_JOB_LEASE_SECONDS: int
MAX_PRUNE_AGE_SECONDS: int
MAX_SINK_NAME_CHARS: int
MAX_DELIVERY_ERROR_CHARS: int
DEFAULT_NOTIFY_MAX_AGE_SECONDS: int
NOTIFY_RETRY_FIRST_SECONDS: int
NOTIFY_RETRY_MAX_SECONDS: int
DELIVERY_OUTCOMES: tuple[str, ...]

class ActionStatus(_StrEnum):
    """The statuses of an action, built from the core's list (``ACTION_STATUSES``)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"

class ActionQueueError(Exception):
    """Base class of every actionq error."""

    code: str
    """Stable machine-readable code: VALIDATION_ERROR, NOT_FOUND, FORBIDDEN, CONFLICT, STORAGE_ERROR,
    UNAUTHENTICATED, PERMISSION_DENIED."""
    http_status: int
    """The HTTP status a web host answers with."""
    @property
    def message(self) -> str:
        """Human-readable message (same as ``str(error)``)."""
    existing_action_id: int | None
    """For a duplicate create: the id of the action it collided with."""

class InvalidInputError(ActionQueueError):
    """Malformed input (VALIDATION_ERROR, 422)."""

class NotFoundError(ActionQueueError):
    """Unknown server or action (NOT_FOUND, 404)."""

class NotWhitelistedError(ActionQueueError):
    """Action type or parameter value not whitelisted (FORBIDDEN, 403)."""

class ConflictError(ActionQueueError):
    """Illegal transition, duplicate, or stale lease token (CONFLICT, 409)."""

class StorageError(ActionQueueError):
    """I/O, corruption, busy beyond timeout, schema too new (STORAGE_ERROR, 503)."""

class UnauthenticatedError(ActionQueueError):
    """Unknown, revoked or malformed credential secret (UNAUTHENTICATED, 401)."""

class PermissionDeniedError(ActionQueueError):
    """Role or server scope forbids the operation; nothing changed (PERMISSION_DENIED, 403)."""

_Role = Literal["admin", "operator", "requester", "viewer", "agent"]

@final
class Principal:
    """Who is acting (immutable): what actions record and what the permission table judges."""

    def __new__(cls, name: str, role: str, server_id: str | None = None) -> Principal: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> _Role: ...
    @property
    def server_id(self) -> str | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Credential:
    """A stored credential (immutable), as listed: never the secret."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> _Role: ...
    @property
    def server_id(self) -> str | None: ...
    @property
    def prefix(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class IssuedCredential:
    """A credential just issued (immutable), with its secret (shown this once)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> _Role: ...
    @property
    def server_id(self) -> str | None: ...
    @property
    def prefix(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def secret(self) -> str: ...
    @property
    def credential(self) -> Credential: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...

@final
class Server:
    """A managed server (immutable)."""

    @property
    def id(self) -> str: ...
    @property
    def hostname(self) -> str | None: ...
    @property
    def is_paused(self) -> bool: ...
    @property
    def paused_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Action:
    """A remediation action and its whole history (immutable)."""

    @property
    def id(self) -> int: ...
    @property
    def server_id(self) -> str: ...
    @property
    def action_type(self) -> str: ...
    @property
    def status(self) -> ActionStatus: ...
    @property
    def service_name(self) -> str | None: ...
    @property
    def command(self) -> str: ...
    @property
    def argv(self) -> list[str]: ...
    @property
    def env(self) -> dict[str, str]: ...
    @property
    def alert_id(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def created_by(self) -> str: ...
    @property
    def approved_at(self) -> datetime | None: ...
    @property
    def approved_by(self) -> str | None: ...
    @property
    def rejected_at(self) -> datetime | None: ...
    @property
    def rejected_by(self) -> str | None: ...
    @property
    def rejection_reason(self) -> str | None: ...
    @property
    def cancelled_at(self) -> datetime | None: ...
    @property
    def cancelled_by(self) -> str | None: ...
    @property
    def cancel_requested_at(self) -> datetime | None: ...
    @property
    def cancel_requested_by(self) -> str | None: ...
    @property
    def executed_at(self) -> datetime | None: ...
    @property
    def lease_expires_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def stdout(self) -> str | None: ...
    @property
    def stderr(self) -> str | None: ...
    @property
    def approvals(self) -> list[dict[str, Any]]:
        """The human approvals so far: ``{"by", "at", "digest"}`` each, oldest first."""
    @property
    def digest(self) -> str: ...
    @property
    def whitelist_version(self) -> str: ...
    @property
    def params(self) -> dict[str, str]:
        """The parameter values the command was built from, normalised."""
    def digest_matches(self) -> bool:
        """Whether the payload's recomputed digest is ``digest`` and every approval approved it."""
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Claim:
    """A just-claimed action: every ``Action`` attribute plus ``lease_token``."""

    @property
    def id(self) -> int: ...
    @property
    def server_id(self) -> str: ...
    @property
    def action_type(self) -> str: ...
    @property
    def status(self) -> ActionStatus: ...
    @property
    def service_name(self) -> str | None: ...
    @property
    def command(self) -> str: ...
    @property
    def argv(self) -> list[str]: ...
    @property
    def env(self) -> dict[str, str]: ...
    @property
    def alert_id(self) -> int | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def created_by(self) -> str: ...
    @property
    def approved_at(self) -> datetime | None: ...
    @property
    def approved_by(self) -> str | None: ...
    @property
    def rejected_at(self) -> datetime | None: ...
    @property
    def rejected_by(self) -> str | None: ...
    @property
    def rejection_reason(self) -> str | None: ...
    @property
    def cancelled_at(self) -> datetime | None: ...
    @property
    def cancelled_by(self) -> str | None: ...
    @property
    def cancel_requested_at(self) -> datetime | None: ...
    @property
    def cancel_requested_by(self) -> str | None: ...
    @property
    def executed_at(self) -> datetime | None: ...
    @property
    def lease_expires_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def stdout(self) -> str | None: ...
    @property
    def stderr(self) -> str | None: ...
    @property
    def approvals(self) -> list[dict[str, Any]]:
        """The human approvals so far: ``{"by", "at", "digest"}`` each, oldest first."""
    @property
    def digest(self) -> str: ...
    @property
    def whitelist_version(self) -> str: ...
    @property
    def params(self) -> dict[str, str]:
        """The parameter values the command was built from, normalised."""
    def digest_matches(self) -> bool:
        """Whether the payload's recomputed digest is ``digest`` and every approval approved it."""
    @property
    def lease_token(self) -> str: ...
    @property
    def action(self) -> Action: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class ActionPage:
    """One page of a listing, newest first."""

    @property
    def actions(self) -> list[Action]: ...
    @property
    def total(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def next_before_id(self) -> int | None:
        """The ``before_id`` of the next page; ``None`` on the last page."""
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __len__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Event:
    """One entry of the append-only audit log."""

    @property
    def id(self) -> int: ...
    @property
    def action_id(self) -> int | None:
        """The action that changed; ``None`` for server and credential events."""
    @property
    def from_status(self) -> ActionStatus | None: ...
    @property
    def to_status(self) -> ActionStatus | None: ...
    @property
    def by(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def kind(self) -> Literal["action", "server", "credential"]: ...
    @property
    def subject(self) -> str:
        """The server id (action and server events) or the credential name."""
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class OutputChunk:
    """A piece of an executing action's live output."""

    @property
    def seq(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class AuditReport:
    """What ``verify_audit()`` found."""

    @property
    def checked(self) -> int: ...
    @property
    def first_bad_event_id(self) -> int | None: ...
    @property
    def pruned_through(self) -> int | None:
        """The last pruned event's id (verified from its checkpoint on); ``None``
        when nothing was pruned."""
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class JobLease:
    """A named lease on a background job: ``take_lease()``."""

    @property
    def name(self) -> str: ...
    @property
    def holder(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class PruneReport:
    """What ``prune()`` did."""

    @property
    def pruned_actions(self) -> int: ...
    @property
    def pruned_through(self) -> int | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Delivery:
    """The delivery cursor of one notification sink, with its lag."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def cursor(self) -> int: ...
    @property
    def lag_events(self) -> int: ...
    @property
    def oldest_pending_at(self) -> datetime | None: ...
    @property
    def sent(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def dead(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_success_at(self) -> datetime | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Export:
    """``export()``'s iterator: one JSON line per finished action, read as consumed."""

    def __iter__(self) -> Export: ...
    def __next__(self) -> str: ...

@final
class ManualClock:
    """A clock that stands still until moved: ``ActionQueue(clock=...)``."""

    def __new__(cls, start: datetime) -> ManualClock: ...
    def advance(self, seconds: float) -> None:
        """Moves the clock forward by ``seconds`` (back, if negative)."""
    def set(self, now: datetime) -> None:
        """Sets the clock (a timezone-aware ``datetime``)."""
    def now(self) -> datetime:
        """The clock's time, as a UTC ``datetime``."""

@final
class ActionQueue:
    """The remediation action queue, on a SQLite file, a PostgreSQL database or in
    memory (``path=None``), acting as the host, a principal (``as_principal``) or a
    trusted name (``by``)."""

    def __new__(
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
    ) -> ActionQueue: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def whitelist_json(self) -> str: ...
    @property
    def action_types(self) -> list[str]: ...
    @property
    def output_cap_chars(self) -> int: ...
    @property
    def default_lease_seconds(self) -> float: ...
    @property
    def expire_leases_on_read(self) -> bool: ...
    def create_server(self, id: str, hostname: str | None = None) -> Server: ...
    def get_server(self, id: str) -> Server: ...
    def pause_server(self, id: str) -> Server: ...
    def unpause_server(self, id: str) -> Server: ...
    def create_action(
        self,
        server_id: str,
        action_type: str,
        service_name: str | None = None,
        *,
        params: Mapping[str, str | int] | None = None,
        alert_id: int | None = None,
        created_by: str = ...,
    ) -> Action: ...
    def create_action_json(self, request: str) -> Action:
        """Queues an action from a create request in JSON (the HTTP create body's
        shape, read by the core): ``{"server_id", "action_type", "service_name"?,
        "params"?, "alert_id"?, "created_by"?}``, parameter values as strings.
        Malformed JSON, unknown keys or ``service_name`` given both as a field and
        in ``params`` raise ``InvalidInputError``."""
    def get_action(self, id: int) -> Action: ...
    def list_actions(
        self,
        status: ActionStatus | str | None = None,
        server_id: str | None = None,
        action_type: str | None = None,
        limit: int = ...,
        offset: int = 0,
        before_id: int | None = None,
    ) -> ActionPage: ...
    def list_server_actions(
        self,
        server_id: str,
        status: ActionStatus | str | None = None,
        limit: int = ...,
        offset: int = 0,
        before_id: int | None = None,
    ) -> ActionPage: ...
    def approve_action(self, id: int, by: str | None = None) -> Action: ...
    def reject_action(self, id: int, reason: str, by: str | None = None) -> Action: ...
    def cancel_action(self, id: int, by: str | None = None) -> Action: ...
    def claim_next(
        self, server_id: str, lease_seconds: float | None = None, wait_seconds: float | None = None
    ) -> Claim | None: ...
    def heartbeat(self, id: int, lease_token: str, lease_seconds: float | None = None) -> Action: ...
    def await_cancel(
        self,
        id: int,
        lease_token: str,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
    ) -> Action: ...
    def report_result(
        self,
        id: int,
        lease_token: str,
        exit_code: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> Action: ...
    def _cancel_request(self, id: int) -> Action | None: ...
    def _claim_would_wait(self, server_id: str, lease_seconds: float | None = None) -> bool: ...
    def report_cancelled(
        self,
        id: int,
        lease_token: str,
        exit_code: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> Action: ...
    def append_output(
        self,
        id: int,
        lease_token: str,
        seq: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> bool: ...
    def output_since(self, id: int, after: int = 0, wait_seconds: float | None = None) -> list[OutputChunk]: ...
    def expire_leases(self) -> list[Action]: ...
    def expire_approvals(self) -> list[Action]: ...
    def verify_audit(self) -> AuditReport: ...
    def prune(self, older_than_seconds: int) -> PruneReport:
        """Deletes finished actions whose last change is older, with their events,
        behind an audit checkpoint (admins only)."""
    def export(self, before: datetime) -> Export:
        """The finished actions whose last change is before ``before``, as JSON
        Lines read page by page (admins only)."""
    def events_since(self, cursor: int = 0, limit: int = ..., wait_seconds: float | None = None) -> list[Event]: ...
    def on_change(
        self, callback: Callable[[], object], server_id: str | None = None, *, output: bool = False
    ) -> ChangeSubscription:
        """Calls ``callback()`` once, from the committing thread, at the queue's
        next change concerning ``server_id`` (any event when ``None``; with
        ``output``, new live output of that server's actions), unless the
        subscription is cancelled first."""
    def waiters(self) -> int:
        """Waits and ``on_change`` callbacks registered now (0 once all ended)."""
    def list_servers(self) -> list[Server]: ...
    def count_actions(self) -> list[tuple[str, ActionStatus, int]]: ...
    @property
    def lease_expiries(self) -> int: ...
    def issue_credential(self, name: str, role: str, server_id: str | None = None) -> IssuedCredential: ...
    def list_credentials(self) -> list[Credential]: ...
    def revoke_credential(self, id: int) -> Credential: ...
    def authenticate(self, secret: str) -> Principal: ...
    def take_lease(self, name: str, holder: str, ttl_seconds: float) -> JobLease: ...
    def release_lease(self, name: str, holder: str) -> bool: ...
    def register_delivery(self, name: str, kind: str) -> Delivery: ...
    def record_delivery(
        self,
        name: str,
        holder: str,
        event_id: int,
        outcome: Literal["skipped", "sent", "failed", "dead"],
        error: str | None = None,
    ) -> Delivery: ...
    def record_sent(self, name: str, holder: str, through_event_id: int, sent: int) -> Delivery:
        """Records a batch in one write: every event after sink ``name``'s
        cursor through ``through_event_id`` was delivered or skipped, ``sent``
        of them delivered. Same checks as ``record_delivery``."""
    def list_deliveries(self) -> list[Delivery]: ...
    @property
    def principal(self) -> Principal | None:
        """The principal this queue acts as (``as_principal``), else ``None``."""
    def as_principal(self, principal: Principal) -> ActionQueue:
        """This queue as ``principal`` sees it: every call checked by the core's
        permission table, the principal's name recorded."""
    def by(self, name: str) -> ActionQueue:
        """This queue acting as the trusted host for ``name``, which every call records."""

def _bench_get_action(queue: ActionQueue, id: int, iterations: int) -> float:
    """Benchmark helper (not API): mean ns of ``get_action(id)`` called from Rust."""

def _calls_may_wait(queue: ActionQueue) -> bool:
    """Whether calls on ``queue`` may wait (SQLite, PostgreSQL); not API."""

@final
class ChangeSubscription:
    """A callback registered with ``ActionQueue.on_change``."""

    def cancel(self) -> None:
        """Unregisters the callback (harmless once it ran or was cancelled)."""

@final
class ClaimSigningKey:
    """A server's Ed25519 claim-signing key (README "What the agent trusts")."""

    @staticmethod
    def generate() -> ClaimSigningKey: ...
    @staticmethod
    def from_pem(text: str) -> ClaimSigningKey: ...
    @staticmethod
    def load(path: str | os.PathLike[str]) -> ClaimSigningKey: ...
    @staticmethod
    def load_or_generate(
        path: str | os.PathLike[str], public_path: str | os.PathLike[str]
    ) -> tuple[ClaimSigningKey, bool]: ...
    def to_pem(self) -> str: ...
    def public_key(self) -> ClaimVerifyingKey: ...
    def sign(self, claim: Claim) -> str: ...

@final
class ClaimVerifyingKey:
    """The public half of a claim-signing key, as an agent pins it."""

    @staticmethod
    def from_pem(text: str) -> ClaimVerifyingKey: ...
    @staticmethod
    def load(path: str | os.PathLike[str]) -> ClaimVerifyingKey: ...
    def to_pem(self) -> str: ...
    def verify(self, claim: Claim, signature: str) -> None: ...
    def verify_json(self, text: str) -> Claim: ...
    def __eq__(self, value: object, /) -> bool: ...
