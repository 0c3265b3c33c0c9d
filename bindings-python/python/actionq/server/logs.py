"""Structured logs for ``actionq-server --log-format json``
(docs/contract/deployment.md#logs).

Every line on stdout is one JSON object with ``time`` (UTC, ISO 8601),
``level``, ``logger`` and ``message``:

- one per request, from :class:`RequestLog` (logger ``actionq.server.request``):
  ``request_id`` (the caller's ``X-Request-ID`` when it is a plain token, else
  a new one; echoed in the response), ``method``, ``route`` (the template,
  ``/api/v1/actions/{action_id}``, never the raw path or its query),
  ``status``, ``duration_ms``, ``caller`` (the authenticated name, else null)
  and ``action_id`` when the route has one;
- one per background job run (``actionq.server.job``, see
  :mod:`actionq.server.health`);
- uvicorn's own start-up and error lines, in the same shape.

No line carries a header value, a body or a query string, so no key, token or
secret can reach it; a message that quotes a URL has its password replaced by
``***`` all the same (a database URL in an error, say).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CALLER_SCOPE_KEY", "LOG_FORMATS", "JsonFormatter", "RequestLog", "log_config", "redact"]

LOG_FORMATS = ("text", "json")
"""The values of ``--log-format``."""

LogFormat = Literal["text", "json"]

CALLER_SCOPE_KEY = "actionq.caller"
"""Where the routes' caller dependencies leave the caller's name in the ASGI scope."""

request_log = logging.getLogger("actionq.server.request")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")

# Attributes every LogRecord has: the rest came from `extra=` and are fields.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@`` replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the standard fields and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_") and name not in line:
                line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def log_config(log_format: LogFormat) -> dict[str, Any]:
    """uvicorn's ``log_config`` for ``log_format``: uvicorn's loggers and
    actionq's on stdout, as JSON lines or as uvicorn's usual text."""
    if log_format == "json":
        formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"}
    else:
        formatter = {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout"}
    # Text mode: actionq's start-up lines as they always read (copy-paste ready).
    plain = "default" if log_format == "json" else "plain"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": formatter,
            "plain": {"format": "%(message)s"},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'},
        },
        "handlers": {
            "default": handler,
            "access": {**handler, "formatter": "access"},
            "plain": {**handler, "formatter": plain},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            # Request and job lines only as JSON: in text mode uvicorn's access
            # log tells the requests, and a sweep every few seconds is noise.
            **{
                name: {"handlers": ["plain"], "level": "INFO" if log_format == "json" else "WARNING", "propagate": False}
                for name in ("actionq.server.request", "actionq.server.job")
            },
            "actionq.server": {"handlers": ["plain"], "level": "INFO", "propagate": False},
        },
    }


class RequestLog:
    """Pure ASGI middleware: one ``actionq.server.request`` line per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.monotonic()
        status = 500  # what the client sees when the app fails before answering

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            route = scope.get("route")
            action_id = scope.get("path_params", {}).get("action_id")
            if isinstance(action_id, str) and action_id.lstrip("-").isdigit():
                action_id = int(action_id)
            request_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    # The template, or None for a path no route matched
                    # (the raw path could be anything a scanner sends).
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round((time.monotonic() - started) * 1000, 3),
                    "caller": scope.get(CALLER_SCOPE_KEY),
                    "action_id": action_id,
                },
            )
