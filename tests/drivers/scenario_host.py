"""What the Python-side drivers (python_driver.py, http_driver.py) share: the
scenario's manual clock, saved lease tokens, and the command line."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Callable

import actionq


class BadScenario(Exception):
    """The scenario cannot be run as written."""


class ScenarioHost:
    """A host's state across steps: its manual clock and the saved lease tokens."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        start = datetime.fromisoformat(scenario["clock"].replace("Z", "+00:00"))
        self.clock = actionq.ManualClock(start)
        self.tokens: dict[str, str] = {}

    def token(self, step: dict[str, Any]) -> str:
        """A `$name` token argument is a saved token; anything else is literal."""
        given: str = step["lease_token"]
        if given.startswith("$"):
            if given[1:] not in self.tokens:
                raise BadScenario(f"no saved token {given[1:]!r}")
            return self.tokens[given[1:]]
        return given


def main(name: str, run: Callable[[dict[str, Any], str], list[Any]]) -> int:
    """`NAME SCENARIO.json STORE`: prints the transcript; 2 for a bad scenario."""
    if len(sys.argv) != 3:
        print(f"usage: {name} SCENARIO.json STORE", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            transcript = run(json.load(f), sys.argv[2])
    except (BadScenario, KeyError, TypeError) as e:
        print(f"{sys.argv[1]}: {e!r}", file=sys.stderr)
        return 2
    print(json.dumps(transcript))
    return 0
