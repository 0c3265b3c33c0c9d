"""The app factory: SPEC's HTTP contract (prefix ``/api/v1``, ``X-API-Key``).

No ``from __future__ import annotations`` here: FastAPI resolves the endpoint
annotations at definition time, and some name objects local to `create_app`.
"""

import os
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

import actionq
from actionq import ActionStatus
from actionq_api.models import (
    I64,
    ActionCreate,
    ActionListOut,
    ActionOut,
    ActionType,
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

API_KEY_ENV = "ACTIONQ_API_KEY"
"""Environment variable holding the API key when `create_app` is given none."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 503)
}

ActionId = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]


def create_app(
    db_path: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    *,
    durability: Literal["normal", "full"] | None = None,
    busy_timeout_seconds: float | None = None,
) -> FastAPI:
    """Builds the Action Queue API over an actionq queue.

    ``db_path`` None keeps the queue in memory; ``api_key`` None reads
    ``ACTIONQ_API_KEY``. With no key at all this refuses (RuntimeError), so no
    server ever runs open. ``durability``/``busy_timeout_seconds`` go to the
    SQLite store (None: actionq's defaults).
    """
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if not key:
        raise RuntimeError(
            f"no API key: pass create_app(api_key=...) or set {API_KEY_ENV}; "
            "refusing to build an Action Queue API that anyone could call"
        )
    queue = actionq.ActionQueue(
        db_path,
        durability=durability,
        busy_timeout_seconds=busy_timeout_seconds,
    )
    expected = key.encode()
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    # async: it never blocks, and a sync dependency would cost every request a
    # thread-pool hop on top of the endpoint's own.
    async def require_api_key(given: Annotated[str | None, Depends(api_key_header)]) -> None:
        if given is None or not secrets.compare_digest(given.encode(), expected):
            raise HTTPException(
                status_code=401,
                detail={"code": "UNAUTHORIZED", "message": "Missing or invalid X-API-Key header"},
            )

    def sweep() -> None:
        """Fails actions whose lease ran out, so lost agents surface in reads."""
        queue.expire_leases()

    app = FastAPI(
        title="actionq Action Queue API",
        version=actionq.__version__,
        description="Whitelisted remediation actions: request, approve, execute, audit.",
    )
    app.state.queue = queue

    @app.exception_handler(actionq.ActionQueueError)
    async def queue_error(request: Request, exc: actionq.ActionQueueError) -> JSONResponse:
        """The one mapping from actionq errors to HTTP responses."""
        detail: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.existing_action_id is not None:
            detail["existing_action_id"] = exc.existing_action_id
        return JSONResponse(status_code=exc.http_status, content={"detail": detail})

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], responses=_ERRORS)

    # Servers ----------------------------------------------------------------

    @api.post("/servers", operation_id="create_server", status_code=201, response_model=ServerOut)
    def create_server(body: ServerCreate) -> actionq.Server:
        return queue.create_server(body.id, body.hostname)

    @api.get("/servers/{server_id}", operation_id="get_server", response_model=ServerOut)
    def get_server(server_id: str) -> actionq.Server:
        return queue.get_server(server_id)

    @api.put("/servers/{server_id}/pause", operation_id="pause_server", response_model=ServerOut)
    def pause_server(server_id: str) -> actionq.Server:
        return queue.pause_server(server_id)

    @api.put("/servers/{server_id}/unpause", operation_id="unpause_server", response_model=ServerOut)
    def unpause_server(server_id: str) -> actionq.Server:
        return queue.unpause_server(server_id)

    @api.get(
        "/servers/{server_id}/actions",
        operation_id="list_server_actions",
        response_model=ActionListOut,
    )
    def list_server_actions(
        server_id: str,
        status: ActionStatus | None = None,
        limit: Annotated[I64, Query(description="1-100")] = 50,
        offset: Annotated[I64, Query(description=">= 0")] = 0,
    ) -> actionq.ActionPage:
        sweep()
        return queue.list_server_actions(server_id, status, limit, offset)

    # Actions ----------------------------------------------------------------

    @api.get("/actions", operation_id="list_actions", response_model=ActionListOut)
    def list_actions(
        status: ActionStatus | None = None,
        server_id: str | None = None,
        action_type: ActionType | None = None,
        limit: Annotated[I64, Query(description="1-100")] = 50,
        offset: Annotated[I64, Query(description=">= 0")] = 0,
    ) -> actionq.ActionPage:
        sweep()
        return queue.list_actions(
            status, server_id, action_type.value if action_type else None, limit, offset
        )

    @api.get("/actions/{action_id}", operation_id="get_action", response_model=ActionOut)
    def get_action(action_id: ActionId) -> actionq.Action:
        sweep()
        return queue.get_action(action_id)

    @api.post("/actions", operation_id="create_action", status_code=201, response_model=ActionOut)
    def create_action(body: ActionCreate) -> actionq.Action:
        return queue.create_action(
            body.server_id, body.action_type.value, body.service_name, alert_id=body.alert_id
        )

    @api.post("/actions/{action_id}/approve", operation_id="approve_action", response_model=ActionOut)
    def approve_action(action_id: ActionId) -> actionq.Action:
        return queue.approve_action(action_id, by="dashboard")

    @api.post("/actions/{action_id}/reject", operation_id="reject_action", response_model=ActionOut)
    def reject_action(action_id: ActionId, body: RejectRequest) -> actionq.Action:
        return queue.reject_action(action_id, body.reason, by="dashboard")

    @api.post("/actions/{action_id}/cancel", operation_id="cancel_action", response_model=ActionOut)
    def cancel_action(action_id: ActionId) -> actionq.Action:
        return queue.cancel_action(action_id, by="dashboard")

    # Agent side -------------------------------------------------------------

    @api.post(
        "/servers/{server_id}/actions/claim",
        operation_id="claim_action",
        response_model=ClaimOut,
        responses={204: {"description": "No approved action to claim"}},
    )
    def claim_action(server_id: str, body: ClaimRequest | None = None) -> actionq.Claim | Response:
        sweep()
        claim = queue.claim_next(server_id, body.lease_seconds if body else None)
        return claim if claim is not None else Response(status_code=204)

    @api.post("/actions/{action_id}/heartbeat", operation_id="heartbeat_action", response_model=ActionOut)
    def heartbeat_action(action_id: ActionId, body: HeartbeatRequest) -> actionq.Action:
        return queue.heartbeat(action_id, body.lease_token, body.lease_seconds)

    @api.post("/actions/{action_id}/result", operation_id="report_action_result", response_model=ActionOut)
    def report_action_result(action_id: ActionId, body: ResultRequest) -> actionq.Action:
        return queue.report_result(action_id, body.lease_token, body.exit_code, body.stdout, body.stderr)

    # Audit trail ------------------------------------------------------------

    @api.get("/events", operation_id="list_events", response_model=list[EventOut])
    def list_events(
        after: Annotated[I64, Query(description="cursor: id of the last event seen")] = 0,
        limit: Annotated[I64, Query(description="1-1000")] = 100,
    ) -> list[actionq.Event]:
        sweep()
        return queue.events_since(after, limit)

    app.include_router(api)
    return app
