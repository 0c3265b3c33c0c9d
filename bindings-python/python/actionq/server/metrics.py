"""``/metrics``: the backend's state and activity in Prometheus' text format.

- ``actionq_actions{server_id, status}``: actions per server and status, read
  at each scrape from the totals the store keeps (``count_actions``, no scan),
  every status of a server that has actions (0 included, so series never vanish);
  ``actionq_server_paused{server_id}``: 1 while a server is in maintenance.
- ``actionq_actions_created_total``, ``actionq_actions_approved_total``,
  ``actionq_actions_rejected_total``, ``actionq_actions_claimed_total``,
  ``actionq_results_reported_total{outcome}``: successful API calls of this
  process (Prometheus sums replicas).
- ``actionq_claim_to_result_seconds``: histogram of ``completed_at -
  executed_at`` of each reported result.
- ``actionq_lease_expiries_total``: actions this process's queue failed for a
  lost lease (whichever request expired them).
- ``actionq_waiters``: waits open now in this process (claims that wait,
  events streams), which drops back when they end however they end.
- ``actionq_auth_failures_total{reason}``: 401s (``unauthenticated``) and 403s
  for a role or server scope (``permission_denied``).
- ``actionq_notifications_sent_total{sink}``, ``actionq_notifications_failed_total{sink}``
  (tries), ``actionq_notifications_dead_total{sink}``: read at each scrape
  from the delivery cursors kept in the queue, so every replica reports the
  same store-wide totals; ``actionq_notification_lag_seconds{sink}``: the age
  of the oldest event a sink has not passed yet (0 when none).

The counters are fed by :class:`MetricsMiddleware`, which watches responses
(status, and the body of a reported result or a 403), so the routes carry no
metrics code. ``/metrics`` needs no key: it shows counts and server ids only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import actionq
from actionq import ActionStatus

__all__ = ["CLAIM_TO_RESULT_BUCKETS", "Metrics", "MetricsMiddleware", "metrics_router"]

CLAIM_TO_RESULT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, float("inf"))
"""Seconds: remediation runs from a fraction of a second (a restart) to most
of an hour (a dist-upgrade)."""

_COUNTED_OPERATIONS = {
    "create_action": "created",
    "approve_action": "approved",
    "reject_action": "rejected",
    "claim_action": "claimed",
}
"""Route (endpoint) name → counter, for routes counted on any 2xx but 204."""


class _QueueState(Collector):
    """Gauges read from the store at scrape time (set by :meth:`Metrics.scrape`)."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, ActionStatus, int]] = []
        self.servers: list[actionq.Server] = []
        self.lease_expiries = 0
        self.waiters = 0
        self.deliveries: list[actionq.Delivery] = []

    def collect(self) -> Iterable[Metric]:
        actions = GaugeMetricFamily(
            "actionq_actions", "Actions per server and status (the store's totals).", labels=["server_id", "status"]
        )
        by_server: dict[str, dict[str, int]] = {}
        for server_id, status, count in self.counts:
            by_server.setdefault(server_id, {})[str(status.value)] = count
        for server_id, counts in sorted(by_server.items()):
            for status in ActionStatus:
                actions.add_metric([server_id, status.value], counts.get(status.value, 0))
        yield actions
        paused = GaugeMetricFamily(
            "actionq_server_paused", "1 while the server is in maintenance mode.", labels=["server_id"]
        )
        for server in self.servers:
            paused.add_metric([server.id], 1 if server.is_paused else 0)
        yield paused
        yield CounterMetricFamily(
            "actionq_lease_expiries",
            "Actions failed because their agent's lease ran out (this process).",
            value=self.lease_expiries,
        )
        yield GaugeMetricFamily(
            "actionq_waiters", "Waits open now: claims that wait and events streams (this process).", value=self.waiters
        )
        counters = {
            "sent": "Notifications delivered, by sink (store-wide).",
            "failed": "Notification tries that failed, by sink (store-wide; every retry counts).",
            "dead": "Notifications given up on after max_age_seconds, by sink (store-wide).",
        }
        for what, help_text in counters.items():
            family = CounterMetricFamily(f"actionq_notifications_{what}", help_text, labels=["sink"])
            for delivery in self.deliveries:
                family.add_metric([delivery.name], getattr(delivery, what))
            yield family
        lag = GaugeMetricFamily(
            "actionq_notification_lag_seconds",
            "Age of the oldest event a sink has not delivered or passed yet (0 when none).",
            labels=["sink"],
        )
        now = datetime.now(timezone.utc)
        for delivery in self.deliveries:
            oldest = delivery.oldest_pending_at
            lag.add_metric([delivery.name], 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0))
        yield lag


class Metrics:
    """The registry of one app: its counters, histogram and queue gauges."""

    def __init__(self, queue: actionq.AsyncActionQueue) -> None:
        self.queue = queue
        self.registry = CollectorRegistry()
        self.operations = {
            kind: Counter(f"actionq_actions_{kind}", f"Actions {kind} through the API.", registry=self.registry)
            for kind in _COUNTED_OPERATIONS.values()
        }
        self.results = Counter(
            "actionq_results_reported",
            "Results reported by agents, by outcome (completed or failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.claim_to_result = Histogram(
            "actionq_claim_to_result_seconds",
            "Seconds from an action's claim (executed_at) to its reported result (completed_at).",
            buckets=CLAIM_TO_RESULT_BUCKETS,
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "actionq_auth_failures",
            "Requests refused for a missing, unknown or revoked key (unauthenticated) or a role/scope (permission_denied).",
            ["reason"],
            registry=self.registry,
        )
        for outcome in ("completed", "failed"):
            self.results.labels(outcome)
        for reason in ("unauthenticated", "permission_denied"):
            self.auth_failures.labels(reason)
        self._state = _QueueState()
        self.registry.register(self._state)

    async def scrape(self) -> bytes:
        """The exposition text, with the queue's gauges read now."""
        counts = await self.queue.count_actions()
        servers = await self.queue.list_servers()
        deliveries = await self.queue.list_deliveries()
        # No await from here on: a concurrent scrape cannot interleave.
        self._state.counts = counts
        self._state.servers = servers
        self._state.deliveries = deliveries
        self._state.lease_expiries = self.queue.lease_expiries
        self._state.waiters = self.queue.waiters()
        return generate_latest(self.registry)

    def observe(self, endpoint: str, status: int, body: bytes) -> None:
        """Counts one API response of route `endpoint`."""
        if status == 401:
            self.auth_failures.labels("unauthenticated").inc()
        elif status == 403 and _error_code(body) == "PERMISSION_DENIED":
            self.auth_failures.labels("permission_denied").inc()
        if not 200 <= status < 300 or status == 204:
            return
        kind = _COUNTED_OPERATIONS.get(endpoint)
        if kind is not None:
            self.operations[kind].inc()
        elif endpoint == "report_action_result":
            action = json.loads(body)
            self.results.labels(action["status"]).inc()
            if action.get("executed_at") and action.get("completed_at"):
                ran = datetime.fromisoformat(action["completed_at"]) - datetime.fromisoformat(action["executed_at"])
                self.claim_to_result.observe(max(ran.total_seconds(), 0.0))


def _error_code(body: bytes) -> str | None:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return None
    return detail.get("code") if isinstance(detail, dict) else None


_WATCHED_BODIES = {"report_action_result"}
"""Routes whose success body the middleware reads (other bodies: only on 403)."""


class MetricsMiddleware:
    """Pure ASGI middleware feeding :class:`Metrics` from ``/api/v1`` responses."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and _wants_body(scope, status):
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, watch)
        self.metrics.observe(_endpoint_name(scope), status, b"".join(chunks))


def _endpoint_name(scope: Scope) -> str:
    # The router records the matched route's endpoint in the (shared) scope.
    endpoint = scope.get("endpoint")
    return getattr(endpoint, "__name__", "")


def _wants_body(scope: Scope, status: int) -> bool:
    return status == 403 or (status == 200 and _endpoint_name(scope) in _WATCHED_BODIES)


metrics_router = APIRouter(include_in_schema=False)
"""``GET /metrics`` (no key)."""


@metrics_router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.actionq_metrics
    return Response(await registry.scrape(), media_type="text/plain; version=0.0.4; charset=utf-8")


def install(app: FastAPI, queue: actionq.AsyncActionQueue) -> Metrics:
    """Adds ``/metrics`` and the middleware to `app` (what ``create_app`` calls)."""
    registry = Metrics(queue)
    app.state.actionq_metrics = registry
    app.add_middleware(MetricsMiddleware, metrics=registry)
    app.include_router(metrics_router)
    return registry
