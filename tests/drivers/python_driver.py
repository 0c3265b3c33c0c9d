"""The Python host's driver for the cross-host scenarios (tests/scenarios/*.json).

Runs every step of one scenario through ``actionq.ActionQueue`` as a Python host
calls it (keyword arguments, records' ``to_dict()``) and prints the transcript,
a JSON array with one outcome per step, on stdout.

Usage: ``python python_driver.py SCENARIO.json STORE`` (STORE: ``memory`` or a
SQLite file path). A malformed scenario exits with status 2.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, Callable

from scenario_host import BadScenario, ScenarioHost, main

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


class Host(ScenarioHost):
    def __init__(self, scenario: dict[str, Any], store: str) -> None:
        super().__init__(scenario)
        self.queue = actionq.ActionQueue(
            None if store == "memory" else store,
            whitelist=scenario.get("whitelist"),
            clock=self.clock,
        )

    def call(self, step: dict[str, Any]) -> Any:
        q = self.queue
        args = {k: v for k, v in step.items() if k not in ("call", "expect", "http", "save_token")}
        name = step["call"]
        if name == "advance_clock":
            self.clock.advance(step["seconds"])
            return None
        if name in ("heartbeat", "report_result"):
            args["lease_token"] = self.token(step)
        method: Callable[..., Any] | None = getattr(q, name, None)
        if method is None:
            raise BadScenario(f"unknown call {name!r}")
        result = method(**args)
        if name == "claim_next" and result is not None:
            if "save_token" in step:
                self.tokens[step["save_token"]] = result.lease_token
            record = plain(result)
            record["lease_token"] = "<token>"
            return record
        return plain(result)


def run(scenario: dict[str, Any], store: str) -> list[dict[str, Any]]:
    host = Host(scenario, store)
    transcript: list[dict[str, Any]] = []
    for step in scenario["steps"]:
        try:
            result = host.call(step)
        except actionq.ActionQueueError as e:
            transcript.append(
                {"error": {"code": e.code, "message": e.message, "existing_action_id": e.existing_action_id}}
            )
            continue
        transcript.append({"none": True} if result is None else {"ok": result})
    return transcript


if __name__ == "__main__":
    sys.exit(main("python_driver.py", run))
