"""Every host gives the same answers: each scenario of tests/scenarios runs through
every host's driver on every store; each transcript must meet the scenario's
expectations, and the transcripts of all hosts must be identical (a difference
fails with a diff). See tests/README.md for the scenario format.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCENARIOS = sorted((TESTS / "scenarios").glob("*.json"))
STORES = ["memory", "sqlite"]


def rust_driver() -> list[str]:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return [str(target / "debug" / "actionq-scenario-driver")]


def c_driver() -> list[str]:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return [os.environ.get("ACTIONQ_C_DRIVER", str(target / "c" / "c_driver"))]


HOSTS: dict[str, Callable[[], list[str]]] = {
    "rust": rust_driver,
    "c": c_driver,
    "python": lambda: [sys.executable, str(TESTS / "drivers" / "python_driver.py")],
    "http": lambda: [sys.executable, str(TESTS / "drivers" / "http_driver.py")],
}

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def canonical(value: Any) -> Any:
    """Timestamps as one spelling (hosts may write `Z` or `+00:00`, any precision)."""
    if isinstance(value, str) and TIMESTAMP.match(value):
        t = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def run_host(host: str, scenario: Path, store: str, tmp: Path) -> list[Any]:
    target = "memory" if store == "memory" else str(tmp / f"{host}.sqlite3")
    done = subprocess.run(
        [*HOSTS[host](), str(scenario), target],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{host} driver failed on {scenario.name}:\n{done.stderr}"
    transcript = canonical(json.loads(done.stdout))
    assert isinstance(transcript, list)
    return transcript


def mismatch(expected: Any, got: Any, path: str) -> str | None:
    """Where `got` fails to contain `expected` (dicts: a subset; lists: same length)."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path}: expected an object, got {got!r}"
        for key, value in expected.items():
            if key not in got:
                return f"{path}.{key}: missing"
            where = mismatch(value, got[key], f"{path}.{key}")
            if where:
                return where
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"{path}: expected {len(expected)} items, got {got!r}"
        for i, (e, g) in enumerate(zip(expected, got)):
            where = mismatch(e, g, f"{path}[{i}]")
            if where:
                return where
        return None
    return None if expected == got else f"{path}: expected {expected!r}, got {got!r}"


def expectation(expect: dict[str, Any]) -> dict[str, Any]:
    """A step's `expect` in transcript shape."""
    if "error" in expect:
        error = {"code": expect["error"]}
        error.update({k: expect[k] for k in ("message", "existing_action_id") if k in expect})
        return {"error": error}
    return expect


def test_every_scenario_has_expectations() -> None:
    assert SCENARIOS, "no scenarios found"
    for path in SCENARIOS:
        steps = json.loads(path.read_text())["steps"]
        checked = sum("expect" in s for s in steps)
        assert checked >= len(steps) // 2, f"{path.name}: only {checked} of {len(steps)} steps expect anything"


def own_expectation(host: str, step: dict[str, Any]) -> dict[str, Any] | None:
    """The HTTP contract's own expectation where SPEC makes it differ (with a `why`)."""
    if host != "http" or "http" not in step:
        return None
    override = dict(step["http"])
    assert override.pop("why", None), f"{step['call']}: an http expectation must say why"
    return override


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_hosts_agree(scenario: Path, store: str, tmp_path: Path) -> None:
    steps = json.loads(scenario.read_text())["steps"]
    transcripts = {host: run_host(host, scenario, store, tmp_path) for host in HOSTS}
    for host, transcript in transcripts.items():
        assert len(transcript) == len(steps), f"{host}: {len(transcript)} outcomes for {len(steps)} steps"
        for i, (step, outcome) in enumerate(zip(steps, transcript)):
            expect = own_expectation(host, step) or step.get("expect")
            if expect is not None:
                where = mismatch(canonical(expectation(expect)), outcome, f"step {i} ({step['call']})")
                assert where is None, f"{host} on {store}: {where}"
    # Steps where the HTTP contract differs by design are checked above only.
    (first, reference), *others = transcripts.items()
    lines = [json.dumps(o, sort_keys=True) for o in reference]
    for host, transcript in others:
        other = [
            lines[i] if own_expectation(host, step) else json.dumps(o, sort_keys=True)
            for i, (step, o) in enumerate(zip(steps, transcript))
        ]
        if other != lines:
            diff = "\n".join(difflib.unified_diff(lines, other, first, host, lineterm="", n=1))
            pytest.fail(f"{host} differs from {first} on {scenario.stem}/{store}:\n{diff}")
