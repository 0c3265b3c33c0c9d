"""Notifications (docs/contract/notifications.md): signed webhooks and
Apprise messages for audit events, delivered out of the request path, in
order per sink, at least once, across restarts and replicas.

- :func:`load_config` reads the ``--notify`` TOML file; a bad file is refused
  at start with :class:`NotifyConfigError`, naming the file and what is wrong.
- One :class:`SinkRunner` task per sink, for the app's lifespan: in a process
  of its own on a SQLite file (:func:`install`). It holds the sink's job
  lease (``take_lease(delivery_lease_name(sink))``, renewed while it works)
  so one replica sends per sink, reads the log with the waiting
  ``events_since`` (woken by the commit, no polling), and records what it
  delivered or skipped once per batch with ``record_sent`` (a failed try or
  a dead letter with ``record_delivery``), which moves the cursor kept in
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
import logging.handlers
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import signal
import socket
import time
import tomllib
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import h11
import httpx
from fastapi import FastAPI

import actionq
from actionq import limits

__all__ = [
    "COALESCE_SECONDS",
    "LEASE_SECONDS",
    "NOTIFY_ENV",
    "SEND_TIMEOUT_SECONDS",
    "WATCH_SECONDS",
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

_RECORD_SECONDS = 1.0
"""The longest a delivered message waits for its record when a batch is slow
to send (else it is recorded with its batch): what a crash may send again."""

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
    # Put together from the records' own compact JSON: parsing and printing
    # them again would cost every message as much as its signature.
    event_json = event.to_json()
    at = json.dumps(json.loads(event_json)["at"])
    url = json.dumps(_link(page_url, event.action_id))
    return (
        f'{{"type":"action.{event.to_status}","timestamp":{at},'
        f'"data":{{"event":{event_json},"action":{action.to_json()},"url":{url}}}}}'
    ).encode()


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


class _Webhook:
    """POSTs to one webhook URL over one kept-alive HTTP/1.1 connection: h11
    on asyncio streams, about a sixth of the CPU a message that httpx's
    client takes (every event costs it once per sink, beside the requests).
    A URL the environment sends through a proxy (``HTTP(S)_PROXY``,
    ``ALL_PROXY``, ``NO_PROXY``) goes through httpx, which speaks to proxies."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.tls = httpx.create_ssl_context() if parts.scheme == "https" else None
        self.port = parts.port or (443 if self.tls else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = [("host", parts.netloc.rpartition("@")[2])]
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers.append(("authorization", "Basic " + base64.b64encode(pair).decode()))
        proxies = urllib.request.getproxies()
        proxied = bool({parts.scheme, "all"} & set(proxies)) and not urllib.request.proxy_bypass(self.host)
        self.proxied = httpx.AsyncClient(follow_redirects=False) if proxied else None
        self.url = url
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._http = h11.Connection(h11.CLIENT)

    async def post(self, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """Sends `body`; the answer's status. An OSError or h11.ProtocolError
        when the exchange broke off (the connection is then dropped)."""
        if self.proxied is not None:
            return (await self.proxied.post(self.url, content=body, headers=headers, timeout=timeout)).status_code
        try:
            return await asyncio.wait_for(self._exchange(body, headers), timeout)
        except BaseException:
            # Timed out, refused, cut: never reuse a connection in an unknown state.
            self._drop()
            raise

    async def _exchange(self, body: bytes, headers: dict[str, str]) -> int:
        if self._streams is None or self._streams[0].at_eof():
            # None yet, or the receiver closed the idle one.
            self._drop()
            self._streams = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
        reader, writer = self._streams
        http = self._http
        request = h11.Request(
            method="POST",
            target=self.target,
            headers=[*self.headers, ("content-length", str(len(body))), *headers.items()],
        )
        writer.write(http.send(request) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
        await writer.drain()
        status = 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the receiver closed the connection before its answer ended")
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
        else:
            self._drop()  # the receiver closes it (or asked to)
        return status

    def _drop(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        self._streams = None
        self._http = h11.Connection(h11.CLIENT)

    async def aclose(self) -> None:
        """Closes the connection."""
        self._drop()
        if self.proxied is not None:
            await self.proxied.aclose()


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
        lease_seconds: float = LEASE_SECONDS,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.page_url = page_url
        self.holder = holder
        self.webhook = _Webhook(sink.url) if sink.kind == "webhook" else None
        self.lease_seconds = lease_seconds
        self.send_timeout = send_timeout
        self.lease = actionq.delivery_lease_name(sink.name)
        # The last event passed (delivered, skipped) and not yet recorded, and
        # how many messages were delivered through it.
        self._passed: tuple[int, int] | None = None
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
        """Records what was delivered and not yet recorded, gives the lease up
        (at shutdown), so another replica goes on at once, and closes the
        webhook's connection."""
        with contextlib.suppress(actionq.ActionQueueError):
            await self._flush()
        with contextlib.suppress(actionq.ActionQueueError):
            await self.queue.release_lease(self.lease, self.holder)
        if self.webhook is not None:
            await self.webhook.aclose()

    async def _renew(self) -> float:
        """Takes or renews the lease; the monotonic time by which to renew again."""
        await self.queue.take_lease(self.lease, self.holder, self.lease_seconds)
        return time.monotonic() + self.lease_seconds / 3

    async def _hold_and_deliver(self) -> None:
        self._passed = None  # what an earlier turn passed and did not record is sent again
        renew_at = await self._renew()
        cursor = (await self.queue.register_delivery(self.sink.name, self.sink.kind)).cursor
        while True:
            wait = max(0.0, min(renew_at - time.monotonic(), limits.MAX_WAIT_SECONDS))
            events = await self.queue.events_since(cursor, _BATCH, wait_seconds=wait)
            if 0 < len(events) < _BATCH:
                # Woken by a commit: let a burst gather, so it costs one read and
                # one record per batch, not per event, beside the creates.
                await asyncio.sleep(COALESCE_SECONDS)
                events += await self.queue.events_since(events[-1].id, _BATCH - len(events))
            if time.monotonic() >= renew_at:
                renew_at = await self._renew()
            wanted = {e.action_id for e in events if self.sink.wants(e)}
            actions = await asyncio.to_thread(self._actions, wanted) if wanted else {}
            record_at = time.monotonic() + _RECORD_SECONDS
            for event in events:
                if self.sink.wants(event):
                    renew_at = await self._deliver(event, actions[event.action_id], renew_at)
                else:
                    self._pass(event.id, 0)
                if time.monotonic() >= record_at:
                    await self._flush()
                    record_at = time.monotonic() + _RECORD_SECONDS
            await self._flush()
            if events:
                cursor = events[-1].id

    def _actions(self, ids: set[int | None]) -> dict[int | None, actionq.Action]:
        """The actions of a batch's messages, read in one call off the loop
        (not one call, and one trip to a thread, per message)."""
        return {i: self.queue.queue.get_action(i) for i in ids if i is not None}

    def _pass(self, event_id: int, sent: int) -> None:
        """Notes that the cursor may pass `event_id`, `sent` (0 or 1) messages more."""
        self._passed = (event_id, sent + (self._passed[1] if self._passed else 0))

    async def _flush(self) -> None:
        """Records what was passed since the last record, in one write
        (``record_sent``): the cursor moves only after the messages before it
        were delivered, so a crash before this sends them again, never loses one."""
        if self._passed is not None:
            through, sent = self._passed
            await self.queue.record_sent(self.sink.name, self.holder, through, sent)
            self._passed = None

    async def _record(self, event_id: int, outcome: str, error: str) -> actionq.Delivery:
        """Records a failed try or a dead letter, after what was passed before it."""
        await self._flush()
        return await self.queue.record_delivery(self.sink.name, self.holder, event_id, outcome, error)  # type: ignore[arg-type]

    async def _deliver(self, event: actionq.Event, action: actionq.Action, renew_at: float) -> float:
        """Sends `event` until it is delivered or too old; records the outcome."""
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
            self._pass(event.id, 1)
            return renew_at

    async def _send(self, event: actionq.Event, action: actionq.Action, message_id: str) -> None:
        if self.sink.kind == "webhook":
            await self._send_webhook(event, action, message_id)
        else:
            await self._send_apprise(event, action)

    async def _send_webhook(self, event: actionq.Event, action: actionq.Action, message_id: str) -> None:
        assert self.sink.secret is not None and self.webhook is not None
        body = webhook_message(event, action, self.page_url)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.sink.secret, message_id, timestamp, body),
        }
        try:
            status = await self.webhook.post(body, headers, self.send_timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _SendFailed(f"timed out after {self.send_timeout:g} s") from None
        except (OSError, h11.ProtocolError, httpx.HTTPError) as e:
            raise _SendFailed(f"{type(e).__name__}: {e}") from None
        if not 200 <= status < 300:
            raise _SendFailed(f"HTTP {status}")

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
    """Runs the sinks' deliveries for the app's lifespan, and keeps the config
    for ``GET /api/v1/notifications``. On a SQLite file they run in a process
    of their own (:class:`_Apart`): their HTTP, JSON and signing then never
    hold this process's interpreter while it serves requests. In memory (one
    process only) and on PostgreSQL (whose URL the queue does not give back)
    they run as tasks on this event loop. That process is spawned, so a
    program that builds the app in its main script keeps what it runs under
    ``if __name__ == "__main__":``, as :mod:`multiprocessing` asks."""
    app.state.actionq_notify = config
    previous = app.router.lifespan_context
    holder = replica_id()

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        # Read at start, so a test may set them first.
        timing = (LEASE_SECONDS, SEND_TIMEOUT_SECONDS)
        # Before serving: a new sink starts at the end of the log as of now,
        # not as of whenever its delivery gets going.
        for sink in config.sinks:
            await queue.register_delivery(sink.name, sink.kind)
        path = queue.queue.path
        if path is None:
            async with _delivering(queue, config, holder, *timing), previous(a) as state:
                yield state
            return
        apart = _Apart(str(path), queue.queue.whitelist_json, config, holder, *timing)
        await asyncio.to_thread(apart.start)
        keeper = asyncio.ensure_future(_keep(apart))
        try:
            async with previous(a) as state:
                yield state
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await asyncio.to_thread(apart.stop)

    app.router.lifespan_context = lifespan


@contextlib.asynccontextmanager
async def _delivering(
    queue: actionq.AsyncActionQueue, config: NotifyConfig, holder: str, lease_seconds: float, send_timeout: float
) -> AsyncIterator[None]:
    """One :class:`SinkRunner` task per sink while inside; on the way out they
    stop and give their leases up."""
    runners = [SinkRunner(queue, sink, config.page_url, holder, lease_seconds, send_timeout) for sink in config.sinks]
    tasks = [asyncio.ensure_future(r.run()) for r in runners]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for runner in runners:
            await runner.release()


_STOP_SECONDS = 10.0
"""How long the server waits for the delivery process to give its leases up."""

_NICENESS = 10
"""Added to the delivery process's niceness: when the cores are short, the
requests go first (a create never waits for a sink); delivery has the
second (its goal: under a second from commit to receiver)."""

WATCH_SECONDS = 5.0
"""How often the server checks that its delivery process runs."""


async def _keep(apart: _Apart) -> None:
    """Starts the delivery process again when it ended on its own (killed,
    crashed): delivery never stops in silence. The new one holds the leases
    under the same holder name, so it goes on at the cursors at once."""
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        if not apart.process.is_alive():
            log.error(
                "notify: the delivery process ended; starting another",
                extra={"exit_code": apart.process.exitcode},
            )
            await asyncio.to_thread(apart.start)


class _Apart:
    """The delivery process of a SQLite queue: spawned (a fresh interpreter,
    never a fork of this threaded one), it opens the same file and runs
    :func:`_delivering` until told to stop or until this process is gone (its
    pipe closes). Its log records come back here, to this process's handlers."""

    def __init__(
        self, path: str, whitelist: str, config: NotifyConfig, holder: str, lease_seconds: float, send_timeout: float
    ) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.records: Any = self.context.Queue()
        self.listener = logging.handlers.QueueListener(self.records, _Relay())
        self.listener.start()
        self.args = (path, whitelist, config, holder, lease_seconds, send_timeout)
        self.stop_here: multiprocessing.connection.Connection | None = None
        self.process: Any = None

    def start(self) -> None:
        """Starts the process (again, when the last one ended)."""
        if self.stop_here is not None:
            self.stop_here.close()
        self.stop_here, stop_there = self.context.Pipe()
        self.process = self.context.Process(
            target=_deliver_apart,
            args=(*self.args, stop_there, self.records),
            name="actionq-notify",
            daemon=True,
        )
        self.process.start()
        stop_there.close()

    def stop(self) -> None:
        """Tells it to stop and waits for it (it releases its leases first)."""
        assert self.stop_here is not None
        with contextlib.suppress(OSError):
            self.stop_here.send("stop")
        self.process.join(_STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.stop_here.close()
        self.listener.stop()
        self.records.close()


class _Relay(logging.Handler):
    """Hands a record of the delivery process to this process's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _deliver_apart(
    path: str,
    whitelist: str,
    config: NotifyConfig,
    holder: str,
    lease_seconds: float,
    send_timeout: float,
    stop: multiprocessing.connection.Connection,
    records: Any,
) -> None:
    """The delivery process's body (see :class:`_Apart`)."""
    # A Ctrl-C reaches the whole process group: the server, not this, decides
    # when delivery stops (after its requests), then tells it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "nice"):
        os.nice(_NICENESS)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(logging.INFO)

    async def main() -> None:
        queue = actionq.AsyncActionQueue(path, whitelist=whitelist)
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_reader(stop.fileno(), stopped.set)
        async with _delivering(queue, config, holder, lease_seconds, send_timeout):
            await stopped.wait()
        queue.close()

    asyncio.run(main())
