"""Liveness, readiness and the server's background job
(docs/contract/deployment.md#health-and-readiness).

- ``GET /healthz``: 200 while the process serves; touches nothing else, so an
  orchestrator restarts the process only when the process itself is stuck.
- ``GET /readyz``: 200 when the store answers one primary-key read, 503 when
  it does not or not within :data:`READY_TIMEOUT_SECONDS`; a load balancer
  sends no traffic to a replica whose database is down, and takes it back
  without a restart once the store answers again. Concurrent probes share one
  read, so a dead database never piles up store threads.
- The lease sweeper: every :data:`SWEEP_INTERVAL_SECONDS` it fails the
  actions whose agent lost its lease and expires stale approvals, so a lost
  lease shows in the audit trail and the approvers' page even when nobody
  reads the queue. Each run logs one line on the ``actionq.server.job`` logger.

Neither route needs a key, and neither says more than up or down: the store's
error (which may name hosts) goes to the log, not to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import actionq

__all__ = [
    "READY_TIMEOUT_SECONDS",
    "SWEEP_INTERVAL_SECONDS",
    "HealthOut",
    "Readiness",
    "health_router",
    "install",
]

READY_TIMEOUT_SECONDS = 2.0
"""How long ``/readyz`` waits for the store before it answers 503."""

SWEEP_INTERVAL_SECONDS = 5.0
"""Seconds between two runs of the lease sweeper."""

_PROBE_SERVER_ID = "actionq-readiness-probe"
"""The server id ``/readyz`` reads: a primary-key lookup, found or not."""

job_log = logging.getLogger("actionq.server.job")


class HealthOut(BaseModel):
    """The body of ``/healthz`` and ``/readyz``."""

    status: Literal["ok", "unavailable"]


class Readiness:
    """Whether the store answers, asked at most once at a time."""

    def __init__(self, queue: actionq.AsyncActionQueue, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.queue = queue
        self.timeout = timeout
        self._probe: asyncio.Task[bool] | None = None

    async def _read(self) -> bool:
        try:
            await self.queue.get_server(_PROBE_SERVER_ID)
        except actionq.NotFoundError:
            pass
        except actionq.ActionQueueError as e:
            job_log.warning("store not ready", extra={"job": "readiness", "error": e.code})
            return False
        return True

    async def ready(self) -> bool:
        """True when the store answered within the timeout."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._read())
        try:
            # shield: a timed-out probe keeps running and the next caller joins it.
            return await asyncio.wait_for(asyncio.shield(self._probe), self.timeout)
        except asyncio.TimeoutError:
            return False


health_router = APIRouter(tags=["deployment"])
"""``GET /healthz`` and ``GET /readyz`` (no key)."""


@health_router.get("/healthz", operation_id="healthz", response_model=HealthOut)
async def healthz() -> dict[str, str]:
    """200 while the process serves."""
    return {"status": "ok"}


@health_router.get(
    "/readyz",
    operation_id="readyz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The store does not answer"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the store answers, 503 when it does not (within a bounded time)."""
    readiness: Readiness = request.app.state.actionq_readiness
    if await readiness.ready():
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable"}, status_code=503)


async def sweep_forever(queue: actionq.AsyncActionQueue, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
    """The lease sweeper: runs until cancelled; a store error is logged and
    the next run tries again."""
    while True:
        await asyncio.sleep(interval)
        started = time.monotonic()
        fields: dict[str, Any] = {"job": "lease_sweeper"}
        try:
            fields["expired_leases"] = len(await queue.expire_leases())
            fields["expired_approvals"] = len(await queue.expire_approvals())
            fields["outcome"] = "ok"
        except actionq.ActionQueueError as e:
            fields["outcome"] = "error"
            fields["error"] = e.code
        fields["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
        job_log.info("lease sweep", extra=fields)


def install(app: FastAPI, queue: actionq.AsyncActionQueue) -> None:
    """Adds the two routes, and the sweeper for the app's lifespan."""
    app.state.actionq_readiness = Readiness(queue)
    app.include_router(health_router)
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        sweeper = asyncio.ensure_future(sweep_forever(queue))
        try:
            async with previous(a) as state:
                yield state
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    app.router.lifespan_context = lifespan
