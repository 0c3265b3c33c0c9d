"""The routes of SPEC's HTTP contract, on one module-level :data:`router`.

Every route reaches the queue through the :func:`get_queue` dependency and is
guarded by :func:`require_api_key`; both read the :class:`ServerState` that
:func:`actionq.server.create_app` puts on ``app.state.actionq``. A host that
builds its own FastAPI app can include :data:`router` and set that state (or
override the dependencies).

Every route is ``async def`` and awaits an :class:`actionq.AsyncActionQueue`:
a call that waits (for the disk, or for another process's SQLite write lock,
up to the busy timeout) waits on the queue's own threads, never on the event
loop, and validation and serialisation stay on the loop with no thread-pool
hop of FastAPI's.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint
annotations at definition time.
"""

import secrets
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

import actionq
from actionq import ActionStatus, limits
from actionq.server.models import (
    I64,
    ActionCreate,
    ActionListOut,
    ActionOut,
    ActionTypeName,
    AuditReportOut,
    ClaimOut,
    ClaimRequest,
    ErrorOut,
    EventOut,
    HeartbeatRequest,
    RejectRequest,
    ResultRequest,
    ServerCreate,
    ServerOut,
)

__all__ = ["ServerState", "get_queue", "require_api_key", "router"]


@dataclass(frozen=True)
class ServerState:
    """What the routes need from the app: its queue and the bootstrap API key."""

    queue: actionq.AsyncActionQueue
    api_key: bytes

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


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def require_api_key(request: Request, given: Annotated[str | None, Depends(_api_key_header)]) -> None:
    """401 unless the request carries the app's ``X-API-Key`` (dependency)."""
    if given is None or not secrets.compare_digest(given.encode(), _state(request).api_key):
        raise HTTPException(
            status_code=401,
            detail={"code": "UNAUTHORIZED", "message": "Missing or invalid X-API-Key header"},
        )


Queue = Annotated[actionq.AsyncActionQueue, Depends(get_queue)]
_PAGE = f"1-{limits.MAX_PAGE_LIMIT}"
# Lost leases need no sweep here: the queue expires them before every read
# (actionq.limits.DEFAULT_EXPIRE_LEASES_ON_READ), in every host alike.
ActionId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 503)
}

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], responses=_ERRORS)
"""Every route of the contract, under ``/api/v1``, behind the API key."""


_JSON = "application/json"


def _json(record: actionq.Server | actionq.Action | actionq.Claim | actionq.ActionPage, status_code: int = 200) -> Response:
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
async def create_server(body: ServerCreate, queue: Queue) -> Response:
    return _json(await queue.create_server(body.id, body.hostname), 201)


@router.get("/servers/{server_id}", operation_id="get_server", response_model=ServerOut)
async def get_server(server_id: str, queue: Queue) -> Response:
    return _json(await queue.get_server(server_id))


@router.put("/servers/{server_id}/pause", operation_id="pause_server", response_model=ServerOut)
async def pause_server(server_id: str, queue: Queue) -> Response:
    return _json(await queue.pause_server(server_id))


@router.put("/servers/{server_id}/unpause", operation_id="unpause_server", response_model=ServerOut)
async def unpause_server(server_id: str, queue: Queue) -> Response:
    return _json(await queue.unpause_server(server_id))


@router.get("/servers/{server_id}/actions", operation_id="list_server_actions", response_model=ActionListOut)
async def list_server_actions(
    server_id: str,
    queue: Queue,
    status: ActionStatus | None = None,
    limit: Annotated[I64, Query(description=_PAGE)] = limits.DEFAULT_PAGE_LIMIT,
    offset: Annotated[I64, Query(description=">= 0")] = 0,
) -> Response:
    return _json(await queue.list_server_actions(server_id, status, limit, offset))


# Actions --------------------------------------------------------------------


@router.get("/actions", operation_id="list_actions", response_model=ActionListOut)
async def list_actions(
    queue: Queue,
    status: ActionStatus | None = None,
    server_id: str | None = None,
    action_type: ActionTypeName | None = None,
    limit: Annotated[I64, Query(description=_PAGE)] = limits.DEFAULT_PAGE_LIMIT,
    offset: Annotated[I64, Query(description=">= 0")] = 0,
) -> Response:
    if action_type is not None and action_type not in queue.action_types:
        _not_whitelisted("query", action_type, queue)
    return _json(await queue.list_actions(status, server_id, action_type, limit, offset))


@router.get("/actions/{action_id}", operation_id="get_action", response_model=ActionOut)
async def get_action(action_id: ActionId, queue: Queue) -> Response:
    return _json(await queue.get_action(action_id))


@router.post("/actions", operation_id="create_action", status_code=201, response_model=ActionOut)
async def create_action(body: ActionCreate, queue: Queue) -> Response:
    if body.action_type not in queue.action_types:
        _not_whitelisted("body", body.action_type, queue)
    # The core reads the request (NewAction::from_json: service_name given twice,
    # parameters, alert id). The model has no `created_by`, so the dump never
    # carries one: the requester is always the core's default, "dashboard".
    return _json(await queue.create_action_json(body.model_dump_json(exclude_none=True)), 201)


@router.post("/actions/{action_id}/approve", operation_id="approve_action", response_model=ActionOut)
async def approve_action(action_id: ActionId, queue: Queue) -> Response:
    return _json(await queue.approve_action(action_id, by=limits.DASHBOARD))


@router.post("/actions/{action_id}/reject", operation_id="reject_action", response_model=ActionOut)
async def reject_action(action_id: ActionId, body: RejectRequest, queue: Queue) -> Response:
    return _json(await queue.reject_action(action_id, body.reason, by=limits.DASHBOARD))


@router.post("/actions/{action_id}/cancel", operation_id="cancel_action", response_model=ActionOut)
async def cancel_action(action_id: ActionId, queue: Queue) -> Response:
    return _json(await queue.cancel_action(action_id, by=limits.DASHBOARD))


# Agent side -----------------------------------------------------------------


@router.post(
    "/servers/{server_id}/actions/claim",
    operation_id="claim_action",
    response_model=ClaimOut,
    responses={204: {"description": "No approved action to claim"}},
)
async def claim_action(server_id: str, queue: Queue, body: ClaimRequest | None = None) -> Response:
    claim = await queue.claim_next(server_id, body.lease_seconds if body else None)
    return _json(claim) if claim is not None else Response(status_code=204)


@router.post("/actions/{action_id}/heartbeat", operation_id="heartbeat_action", response_model=ActionOut)
async def heartbeat_action(action_id: ActionId, body: HeartbeatRequest, queue: Queue) -> Response:
    return _json(await queue.heartbeat(action_id, body.lease_token, body.lease_seconds))


@router.post("/actions/{action_id}/result", operation_id="report_action_result", response_model=ActionOut)
async def report_action_result(action_id: ActionId, body: ResultRequest, queue: Queue) -> Response:
    return _json(
        await queue.report_result(action_id, body.lease_token, body.exit_code, body.stdout, body.stderr)
    )


# Audit trail ----------------------------------------------------------------


@router.get("/events", operation_id="list_events", response_model=list[EventOut])
async def list_events(
    queue: Queue,
    after: Annotated[I64, Query(description="cursor: id of the last event seen")] = 0,
    limit: Annotated[I64, Query(description=f"1-{limits.MAX_EVENTS_LIMIT}")] = limits.DEFAULT_EVENTS_LIMIT,
) -> Response:
    events = await queue.events_since(after, limit)
    return Response("[" + ",".join(e.to_json() for e in events) + "]", media_type=_JSON)


@router.get("/audit/verify", operation_id="verify_audit", response_model=AuditReportOut)
async def verify_audit(queue: Queue) -> Response:
    """Walks the tamper-evident audit chain (SPEC "Tamper-evident audit")."""
    report = await queue.verify_audit()
    return Response(report.to_json(), media_type=_JSON)
