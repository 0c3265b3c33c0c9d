"""The Python host's driver for the cross-host scenarios (tests/scenarios/*.json).

Runs every step of one scenario through ``actionq.ActionQueue`` as a Python host
calls it (keyword arguments, records' ``to_dict()``) and prints the transcript,
a JSON array with one outcome per step, on stdout.

Usage: ``python python_driver.py SCENARIO.json STORE`` (STORE: ``memory`` or a
SQLite file path). A malformed scenario exits with status 2.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Callable

import actionq


class BadScenario(Exception):
    """The scenario cannot be run as written."""


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


class Host:
    def __init__(self, scenario: dict[str, Any], store: str) -> None:
        self.clock = actionq.ManualClock(datetime.fromisoformat(scenario["clock"].replace("Z", "+00:00")))
        self.queue = actionq.ActionQueue(
            None if store == "memory" else store,
            whitelist=scenario.get("whitelist"),
            clock=self.clock,
        )
        self.tokens: dict[str, str] = {}

    def token(self, step: dict[str, Any]) -> str:
        given: str = step["lease_token"]
        if given.startswith("$"):
            if given[1:] not in self.tokens:
                raise BadScenario(f"no saved token {given[1:]!r}")
            return self.tokens[given[1:]]
        return given

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


def run(path: str, store: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        scenario = json.load(f)
    host = Host(scenario, store)
    transcript = []
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


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python_driver.py SCENARIO.json STORE", file=sys.stderr)
        return 2
    try:
        transcript = run(sys.argv[1], sys.argv[2])
    except (BadScenario, KeyError, TypeError) as e:
        print(f"{sys.argv[1]}: {e!r}", file=sys.stderr)
        return 2
    print(json.dumps(transcript))
    return 0


if __name__ == "__main__":
    sys.exit(main())
