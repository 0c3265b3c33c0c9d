"""What the Python-side drivers (python_driver.py, http_driver.py) share: the
scenario's manual clock, saved lease tokens, the value objects of the
scenario format (``$repeat``, ``$concat``, ``$bytes_hex``, ``$null``), the
per-host ``skip`` of a step, and the command line."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any, Callable

import actionq

META = (
    "call",
    "expect",
    "save_token",
    "save_secret",
    "as",
    "skip",
    "host_specific",
    "known_bug", "rust", "c", "python", "http")
"""Step keys that are not arguments of the call (the last four: per-host expectations)."""


class BadScenario(Exception):
    """The scenario cannot be run as written."""


def expand(value: Any, raw: Callable[[bytes], Any]) -> Any:
    """A step's value with its value objects replaced (tests/README.md):
    ``{"$repeat": s, "times": n}`` is ``s * n``, ``{"$concat": [...]}`` joins its
    parts, ``{"$null": true}`` is None, ``{"$bytes_hex": "66 ff"}`` is ``raw(bytes)``
    (each host's own way to hold bytes that are not UTF-8; a ``$concat`` with
    such a part is bytes too)."""
    if isinstance(value, list):
        return [expand(v, raw) for v in value]
    if isinstance(value, dict) and not any(k.startswith("$") for k in value):
        return {k: expand(v, raw) for k, v in value.items()}
    text = literal(value)
    return raw(text) if isinstance(text, bytes) else text


def literal(value: Any) -> Any:
    """A value object as str, bytes (``$bytes_hex``) or None; other values as given."""
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return str(value["$repeat"]) * int(value["times"])
    if "$concat" in value:
        parts = [literal(v) for v in value["$concat"]]
        if not all(isinstance(p, (str, bytes)) for p in parts):
            raise BadScenario(f"$concat of {parts!r}: strings and bytes only")
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
        return b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    if value.get("$null") is True:
        return None
    if "$bytes_hex" in value:
        return bytes.fromhex(value["$bytes_hex"])
    raise BadScenario(f"unknown value object {value!r}")


def skipped(host: str, step: dict[str, Any]) -> bool:
    """Whether the step's `skip` names this host (which then cannot express it)."""
    skip = step.get("skip", {})
    if not isinstance(skip, dict) or not all(isinstance(w, str) and w for w in skip.values()):
        raise BadScenario(f"{step['call']}: skip must map hosts to a why")
    return host in skip


class ScenarioHost:
    """A host's state across steps: its manual clock and the saved lease tokens."""

    def __init__(self, scenario: dict[str, Any]) -> None:
        start = datetime.fromisoformat(scenario["clock"].replace("Z", "+00:00"))
        self.clock = actionq.ManualClock(start)
        self.tokens: dict[str, str] = {}
        self.secrets: dict[str, str] = {}

    def token(self, given: Any) -> Any:
        """A `$name` token argument is a saved token; anything else is literal."""
        if isinstance(given, str) and given.startswith("$"):
            if given[1:] not in self.tokens:
                raise BadScenario(f"no saved token {given[1:]!r}")
            return self.tokens[given[1:]]
        return given

    def secret(self, given: str) -> str:
        """A `$name` secret argument is a secret saved by `issue_credential`; anything else is literal."""
        if given.startswith("$"):
            if given[1:] not in self.secrets:
                raise BadScenario(f"no saved secret {given[1:]!r}")
            return self.secrets[given[1:]]
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
