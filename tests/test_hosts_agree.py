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

# The PostgreSQL test schemas, shared with the binding's tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bindings-python" / "tests"))
from pg_support import fresh_url  # noqa: E402

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCENARIOS = sorted((TESTS / "scenarios").glob("*.json"))
STORES = ["memory", "sqlite", "postgres"]


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
SECRET = re.compile(r"^(aq_(?:ad|op|rq|vw|ag)_)[A-Za-z0-9_-]{8,}$")
"""A credential's secret or shown prefix: random per run, so compared by its role prefix only."""


def canonical(value: Any) -> Any:
    """Timestamps as one spelling (hosts may write `Z` or `+00:00`, any precision);
    credential secrets and prefixes as `aq_<role>_<random>`."""
    if isinstance(value, str) and (secret := SECRET.match(value)):
        return f"{secret[1]}<random>"
    if isinstance(value, str) and TIMESTAMP.match(value):
        t = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def run_host(host: str, scenario: Path, store: str, tmp: Path) -> list[Any]:
    if store == "postgres":
        target = fresh_url()
    else:
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


def spelled(value: Any) -> Any:
    """An expectation with its `$repeat` / `$concat` value objects spelled out."""
    if isinstance(value, list):
        return [spelled(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return str(value["$repeat"]) * int(value["times"])
    if "$concat" in value:
        return "".join(spelled(v) for v in value["$concat"])
    assert not any(k.startswith("$") for k in value), f"{value!r}: not a value object of an expectation"
    return {k: spelled(v) for k, v in value.items()}


def expectation(expect: dict[str, Any]) -> dict[str, Any]:
    """A step's `expect` in transcript shape."""
    if "error" in expect:
        error = {"code": expect["error"]}
        error.update({k: expect[k] for k in ("message", "existing_action_id", "request_shape") if k in expect})
        shaped: dict[str, Any] = spelled({"error": error})
        return shaped
    spelt: dict[str, Any] = spelled(expect)
    return spelt


def load_steps(path: Path) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = json.loads(path.read_text())["steps"]
    return steps


def value_objects(value: Any) -> set[str]:
    """The kinds of value object (`$null`, `$bytes_hex`, ...) in a step's arguments."""
    if isinstance(value, list):
        return set().union(*map(value_objects, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = {k for k in value if k.startswith("$")}
    return found.union(*map(value_objects, value.values()))


def arguments(step: dict[str, Any]) -> dict[str, Any]:
    meta = ("call", "expect", "save_token", "save_secret", "as", "skip", "host_specific", *HOSTS)
    return {k: v for k, v in step.items() if k not in meta}


def is_bad_input(path: Path, step: dict[str, Any]) -> bool:
    """A step of a bad-input scenario, or one using a value object or a skip."""
    return path.stem.startswith("bad_input") or "skip" in step or bool(value_objects(arguments(step)))


def test_every_scenario_has_expectations() -> None:
    assert SCENARIOS, "no scenarios found"
    for path in SCENARIOS:
        steps = load_steps(path)
        checked = sum("expect" in s for s in steps)
        assert checked >= len(steps) // 2, f"{path.name}: only {checked} of {len(steps)} steps expect anything"
        for i, step in enumerate(steps):
            # Bad input is only worth giving if its answer is checked.
            if is_bad_input(path, step):
                assert "expect" in step, f"{path.name} step {i} ({step['call']}): bad input without an expect"


def test_every_operation_runs_on_every_library_host() -> None:
    """Every operation of the core (`actionq.OPERATIONS`, taken from the Rust
    crate) is a call of some scenario that the Rust, C and Python hosts all
    run, so a host missing one fails here rather than in a user's hands."""
    import actionq

    covered = {
        step["call"]
        for path in SCENARIOS
        for step in load_steps(path)
        if not {"rust", "c", "python"} & set(step.get("skip", {}))
    }
    missing = sorted(set(actionq.OPERATIONS) - covered)
    assert not missing, f"operations no scenario runs on every library host: {missing}"


def compared_hosts(step: dict[str, Any]) -> list[str]:
    """The hosts whose outcome of a step is compared with the others': those it
    runs on (no skip) that meet the shared expectation (no own expectation)."""
    return [h for h in HOSTS if h not in step.get("skip", {}) and h not in step]


def test_bad_input_is_expressed() -> None:
    """Every bad-input step runs on every host that can express it and is
    compared on at least two, unless it says why it is `host_specific` (only
    one host's queue sees it: the others cannot express it, or refuse it
    before their queue, with their own expectation); a skip names a known host
    and says why; NULL and bytes that are not UTF-8 always run on the C host,
    whose API can be given both."""
    bad = [(path, i, step) for path in SCENARIOS for i, step in enumerate(load_steps(path)) if is_bad_input(path, step)]
    assert bad, "no bad-input steps"
    for path, i, step in bad:
        where = f"{path.name} step {i} ({step['call']})"
        skip = step.get("skip", {})
        assert set(skip) <= set(HOSTS), f"{where}: skip names an unknown host"
        assert all(isinstance(w, str) and w.strip() for w in skip.values()), f"{where}: a skip must say why"
        assert len(HOSTS) - len(skip) >= 2, f"{where}: runs on fewer than two hosts"
        compared = compared_hosts(step)
        why = step.get("host_specific")
        if why is None:
            assert len(compared) >= 2, f"{where}: compared on {compared} only, and not marked host_specific"
        else:
            assert isinstance(why, str) and why.strip(), f"{where}: host_specific must say why"
            assert len(compared) < 2, f"{where}: marked host_specific but compared on {compared}"
        if value_objects(arguments(step)) & {"$null", "$bytes_hex"}:
            assert "c" not in skip, f"{where}: NULL and raw bytes must run on the C host"


def own_expectation(host: str, step: dict[str, Any]) -> dict[str, Any] | None:
    """A host's own expectation where it differs by design (with a `why`): the
    HTTP contract where docs/contract/http.md makes it differ, a host refusing a value before
    the queue sees it (a C NULL, a Python TypeError)."""
    if host not in step:
        return None
    override = dict(step[host])
    assert override.pop("why", None), f"{step['call']}: a {host} expectation must say why"
    return override


def not_compared(host: str, step: dict[str, Any]) -> bool:
    return host in step.get("skip", {}) or own_expectation(host, step) is not None


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_hosts_agree(scenario: Path, store: str, tmp_path: Path) -> None:
    steps = load_steps(scenario)
    transcripts = {host: run_host(host, scenario, store, tmp_path) for host in HOSTS}
    for host, transcript in transcripts.items():
        assert len(transcript) == len(steps), f"{host}: {len(transcript)} outcomes for {len(steps)} steps"
    for i, step in enumerate(steps):
        # A step runs on every host its skip does not name: none drops it silently.
        ran = sorted(h for h in HOSTS if transcripts[h][i] != {"skipped": True})
        should = sorted(h for h in HOSTS if h not in step.get("skip", {}))
        assert ran == should, f"step {i} ({step['call']}) on {store}: ran on {ran}, should on {should}"
    for host, transcript in transcripts.items():
        for i, (step, outcome) in enumerate(zip(steps, transcript)):
            where = f"{host} on {store}: step {i} ({step['call']})"
            if host in step.get("skip", {}):
                assert outcome == {"skipped": True}, f"{where}: should be skipped, got {outcome!r}"
                continue
            assert outcome != {"skipped": True}, f"{where}: skipped, but its skip does not name {host}"
            expect = own_expectation(host, step) or step.get("expect")
            if expect is not None:
                miss = mismatch(canonical(expectation(expect)), outcome, f"step {i} ({step['call']})")
                assert miss is None, f"{host} on {store}: {miss}"
    # The comparison: at each step, every host that runs it as the others do
    # (no skip, no expectation of its own: those are checked
    # above only) gives the same outcome as the first such host.
    compared = {
        host: [
            None if not_compared(host, step) else json.dumps(o, sort_keys=True)
            for step, o in zip(steps, transcripts[host])
        ]
        for host in HOSTS
    }
    reference: list[tuple[str, str] | None] = [
        next(((h, line) for h, c in compared.items() if (line := c[i]) is not None), None) for i in range(len(steps))
    ]
    for host, lines in compared.items():
        pairs = [
            (r[1], line) if r and line is not None and r[0] != host else ("-", "-") for r, line in zip(reference, lines)
        ]
        if any(theirs != mine for theirs, mine in pairs):
            names = sorted({r[0] for r, (t, _) in zip(reference, pairs) if r and t != "-"})
            theirs, mine = [t for t, _ in pairs], [m for _, m in pairs]
            diff = "\n".join(difflib.unified_diff(theirs, mine, "/".join(names), host, lineterm="", n=1))
            pytest.fail(f"{host} differs from {'/'.join(names)} on {scenario.stem}/{store}:\n{diff}")
