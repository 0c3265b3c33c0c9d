"""The app factory (docs/contract/http.md#app-factory): the HTTP contract
(prefix ``/api/v1``, ``X-API-Key``) over an :class:`actionq.AsyncActionQueue`,
with the routes of :mod:`actionq.server.routes`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import actionq
from actionq import limits
from actionq.server.routes import ServerState, router
from actionq.server import docs, health, mcp_endpoint, metrics, notify, web
from actionq.server import openapi as openapi_document

__all__ = [
    "API_KEY_ENV",
    "CLAIM_PUBLIC_KEY_NAME",
    "CLAIM_SIGNING_KEY_NAME",
    "POSTGRES_SCHEMES",
    "SIGNING_KEY_ENV",
    "BodyLimit",
    "SigningKeySource",
    "WhitelistSource",
    "create_app",
    "load_whitelist",
    "resolve_signing_key",
    "queue_error_handler",
    "undecodable_body_handler",
]

API_KEY_ENV = "ACTIONQ_API_KEY"
"""Environment variable holding the API key when `create_app` is given none."""

SIGNING_KEY_ENV = "ACTIONQ_SIGNING_KEY_FILE"
"""Environment variable naming the claim-signing key file when `create_app` is given none."""

CLAIM_SIGNING_KEY_NAME = "claim-signing.key"
"""The claim-signing key generated beside a SQLite file when none is given (mode 0600)."""

CLAIM_PUBLIC_KEY_NAME = "claim-signing.pub"
"""Its public key, written beside it: what agents pin (``claim_public_key_file``)."""

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""URL prefixes that name a PostgreSQL database rather than a SQLite file."""

SigningKeySource = Union[actionq.ClaimSigningKey, str, os.PathLike[str]]
"""A claim-signing key, or the path of its PEM (PKCS#8) file."""


def resolve_signing_key(
    signing_key: SigningKeySource | None, db_path: str | os.PathLike[str] | None
) -> tuple[actionq.ClaimSigningKey, str]:
    """The key the server signs claims with, and where it came from (for the log).

    A key or a key file given (else ``ACTIONQ_SIGNING_KEY_FILE``) is used as
    is. Without one, a SQLite database keeps its key beside it:
    ``claim-signing.key`` (generated on first start, mode 0600) and
    ``claim-signing.pub`` for agents, reused on later starts. An in-memory or
    PostgreSQL queue without a key gets an ephemeral one, which no agent can
    have pinned: give such a server a key file.
    """
    if isinstance(signing_key, actionq.ClaimSigningKey):
        return signing_key, "the claim-signing key given"
    path = signing_key if signing_key is not None else os.environ.get(SIGNING_KEY_ENV) or None
    if path is not None:
        return actionq.ClaimSigningKey.load(path), f"claim-signing key {os.fspath(path)}"
    if db_path is not None and not os.fspath(db_path).startswith(POSTGRES_SCHEMES):
        folder = Path(db_path).parent
        key_path, public_path = folder / CLAIM_SIGNING_KEY_NAME, folder / CLAIM_PUBLIC_KEY_NAME
        key, generated = actionq.ClaimSigningKey.load_or_generate(key_path, public_path)
        made = "generated" if generated else "reused"
        return key, f"claim-signing key {key_path} ({made}); agents pin its public key {public_path}"
    return (
        actionq.ClaimSigningKey.generate(),
        "an ephemeral claim-signing key (no agent can pin it: pass a key file)",
    )


WhitelistSource = Union[str, os.PathLike[str], Mapping[str, Any]]
"""A whitelist config: JSON text, a dict, or the path of a JSON file."""


def load_whitelist(whitelist: WhitelistSource | None) -> str | Mapping[str, Any] | None:
    """The config to give :class:`actionq.ActionQueue` (which parses and checks it).

    A mapping or a ``str`` starting with ``{`` (after whitespace) is the config
    itself; an ``os.PathLike`` or any other ``str`` names a JSON file to read.
    """
    if whitelist is None or isinstance(whitelist, Mapping):
        return whitelist
    if isinstance(whitelist, str) and whitelist.lstrip().startswith("{"):
        return whitelist
    return Path(whitelist).read_text(encoding="utf-8")


async def queue_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The one mapping from actionq errors to HTTP responses (docs/contract/errors.md#kinds)."""
    assert isinstance(exc, actionq.ActionQueueError)
    detail: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.existing_action_id is not None:
        detail["existing_action_id"] = exc.existing_action_id
    return JSONResponse(status_code=exc.http_status, content={"detail": detail})


async def undecodable_body_handler(request: Request, exc: Exception) -> Response:
    """A body that is not UTF-8 is not JSON: FastAPI's 422 ``json_invalid``,
    as for any other unparseable body, instead of the bare 400 FastAPI gives
    when decoding (not parsing) fails. Other HTTP errors (Starlette's, which
    FastAPI's subclass) pass to FastAPI's own handler unchanged."""
    assert isinstance(exc, HTTPException)
    cause = exc.__cause__
    if exc.status_code == 405:
        return await http_exception_handler(request, _allow_every_method(request, exc))
    if not isinstance(cause, UnicodeDecodeError):
        return await http_exception_handler(request, exc)
    error = {
        "type": "json_invalid",
        "loc": ("body", cause.start),
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": f"invalid UTF-8 at byte {cause.start}"},
    }
    return await request_validation_exception_handler(request, RequestValidationError([error]))


def _allow_every_method(request: Request, exc: HTTPException) -> HTTPException:
    """A 405 whose ``Allow`` names every method the OpenAPI document gives the
    path: Starlette's names only those of the first route matching it, and a
    path such as ``/api/v1/servers`` has one route per method."""
    segments = request.url.path.split("/")
    allowed = {
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if _same_path(template.split("/"), segments)
        for method in operations
    }
    if not allowed:
        return exc
    return HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))})


def _same_path(template: list[str], segments: list[str]) -> bool:
    return len(template) == len(segments) and all(
        t == s or (t.startswith("{") and t.endswith("}") and s != "") for t, s in zip(template, segments)
    )


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (default
    ``actionq.limits.MAX_REQUEST_BODY_BYTES``, 1 MiB) is refused with 413
    ``PAYLOAD_TOO_LARGE`` before it is read whole. A declared
    ``Content-Length`` over the limit is refused before any of the body is
    read; a body without one (chunked) is counted as it arrives, and the read
    stops at the first chunk past the limit."""

    def __init__(self, app: ASGIApp, limit: int = limits.MAX_REQUEST_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> tuple[int, dict[str, Any]]:
        return 413, {
            "detail": {
                "code": "PAYLOAD_TOO_LARGE",
                "message": f"Request body is larger than {self.limit} bytes",
            }
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the server refuses a malformed length itself
                if declared > self.limit:
                    status, body = self._refusal()
                    await JSONResponse(body, status_code=status)(scope, receive, send)
                    return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    status, body = self._refusal()
                    # FastAPI passes an HTTPException raised while it reads the
                    # body on to the app's handler, which renders this detail.
                    raise HTTPException(status_code=status, detail=body["detail"])
            return message

        await self.app(scope, counted, send)


def create_app(
    db_path: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    whitelist: WhitelistSource | None = None,
    *,
    durability: Literal["normal", "full"] | None = None,
    busy_timeout_seconds: float | None = None,
    clock: actionq.ManualClock | None = None,
    signing_key: SigningKeySource | None = None,
    allowed_hosts: Sequence[str] | None = None,
    notify_config: notify.NotifyConfig | None = None,
) -> FastAPI:
    """Builds the Action Queue API over a new actionq queue.

    ``db_path`` None keeps the queue in memory, a path opens (or creates) that
    SQLite file, a ``postgresql://`` URL that PostgreSQL database. ``api_key`` None reads ``ACTIONQ_API_KEY``; with no key at all
    this refuses (RuntimeError), so no server ever runs open. ``whitelist`` is a
    config (JSON text, dict, or the path of a JSON file; None: the default
    whitelist); its action types are the ones the routes accept and the
    OpenAPI document lists. ``durability``/``busy_timeout_seconds`` go to the
    SQLite store (None: actionq's defaults); ``clock`` replaces the system
    clock (tests). ``signing_key`` signs every claim (see
    :func:`resolve_signing_key` for what None does). ``allowed_hosts`` are
    the ``Host`` header values served (against DNS rebinding; others get
    400); None checks no Host header, for a host that mounts the app behind
    its own check (``actionq-server`` always passes a list).
    ``notify_config`` (:func:`actionq.server.notify.load_config`) runs its
    sinks' deliveries for the app's lifespan (docs/contract/notifications.md).
    """
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if not key:
        raise RuntimeError(
            f"no API key: pass create_app(api_key=...) or set {API_KEY_ENV}; "
            "refusing to build an Action Queue API that anyone could call"
        )
    queue = actionq.AsyncActionQueue(
        db_path,
        whitelist=load_whitelist(whitelist),
        durability=durability,
        busy_timeout_seconds=busy_timeout_seconds,
        clock=clock,
    )
    app = FastAPI(
        # /docs is served from the wheel's files by `docs.docs_router`.
        docs_url=None,
        redoc_url=None,
        title="actionq Action Queue API",
        version=actionq.__version__,
        description="Whitelisted remediation actions: request, approve, execute, audit.",
        # FastAPI's own OpenTelemetry asks the global providers on every
        # request whether it is on (about 5 % of an idle agent's renewal);
        # the server reports through /metrics and its logs instead
        # (docs/contract/deployment.md). FastAPI before 0.165 ignores it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    signer, _ = resolve_signing_key(signing_key, db_path)
    app.state.actionq = ServerState(queue=queue, api_key=key.encode(), signing_key=signer)
    app.add_exception_handler(actionq.ActionQueueError, queue_error_handler)
    app.add_exception_handler(HTTPException, undecodable_body_handler)
    app.add_middleware(BodyLimit)
    if allowed_hosts is not None:
        # Added last, so it runs first: a foreign Host is refused before anything else.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.include_router(router)
    app.include_router(docs.docs_router)
    # The approvers' page at / and Prometheus metrics at /metrics.
    app.include_router(web.page_router)
    # /healthz, /readyz and the lease sweeper (docs/contract/deployment.md).
    health.install(app, queue)
    metrics.install(app, queue)
    if notify_config is not None:
        notify.install(app, queue, notify_config)
    # The Model Context Protocol at /mcp, for assistants (docs/contract/cli-and-mcp.md#mcp).
    mcp_endpoint.install(app, queue)

    document = app.openapi
    whitelist_config = json.loads(queue.whitelist_json)

    def openapi() -> dict[str, Any]:
        """FastAPI's document, told this app's whitelist (actionq.server.openapi)."""
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document.finish(document(), queue.action_types, whitelist_config)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
