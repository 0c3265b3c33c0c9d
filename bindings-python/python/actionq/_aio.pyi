"""Type stubs of ``actionq._aio`` (import ``actionq.AsyncActionQueue``).

Each coroutine method mirrors ``ActionQueue``'s method of the same name in
``_actionq.pyi`` (same parameters, same return type, awaited); the tests check
both stubs agree and stubtest checks them against the runtime."""

import os
from pathlib import Path
from typing import Any, Literal, Mapping, final

from actionq._actionq import (
    Action,
    ActionPage,
    ActionQueue,
    ActionStatus,
    AuditReport,
    Claim,
    Event,
    ManualClock,
    Server,
)

__all__ = ["DEFAULT_MAX_WORKERS", "AsyncActionQueue"]

DEFAULT_MAX_WORKERS: int

@final
class AsyncActionQueue:
    """``ActionQueue``'s methods as coroutines that never block the event loop."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        whitelist: str | Mapping[str, Any] | None = None,
        output_cap_chars: int | None = None,
        durability: Literal["normal", "full"] | None = None,
        busy_timeout_seconds: float | None = None,
        default_lease_seconds: float | None = None,
        max_lease_seconds: float | None = None,
        expire_leases_on_read: bool | None = None,
        clock: ManualClock | None = None,
        max_workers: int | None = None,
    ) -> None: ...
    @classmethod
    def from_queue(cls, queue: ActionQueue, *, max_workers: int | None = None) -> AsyncActionQueue: ...
    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        whitelist: str | Mapping[str, Any] | None = None,
        output_cap_chars: int | None = None,
        durability: Literal["normal", "full"] | None = None,
        busy_timeout_seconds: float | None = None,
        default_lease_seconds: float | None = None,
        max_lease_seconds: float | None = None,
        expire_leases_on_read: bool | None = None,
        clock: ManualClock | None = None,
        max_workers: int | None = None,
    ) -> AsyncActionQueue: ...
    @property
    def queue(self) -> ActionQueue: ...
    def close(self) -> None: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def whitelist_json(self) -> str: ...
    @property
    def action_types(self) -> list[str]: ...
    @property
    def output_cap_chars(self) -> int: ...
    @property
    def default_lease_seconds(self) -> float: ...
    @property
    def expire_leases_on_read(self) -> bool: ...
    async def create_server(self, id: str, hostname: str | None = None) -> Server: ...
    async def get_server(self, id: str) -> Server: ...
    async def pause_server(self, id: str) -> Server: ...
    async def unpause_server(self, id: str) -> Server: ...
    async def create_action(
        self,
        server_id: str,
        action_type: str,
        service_name: str | None = None,
        *,
        params: Mapping[str, str | int] | None = None,
        alert_id: int | None = None,
        created_by: str = ...,
    ) -> Action: ...
    async def create_action_json(self, request: str) -> Action:
        """Queues an action from a create request in JSON (the HTTP create body's
        shape, read by the core): ``{"server_id", "action_type", "service_name"?,
        "params"?, "alert_id"?, "created_by"?}``, parameter values as strings.
        Malformed JSON, unknown keys or ``service_name`` given both as a field and
        in ``params`` raise ``InvalidInputError``."""
    async def get_action(self, id: int) -> Action: ...
    async def list_actions(
        self,
        status: ActionStatus | str | None = None,
        server_id: str | None = None,
        action_type: str | None = None,
        limit: int = ...,
        offset: int = 0,
    ) -> ActionPage: ...
    async def list_server_actions(
        self,
        server_id: str,
        status: ActionStatus | str | None = None,
        limit: int = ...,
        offset: int = 0,
    ) -> ActionPage: ...
    async def approve_action(self, id: int, by: str = ...) -> Action: ...
    async def reject_action(self, id: int, reason: str, by: str = ...) -> Action: ...
    async def cancel_action(self, id: int, by: str = ...) -> Action: ...
    async def claim_next(self, server_id: str, lease_seconds: float | None = None) -> Claim | None: ...
    async def heartbeat(self, id: int, lease_token: str, lease_seconds: float | None = None) -> Action: ...
    async def report_result(
        self,
        id: int,
        lease_token: str,
        exit_code: int,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> Action: ...
    async def expire_leases(self) -> list[Action]: ...
    async def expire_approvals(self) -> list[Action]: ...
    async def verify_audit(self) -> AuditReport: ...
    async def events_since(self, cursor: int = 0, limit: int = ...) -> list[Event]: ...
