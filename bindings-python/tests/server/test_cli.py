"""`actionq`, the command line (docs/contract/cli-and-mcp.md#command-line),
run as the installed console script against a real `actionq-server` on
loopback: every command, and every exit code."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from actionq.cli.client import parse_sse
from actionq.cli.render import event_line, table
from serve_support import BIN, BOOTSTRAP_KEY, Served, free_port, serve

ACTIONQ = BIN / "actionq"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("cli")) as s:
        for server_id, hostname in (("web-1", "web-1.lan"), ("db-1", "a-very-long-hostname." * 6 + "lan")):
            assert s.admin.post("/servers", json={"id": server_id, "hostname": hostname}).status_code == 201
        yield s


def run(served: Served, *args: str, key: str | None = BOOTSTRAP_KEY, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env["COLUMNS"] = "80"
    if key is not None:
        env["ACTIONQ_KEY"] = key
    return subprocess.run(
        [str(ACTIONQ), "--url", url or served.url, *args], capture_output=True, text=True, env=env, timeout=60
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], exit_code: int, code: str) -> str:
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert f"actionq: {code}: " in result.stderr, result.stderr
    assert result.stdout == ""
    return result.stderr


def fits(text: str) -> None:
    assert all(len(line) <= 80 for line in text.splitlines()), text


def request_pending(served: Served, action_type: str = "restart_service", key: str | None = None, **params: str) -> dict[str, Any]:
    args = [f"--param={k}={v}" for k, v in params.items()]
    out = ok(run(served, "--json", "request", "web-1", action_type, *args, key=key or served.secrets["alice"]))
    action: dict[str, Any] = json.loads(out)
    assert action["status"] == "pending", action
    return action


@pytest.fixture
def paused(served: Served) -> Iterator[None]:
    ok(run(served, "pause", "web-1"))
    yield
    ok(run(served, "unpause", "web-1"))


# Who, and the exit codes of not being allowed ------------------------------------


def test_whoami_with_key_file_and_env(served: Served, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(served.secrets["vera"] + "\n")
    assert ok(run(served, "--key-file", str(key_file), "whoami", key=None)) == "vera: viewer\n"
    assert ok(run(served, "whoami")) == "dashboard: admin\n"
    assert json.loads(ok(run(served, "whoami", "--json", key=served.secrets["alice"]))) == {
        "name": "alice",
        "role": "operator",
        "server_id": None,
    }
    # --key-file wins over the environment
    assert ok(run(served, "--key-file", str(key_file), "whoami")) == "vera: viewer\n"


def test_wrong_or_missing_key_exits_3(served: Served) -> None:
    refused(run(served, "servers", key="aq_op_not-a-real-secret"), 3, "UNAUTHENTICATED")
    result = run(served, "servers", key=None)
    assert result.returncode == 3 and "ACTIONQ_KEY" in result.stderr


def test_viewer_may_not_approve_exits_3(served: Served, paused: None) -> None:
    action = request_pending(served, service_name="viewer-case")
    stderr = refused(run(served, "approve", str(action["id"]), key=served.secrets["vera"]), 3, "PERMISSION_DENIED")
    assert "Viewer 'vera' cannot approve" in stderr
    # nothing changed
    assert json.loads(ok(run(served, "show", str(action["id"]), "--json")))["status"] == "pending"


def test_unreachable_server_exits_4(served: Served) -> None:
    result = run(served, "servers", url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 4, result
    assert "cannot reach" in result.stderr
    assert run(served, "servers", url="http://[::1").returncode == 2
    # something answers, but not the API: no such route, or not JSON
    with streaming_stand_in() as (url, _):
        missing = run(served, "servers", url=url)
        assert missing.returncode == 4 and "no such route here" in missing.stderr, missing
        html = run(served, "whoami", url=url)
        assert html.returncode == 4 and "is this an actionq server?" in html.stderr, html


def test_usage_errors_exit_2(served: Served) -> None:
    assert run(served, "no-such-command").returncode == 2
    assert run(served, "reject", "1").returncode == 2  # --reason is required
    assert run(served, "show", "not-a-number").returncode == 2
    assert run(served, "list", "--status", "bogus").returncode == 2
    bad = run(served, "request", "web-1", "restart_service", "--param", "no-equals-sign")
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr


# Servers -----------------------------------------------------------------------


def test_servers_table_fits_80_columns(served: Served) -> None:
    out = ok(run(served, "servers"))
    fits(out)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "HOSTNAME", "PAUSED", "SINCE"]
    assert {line.split()[0] for line in lines[1:]} >= {"web-1", "db-1"}
    assert "…" in out  # the long hostname was cut, not the table widened
    listed = json.loads(ok(run(served, "--json", "servers")))
    assert {s["id"] for s in listed} >= {"web-1", "db-1"}


def test_pause_and_unpause(served: Served) -> None:
    assert ok(run(served, "pause", "db-1", key=served.secrets["alice"])) == "server db-1: paused\n"
    assert served.admin.get("/servers/db-1").json()["is_paused"] is True
    assert json.loads(ok(run(served, "unpause", "db-1", "--json")))["is_paused"] is False
    refused(run(served, "pause", "nope"), 1, "NOT_FOUND")
    refused(run(served, "pause", "db-1", key=served.secrets["vera"]), 3, "PERMISSION_DENIED")


# Requesting and deciding -----------------------------------------------------------


def test_request_on_paused_server_waits_then_approve_then_conflict(served: Served, paused: None) -> None:
    out = ok(run(served, "request", "web-1", "restart_service", "--param", "service_name=nginx", key=served.secrets["rita"]))
    assert "pending, waits for a person's approval" in out
    action_id = int(out.split()[1])
    action = served.admin.get(f"/actions/{action_id}").json()
    assert (action["created_by"], action["params"]) == ("rita", {"service_name": "nginx.service"})

    pending = ok(run(served, "pending"))
    fits(pending)
    assert pending.splitlines()[0].split() == ["ID", "STATUS", "SERVER", "TYPE", "PARAMS", "BY", "CREATED"]
    assert any(line.split()[:2] == [str(action_id), "pending"] for line in pending.splitlines()[1:])
    assert action_id in [a["id"] for a in json.loads(ok(run(served, "pending", "--json")))]

    shown = ok(run(served, "show", str(action_id)))
    assert "command:     systemctl restart nginx.service" in shown and "status:      pending" in shown

    approved = ok(run(served, "approve", str(action_id), key=served.secrets["alice"]))
    assert approved == f"action {action_id} (restart_service on web-1): approved by alice\n"
    # a second approve: the queue's rule, the API's code and message, exit 1
    stderr = refused(run(served, "approve", str(action_id), key=served.secrets["alice"]), 1, "CONFLICT")
    assert "Cannot approve action with status 'approved'" in stderr


def test_two_approvals_show_progress(served: Served, paused: None) -> None:
    action = request_pending(served, "clear_logs")
    first = ok(run(served, "approve", str(action["id"]), key=served.secrets["alice"]))
    assert "pending, waits for a person's approval (1 so far)" in first
    second = json.loads(ok(run(served, "approve", str(action["id"]), "--json", key=served.secrets["bob"])))
    assert second["status"] == "approved" and [a["by"] for a in second["approvals"]] == ["alice", "bob"]


def test_injection_attempt_as_a_parameter_is_refused(served: Served) -> None:
    for value in ("nginx; rm -rf /", "$(reboot)", "-x", "nginx service"):
        refused(run(served, "request", "web-1", "restart_service", "--param", f"service_name={value}"), 1, "FORBIDDEN")
    refused(run(served, "request", "web-1", "reboot"), 1, "VALIDATION_ERROR")
    refused(run(served, "request", "nope", "restart_service", "--param", "service_name=nginx"), 1, "NOT_FOUND")
    assert served.admin.get("/actions", params={"server_id": "web-1", "status": "pending"}).json()["total"] >= 0
    listed = served.admin.get("/actions", params={"limit": 100}).json()["actions"]
    assert not any("rm" in a["command"] or "reboot" in a["command"] for a in listed)


def test_reject_and_cancel(served: Served, paused: None) -> None:
    action = request_pending(served, service_name="rejected-one")
    out = ok(run(served, "reject", str(action["id"]), "--reason", "not now", key=served.secrets["bob"]))
    assert out == f"action {action['id']} (restart_service on web-1): rejected by bob: not now\n"
    refused(run(served, "reject", str(action["id"]), "--reason", "again"), 1, "CONFLICT")
    other = request_pending(served, service_name="cancelled-one", key=served.secrets["rita"])
    assert ok(run(served, "cancel", str(other["id"]), key=served.secrets["rita"])).endswith("cancelled by rita\n")
    refused(run(served, "reject", "999999", "--reason", "x"), 1, "NOT_FOUND")
    refused(run(served, "reject", str(other["id"]), "--reason", ""), 1, "VALIDATION_ERROR")


def test_list_filters_and_pages(served: Served, paused: None) -> None:
    for n in range(3):
        request_pending(served, service_name=f"paged-{n}")
    page = json.loads(ok(run(served, "list", "--server", "web-1", "--status", "pending", "--limit", "2", "--json")))
    assert page["limit"] == 2 and len(page["actions"]) == 2 and page["total"] >= 3
    out = ok(run(served, "list", "--server", "web-1", "--status", "pending", "--limit", "2"))
    fits(out)
    assert out.splitlines()[-1] == f"2 of {page['total']} (--before-id {page['next_before_id']} for more)"
    after = json.loads(
        ok(run(served, "list", "--server", "web-1", "--status", "pending", "--limit", "2", "--json",
               "--before-id", str(page["next_before_id"])))
    )  # fmt: skip
    assert after["actions"][0]["id"] < page["actions"][-1]["id"]
    assert after["total"] == page["total"]
    refused(run(served, "list", "--limit", "0"), 1, "VALIDATION_ERROR")
    assert "no actions" in ok(run(served, "list", "--server", "db-1", "--status", "executing"))


# Events, output, audit ----------------------------------------------------------


def test_tail_prints_the_last_events(served: Served, paused: None) -> None:
    action = request_pending(served, service_name="tailed")
    out = ok(run(served, "tail", "-n", "3"))
    fits(out)
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[-1].endswith(f"alice: action {action['id']} on web-1: new -> pending")
    events = [json.loads(line) for line in ok(run(served, "tail", "-n", "2", "--json")).splitlines()]
    assert events[-1]["action_id"] == action["id"] and events[0]["id"] < events[1]["id"]


def _lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _popen(served: Served, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env.update(ACTIONQ_KEY=BOOTSTRAP_KEY, COLUMNS="80", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [str(ACTIONQ), "--url", served.url, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_tail_follow_prints_new_events(served: Served, paused: None) -> None:
    follower = _popen(served, "tail", "-n", "0", "--follow", "--interval", "0.1")
    try:
        lines = _lines_of(follower)
        time.sleep(0.5)  # let it reach the end of the trail first
        action = request_pending(served, service_name="followed")
        line = lines.get(timeout=30)
        assert f"action {action['id']} on web-1: new -> pending" in line
        ok(run(served, "approve", str(action["id"])))
        assert "pending -> approved" in lines.get(timeout=30)
    finally:
        follower.terminate()
        follower.wait(30)


def _execute(served: Served, action_id: int) -> str:
    claimed = served.admin.post("/servers/out-1/actions/claim", json={"lease_seconds": 60})
    assert claimed.status_code == 200 and claimed.json()["id"] == action_id, claimed.text
    token: str = claimed.json()["lease_token"]
    return token


def test_output_final_and_followed(served: Served) -> None:
    assert served.admin.post("/servers", json={"id": "out-1"}).status_code == 201
    action = json.loads(
        ok(run(served, "--json", "request", "out-1", "restart_service", "--param", "service_name=printer"))
    )
    assert action["status"] == "approved"
    token = _execute(served, action["id"])
    follower = _popen(served, "output", str(action["id"]), "--follow", "--interval", "0.1")
    time.sleep(0.3)
    assert follower.poll() is None  # still executing: it waits
    done = served.admin.post(
        f"/actions/{action['id']}/result",
        json={"lease_token": token, "exit_code": 0, "stdout": "restarted\n", "stderr": "a warning\n"},
    )
    assert done.status_code == 200
    stdout, stderr = follower.communicate(timeout=30)
    assert (follower.returncode, stdout, stderr) == (0, "restarted\n", "a warning\n")
    result = run(served, "output", str(action["id"]))
    assert (result.returncode, result.stdout, result.stderr) == (0, "restarted\n", "a warning\n")
    assert json.loads(ok(run(served, "output", str(action["id"]), "--json")))["exit_code"] == 0
    refused(run(served, "output", "999999"), 1, "NOT_FOUND")


def test_verify(served: Served) -> None:
    assert ok(run(served, "verify")).startswith("audit intact: ")
    assert json.loads(ok(run(served, "verify", "--json")))["first_bad_event_id"] is None
    refused(run(served, "verify", key=served.secrets["alice"]), 3, "PERMISSION_DENIED")


def test_completion_scripts(served: Served) -> None:
    bash = ok(run(served, "completion", "bash", key=None))
    assert "_ACTIONQ_COMPLETE=bash_complete" in bash and "complete -o nosort -F" in bash
    zsh = ok(run(served, "completion", "zsh", key=None))
    assert zsh.startswith("#compdef actionq")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env.update(_ACTIONQ_COMPLETE="bash_complete", COMP_WORDS="actionq ap", COMP_CWORD="1")
    words = subprocess.run([str(ACTIONQ)], capture_output=True, text=True, env=env, timeout=60).stdout
    assert "approve" in words


# Pieces ----------------------------------------------------------------------


def test_parse_sse() -> None:
    stream = [
        ": keep-alive",
        "id: 7",
        "event: action",
        'data: {"id": 7}',
        "",
        "data: plain",
        "data: text",
        "",
        "",
    ]
    assert list(parse_sse(iter(stream))) == [("7", "action", {"id": 7}), ("7", "message", "plain\ntext")]


def test_table_shrinks_flexible_columns() -> None:
    text = table(["A", "LONG"], [["x", "y" * 200]], flexible=[1], columns=30)
    assert max(len(line) for line in text.splitlines()) <= 30 and text.endswith("…")
    event = {"id": 1, "at": "2026-12-07T01:45:13.5Z", "by": "x" * 100, "kind": "server", "subject": "web-1", "detail": None}
    assert len(event_line(event, columns=80)) == 80


# The streams (docs/contract/push.md, docs/contract/cancel-and-output.md), from a
# stand-in server that has them ----------------------------------------------------


def _event(event_id: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "action_id": 7,
        "from_status": "pending",
        "to_status": "approved",
        "by": "alice",
        "at": "2026-12-07T01:00:00Z",
        "detail": None,
        "kind": "action",
        "subject": "web-1",
    }


@contextmanager
def streaming_stand_in() -> Iterator[tuple[str, list[str]]]:
    """A server with only the routes the streaming commands read: /events,
    /events/stream (one event per connection, then it closes, so a
    reconnect must resume after it) and an output stream of two chunks.
    Yields its URL and the `after` of each stream request."""
    import anyio
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    afters: list[str] = []

    async def events(request: Request) -> JSONResponse:
        after = int(request.query_params.get("after", "0"))
        return JSONResponse([_event(i) for i in (1, 2) if i > after])

    async def event_stream(request: Request) -> StreamingResponse:
        after = request.query_params["after"]
        afters.append(after)

        async def body() -> AsyncIterator[str]:
            yield ": keep-alive\n\n"
            next_id = int(after) + 1
            yield f"id: {next_id}\nevent: action\ndata: {json.dumps(_event(next_id))}\n\n"
            if next_id >= 4:
                await anyio.sleep(60)  # stays open, as a quiet stream does

        return StreamingResponse(body(), media_type="text/event-stream")

    async def output_stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            for seq, (out, err) in enumerate((("hello\n", None), (None, "warn\n")), start=1):
                chunk = {"seq": seq, "stdout": out, "stderr": err, "at": "2026-12-07T01:00:00Z"}
                yield f"id: {seq}\nevent: output\ndata: {json.dumps(chunk)}\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse("<html>not the API</html>")

    app = Starlette(
        routes=[
            Route("/api/v1/me", page),
            Route("/api/v1/events", events),
            Route("/api/v1/events/stream", event_stream),
            Route("/api/v1/actions/7/output/stream", output_stream),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", afters
    finally:
        server.should_exit = True
        thread.join(30)


def test_tail_follow_reads_the_event_stream_and_resumes_after_the_last() -> None:
    with streaming_stand_in() as (url, afters):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
        env.update(ACTIONQ_KEY="any", COLUMNS="80", PYTHONUNBUFFERED="1")
        follower = subprocess.Popen(
            [str(ACTIONQ), "--url", url, "tail", "-n", "1", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            lines = _lines_of(follower)
            got = [lines.get(timeout=30) for _ in range(3)]
        finally:
            follower.terminate()
            follower.wait(30)
    assert [line.split()[0] for line in got] == ["#2", "#3", "#4"]
    assert afters[:2] == ["2", "3"]  # the stream from the cursor, then resumed after #3


def test_output_follow_reads_the_output_stream() -> None:
    with streaming_stand_in() as (url, _):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
        env["ACTIONQ_KEY"] = "any"
        result = subprocess.run(
            [str(ACTIONQ), "--url", url, "output", "7", "--follow"], capture_output=True, text=True, env=env, timeout=60
        )
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "warn\n")


def test_export_writes_one_json_line_per_finished_action(served: Served, paused: None, tmp_path: Path) -> None:
    done = request_pending(served, service_name="exported-one")
    ok(run(served, "cancel", str(done["id"])))
    target = tmp_path / "archive.jsonl"
    ok(run(served, "export", "--before", "2100-01-01T00:00:00Z", "-o", str(target)))
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines and all(set(line) == {"action", "events"} for line in lines)
    mine = [line for line in lines if line["action"]["id"] == done["id"]]
    assert len(mine) == 1 and mine[0]["action"]["status"] == "cancelled"
    assert [e["to_status"] for e in mine[0]["events"]][-1] == "cancelled"
    refused(run(served, "export", "--before", "yesterday"), 1, "VALIDATION_ERROR")
