"""The command line's HTTP client: one :class:`Api` over httpx, and the one
mapping from what the server (or the network) answered to an exit code
(docs/contract/cli-and-mcp.md#exit-codes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "DENIED",
    "DONE",
    "REFUSED",
    "UNREACHABLE",
    "USAGE",
    "Api",
    "ApiError",
    "NotTheApi",
    "StreamMissing",
    "exit_code",
    "parse_sse",
]

DONE = 0
"""The command did what it was asked."""
REFUSED = 1
"""Refused by the queue's rules (``VALIDATION_ERROR``, ``NOT_FOUND``, ``FORBIDDEN``, ``CONFLICT``)."""
USAGE = 2
"""Bad command line (click's own code for usage errors)."""
DENIED = 3
"""``UNAUTHENTICATED`` or ``PERMISSION_DENIED``: who asked may not."""
UNREACHABLE = 4
"""The server could not be reached, or could not serve (a 5xx)."""

_DENIED_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


@dataclass
class ApiError(Exception):
    """What the server refused, as its error body says: ``code`` and ``message``
    (FastAPI's request-shape 422, a list of errors, reads as ``VALIDATION_ERROR``)."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotTheApi(Exception):
    """Something answered, but not the actionq API (a wrong ``--url``)."""


class StreamMissing(Exception):
    """The server has no such stream route (an older server): fall back to polling."""


def exit_code(error: ApiError) -> int:
    """The exit code for a refusal (docs/contract/cli-and-mcp.md#exit-codes)."""
    if error.code in _DENIED_CODES or error.status == 401:
        return DENIED
    if error.status >= 500:
        return UNREACHABLE
    return REFUSED


def _error(response: httpx.Response) -> ApiError | NotTheApi:
    if _is_route_missing(response):
        return NotTheApi(f"{response.url} answered {response.status_code}: no such route here")
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict) and "code" in detail:
        return ApiError(response.status_code, str(detail["code"]), str(detail.get("message", "")))
    if isinstance(detail, list):
        # FastAPI's request-shape errors: where and what, one per problem.
        parts = []
        for item in detail:
            where = ".".join(str(p) for p in item.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {item.get('msg', 'invalid')}")
        return ApiError(response.status_code, "VALIDATION_ERROR", "; ".join(parts))
    text = detail if isinstance(detail, str) else response.reason_phrase
    code = {401: "UNAUTHENTICATED", 404: "NOT_FOUND", 413: "PAYLOAD_TOO_LARGE"}.get(response.status_code, "HTTP_ERROR")
    return ApiError(response.status_code, code, f"HTTP {response.status_code}: {text}")


def _is_route_missing(response: httpx.Response) -> bool:
    """A 404 from routing (FastAPI's bare ``{"detail": "Not Found"}``), not the
    queue's ``NOT_FOUND`` for an unknown action."""
    if response.status_code not in (404, 405):
        return False
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return True
    return not isinstance(detail, dict)


class Api:
    """The ``/api/v1`` routes the command line calls, as the key's owner."""

    def __init__(self, url: str, key: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"X-API-Key": key, "User-Agent": "actionq-cli"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON the route answered (``None`` for 204), or :class:`ApiError`.
        Network failures raise ``httpx.TransportError``."""
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise NotTheApi(f"{response.url} did not answer JSON: is this an actionq server?") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def stream(self, path: str, **params: Any) -> Iterator[tuple[str, str, Any]]:
        """Server-sent events of ``path`` as ``(id, event, data)``, ``data``
        decoded from JSON; :class:`StreamMissing` when the server has no such
        route. Ends when the server closes the stream."""
        query = {k: v for k, v in params.items() if v is not None}
        # No read timeout: a quiet stream only sends its keep-alive comments.
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        with self._http.stream("GET", path, params=query, timeout=timeout, headers={"Accept": "text/event-stream"}) as r:
            if r.status_code >= 400:
                r.read()
                if _is_route_missing(r):
                    raise StreamMissing(path)
                raise _error(r)
            yield from parse_sse(r.iter_lines())


    def lines(self, path: str, **params: Any) -> Iterator[str]:
        """The lines of a streamed answer (``/export``'s JSON Lines), as they
        arrive; :class:`ApiError` for an error answer."""
        query = {k: v for k, v in params.items() if v is not None}
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        with self._http.stream("GET", path, params=query, timeout=timeout) as r:
            if r.status_code >= 400:
                r.read()
                raise _error(r)
            for line in r.iter_lines():
                if line:
                    yield line


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str, Any]]:
    """The messages of a ``text/event-stream`` (the WHATWG rules this server
    uses: ``id``, ``event``, ``data`` lines, a blank line ends a message,
    ``:`` starts a comment)."""
    event_id, event = "", "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield event_id, event, payload
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "event":
            event = value
