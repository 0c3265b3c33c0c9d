"""The Python host's driver for the cross-host scenarios (tests/scenarios/*.json).

Runs every step of one scenario through ``actionq.ActionQueue`` as a Python host
calls it (keyword arguments, records' ``to_dict()``) and prints the transcript,
a JSON array with one outcome per step, on stdout.

Bytes that are not UTF-8 (``$bytes_hex``) reach it as a Python program holds
them in a ``str``: decoded with ``surrogateescape`` (as ``os.fsdecode`` and
``sys.argv`` do). A call refused by Python itself before the queue sees it (a
``TypeError`` for a wrong type or a missing argument, an ``OverflowError``, a
``UnicodeEncodeError``) is written ``{"host_error": "<exception class>"}``.

Usage: ``python python_driver.py SCENARIO.json STORE`` (STORE: ``memory`` or a
SQLite file path). A malformed scenario exits with status 2.
"""

from __future__ import annotations

import json

import sys
from datetime import datetime
from typing import Any

from scenario_host import META, BadScenario, ScenarioHost, expand, main, skipped

import actionq


def plain(value: Any) -> Any:
    """Records, lists and datetimes as JSON values."""
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


HOST = "python"


class HostError:
    """A call Python refused before the queue ran it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


HOST_ERRORS = (TypeError, OverflowError, UnicodeEncodeError)
"""What Python raises for an argument it cannot convert, before the queue runs."""


def surrogates(raw: bytes) -> str:
    """Bytes as a Python program holds undecodable ones: a ``surrogateescape`` str."""
    return raw.decode("utf-8", "surrogateescape")


class Host(ScenarioHost):
    def __init__(self, scenario: dict[str, Any], store: str) -> None:
        super().__init__(scenario)
        self.queue = actionq.ActionQueue(
            None if store == "memory" else store,
            whitelist=scenario.get("whitelist"),
            clock=self.clock,
        )

    def actor_queue(self, step: dict[str, Any], by: str | None) -> actionq.ActionQueue:
        """The queue acting as the step says: ``"as"`` a saved principal,
        ``"by"`` a trusted name (refused beside ``"as"``), else the trusted host."""
        queue = self.queue
        if "as" in step:
            queue = queue.as_principal(queue.authenticate(self.secret(step["as"])))
        return queue if by is None else queue.by(by)

    def call(self, step: dict[str, Any]) -> Any:
        q = self.queue
        args = {k: expand(v, surrogates) for k, v in step.items() if k not in META}
        name = step["call"]
        if name == "advance_clock":
            self.clock.advance(step["seconds"])
            return None
        if "lease_token" in args:
            args["lease_token"] = self.token(args["lease_token"])
        if "secret" in args:
            args["secret"] = self.secret(args["secret"])
        if name == "digest_matches":
            return q.get_action(**args).digest_matches()
        if name == "export":  # JSON lines: the records they hold
            before = datetime.fromisoformat(args["before"].replace("Z", "+00:00"))
            return [json.loads(line) for line in self.actor_queue(step, None).export(before)]
        if name not in actionq.OPERATIONS:
            raise BadScenario(f"unknown call {name!r}")
        by = args.pop("by", None)
        try:
            operation = getattr(self.actor_queue(step, by), name)
            result = operation(**args) if callable(operation) else operation  # lease_expiries: a property
        except HOST_ERRORS as e:
            return HostError(type(e).__name__)
        if name == "claim_next" and result is not None:
            if "save_token" in step:
                self.tokens[step["save_token"]] = result.lease_token
            record = plain(result)
            record["lease_token"] = "<token>"
            return record
        if name == "issue_credential" and "save_secret" in step:
            self.secrets[step["save_secret"]] = result.secret
        if name == "count_actions":  # (server_id, status, count) tuples: the record's field names
            return [{"server_id": s, "status": plain(status), "count": n} for s, status, n in result]
        return plain(result)


def run(scenario: dict[str, Any], store: str) -> list[dict[str, Any]]:
    host = Host(scenario, store)
    transcript: list[dict[str, Any]] = []
    for step in scenario["steps"]:
        if skipped(HOST, step):
            transcript.append({"skipped": True})
            continue
        try:
            result = host.call(step)
        except actionq.ActionQueueError as e:
            transcript.append(
                {"error": {"code": e.code, "message": e.message, "existing_action_id": e.existing_action_id}}
            )
            continue
        if isinstance(result, HostError):
            transcript.append({"host_error": result.kind})
            continue
        transcript.append({"none": True} if result is None else {"ok": result})
    return transcript


if __name__ == "__main__":
    sys.exit(main("python_driver.py", run))
