"""The retention job of ``actionq-server --retention-days N``
(docs/contract/retention.md#prune): every :data:`PRUNE_INTERVAL_SECONDS`
it prunes the finished actions whose last change is more than N days old.

Replicas on one store may all run it: each prune batch moves the store's
checkpoint only from where it found it (the core's compare-and-set), so two
replicas pruning at once take turns batch by batch, and neither deletes
what the other kept or loses a link of the audit chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator

from fastapi import FastAPI

import actionq

__all__ = ["PRUNE_INTERVAL_SECONDS", "install", "prune_forever"]

PRUNE_INTERVAL_SECONDS = 3600.0
"""Seconds between two runs of the retention job (the first runs at start)."""

job_log = logging.getLogger("actionq.server.jobs")


async def prune_once(queue: actionq.AsyncActionQueue, retention_days: int) -> dict[str, Any]:
    """One run: the log fields of what it did (a store error is logged, not raised)."""
    started = time.monotonic()
    fields: dict[str, Any] = {"job": "retention"}
    try:
        report = await queue.prune(retention_days * 86_400)
        fields["pruned_actions"] = report.pruned_actions
        fields["pruned_through"] = report.pruned_through
        fields["outcome"] = "ok"
    except actionq.ActionQueueError as e:
        fields["outcome"] = "error"
        fields["error"] = e.code
    fields["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
    job_log.info("prune", extra=fields)
    return fields


async def prune_forever(
    queue: actionq.AsyncActionQueue, retention_days: int, interval: float = PRUNE_INTERVAL_SECONDS
) -> None:
    """The retention job: runs until cancelled."""
    while True:
        await prune_once(queue, retention_days)
        await asyncio.sleep(interval)


def install(app: FastAPI, retention_days: int, interval: float = PRUNE_INTERVAL_SECONDS) -> None:
    """Runs the retention job on the app's queue for the app's lifespan."""
    queue: actionq.AsyncActionQueue = app.state.actionq.queue
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        job = asyncio.ensure_future(prune_forever(queue, retention_days, interval))
        try:
            async with previous(a) as state:
                yield state
        finally:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job

    app.router.lifespan_context = lifespan
