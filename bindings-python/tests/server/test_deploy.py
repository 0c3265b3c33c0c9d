"""What deploying the server relies on (docs/contract/deployment.md):
``/healthz`` and ``/readyz`` (503 while PostgreSQL is down, 200 again once it
is back, same process), secrets from ``*_FILE``, ``--log-format json`` and
SIGTERM. Each drives a real ``actionq-server`` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi.testclient import TestClient

from actionq.server import create_app
from actionq.server.cli import ConfigError, secret_from_env
from actionq.server.health import READY_TIMEOUT_SECONDS, SWEEP_INTERVAL_SECONDS
from actionq.server.logs import redact

import pg_support
from serve_support import free_port

BIN = Path(sys.executable).parent
KEY = "deploy-test-key-0123456789abcdef"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@contextmanager
def running(
    tmp: Path, args: list[str], env: dict[str, str], name: str = "server", tls: ssl.SSLContext | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``actionq-server`` on a free port until the block ends (SIGINT, then
    kill); over https, trusting ``tls``, when given."""
    port = free_port()
    log_path = tmp / f"{name}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(BIN / "actionq-server"), "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        url = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1, verify=tls or True).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            yield server, url, log_path
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


# Health and readiness ---------------------------------------------------------


def test_healthz_and_readyz_answer_without_a_key() -> None:
    with TestClient(create_app(api_key=KEY)) as c:
        assert (c.get("/healthz").status_code, c.get("/healthz").json()) == (200, {"status": "ok"})
        assert (c.get("/readyz").status_code, c.get("/readyz").json()) == (200, {"status": "ok"})


class PrivateCluster:
    """A PostgreSQL cluster of this test's own, which it can stop and start."""

    def __init__(self, root: Path) -> None:
        pg_support.admin_url()  # skips, or fails under CI, without PostgreSQL
        self.bin = Path(os.environ["ACTIONQ_TEST_PG_BIN"])
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        root.chmod(0o755)
        if os.geteuid() == 0:
            os.chown(root, *self._postgres_ids())
        self._as_pg([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])

    @staticmethod
    def _postgres_ids() -> tuple[int, int]:
        import pwd

        entry = pwd.getpwnam("postgres")
        return entry.pw_uid, entry.pw_gid

    def _as_pg(self, argv: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
        self._as_pg([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-o", opts, "start"])

    def stop(self) -> None:
        self._as_pg([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def url(self, password: str) -> str:
        # trust authentication ignores the password: it is there to be kept out of logs.
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    # Not under pytest's tmp_path: its parents are closed to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="actionq-pg-"))
    try:
        pg = PrivateCluster(root)
        pg.start()
        try:
            yield pg
        finally:
            try:
                pg.stop()
            except AssertionError:
                pass  # already stopped
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_readyz_follows_postgresql_down_and_back_without_a_restart(cluster: PrivateCluster, tmp_path: Path) -> None:
    password = "db-password-never-logged-7f3a"
    env = clean_env(ACTIONQ_API_KEY=KEY)
    with running(tmp_path, ["--database", cluster.url(password), "--log-format", "json"], env) as (server, url, log):
        assert httpx.get(url + "/readyz").status_code == 200
        cluster.stop()
        started = time.monotonic()
        ready = httpx.get(url + "/readyz", timeout=30)
        took = time.monotonic() - started
        assert ready.status_code == 503, ready.text
        assert ready.json() == {"status": "unavailable"}
        assert took < READY_TIMEOUT_SECONDS + 1.5, f"/readyz took {took:.1f} s with the database down"
        assert httpx.get(url + "/healthz").status_code == 200  # the process itself is fine
        cluster.start()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "/readyz never came back after PostgreSQL did"
            time.sleep(0.2)
        assert server.poll() is None
        created = httpx.post(url + "/api/v1/servers", json={"id": "web-1", "hostname": "w"}, headers={"X-API-Key": KEY})
        assert created.status_code == 201, created.text
    assert password not in log.read_text()


# Secrets from files --------------------------------------------------------------


def test_secret_from_env_reads_the_file_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert secret_from_env("X", {"X_FILE": str(secret)}) == "s3cret"
    secret.write_text("s3cret\r\n")
    assert secret_from_env("X", {"X_FILE": str(secret)}) == "s3cret"
    secret.write_text("s3cret\n\n")  # only one newline is the file's end; the rest is the value
    assert secret_from_env("X", {"X_FILE": str(secret)}) == "s3cret\n"
    assert secret_from_env("X", {"X": "direct"}) == "direct"
    assert secret_from_env("X", {}) is None
    with pytest.raises(ConfigError, match="both X and X_FILE are set"):
        secret_from_env("X", {"X": "direct", "X_FILE": str(secret)})
    secret.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        secret_from_env("X", {"X_FILE": str(secret)})
    with pytest.raises(ConfigError, match="cannot read"):
        secret_from_env("X", {"X_FILE": str(tmp_path / "missing")})


def test_server_takes_its_key_and_database_from_files(tmp_path: Path) -> None:
    key_file, db_file = tmp_path / "api_key", tmp_path / "database"
    key_file.write_text(KEY + "\n")
    database = tmp_path / "db" / "actionq.sqlite3"
    db_file.write_text(f"{database}\n")
    env = clean_env(ACTIONQ_API_KEY_FILE=str(key_file), ACTIONQ_DATABASE_FILE=str(db_file))
    with running(tmp_path, [], env) as (_, url, log):
        # 404, not 401: the key is the file's text without its newline.
        assert httpx.get(url + "/api/v1/servers/x", headers={"X-API-Key": KEY}).status_code == 404
    assert database.exists(), log.read_text()
    assert KEY not in log.read_text()


@pytest.mark.parametrize("name", ["ACTIONQ_API_KEY", "ACTIONQ_DATABASE"])
def test_a_variable_and_its_file_both_set_stop_the_start(tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    env = clean_env(ACTIONQ_API_KEY=KEY)
    env[name] = str(tmp_path / "x.sqlite3") if name == "ACTIONQ_DATABASE" else KEY
    env[f"{name}_FILE"] = str(secret)
    done = subprocess.run([str(BIN / "actionq-server"), "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"both {name} and {name}_FILE are set" in done.stderr
    assert "from-the-file" not in done.stdout + done.stderr


# JSON logs -----------------------------------------------------------------------


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line, or the test fails


def test_json_log_has_one_line_per_request_and_job_and_no_secret(tmp_path: Path) -> None:
    env = clean_env(ACTIONQ_API_KEY=KEY, ACTIONQ_LOG_FORMAT="json")
    api = {"X-API-Key": KEY}
    with running(tmp_path, ["--database", str(tmp_path / "q.sqlite3")], env) as (_, url, log):
        with httpx.Client(base_url=url + "/api/v1", headers=api) as c:
            assert c.post("/servers", json={"id": "web-1", "hostname": "w"}).status_code == 201
            action = c.post("/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"})
            assert action.status_code == 201, action.text
            action_id = action.json()["id"]
            approved = c.post(f"/actions/{action_id}/approve", headers={"X-Request-ID": "req-from-the-caller.1"})
            assert approved.headers["x-request-id"] == "req-from-the-caller.1"
            issued = c.post("/credentials", json={"name": "alice", "role": "operator"}).json()["secret"]
            assert c.get(f"/actions/{action_id}", headers={"X-API-Key": issued}).status_code == 200
            assert c.get("/actions/1", headers={"X-API-Key": "wrong-key-should-not-be-logged"}).status_code == 401
            assert c.get("/actions?limit=5&status=pending").status_code == 200
        # One sweep at least.
        time.sleep(SWEEP_INTERVAL_SECONDS + 1.5)
    text = log.read_text()
    for secret in (KEY, issued, "wrong-key-should-not-be-logged"):
        assert secret not in text
    lines = json_lines(log)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    requests = [line for line in lines if line["logger"] == "actionq.server.request"]
    by_route = {(r["method"], r["route"], r["status"]): r for r in requests}
    for r in requests:
        assert {"request_id", "method", "route", "status", "duration_ms", "caller", "action_id"} <= r.keys(), r
        assert isinstance(r["duration_ms"], (int, float)) and r["duration_ms"] >= 0
    create = by_route[("POST", "/api/v1/actions", 201)]
    assert (create["caller"], create["action_id"]) == ("dashboard", None)
    approve = by_route[("POST", "/api/v1/actions/{action_id}/approve", approved.status_code)]
    assert (approve["caller"], approve["action_id"], approve["request_id"]) == ("dashboard", action_id, "req-from-the-caller.1")
    read = by_route[("GET", "/api/v1/actions/{action_id}", 200)]
    assert (read["caller"], read["action_id"]) == ("alice", action_id)
    refused = by_route[("GET", "/api/v1/actions/{action_id}", 401)]
    assert refused["caller"] is None
    assert len({r["request_id"] for r in requests}) == len(requests)
    jobs = [line for line in lines if line["logger"] == "actionq.server.job"]
    assert jobs and jobs[0]["job"] == "lease_sweeper" and jobs[0]["outcome"] == "ok", jobs


def test_redact_hides_a_url_password() -> None:
    assert redact("cannot reach postgresql://aq:hunter2@db:5432/q") == "cannot reach postgresql://aq:***@db:5432/q"
    assert redact("postgresql://aq@db/q") == "postgresql://aq@db/q"


# SIGTERM ---------------------------------------------------------------------------


def test_sigterm_stops_within_10_s_with_a_request_in_flight(tmp_path: Path) -> None:
    env = clean_env(ACTIONQ_API_KEY=KEY)
    with running(tmp_path, ["--database", str(tmp_path / "q.sqlite3")], env) as (server, url, log):
        port = int(url.rsplit(":", 1)[1])
        # A request whose body never comes: the server waits for it, and a
        # shutdown that waited for every open request would wait for ever.
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.sendall(
            b"POST /api/v1/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        idle = socket.create_connection(("127.0.0.1", port))  # a keep-alive client doing nothing
        time.sleep(1.0)
        assert server.poll() is None
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        finally:
            stuck.close()
            idle.close()
        took = time.monotonic() - started
        assert took < 10, f"SIGTERM took {took:.1f} s"
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert server.returncode in (0, -signal.SIGTERM), log.read_text()
        assert "Finished server process" in log.read_text()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ACTIONQ_PORT", "http", "argument --port: invalid int value: 'http'"),
        ("ACTIONQ_LOG_FORMAT", "xml", "ACTIONQ_LOG_FORMAT: 'xml' is not one of text, json"),
    ],
)
def test_a_bad_option_from_the_environment_is_a_usage_error(name: str, value: str, message: str) -> None:
    env = clean_env(ACTIONQ_API_KEY=KEY, **{name: value})
    done = subprocess.run([str(BIN / "actionq-server")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, (done.stdout, done.stderr)


# TLS ---------------------------------------------------------------------------------


def test_tls_cert_and_key_serve_https_only(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    # From the environment, as in a container.
    env = clean_env(ACTIONQ_API_KEY=KEY, ACTIONQ_TLS_CERT=str(cert), ACTIONQ_TLS_KEY=str(key))
    with running(tmp_path, [], env, tls=trusting) as (_, url, log):
        assert url.startswith("https://")
        api = httpx.get(url + "/api/v1/servers/x", headers={"X-API-Key": KEY}, verify=trusting)
        assert api.status_code == 404, api.text
        # A client that does not trust the CA is refused; plain http gets nothing.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url + "/healthz")
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)
    assert "actionq API on https://127.0.0.1:" in log.read_text()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together: give both or neither"),
        (["--tls-key", "{cert}"], "--tls-cert and --tls-key go together: give both or neither"),
        (["--tls-cert", "{cert}", "--tls-key", "{missing}"], "--tls-key: cannot read {missing}: No such file or directory"),
    ],
)
def test_tls_options_that_cannot_be_used_stop_the_start(tmp_path: Path, options: list[str], message: str) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not read before the start is refused\n")
    names = {"cert": str(cert), "missing": str(tmp_path / "missing.pem")}
    argv = [str(BIN / "actionq-server"), "--port", str(free_port()), *(o.format(**names) for o in options)]
    done = subprocess.run(argv, env=clean_env(ACTIONQ_API_KEY=KEY), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message.format(**names) in done.stderr, (done.stdout, done.stderr)
