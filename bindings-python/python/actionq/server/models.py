"""Request and response models of the HTTP contract.

Response models document the bodies (the OpenAPI schema) and read actionq's
records directly (``from_attributes``); the routes send each record's
``to_json()``, the core's encoding, which a test checks is byte for byte what
these models write, so FastAPI does not re-validate it field by field. Limits in
the descriptions come from :mod:`actionq.limits`, the status enum from the
core's list, the action types from the default whitelist: none is restated here.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from actionq import DEFAULT_WHITELIST_JSON, ActionStatus, limits

I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An int the queue can take (its range is the queue's to check)."""
def _json_number(value: Any) -> Any:
    """A JSON number only, as JSON Schema's ``integer`` and ``number`` mean
    it: ``true`` or ``"5"`` is not one (pydantic's lax mode would take them);
    ``5.0`` is an integer."""
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("number_type", "Input should be a JSON number")
    return value


JsonNumber = BeforeValidator(_json_number)
"""For the numbers of JSON bodies (query strings are text, parsed as numbers)."""

I32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1), JsonNumber]
"""A process exit code."""
_I64_RANGE = Field(ge=-(2**63), le=2**63 - 1)


def core_range(minimum: int, maximum: int = 2**63 - 1) -> WithJsonSchema:
    """The document of an int whose range the core checks (its own 422
    ``VALIDATION_ERROR``): the core's range, so that the document never
    promises what the core refuses. Validation here keeps to i64, what the
    queue can take at all."""
    return WithJsonSchema({"type": "integer", "minimum": minimum, "maximum": maximum})


def core_text(**schema: Any) -> WithJsonSchema:
    """The document of a ``str`` the core checks (its own 422
    ``VALIDATION_ERROR``): exactly what the core accepts."""
    return WithJsonSchema({"type": "string", **schema})


_NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
"""The core's text rule: no character of Unicode's control category (Cc)."""

ServerId = Annotated[
    str, core_text(minLength=1, maxLength=limits.MAX_SERVER_ID_CHARS, pattern="^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
"""A server id as the core accepts it for a new server."""
Hostname = Annotated[str, core_text(minLength=1, maxLength=limits.MAX_HOSTNAME_CHARS, pattern=_NO_CONTROL_CHARACTERS)]
Reason = Annotated[str, core_text(minLength=1, maxLength=limits.MAX_REASON_CHARS)]

RESERVED_NAMES = (limits.DASHBOARD, "agent", "auto", "system")
"""Names the queue records on its own, which no credential may take (in any
case). The binding exports only ``DASHBOARD``; a test checks that the core
refuses exactly these."""

CREDENTIAL_NAME_FORMAT = "actionq-credential-name"
"""The ``format`` of a credential name in the document: the core's rule
(no invisible or format characters, no space at either end) has no JSON
Schema form, so the document names it and says it in words; the length and
the reserved names it states plainly."""

CredentialName = Annotated[
    str,
    core_text(
        minLength=1,
        maxLength=limits.MAX_NAME_CHARS,
        format=CREDENTIAL_NAME_FORMAT,
        **{"not": {"pattern": "^(" + "|".join("".join(f"[{c.upper()}{c}]" for c in n) for n in RESERVED_NAMES) + ")$"}},
    ),
]

PageLimit = Annotated[int, _I64_RANGE, core_range(1, limits.MAX_PAGE_LIMIT)]
"""A page size (the core's 1..=MAX_PAGE_LIMIT)."""
Offset = Annotated[int, _I64_RANGE, core_range(0)]
"""How many matches a page skips (>= 0)."""
EventsLimit = Annotated[int, _I64_RANGE, core_range(1, limits.MAX_EVENTS_LIMIT)]
"""How many events one read returns at most (the core's 1..=MAX_EVENTS_LIMIT)."""
Cursor = Annotated[int, _I64_RANGE, core_range(0)]
"""An event id to read after (0: from the start)."""
BeforeId = Annotated[int, _I64_RANGE, core_range(1)]
"""Keyset paging: list only what comes after the action with this id (a page's ``next_before_id``)."""
Id = Annotated[int, _I64_RANGE, core_range(1), JsonNumber]
"""The id of an action or an alert in a JSON body (a JSON integer, >= 1)."""
LeaseSeconds = Annotated[
    float, JsonNumber, WithJsonSchema({"type": "number", "minimum": 1e-9, "maximum": limits.DEFAULT_MAX_LEASE_SECONDS})
]
WaitSeconds = Annotated[
    float, JsonNumber, WithJsonSchema({"type": "number", "minimum": 0, "maximum": limits.MAX_WAIT_SECONDS})
]
"""How long a claim may wait, in seconds (the core checks the range)."""
"""A lease length in seconds: at least a nanosecond (the core counts in
nanoseconds; less is 0, which it refuses), at most the queue's maximum."""


ActionType = Enum(  # type: ignore[misc]
    "ActionType",
    {name: name for name in json.loads(DEFAULT_WHITELIST_JSON)["actions"]},
    type=str,
    module=__name__,
)
ActionType.__doc__ = "The action types of the default whitelist (anything else is a 422)."


def _action_type_name(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


def _rfc3339(value: Any) -> Any:
    # Pydantic's lax datetime takes a bare number as a Unix time; the
    # document promises RFC 3339 text only.
    if not isinstance(value, str) or not value[:4].isdigit() or "T" not in value.upper():
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]
"""A date-time given as RFC 3339 text (``2026-01-31T12:00:00Z``)."""

ActionTypeName = Annotated[str, PlainValidator(_action_type_name, json_schema_input_type=ActionType)]
"""An action type name: a ``str`` here, checked against the serving app's
whitelist by the routes (a 422 shaped like pydantic's enum error), and
documented as the ``ActionType`` enum, whose values each app's OpenAPI
document sets to its own whitelist."""


# Requests -------------------------------------------------------------------


class ServerCreate(BaseModel):
    id: ServerId = Field(
        description=f"1-{limits.MAX_SERVER_ID_CHARS} characters of [A-Za-z0-9._-], starting alphanumeric"
    )
    hostname: Hostname | None = None


def _untitled_action_type(schema: dict[str, Any]) -> None:
    """Keeps ``action_type`` a bare ``$ref`` to ``ActionType``, as an enum field is."""
    schema["properties"]["action_type"].pop("title", None)


class ActionCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=_untitled_action_type)

    server_id: ServerId
    action_type: ActionTypeName
    service_name: str | None = Field(None, description="systemd unit, required for restart_service")
    params: dict[str, str] | None = Field(
        None,
        description="parameter name -> value for the action type's whitelist entry "
        "(service_name may be given here instead, not both)",
    )
    alert_id: Id | None = Field(None, description="originating alert, >= 1")


class NoInput(BaseModel):
    """No arguments (an MCP tool that reads everything it may)."""

    model_config = ConfigDict(extra="forbid")


class ActionRef(BaseModel):
    """One action, by id (the ``{action_id}`` of the action routes)."""

    model_config = ConfigDict(extra="forbid")

    action_id: Id


_BEFORE_ID = "keyset paging: the `next_before_id` of the page before (same cost at any depth)"


class ActionQuery(BaseModel):
    """The filters and page of ``GET /actions``, newest first."""

    model_config = ConfigDict(json_schema_extra=_untitled_action_type)

    status: ActionStatus | None = None
    server_id: str | None = None
    action_type: ActionTypeName | None = None
    limit: PageLimit = Field(limits.DEFAULT_PAGE_LIMIT, description=f"1-{limits.MAX_PAGE_LIMIT}")
    offset: Offset = Field(0, description=">= 0")
    before_id: BeforeId | None = Field(None, description=_BEFORE_ID)


class EventQuery(BaseModel):
    """The page of ``GET /events``: events after a cursor, oldest first."""

    after: Cursor = Field(0, description="cursor: id of the last event seen (0: from the start)")
    limit: EventsLimit = Field(limits.DEFAULT_EVENTS_LIMIT, description=f"1-{limits.MAX_EVENTS_LIMIT}")


class RejectRequest(BaseModel):
    reason: Reason = Field(description=f"1-{limits.MAX_REASON_CHARS} characters")


_LEASE = "(omitted: the queue's default lease; 0 is refused)"


class ClaimRequest(BaseModel):
    lease_seconds: LeaseSeconds | None = Field(None, description=f"lease length in seconds {_LEASE}")
    wait_seconds: WaitSeconds = Field(
        0,
        description=(
            f"seconds to wait for a claimable action (0-{limits.MAX_WAIT_SECONDS}); 0 answers at once, "
            "else the answer comes as soon as one is approved, or 204 when the wait ends"
        ),
    )


class HeartbeatRequest(BaseModel):
    lease_token: str
    lease_seconds: LeaseSeconds | None = Field(None, description=f"new lease length in seconds from now {_LEASE}")
    wait_seconds: WaitSeconds = Field(
        0,
        description=(
            f"after renewing, seconds to wait for a cancel request (0-{limits.MAX_WAIT_SECONDS}); "
            "the answer comes as soon as someone asks to cancel (cancel_requested_at set)"
        ),
    )


class ResultRequest(BaseModel):
    lease_token: str
    exit_code: I32
    stdout: str | None = None
    stderr: str | None = None
    cancelled: bool = Field(False, description="the agent stopped the command on a cancel request")


class OutputRequest(BaseModel):
    lease_token: str
    seq: Annotated[int, _I64_RANGE, core_range(1), JsonNumber] = Field(
        description="the agent's chunk number, from 1; a repeated one is ignored"
    )
    stdout: str | None = None
    stderr: str | None = None


class OutputQuery(BaseModel):
    """The chunks of ``GET /actions/{id}/output``: those after a seq."""

    after: Cursor = Field(0, description="seq of the last chunk seen (0: from the start)")


# Responses ------------------------------------------------------------------


class Record(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OutputChunkOut(Record):
    seq: int
    stdout: str
    stderr: str
    at: datetime


class OutputAppendedOut(BaseModel):
    stored: bool = Field(description="false for a repeated seq or nothing left under the output cap")


class ServerOut(Record):
    id: str
    hostname: str | None
    is_paused: bool
    paused_at: datetime | None
    created_at: datetime


class ApprovalOut(Record):
    by: str
    at: datetime
    digest: str = Field(description="the action's digest this approver approved")


class ActionOut(Record):
    id: int
    server_id: str
    action_type: str
    status: ActionStatus
    service_name: str | None
    command: str
    argv: list[str]
    env: dict[str, str]
    alert_id: int | None
    created_at: datetime
    created_by: str
    approved_at: datetime | None
    approved_by: str | None
    rejected_at: datetime | None
    rejected_by: str | None
    rejection_reason: str | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    executed_at: datetime | None
    lease_expires_at: datetime | None
    completed_at: datetime | None
    exit_code: int | None
    stdout: str | None
    stderr: str | None
    approvals: list[ApprovalOut] = Field(description="human approvals so far, oldest first")
    digest: str = Field(description="hex SHA-256 of (server_id, action_type, argv, env, whitelist_version)")
    whitelist_version: str = Field(description="version of the whitelist the action was built under")
    params: dict[str, str] = Field(
        description="the parameter values the command was built from, normalised (nginx -> nginx.service)"
    )
    cancel_requested_at: datetime | None = Field(
        description="when someone asked to stop the command while it executed"
    )
    cancel_requested_by: str | None = Field(description="who asked; cancelled_by once the agent stopped it")


class ClaimOut(ActionOut):
    lease_token: str = Field(description="secret; required by heartbeat and result")
    signature: str = Field(
        description="the server's Ed25519 signature of the claim (base64): agents check it with the "
        "server's claim-signing public key before running anything"
    )


class ActionListOut(Record):
    actions: list[ActionOut]
    total: int
    limit: int
    offset: int
    next_before_id: int | None = Field(description="`before_id` of the next page; null on the last page")


class EventOut(Record):
    id: int = Field(description="cursor: pass the last id as `after`")
    action_id: int | None = Field(description="the action that changed; null for server and credential events")
    from_status: ActionStatus | None
    to_status: ActionStatus | None = Field(description="null for server and credential events")
    by: str
    at: datetime
    detail: str | None
    kind: Literal["action", "server", "credential"] = Field(description="what the event is about")
    subject: str = Field(description="the server id (action and server events) or the credential name")


Role = Enum(  # type: ignore[misc]
    "Role",
    {name: name for name in limits.ROLES},
    type=str,
    module=__name__,
)
Role.__doc__ = "What a credential may do (the core's roles)."


def _agent_needs_a_server(schema: dict[str, Any]) -> None:
    """An agent credential names its server; no other role takes one."""
    schema["if"] = {"properties": {"role": {"const": "agent"}}, "required": ["role"]}
    schema["then"] = {"properties": {"server_id": {"type": "string"}}, "required": ["server_id"]}
    schema["else"] = {"properties": {"server_id": {"type": "null"}}}


class CredentialCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=_agent_needs_a_server)

    name: CredentialName = Field(
        description=f"1-{limits.MAX_NAME_CHARS} characters, none invisible or a format character, no space at "
        f"either end, not one of {', '.join(RESERVED_NAMES)} (in any case): what actions record when it acts"
    )
    role: Role
    server_id: ServerId | None = Field(None, description="the server of an agent credential (agents only)")


class CredentialOut(Record):
    id: int
    name: str
    role: Role
    server_id: str | None
    prefix: str = Field(description="the readable start of the secret (useless to authenticate)")
    created_at: datetime
    revoked_at: datetime | None


class IssuedCredentialOut(CredentialOut):
    secret: str = Field(description="shown this once: only its SHA-256 is stored")


class MeOut(Record):
    name: str
    role: Role
    server_id: str | None


class AuditReportOut(Record):
    checked: int = Field(description="events verified before the first bad one (all when none is)")
    first_bad_event_id: int | None = Field(description="the first event that does not verify; null when intact")
    pruned_through: int | None = Field(
        description="the last pruned event (verified from its checkpoint on); null when nothing was pruned"
    )


class PruneRequest(BaseModel):
    older_than_seconds: Annotated[int, _I64_RANGE, core_range(0, limits.MAX_PRUNE_AGE_SECONDS), JsonNumber] = Field(
        description="prune finished actions whose last change is older than this"
    )


class PruneOut(Record):
    pruned_actions: int = Field(description="actions deleted (with their events) by this call")
    pruned_through: int | None = Field(description="the last pruned event so far; null when nothing ever was")


class NotificationSinkOut(Record):
    name: str = Field(description="the sink's name in the --notify file")
    kind: Literal["webhook", "apprise"]
    cursor: int = Field(description="the last event delivered, skipped or dead-lettered")
    lag_events: int = Field(description="events logged after the cursor")
    last_error: str | None = Field(description="why the last try failed, until a message is delivered again")
    last_success_at: datetime | None = Field(description="when a message was last delivered")
    dead: int = Field(description="messages given up on after max_age_seconds")


class ErrorDetail(BaseModel):
    code: str = Field(description="the core's error code (VALIDATION_ERROR, NOT_FOUND, ...)")
    message: str
    existing_action_id: int | None = Field(None, description="duplicate conflicts only")


class RequestShapeIssue(BaseModel):
    """One problem FastAPI found in the request's shape, before the core saw it."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    """Every error the API answers: the core's ``{code, message}``, or, for a
    request whose shape is wrong (422 only), FastAPI's list of problems."""

    detail: ErrorDetail | list[RequestShapeIssue]

