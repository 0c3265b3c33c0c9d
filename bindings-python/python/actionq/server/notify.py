"""Notifications (docs/contract/notifications.md): signed webhooks and
Apprise messages for audit events, delivered out of the request path, in
order per sink, at least once, across restarts and replicas.

- :func:`load_config` reads the ``--notify`` TOML file; a bad file is refused
  at start with :class:`NotifyConfigError`, naming the file and what is wrong.
- One :class:`SinkRunner` task per sink, for the app's lifespan. It holds the
  sink's job lease (``take_lease("delivery:<sink>")``, renewed while it works)
  so one replica sends per sink, reads the log with the waiting
  ``events_since`` (woken by the commit, no polling), and records each
  event's outcome with ``record_delivery``, which moves the cursor kept in
  the queue only for the lease's holder. A restart resumes at that cursor.
- A failed try is retried with exponential backoff and jitter
  (``limits.NOTIFY_RETRY_FIRST_SECONDS`` doubling up to
  ``limits.NOTIFY_RETRY_MAX_SECONDS``) until the event is ``max_age_seconds``
  old, then dead-lettered (``record_delivery(..., "dead")``).

A secret never leaves this module: :class:`Sink`'s ``repr`` hides it, errors
recorded and logged name the HTTP status or the exception's type and message
of the try, never a header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import random
import re
import socket
import time
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import httpx
from fastapi import FastAPI

import actionq
from actionq import limits

__all__ = [
    "COALESCE_SECONDS",
    "LEASE_SECONDS",
    "NOTIFY_ENV",
    "SEND_TIMEOUT_SECONDS",
    "NotifyConfig",
    "NotifyConfigError",
    "Sink",
    "SinkRunner",
    "apprise_message",
    "install",
    "load_config",
    "sign",
    "webhook_message",
]

NOTIFY_ENV = "ACTIONQ_NOTIFY"
"""Environment variable naming the sinks file when ``--notify`` is not given."""

LEASE_SECONDS = 30.0
"""How long a replica holds a sink's lease between renewals; a replica that
dies hands the sink over to another within this time."""

SEND_TIMEOUT_SECONDS = 10.0
"""The longest one try may take (connect, send, answer): a hanging receiver
costs one timeout, never the lease (renewed before every try)."""

_BATCH = 100
"""Events read per ``events_since``."""

COALESCE_SECONDS = 0.05
"""After a wake, how long a sink lets more events gather before it reads
them: a burst of creates then costs one read per batch (well inside the
contract's latency, commit to receiver under a second)."""

log = logging.getLogger("actionq.server.notify")

_KINDS = ("webhook", "apprise")
_SECRET_PREFIX = "whsec_"


class NotifyConfigError(ValueError):
    """The sinks file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Sink:
    """One ``[[sink]]`` of the file."""

    name: str
    kind: Literal["webhook", "apprise"]
    url: str = field(repr=False)
    secret: bytes | None = field(default=None, repr=False)
    statuses: frozenset[str] | None = None
    servers: tuple[str, ...] | None = None
    max_age_seconds: float = float(limits.DEFAULT_NOTIFY_MAX_AGE_SECONDS)

    def wants(self, event: actionq.Event) -> bool:
        """Whether `event` becomes a message: an action's new status this sink
        asks for, on a server its globs match."""
        if event.kind != "action" or event.to_status is None:
            return False
        if self.statuses is not None and str(event.to_status) not in self.statuses:
            return False
        return self.servers is None or any(fnmatch.fnmatchcase(event.subject, g) for g in self.servers)


@dataclass(frozen=True)
class NotifyConfig:
    """The sinks, and the page's address the messages link to."""

    sinks: tuple[Sink, ...]
    page_url: str


_SINK_KEYS = {"name", "kind", "url", "secret", "secret_file", "statuses", "servers", "max_age_seconds"}


def load_config(path: str | os.PathLike[str], page_url: str) -> NotifyConfig:
    """Reads and checks the sinks file at `path`. `page_url` is the page's
    address (a top-level ``page_url`` in the file wins)."""
    where = os.fspath(path)

    def bad(message: str) -> NotifyConfigError:
        return NotifyConfigError(f"notify file {where}: {message}")

    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise bad(f"cannot read it ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise bad(f"not valid TOML ({e})") from None
    unknown = set(document) - {"sink", "page_url"}
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)} (expected [[sink]] tables and page_url)")
    page = document.get("page_url", page_url)
    if not isinstance(page, str) or not page.startswith(("http://", "https://")):
        raise bad("page_url must be an http:// or https:// URL")
    tables = document.get("sink", [])
    if not isinstance(tables, list) or not tables:
        raise bad("no [[sink]] table")
    sinks: list[Sink] = []
    for n, table in enumerate(tables, 1):
        sinks.append(_sink(table, where=f"sink {n}", bad=bad, base=Path(path).parent))
    names = [s.name for s in sinks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad(f"sink name(s) used twice: {duplicates}")
    return NotifyConfig(sinks=tuple(sinks), page_url=page)


def _sink(table: Any, *, where: str, bad: Any, base: Path) -> Sink:
    if not isinstance(table, dict):
        raise bad(f"{where}: not a table")
    unknown = set(table) - _SINK_KEYS
    if unknown:
        raise bad(f"{where}: unknown key(s) {sorted(unknown)}")
    name = table.get("name")
    if not isinstance(name, str) or not re.fullmatch(f"[a-z0-9_-]{{1,{limits.MAX_SINK_NAME_CHARS}}}", name):
        raise bad(f"{where}: name must be 1-{limits.MAX_SINK_NAME_CHARS} characters of a-z, 0-9, '_' and '-'")
    where = f"sink '{name}'"
    kind = table.get("kind")
    if kind not in _KINDS:
        raise bad(f"{where}: kind must be one of {list(_KINDS)}")
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise bad(f"{where}: url is required")
    if kind == "webhook" and not url.startswith(("http://", "https://")):
        raise bad(f"{where}: a webhook url must be http:// or https://")
    secret: bytes | None = None
    if kind == "webhook":
        secret = _secret(table, where=where, bad=bad, base=base)
    elif "secret" in table or "secret_file" in table:
        raise bad(f"{where}: only a webhook sink takes a secret")
    if kind == "apprise":
        _check_apprise_url(url, where=where, bad=bad)
    statuses = table.get("statuses")
    if statuses is not None:
        if not isinstance(statuses, list) or not statuses or any(s not in limits.ACTION_STATUSES for s in statuses):
            raise bad(f"{where}: statuses must be a non-empty list of {list(limits.ACTION_STATUSES)}")
        statuses = frozenset(statuses)
    servers = table.get("servers")
    if servers is not None:
        if not isinstance(servers, list) or not servers or not all(isinstance(g, str) and g for g in servers):
            raise bad(f"{where}: servers must be a non-empty list of server id globs")
        servers = tuple(servers)
    max_age = table.get("max_age_seconds", limits.DEFAULT_NOTIFY_MAX_AGE_SECONDS)
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not max_age > 0:
        raise bad(f"{where}: max_age_seconds must be a number of seconds > 0")
    return Sink(
        name=name,
        kind=kind,
        url=url,
        secret=secret,
        statuses=statuses,
        servers=servers,
        max_age_seconds=float(max_age),
    )


def _secret(table: dict[str, Any], *, where: str, bad: Any, base: Path) -> bytes:
    if ("secret" in table) == ("secret_file" in table):
        raise bad(f"{where}: a webhook needs exactly one of secret and secret_file")
    if "secret_file" in table:
        file = base / str(table["secret_file"])
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise bad(f"{where}: cannot read secret_file {file} ({e.strerror})") from None
    else:
        text = str(table["secret"])
    # The message never quotes the secret.
    if not text.startswith(_SECRET_PREFIX):
        raise bad(f"{where}: the secret must be 'whsec_' followed by base64")
    try:
        key = base64.b64decode(text[len(_SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise bad(f"{where}: the secret after 'whsec_' is not base64") from None
    if len(key) < 16:
        raise bad(f"{where}: the secret is shorter than 16 bytes")
    return key


def _check_apprise_url(url: str, *, where: str, bad: Any) -> None:
    import apprise

    if apprise.Apprise.instantiate(url) is None:
        raise bad(f"{where}: Apprise does not take this url (unknown scheme or malformed)")


def sign(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` header: ``v1,`` and the
    base64 HMAC-SHA256 of ``id.timestamp.body`` under the secret's bytes."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def _link(page_url: str, action_id: int) -> str:
    return f"{page_url.rstrip('/')}/#action/{action_id}"


def webhook_message(event: actionq.Event, action: actionq.Action, page_url: str) -> bytes:
    """The webhook body of `event` (docs/contract/notifications.md#webhook)."""
    assert event.action_id is not None and event.to_status is not None
    body = {
        "type": f"action.{event.to_status}",
        "timestamp": json.loads(event.to_json())["at"],
        "data": {
            "event": json.loads(event.to_json()),
            "action": json.loads(action.to_json()),
            "url": _link(page_url, event.action_id),
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


_STDERR_TAIL = 300
"""Characters of stderr an Apprise message keeps (its end: where errors are)."""


def apprise_message(
    event: actionq.Event, action: actionq.Action, page_url: str, server: actionq.Server | None
) -> tuple[str, str]:
    """The title and short body an Apprise sink gets: server, action type,
    command, why it waits or how it ended, and the link."""
    assert event.action_id is not None
    status = str(event.to_status)
    title = f"actionq: {action.action_type} on {action.server_id} is {status}"
    lines = [
        f"Server: {action.server_id}",
        f"Action: {action.action_type} (#{action.id})",
        f"Command: {action.command}",
    ]
    if status == "pending":
        if server is not None and server.is_paused:
            why = f"server {action.server_id} is in maintenance mode"
        else:
            why = "its approval policy asks for a person"
        lines.append(f"Waits for approval: {why}")
    elif action.exit_code is not None:
        lines.append(f"Exit code: {action.exit_code}")
    if status in ("failed", "completed") and action.stderr:
        tail = action.stderr[-_STDERR_TAIL:]
        lines.append(f"stderr (end): {tail}")
    if event.detail:
        lines.append(f"Detail: {event.detail}")
    lines.append(f"Open: {_link(page_url, event.action_id)}")
    return title, "\n".join(lines)


class _SendFailed(Exception):
    """One try failed; the message says why (never a secret)."""


def replica_id() -> str:
    """This process's holder name for leases: host, pid and a random part."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SinkRunner:
    """Delivers one sink's messages while this replica holds its lease."""

    def __init__(
        self,
        queue: actionq.AsyncActionQueue,
        sink: Sink,
        page_url: str,
        holder: str,
        client: httpx.AsyncClient,
        lease_seconds: float = LEASE_SECONDS,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.page_url = page_url
        self.holder = holder
        self.client = client
        self.lease_seconds = lease_seconds
        self.send_timeout = send_timeout
        # The core's `jobs::delivery_lease_name`: the lease that guards the cursor.
        self.lease = f"delivery:{sink.name}"
        self._apprise: Any = None

    async def run(self) -> None:
        """Runs until cancelled: takes the lease (waiting while another
        replica has it), then delivers; a store error is logged and retried."""
        while True:
            try:
                await self._hold_and_deliver()
            except actionq.ConflictError:
                # Another replica holds the lease (or took it over): try again later.
                await asyncio.sleep(self.lease_seconds / 3)
            except actionq.ActionQueueError as e:
                log.warning("notify: store error", extra={"sink": self.sink.name, "error": e.code})
                await asyncio.sleep(1.0)

    async def release(self) -> None:
        """Gives the lease up (at shutdown), so another replica goes on at once."""
        with contextlib.suppress(actionq.ActionQueueError):
            await self.queue.release_lease(self.lease, self.holder)

    async def _renew(self) -> float:
        """Takes or renews the lease; the monotonic time by which to renew again."""
        await self.queue.take_lease(self.lease, self.holder, self.lease_seconds)
        return time.monotonic() + self.lease_seconds / 3

    async def _hold_and_deliver(self) -> None:
        renew_at = await self._renew()
        cursor = (await self.queue.register_delivery(self.sink.name, self.sink.kind)).cursor
        while True:
            wait = max(0.0, min(renew_at - time.monotonic(), limits.MAX_WAIT_SECONDS))
            events = await self.queue.events_since(cursor, _BATCH, wait_seconds=wait)
            if 0 < len(events) < _BATCH:
                # Woken by a commit: let a burst gather, so it costs one read and
                # one skip record per batch, not per event, beside the creates.
                await asyncio.sleep(COALESCE_SECONDS)
                events += await self.queue.events_since(events[-1].id, _BATCH - len(events))
            if time.monotonic() >= renew_at:
                renew_at = await self._renew()
            skipped: actionq.Event | None = None
            for event in events:
                if not self.sink.wants(event):
                    skipped = event
                    continue
                if skipped is not None:
                    await self._record(skipped.id, "skipped")
                    skipped = None
                renew_at = await self._deliver(event, renew_at)
            if skipped is not None:
                await self._record(skipped.id, "skipped")
            if events:
                cursor = events[-1].id

    async def _record(self, event_id: int, outcome: str, error: str | None = None) -> actionq.Delivery:
        return await self.queue.record_delivery(self.sink.name, self.holder, event_id, outcome, error)  # type: ignore[arg-type]

    async def _deliver(self, event: actionq.Event, renew_at: float) -> float:
        """Sends `event` until it is delivered or too old; records the outcome."""
        assert event.action_id is not None
        action = await self.queue.get_action(event.action_id)
        delay = float(limits.NOTIFY_RETRY_FIRST_SECONDS)
        message_id = f"aq-{event.id}"
        while True:
            if time.monotonic() >= renew_at:
                renew_at = await self._renew()
            try:
                await self._send(event, action, message_id)
            except _SendFailed as e:
                error = str(e)
                age = (datetime.now(timezone.utc) - event.at).total_seconds()
                if age + delay > self.sink.max_age_seconds:
                    await self._record(event.id, "dead", error)
                    log.warning(
                        "notification dead-lettered",
                        extra={"sink": self.sink.name, "event_id": event.id, "error": error},
                    )
                    return renew_at
                await self._record(event.id, "failed", error)
                log.info(
                    "notification try failed",
                    extra={"sink": self.sink.name, "event_id": event.id, "error": error, "retry_in": delay},
                )
                # Jitter: a random point in the second half of the delay, so
                # replicas and sinks that failed together do not retry together.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, float(limits.NOTIFY_RETRY_MAX_SECONDS))
                continue
            await self._record(event.id, "sent")
            return renew_at

    async def _send(self, event: actionq.Event, action: actionq.Action, message_id: str) -> None:
        if self.sink.kind == "webhook":
            await self._send_webhook(event, action, message_id)
        else:
            await self._send_apprise(event, action)

    async def _send_webhook(self, event: actionq.Event, action: actionq.Action, message_id: str) -> None:
        assert self.sink.secret is not None
        body = webhook_message(event, action, self.page_url)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.sink.secret, message_id, timestamp, body),
        }
        try:
            response = await self.client.post(self.sink.url, content=body, headers=headers, timeout=self.send_timeout)
        except httpx.TimeoutException:
            raise _SendFailed(f"timed out after {self.send_timeout:g} s") from None
        except httpx.HTTPError as e:
            raise _SendFailed(f"{type(e).__name__}: {e}") from None
        if not 200 <= response.status_code < 300:
            raise _SendFailed(f"HTTP {response.status_code}")

    async def _send_apprise(self, event: actionq.Event, action: actionq.Action) -> None:
        import apprise

        if self._apprise is None:
            self._apprise = apprise.Apprise()
            self._apprise.add(self.sink.url)
        server = None
        with contextlib.suppress(actionq.NotFoundError):
            server = await self.queue.get_server(action.server_id)
        title, body = apprise_message(event, action, self.page_url, server)
        try:
            # Apprise's plugins block: a thread, bounded by the send timeout.
            sent = await asyncio.wait_for(
                asyncio.to_thread(self._apprise.notify, body=body, title=title), self.send_timeout
            )
        except asyncio.TimeoutError:
            raise _SendFailed(f"timed out after {self.send_timeout:g} s") from None
        if not sent:
            raise _SendFailed("Apprise could not deliver it (see the actionq.server.notify log for its reason)")


def install(app: FastAPI, queue: actionq.AsyncActionQueue, config: NotifyConfig) -> None:
    """Runs one delivery task per sink for the app's lifespan, and keeps the
    config for ``GET /api/v1/notifications``."""
    app.state.actionq_notify = config
    previous = app.router.lifespan_context
    holder = replica_id()

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            runners = [
                SinkRunner(queue, sink, config.page_url, holder, client, LEASE_SECONDS, SEND_TIMEOUT_SECONDS)
                for sink in config.sinks
            ]
            tasks = [asyncio.ensure_future(r.run()) for r in runners]
            try:
                async with previous(a) as state:
                    yield state
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                for runner in runners:
                    await runner.release()

    app.router.lifespan_context = lifespan
