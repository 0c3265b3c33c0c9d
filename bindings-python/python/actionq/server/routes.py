"""The routes of the HTTP contract (docs/contract/http.md#routes), on one
module-level :data:`router`.

Every route reaches the queue through the :func:`get_queue` dependency and
acts as the caller the :func:`person` or :func:`agent_or_person` dependency
authenticated; both read the :class:`ServerState` that
:func:`actionq.server.create_app` puts on ``app.state.actionq``. A host that
builds its own FastAPI app can include :data:`router` and set that state (or
override the dependencies).

Who calls: ``X-API-Key`` carries the app's bootstrap key (the admin named
``dashboard``: the trusted calls, exactly as before credentials existed, so
HomelabCmd's clients see no change) or the secret of a non-agent credential;
the claim, heartbeat and result routes also take ``X-Agent-Token`` (an agent
credential). A missing, unknown, revoked or malformed secret is 401
``UNAUTHENTICATED``; what the caller's role or server may not do is the core's
403 ``PERMISSION_DENIED``. ``created_by``, ``approved_by``, ... are the
caller's name, never taken from a body.

Every route is ``async def`` and awaits an :class:`actionq.AsyncActionQueue`:
a call that waits (for the disk, or for another process's SQLite write lock,
up to the busy timeout) waits on the queue's own threads, never on the event
loop, and validation and serialisation stay on the loop with no thread-pool
hop of FastAPI's.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint
annotations at definition time.
"""

import json
import secrets
from datetime import datetime
from http import HTTPStatus
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import WithJsonSchema

import actionq
from actionq import ActionStatus, limits
from actionq.server.models import (
    ActionCreate,
    Rfc3339,
    ActionListOut,
    ActionOut,
    ActionQuery,
    AuditReportOut,
    BeforeId,
    ClaimOut,
    ClaimRequest,
    CredentialCreate,
    Cursor,
    CredentialOut,
    ErrorOut,
    EventOut,
    EventQuery,
    OutputAppendedOut,
    OutputChunkOut,
    OutputQuery,
    OutputRequest,
    HeartbeatRequest,
    IssuedCredentialOut,
    MeOut,
    NotificationSinkOut,
    Offset,
    PageLimit,
    PruneOut,
    PruneRequest,
    RejectRequest,
    ResultRequest,
    ServerCreate,
    ServerOut,
)
from actionq.server.push import Closing, EventStream, OutputStream, claim_waiting

__all__ = [
    "Caller",
    "ServerState",
    "agent_or_person",
    "caller_for_key",
    "get_queue",
    "person",
    "require_api_key",
    "router",
]


@dataclass(frozen=True)
class ServerState:
    """What the routes need from the app: its queue, the bootstrap API key,
    the key claims are signed with, and the shutdown signal that ends open
    waits and streams (``closing.close()``)."""

    queue: actionq.AsyncActionQueue
    api_key: bytes
    signing_key: actionq.ClaimSigningKey
    closing: Closing = field(default_factory=Closing)

    def __repr__(self) -> str:  # never print the key
        return f"ServerState(queue={self.queue!r})"


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.actionq
    return state


# async: these never block, and a sync dependency would cost every request a
# thread-pool hop on top of the endpoint's own.
async def get_queue(request: Request) -> actionq.AsyncActionQueue:
    """The app's queue (dependency)."""
    return _state(request).queue


Caller = actionq.AsyncActionQueue
"""The queue as a route's caller acts: the queue itself for the bootstrap key
(trusted calls, recorded as ``dashboard``, agent calls as ``agent``, as before
credentials; its ``principal`` is ``None``), or the queue as the authenticated
principal sees it (``as_principal``)."""

BOOTSTRAP = actionq.Principal(limits.DASHBOARD, "admin")
"""The principal of the bootstrap key."""

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_agent_token_header = APIKeyHeader(name="X-Agent-Token", scheme_name="AgentToken", auto_error=False)


def _unauthenticated(message: str) -> NoReturn:
    # The core's error kind, through the app's one error mapping (401
    # UNAUTHENTICATED); never echoes what was sent.
    raise actionq.UnauthenticatedError(message)


async def caller_for_key(state: ServerState, given: str | None) -> Caller:
    """The caller ``given`` (an ``X-API-Key`` value, or ``/mcp``'s bearer
    token) stands for: the bootstrap key's queue or a non-agent credential's
    principal; else the core's ``UnauthenticatedError`` (401)."""
    if not given:
        _unauthenticated("Missing or invalid X-API-Key header")
    if secrets.compare_digest(given.encode("utf-8", "surrogateescape"), state.api_key):
        return state.queue
    principal = await state.queue.authenticate(given)
    if principal.role == "agent":
        _unauthenticated("An agent credential goes in the X-Agent-Token header, not X-API-Key")
    return state.queue.as_principal(principal)


def _seen(request: Request, caller: Caller) -> Caller:
    # For the request log (actionq.server.logs), which runs outside the route.
    request.scope["actionq.caller"] = _me(caller).name
    return caller


async def person(request: Request, api_key: Annotated[str | None, Depends(_api_key_header)]) -> Caller:
    """The caller of a route for people: ``X-API-Key`` (dependency)."""
    return _seen(request, await caller_for_key(_state(request), api_key))


async def agent_or_person(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    agent_token: Annotated[str | None, Depends(_agent_token_header)],
) -> Caller:
    """The caller of an agent route: ``X-API-Key`` as for any route, or
    ``X-Agent-Token`` carrying an agent credential (dependency)."""
    state = _state(request)
    if api_key is not None or agent_token is None:
        return _seen(request, await caller_for_key(state, api_key))
    principal = await state.queue.authenticate(agent_token)
    if principal.role != "agent":
        _unauthenticated("X-Agent-Token takes an agent credential; people use X-API-Key")
    return _seen(request, state.queue.as_principal(principal))


require_api_key = person
"""The dependency of the routes for people (the name routers built before
credentials used)."""

Queue = Annotated[actionq.AsyncActionQueue, Depends(get_queue)]
Person = Annotated[Caller, Depends(person)]
AgentOrPerson = Annotated[Caller, Depends(agent_or_person)]
_PAGE = f"1-{limits.MAX_PAGE_LIMIT}"
# Lost leases need no sweep here: the queue expires them before every read
# (actionq.limits.DEFAULT_EXPIRE_LEASES_ON_READ), in every host alike.
ActionId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]

# One error schema for every error any route can answer (the core's kinds,
# BodyLimit's 413, and 422 for the request's shape or the core's checks).
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 413, 422, 503)
}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)
"""Every route of the contract, under ``/api/v1``, each behind its caller dependency."""


_JSON = "application/json"
# One server-sent event as a stream client reads it: `data:` holds JSON.
_SSE_MESSAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["data"],
}


def _json(
    record: actionq.Server | actionq.Action | actionq.Claim | actionq.ActionPage | actionq.Credential | actionq.IssuedCredential,
    status_code: int = 200,
) -> Response:
    """The response for `record`, as the core encodes it. The route's
    ``response_model`` still documents the body; FastAPI neither validates
    nor re-encodes a returned Response, which would only redo, field by field
    in Python, what the core has already checked."""
    return Response(record.to_json(), status_code=status_code, media_type=_JSON)


def _not_whitelisted(where: str, value: str, queue: actionq.AsyncActionQueue) -> NoReturn:
    """The 422 of an action type outside the whitelist, shaped like pydantic's
    enum error (the seed's contract: the type is an enum at this layer)."""
    names = [repr(t) for t in queue.action_types]
    expected = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    raise RequestValidationError(
        [
            {
                "type": "enum",
                "loc": (where, "action_type"),
                "msg": f"Input should be {expected}",
                "input": value,
                "ctx": {"expected": expected},
            }
        ]
    )


# Servers --------------------------------------------------------------------


@router.post("/servers", operation_id="create_server", status_code=201, response_model=ServerOut)
async def create_server(body: ServerCreate, caller: Person) -> Response:
    return _json(await caller.create_server(body.id, body.hostname), 201)


@router.get("/servers", operation_id="list_servers", response_model=list[ServerOut])
async def list_servers(caller: Person) -> Response:
    """Every registered server, ordered by id (the approvers' page lists them)."""
    servers = await caller.list_servers()
    return Response("[" + ",".join(s.to_json() for s in servers) + "]", media_type=_JSON)


@router.get("/servers/{server_id}", operation_id="get_server", response_model=ServerOut)
async def get_server(server_id: str, caller: Person) -> Response:
    return _json(await caller.get_server(server_id))


@router.put("/servers/{server_id}/pause", operation_id="pause_server", response_model=ServerOut)
async def pause_server(server_id: str, caller: Person) -> Response:
    return _json(await caller.pause_server(server_id))


@router.put("/servers/{server_id}/unpause", operation_id="unpause_server", response_model=ServerOut)
async def unpause_server(server_id: str, caller: Person) -> Response:
    return _json(await caller.unpause_server(server_id))


@router.get("/servers/{server_id}/actions", operation_id="list_server_actions", response_model=ActionListOut)
async def list_server_actions(
    server_id: str,
    caller: Person,
    status: ActionStatus | None = None,
    limit: Annotated[PageLimit, Query(description=_PAGE)] = limits.DEFAULT_PAGE_LIMIT,
    offset: Annotated[Offset, Query(description=">= 0")] = 0,
    before_id: Annotated[BeforeId | None, Query(description="keyset paging: a page's `next_before_id`")] = None,
) -> Response:
    return _json(await caller.list_server_actions(server_id, status, limit, offset, before_id))


# Actions --------------------------------------------------------------------


@router.get("/actions", operation_id="list_actions", response_model=ActionListOut)
async def list_actions(
    queue: Queue,
    caller: Person,
    q: Annotated[ActionQuery, Query()],
) -> Response:
    if q.action_type is not None and q.action_type not in queue.action_types:
        _not_whitelisted("query", q.action_type, queue)
    return _json(await caller.list_actions(q.status, q.server_id, q.action_type, q.limit, q.offset, q.before_id))


@router.get("/actions/{action_id}", operation_id="get_action", response_model=ActionOut)
async def get_action(action_id: ActionId, caller: Person) -> Response:
    return _json(await caller.get_action(action_id))


@router.post("/actions", operation_id="create_action", status_code=201, response_model=ActionOut)
async def create_action(body: ActionCreate, queue: Queue, caller: Person) -> Response:
    if body.action_type not in queue.action_types:
        _not_whitelisted("body", body.action_type, queue)
    # The core reads the request (NewAction::from_json: service_name given twice,
    # parameters, alert id). The model has no `created_by`, so the dump never
    # carries one: the requester is the caller (the core's default, "dashboard",
    # for the bootstrap key).
    return _json(await caller.create_action_json(body.model_dump_json(exclude_none=True)), 201)


@router.post("/actions/{action_id}/approve", operation_id="approve_action", response_model=ActionOut)
async def approve_action(action_id: ActionId, caller: Person) -> Response:
    return _json(await caller.approve_action(action_id))


@router.post("/actions/{action_id}/reject", operation_id="reject_action", response_model=ActionOut)
async def reject_action(action_id: ActionId, body: RejectRequest, caller: Person) -> Response:
    return _json(await caller.reject_action(action_id, body.reason))


@router.post("/actions/{action_id}/cancel", operation_id="cancel_action", response_model=ActionOut)
async def cancel_action(action_id: ActionId, caller: Person) -> Response:
    return _json(await caller.cancel_action(action_id))


# Agent side -----------------------------------------------------------------


@router.post(
    "/servers/{server_id}/actions/claim",
    operation_id="claim_action",
    response_model=ClaimOut,
    responses={204: {"description": "No approved action to claim"}},
)
async def claim_action(
    server_id: str, caller: AgentOrPerson, request: Request, body: ClaimRequest | None = None
) -> Response:
    lease = body.lease_seconds if body else None
    if body and body.wait_seconds:
        # Ends early, claiming nothing, if the client leaves or the server
        # shuts down (actionq.server.push).
        state = _state(request)
        claim = await claim_waiting(caller, server_id, lease, body.wait_seconds, request.receive, state.closing)
    else:
        claim = await caller.claim_next(server_id, lease)
    if claim is None:
        return Response(status_code=204)
    signature = _state(request).signing_key.sign(claim)
    # The core's JSON object, with the signature as its last field.
    text = claim.to_json()
    signed = f"{text[:-1]},{json.dumps('signature')}:{json.dumps(signature)}}}"
    return Response(signed, media_type=_JSON)


@router.post("/actions/{action_id}/heartbeat", operation_id="heartbeat_action", response_model=ActionOut)
async def heartbeat_action(action_id: ActionId, body: HeartbeatRequest, caller: AgentOrPerson) -> Response:
    if body.wait_seconds:
        return _json(await caller.await_cancel(action_id, body.lease_token, body.lease_seconds, body.wait_seconds))
    return _json(await caller.heartbeat(action_id, body.lease_token, body.lease_seconds))


@router.post("/actions/{action_id}/result", operation_id="report_action_result", response_model=ActionOut)
async def report_action_result(action_id: ActionId, body: ResultRequest, caller: AgentOrPerson) -> Response:
    report = caller.report_cancelled if body.cancelled else caller.report_result
    return _json(await report(action_id, body.lease_token, body.exit_code, body.stdout, body.stderr))


@router.post("/actions/{action_id}/output", operation_id="append_action_output", response_model=OutputAppendedOut)
async def append_action_output(action_id: ActionId, body: OutputRequest, caller: AgentOrPerson) -> Response:
    stored = await caller.append_output(action_id, body.lease_token, body.seq, body.stdout, body.stderr)
    return Response(json.dumps({"stored": stored}), media_type=_JSON)


@router.get("/actions/{action_id}/output", operation_id="list_action_output", response_model=list[OutputChunkOut])
async def list_action_output(action_id: ActionId, caller: Person, q: Annotated[OutputQuery, Query()]) -> Response:
    chunks = await caller.output_since(action_id, q.after)
    return Response("[" + ",".join(c.to_json() for c in chunks) + "]", media_type=_JSON)


# Audit trail ----------------------------------------------------------------


@router.get("/events", operation_id="list_events", response_model=list[EventOut])
async def list_events(
    caller: Person,
    q: Annotated[EventQuery, Query()],
) -> Response:
    events = await caller.events_since(q.after, q.limit)
    return Response("[" + ",".join(e.to_json() for e in events) + "]", media_type=_JSON)


@router.get(
    "/events/stream",
    operation_id="stream_events",
    status_code=200,
    response_class=EventStream,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _SSE_MESSAGE}},
            "description": (
                "One message per event after the cursor, as it is logged: `id:` the event id, "
                "`event: action`, `data:` the event JSON as /events gives it; a comment line "
                "at least every 15 s"
            ),
        },
        # Errors come before the stream starts, as JSON like every route's
        # (not in the stream's media type, FastAPI's default here).
        **{
            status: {
                "description": HTTPStatus(int(status)).phrase,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
            }
            for status in _ERRORS
        },
    },
)
async def stream_events(
    caller: Person,
    request: Request,
    after: Annotated[Cursor, Query(description="cursor: id of the last event seen (0: from the start)")] = 0,
    last_event_id: Annotated[
        Cursor | None,
        # Sent or not, never null: documented as the integer it is.
        WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 2**63 - 1}),
        Header(alias="Last-Event-ID", description="resume after this event id (wins over `after`)"),
    ] = None,
) -> Response:
    """The audit events after the cursor as a server-sent event stream, live."""
    cursor = after if last_event_id is None else last_event_id
    # The first read checks the cursor and the caller's role while an error
    # can still be an ordinary response.
    first = await caller.events_since(cursor, limits.MAX_EVENTS_LIMIT)
    return EventStream(caller, cursor, first, _state(request).closing)


@router.get(
    "/actions/{action_id}/output/stream",
    operation_id="stream_action_output",
    status_code=200,
    response_class=OutputStream,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _SSE_MESSAGE}},
            "description": (
                "One message per output chunk after `after` as it arrives: `id:` its seq, "
                "`event: output`, `data:` the chunk JSON as /output gives it; a comment line at "
                "least every 15 s; once the action has finished, `event: end` with the action JSON"
            ),
        },
        **{
            status: {
                "description": HTTPStatus(int(status)).phrase,
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
            }
            for status in _ERRORS
        },
    },
)
async def stream_action_output(
    action_id: ActionId,
    caller: Person,
    request: Request,
    after: Annotated[Cursor, Query(description="seq of the last chunk seen (0: from the start)")] = 0,
    last_event_id: Annotated[
        Cursor | None,
        # Sent or not, never null: documented as the integer it is.
        WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 2**63 - 1}),
        Header(alias="Last-Event-ID", description="resume after this seq (wins over `after`)"),
    ] = None,
) -> Response:
    """An action's live output as a server-sent event stream."""
    if last_event_id is not None and after != last_event_id:
        # `after` is checked by the core even when Last-Event-ID wins.
        await caller.output_since(action_id, after)
    cursor = after if last_event_id is None else last_event_id
    first = await caller.output_since(action_id, cursor)
    return OutputStream(caller, action_id, cursor, first, _state(request).closing)


# Identity -------------------------------------------------------------------


def _me(caller: Caller) -> actionq.Principal:
    principal = caller.principal
    return BOOTSTRAP if principal is None else principal


@router.get("/me", operation_id="get_me", response_model=MeOut)
async def get_me(caller: AgentOrPerson) -> Response:
    """Who the caller is: ``{name, role, server_id}`` (the bootstrap key is the
    admin ``dashboard``)."""
    me = _me(caller)
    return Response(
        json.dumps({"name": me.name, "role": me.role, "server_id": me.server_id}), media_type=_JSON
    )


@router.post("/credentials", operation_id="create_credential", status_code=201, response_model=IssuedCredentialOut)
async def create_credential(body: CredentialCreate, caller: Person) -> Response:
    """Issues a credential (admin). The response is the only time its secret is shown."""
    return _json(await caller.issue_credential(body.name, body.role.value, body.server_id), 201)


@router.get("/credentials", operation_id="list_credentials", response_model=list[CredentialOut])
async def list_credentials(caller: Person) -> Response:
    """Every credential, revoked ones included, without secrets (admin)."""
    listed = await caller.list_credentials()
    return Response("[" + ",".join(c.to_json() for c in listed) + "]", media_type=_JSON)


@router.delete(
    "/credentials/{credential_id}",
    operation_id="revoke_credential",
    status_code=204,
    response_class=Response,
)
async def revoke_credential(credential_id: ActionId, caller: Person) -> Response:
    """Revokes a credential at once, for every replica on the same store (admin)."""
    await caller.revoke_credential(credential_id)
    return Response(status_code=204)


@router.get("/audit/verify", operation_id="verify_audit", response_model=AuditReportOut)
async def verify_audit(caller: Person) -> Response:
    """Walks the tamper-evident audit chain (docs/contract/audit.md#verify-audit; admin)."""
    report = await caller.verify_audit()
    return Response(report.to_json(), media_type=_JSON)


@router.get("/notifications", operation_id="list_notifications", response_model=list[NotificationSinkOut])
async def list_notifications(caller: Person, request: Request) -> Response:
    """Each sink of the ``--notify`` file with its delivery cursor, lag, last
    error and dead letters (docs/contract/notifications.md#status-and-metrics;
    admin). Never a sink's url or secret."""
    deliveries = await caller.list_deliveries()
    config = getattr(request.app.state, "actionq_notify", None)
    configured = {sink.name for sink in config.sinks} if config is not None else set()
    fields = ("name", "kind", "cursor", "lag_events", "last_error", "last_success_at", "dead")
    sinks = []
    for delivery in deliveries:
        if delivery.name in configured:
            record = json.loads(delivery.to_json())
            sinks.append({key: record[key] for key in fields})
    return Response(json.dumps(sinks), media_type=_JSON)
# Retention ------------------------------------------------------------------


@router.post("/prune", operation_id="prune", response_model=PruneOut)
async def prune(body: PruneRequest, caller: Person) -> Response:
    """Deletes finished actions whose last change is older than
    ``older_than_seconds``, with their events, in batches behind an audit
    checkpoint (docs/contract/retention.md#prune; admin)."""
    report = await caller.prune(body.older_than_seconds)
    return Response(report.to_json(), media_type=_JSON)


@router.get(
    "/export",
    operation_id="export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/jsonl": {}}, "description": "one action per line"}},
)
async def export(
    caller: Person,
    before: Annotated[Rfc3339, Query(description="RFC 3339: finished actions whose last change is before this")],
) -> StreamingResponse:
    """The finished actions whose last change is before ``before``, one JSON
    object per line (``{"action", "events"}``), streamed as the store is read
    (docs/contract/retention.md#export; admin)."""
    lines = await caller.export(before)

    async def body() -> Any:
        async for line in lines:
            yield line + "\n"

    return StreamingResponse(body(), media_type="application/jsonl")


# The agents' routes (those that take an agent credential) first: FastAPI
# tries the routes in order (twice per request for an included router), and
# a fleet's claims, heartbeats and results are most of the requests
# (docs/contract/push.md#the-fleet-benchmark). The order of the OpenAPI
# document's paths follows; nothing else depends on it (no two routes match
# the same method and path).
def _for_people_only(route: Any) -> bool:
    dependant = getattr(route, "dependant", None)
    return not any(d.call is agent_or_person for d in getattr(dependant, "dependencies", ()))


router.routes.sort(key=_for_people_only)
