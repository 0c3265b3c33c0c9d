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

from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from actionq import DEFAULT_WHITELIST_JSON, ActionStatus, limits

I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An int the queue can take (its range is the queue's to check)."""
I32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
"""A process exit code."""


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


ActionTypeName = Annotated[str, PlainValidator(_action_type_name, json_schema_input_type=ActionType)]
"""An action type name: a ``str`` here, checked against the serving app's
whitelist by the routes (a 422 shaped like pydantic's enum error), and
documented as the ``ActionType`` enum, whose values each app's OpenAPI
document sets to its own whitelist."""


# Requests -------------------------------------------------------------------


class ServerCreate(BaseModel):
    id: str = Field(
        description=f"1-{limits.MAX_SERVER_ID_CHARS} characters of [A-Za-z0-9._-], starting alphanumeric"
    )
    hostname: str | None = None


def _untitled_action_type(schema: dict[str, Any]) -> None:
    """Keeps ``action_type`` a bare ``$ref`` to ``ActionType``, as an enum field is."""
    schema["properties"]["action_type"].pop("title", None)


class ActionCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=_untitled_action_type)

    server_id: str
    action_type: ActionTypeName
    service_name: str | None = Field(None, description="systemd unit, required for restart_service")
    params: dict[str, str] | None = Field(
        None,
        description="parameter name -> value for the action type's whitelist entry "
        "(service_name may be given here instead, not both)",
    )
    alert_id: I64 | None = Field(None, description="originating alert, >= 1")


class RejectRequest(BaseModel):
    reason: str = Field(description=f"1-{limits.MAX_REASON_CHARS} characters")


_LEASE = "(omitted: the queue's default lease; 0 is refused)"


class ClaimRequest(BaseModel):
    lease_seconds: float | None = Field(None, description=f"lease length in seconds {_LEASE}")
    wait_seconds: float = Field(
        0,
        ge=0,
        le=limits.MAX_WAIT_SECONDS,
        description=(
            f"seconds to wait for a claimable action (0-{limits.MAX_WAIT_SECONDS}); 0 answers at once, "
            "else the answer comes as soon as one is approved, or 204 when the wait ends"
        ),
    )


class HeartbeatRequest(BaseModel):
    lease_token: str
    lease_seconds: float | None = Field(None, description=f"new lease length in seconds from now {_LEASE}")


class ResultRequest(BaseModel):
    lease_token: str
    exit_code: I32
    stdout: str | None = None
    stderr: str | None = None


# Responses ------------------------------------------------------------------


class Record(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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


class CredentialCreate(BaseModel):
    name: str = Field(description=f"1-{limits.MAX_NAME_CHARS} characters: what actions record when it acts")
    role: Role
    server_id: str | None = Field(None, description="the server of an agent credential (agents only)")


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


class ErrorDetail(BaseModel):
    code: str
    message: str
    existing_action_id: int | None = Field(None, description="duplicate conflicts only")


class ErrorOut(BaseModel):
    detail: ErrorDetail
