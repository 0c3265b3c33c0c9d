"""The Model Context Protocol endpoint, ``/mcp`` (docs/contract/cli-and-mcp.md#mcp).

Streamable HTTP, served by the official SDK (``mcp``) in stateless mode: each
POST stands alone, so any replica can answer it. An assistant can look and
*ask*, never decide: there is no tool that approves, rejects, cancels or
pauses.

Who calls: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, checked by
the HTTP API's own code (:func:`actionq.server.routes.caller_for_key`), so the
same keys work and fail the same way (a missing or wrong key is the API's 401
before any MCP message is read), and every tool acts as that caller: the
core's permission table bounds it, ``created_by`` is its name.

Every tool's input schema is a pydantic model of the HTTP API
(:mod:`actionq.server.models`), its arguments are validated by it, and it
calls the same queue operation as the matching route.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import actionq
from actionq.server.models import ActionCreate, ActionQuery, ActionRef, EventQuery, NoInput

__all__ = ["MCP_PATH", "TOOLS", "install", "why_pending"]

MCP_PATH = "/mcp"
"""Where the endpoint is served."""

_CALLER = "actionq.caller"
"""The ASGI scope key the authenticated caller travels under, to the tools."""

_WAITS = (
    "Nothing runs until the action is approved. On a paused server, or when the action type's "
    "approval policy asks for people, the action stays `pending` until a human approves it "
    "(in the approvers' page or the `actionq` command line), which may take minutes or hours; "
    "no tool approves. Check on it later with get_action; the result says why it waits."
)


@dataclass(frozen=True)
class Tool:
    """A tool: its name, what it tells the assistant, its input model, and the
    handler that runs it as the caller."""

    name: str
    description: str
    model: type[BaseModel]
    run: Callable[[actionq.AsyncActionQueue, actionq.AsyncActionQueue, Any], Awaitable[dict[str, Any]]]
    read_only: bool = True


def _whitelist(queue: actionq.AsyncActionQueue) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(queue.whitelist_json)
    return config


async def list_servers(caller: actionq.AsyncActionQueue, _: actionq.AsyncActionQueue, __: NoInput) -> dict[str, Any]:
    return {"servers": [json.loads(s.to_json()) for s in await caller.list_servers()]}


async def list_action_types(
    _: actionq.AsyncActionQueue, queue: actionq.AsyncActionQueue, __: NoInput
) -> dict[str, Any]:
    # The whitelist is the app's configuration, the same for every caller;
    # reading it needs only a key that authenticates.
    entries = _whitelist(queue)["actions"]
    return {
        "action_types": [
            {"name": name, **entry, "approval": entry.get("approval") or {}} for name, entry in entries.items()
        ]
    }


async def list_actions(caller: actionq.AsyncActionQueue, _: actionq.AsyncActionQueue, q: ActionQuery) -> dict[str, Any]:
    page = await caller.list_actions(q.status, q.server_id, q.action_type, q.limit, q.offset)
    listed: dict[str, Any] = json.loads(page.to_json())
    return listed


async def why_pending(caller: actionq.AsyncActionQueue, queue: actionq.AsyncActionQueue, action: dict[str, Any]) -> str:
    """Why a pending action waits, in a sentence an assistant can pass on."""
    entry = _whitelist(queue)["actions"].get(action["action_type"], {})
    approval = entry.get("approval") or {}
    required = int(approval.get("required", 1))
    have = len(action.get("approvals") or [])
    reasons = []
    if (await caller.get_server(action["server_id"])).is_paused:
        reasons.append(f"server '{action['server_id']}' is paused (under maintenance)")
    if required > 1:
        reasons.append(f"action type '{action['action_type']}' needs {required} approvals")
    if approval.get("four_eyes"):
        reasons.append("the requester may not approve it")
    if not reasons:
        reasons.append("its auto-approval budget is spent (see the action's creation event)")
    return (
        f"Waiting for a human to approve it ({have} of {required} approvals so far): "
        + "; ".join(reasons)
        + ". Nothing runs until then; no tool approves."
    )


async def _action_result(
    caller: actionq.AsyncActionQueue, queue: actionq.AsyncActionQueue, action: actionq.Action
) -> dict[str, Any]:
    body: dict[str, Any] = {"action": json.loads(action.to_json())}
    if action.status == actionq.ActionStatus.PENDING:
        body["waiting_for"] = await why_pending(caller, queue, body["action"])
    return body


async def get_action(caller: actionq.AsyncActionQueue, queue: actionq.AsyncActionQueue, ref: ActionRef) -> dict[str, Any]:
    return await _action_result(caller, queue, await caller.get_action(ref.action_id))


async def request_action(
    caller: actionq.AsyncActionQueue, queue: actionq.AsyncActionQueue, body: ActionCreate
) -> dict[str, Any]:
    # As POST /actions does: the core reads the request; the model has no
    # created_by, so the requester is the caller.
    created = await caller.create_action_json(body.model_dump_json(exclude_none=True))
    return await _action_result(caller, queue, created)


async def get_events(caller: actionq.AsyncActionQueue, _: actionq.AsyncActionQueue, q: EventQuery) -> dict[str, Any]:
    return {"events": [json.loads(e.to_json()) for e in await caller.events_since(q.after, q.limit)]}


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("list_servers", "The registered servers: id, hostname, and whether each is paused.", NoInput, list_servers),
        Tool(
            "list_action_types",
            "The whitelist: the only actions that can be requested, each with its command template, "
            "its parameters and their kinds (validators), its conflict policy and its approval policy "
            "(empty: one person's approval, asked for only while the server is paused).",
            NoInput,
            list_action_types,
        ),
        Tool(
            "list_actions",
            "Actions, newest first, filtered by status, server and action type, one page at a time.",
            ActionQuery,
            list_actions,
        ),
        Tool(
            "get_action",
            "One action, every field; a pending one comes with `waiting_for`, why it waits.",
            ActionRef,
            get_action,
        ),
        Tool(
            "request_action",
            "Requests a whitelisted action on a server, recorded under the caller's name. Parameters "
            "are checked by the whitelist's validators; anything else is refused. " + _WAITS,
            ActionCreate,
            request_action,
            read_only=False,
        ),
        Tool(
            "get_events",
            "The audit trail, oldest first, after a cursor (the id of the last event seen).",
            EventQuery,
            get_events,
        ),
    )
}
"""Every tool of the endpoint, by name."""


def _input_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.setdefault("properties", {})
    return schema


def _error(code: str, message: str) -> types.CallToolResult:
    detail = {"code": code, "message": message}
    return types.CallToolResult(
        content=[types.TextContent(text=f"{code}: {message}")], structured_content=detail, is_error=True
    )


def _server(queue: actionq.AsyncActionQueue, action_types: list[str]) -> Server[Any]:
    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=_input_schema(t.model),
                    annotations=types.ToolAnnotations(read_only_hint=t.read_only, destructive_hint=False),
                )
                for t in TOOLS.values()
            ]
        )

    async def on_call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = TOOLS.get(params.name)
        if tool is None:
            return _error("NOT_FOUND", f"No tool '{params.name}'")
        request = ctx.request
        caller = request.scope.get(_CALLER) if isinstance(request, Request) else None
        if caller is None:  # the gate below authenticates every request first
            return _error("UNAUTHENTICATED", "Missing or invalid credential")
        try:
            arguments = tool.model.model_validate(params.arguments or {})
        except ValidationError as e:
            issues = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in e.errors())
            return _error("VALIDATION_ERROR", issues)
        try:
            result = await tool.run(caller, queue, arguments)
        except actionq.ActionQueueError as e:
            return _error(e.code, e.message)
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(result, ensure_ascii=False))], structured_content=result
        )

    return Server(
        "actionq",
        version=actionq.__version__,
        instructions=(
            "actionq queues whitelisted remediation actions (restart a service, update packages, ...) "
            "for agents on servers to run. You can look and ask; people decide. " + _WAITS
            + f" Action types here: {', '.join(action_types)}."
        ),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def _key(scope: Scope) -> str | None:
    """The caller's key: ``Authorization: Bearer`` first, else ``X-API-Key``."""
    headers = Headers(scope=scope)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key")


def install(app: FastAPI, queue: actionq.AsyncActionQueue) -> None:
    """Serves ``/mcp`` on ``app``, its session manager running for the app's
    lifespan. The app's own ``Host`` check (``allowed_hosts``) stands in front
    of it, so the SDK's (which only knows localhost) is off."""
    from actionq.server.app import queue_error_handler
    from actionq.server.routes import caller_for_key

    server = _server(queue, queue.action_types)
    manager: StreamableHTTPSessionManager | None = None

    class Endpoint:
        """The ASGI app of ``/mcp``: authenticates, then hands over to the SDK."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            running = manager
            if running is None:
                # The SDK's sessions live in a task group of the app's lifespan.
                detail = {
                    "code": "SERVICE_UNAVAILABLE",
                    "message": "/mcp serves within the app's lifespan (an ASGI server, or TestClient as a context)",
                }
                await JSONResponse({"detail": detail}, status_code=503)(scope, receive, send)
                return
            try:
                scope[_CALLER] = await caller_for_key(app.state.actionq, _key(scope))
            except actionq.ActionQueueError as e:
                response = await queue_error_handler(Request(scope, receive), e)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
            await running.handle_request(scope, receive, send)

    # A Route, not a Mount: clients POST to /mcp itself, with no redirect to /mcp/.
    app.router.routes.append(Route(MCP_PATH, Endpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False))

    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        # A session manager runs once: a new one for each run of the app.
        nonlocal manager
        running = StreamableHTTPSessionManager(
            app=server,
            stateless=True,
            json_response=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with running.run(), previous(a) as state:
            manager = running
            try:
                yield state
            finally:
                manager = None

    app.router.lifespan_context = lifespan
