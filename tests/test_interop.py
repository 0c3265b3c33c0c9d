"""Hosts at once on one SQLite file: a Python process creating actions
(tests/interop/creator.py), two C agent processes claiming and reporting them
(tests/interop/agent.c) and a Rust process following the events
(actionq-interop-reader) work on the same file at the same time.

The handshake makes the overlap certain rather than likely: every process
writes a ready file once its queue is open, the parent writes `go` when all
are ready, each agent holds its first claim until every agent holds one, and
the creator creates its second half only after an agent has claimed one of the
first half and the reader has caught up with the writers.
Afterwards every created action must have been claimed exactly once and
finished as its agent reported, each agent must have claimed some, the
reader's stream must be exactly the store's audit log, and no process may
have failed (a lock wait beyond the busy timeout included). See tests/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import IO, Any

import actionq

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
COUNT = 90
SERVERS = ["web-1", "web-2", "maint-1"]
PAUSED = "maint-1"
AGENTS = ["agent-a", "agent-b"]
CREATOR = "interop-creator"
# Failure timeouts only: nothing below is timed.
READY_DEADLINE_SECONDS = 120.0
RUN_TIMEOUT_SECONDS = 300.0


def agent_program() -> str:
    return os.environ.get("ACTIONQ_INTEROP_AGENT", str(TARGET / "c" / "interop_agent"))


def reader_program() -> str:
    return os.environ.get("ACTIONQ_INTEROP_READER", str(TARGET / "debug" / "actionq-interop-reader"))


def plain(value: Any) -> Any:
    """An event field as one spelling: statuses as names, times as UTC datetimes."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str) and len(value) > 19 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return value


def event_key(event: dict[str, Any]) -> tuple[Any, ...]:
    fields = ("id", "action_id", "from_status", "to_status", "by", "at", "detail")
    return tuple(plain(event[f]) for f in fields)


class Run:
    """The processes of one interop run, their outputs in files (no pipe can fill)."""

    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "interop.sqlite3"
        self.hs = tmp / "handshake"
        self.hs.mkdir()
        self.out = tmp / "out"
        self.out.mkdir()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.files: list[IO[str]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        stdout = open(self.out / f"{name}.stdout", "w")
        stderr = open(self.out / f"{name}.stderr", "w")
        self.files += [stdout, stderr]
        environ = {**os.environ, **(env or {})}
        self.procs[name] = subprocess.Popen(argv, stdout=stdout, stderr=stderr, text=True, env=environ)

    def stdout(self, name: str) -> str:
        return (self.out / f"{name}.stdout").read_text()

    def stderr(self, name: str) -> str:
        return (self.out / f"{name}.stderr").read_text()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        for name, proc in self.procs.items():
            while not (self.hs / f"{name}.ready").exists():
                code = proc.poll()
                assert code is None, f"{name} exited ({code}) before it was ready:\n{self.stderr(name)}"
                assert time.monotonic() < deadline, f"{name} never got ready"
                time.sleep(0.005)  # polling a handshake file: the deadline is a failure timeout

    def finish(self, name: str) -> None:
        proc = self.procs[name]
        try:
            code = proc.wait(timeout=RUN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{name} did not finish:\n{self.stderr(name)}") from None
        assert code == 0, f"{name} exited with {code}:\n{self.stderr(name)}"

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.kill()
        for f in self.files:
            f.close()


def publish(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def store_events(queue: actionq.ActionQueue) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while batch := queue.events_since(events[-1]["id"] if events else 0, actionq.limits.MAX_EVENTS_LIMIT):
        events += [e.to_dict() for e in batch]
    return events


def store_actions(queue: actionq.ActionQueue) -> dict[int, actionq.Action]:
    actions: dict[int, actionq.Action] = {}
    while page := queue.list_actions(limit=actionq.limits.MAX_PAGE_LIMIT, offset=len(actions)).actions:
        actions.update((a.id, a) for a in page)
    return actions


def test_hosts_share_one_sqlite_file_at_once(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        creator = TESTS / "interop" / "creator.py"
        run.start("creator", [sys.executable, str(creator), str(run.db), str(run.hs), str(COUNT)])
        for name in AGENTS:
            run.start(
                name,
                [agent_program(), str(run.db), str(run.hs), name, str(COUNT), *SERVERS],
                env={"ACTIONQ_INTEROP_AGENTS": " ".join(AGENTS)},
            )
        run.start("reader", [reader_program(), str(run.db), str(run.hs)])
        run.wait_ready()
        publish(run.hs / "go", "go")
        for name in ["creator", *AGENTS]:
            run.finish(name)
        # Every writer has exited: the reader drains what is left, then stops.
        publish(run.hs / "stop", "stop")
        run.finish("reader")
    finally:
        run.close()

    for name in run.procs:
        assert "busy" not in run.stderr(name).lower(), f"{name} reported a busy lock:\n{run.stderr(name)}"
    created = json.loads(run.stdout("creator"))["created"]
    reports = {name: [json.loads(line) for line in run.stdout(name).splitlines()] for name in AGENTS}
    reader = json.loads(run.stdout("reader"))

    queue = actionq.ActionQueue(run.db)
    actions = store_actions(queue)
    events = store_events(queue)

    # Every created action, and nothing else, is in the store.
    ids = [c["id"] for c in created]
    assert len(ids) == COUNT and len(set(ids)) == COUNT, f"creator reported {len(ids)} ids, {len(set(ids))} distinct"
    assert sorted(actions) == sorted(ids), "the store's actions are not the created ones"

    # Each action claimed exactly once (over both agents) and finished as reported.
    claims = Counter(r["id"] for rs in reports.values() for r in rs)
    twice = sorted(i for i, n in claims.items() if n > 1)
    assert not twice, f"claimed more than once: {twice}"
    assert sorted(claims) == sorted(ids), f"never claimed: {sorted(set(ids) - set(claims))}"
    for report in (r for rs in reports.values() for r in rs):
        action = actions[report["id"]]
        status = "completed" if report["exit_code"] == 0 else "failed"
        got = (action.status.value, action.exit_code, action.stdout, action.stderr)
        want = (status, report["exit_code"], report["stdout"], report["stderr"])
        assert got == want, f"action {action.id}: store has {got}, its agent reported {want}"

    # The reader's stream is exactly the store's audit log.
    stream = reader["events"]
    stream_ids = [e["id"] for e in stream]
    assert all(a < b for a, b in zip(stream_ids, stream_ids[1:])), "reader's event ids not strictly increasing"
    missing = sorted({e["id"] for e in events} - set(stream_ids))
    assert not missing, f"the reader missed events {missing} of the store's {len(events)}"
    assert len(stream) == len(events), f"reader read {len(stream)} events, the store has {len(events)}"
    for mine, theirs in zip(stream, events):
        assert event_key(mine) == event_key(theirs), f"reader read {mine}, the store has {theirs}"

    # Every action's history, in order: created (approved at once, or pending
    # then approved by the creator), executing, then its reported outcome.
    by_action: dict[int, list[tuple[Any, ...]]] = {i: [] for i in ids}
    for e in stream:
        if e["kind"] != "action":  # the pause of PAUSED
            assert (e["kind"], e["subject"], e["detail"]) == ("server", PAUSED, "paused"), e
            continue
        by_action[e["action_id"]].append((e["from_status"], e["to_status"], e["by"]))
    exit_codes = {r["id"]: r["exit_code"] for rs in reports.values() for r in rs}
    for c in created:
        final = "completed" if exit_codes[c["id"]] == 0 else "failed"
        start: list[tuple[Any, ...]] = (
            [(None, "pending", CREATOR), ("pending", "approved", CREATOR)]
            if c["server_id"] == PAUSED
            else [(None, "approved", CREATOR)]
        )
        history = [*start, ("approved", "executing", "agent"), ("executing", final, "agent")]
        assert by_action[c["id"]] == history, f"action {c['id']} on {c['server_id']}: events {by_action[c['id']]}"

    # The work interleaved: agents claimed before the creator had finished, and
    # the reader had caught up with the writers before they finished.
    created_at = {e["action_id"]: e["id"] for e in stream if e["kind"] == "action" and e["from_status"] is None}
    last_create = max(created_at.values())
    claims_before = [e["id"] for e in stream if e["to_status"] == "executing" and e["id"] < last_create]
    assert claims_before, "no claim before the creator's last create"
    last_write = stream_ids[-1]
    assert reader["caught_up"] and reader["caught_up"][0] < last_create, (
        f"the reader first caught up at event {reader['caught_up'][:1]}, after the last create ({last_create})"
    )
    # Each agent held its first claim until the other held one: both claimed.
    per_agent = {name: len(r) for name, r in reports.items()}
    assert all(per_agent[name] >= 1 for name in AGENTS), f"an agent claimed nothing: {per_agent}"
    assert sum(per_agent.values()) == COUNT, per_agent
    print(
        f"interop: {COUNT} actions, {len(stream)} events; claims {per_agent}; "
        f"{len(claims_before)} claims before the last create (event {last_create}); reader caught up "
        f"{len(reader['caught_up'])} times (first at event {reader['caught_up'][0]} of {last_write}) "
        f"in {reader['reads']} reads"
    )
