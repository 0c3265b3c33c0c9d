"""The repository's ``compose.yaml`` on real containers (``make test-containers``):
the server and PostgreSQL images built from this repository, the secrets from
files, and an agent container that runs a real whitelisted command.

The images are built by ``mk/containers.mk`` before this runs. The compose
file is used as it is; an override adds what a test needs on top: secret files
of this run, the agent, a whitelist with a command the containers have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import actionq
from compose_support import SERVER_UID, compose, free_port, write, write_secrets

PROJECT = "actionq-test"
API_KEY = "compose-test-bootstrap-key-0123456789"
DB_PASSWORD = "compose-test-db-password-5e1f"

# A command every image has: the default whitelist's systemctl and apt-get
# would need a whole system in the agent's container.
WHITELIST = json.loads(actionq.DEFAULT_WHITELIST_JSON)
WHITELIST["actions"]["disk_usage"] = {"command": "df -P /"}


@dataclass
class Deployment:
    """The compose project of this test and its API."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return compose(PROJECT, self.folder, self.port, *args, check=check)

    def api(self, key: str = API_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", headers={"X-API-Key": key}, timeout=30)

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds until ``/readyz`` answers 200."""
        started = time.monotonic()
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            if time.monotonic() - started > timeout:
                logs = self.compose("logs", "--no-color", "--tail", "60", check=False)
                pytest.fail(f"not ready after {timeout} s:\n{logs.stdout}")
            time.sleep(0.25)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    folder = Path(tempfile.mkdtemp(prefix="actionq-compose-"))
    folder.chmod(0o755)
    port = free_port()
    signing = actionq.ClaimSigningKey.generate()
    secrets = write_secrets(folder, API_KEY, DB_PASSWORD, signing.to_pem())
    config = folder / "config"
    config.mkdir(mode=0o755)
    write(config / "whitelist.json", json.dumps(WHITELIST), 0o644)
    agent = folder / "agent"
    agent.mkdir(mode=0o755)
    write(agent / "whitelist.json", json.dumps(WHITELIST), 0o644)
    write(agent / "claim-signing.pub", signing.public_key().to_pem(), 0o644)
    write(agent / "token", "not-issued-yet\n", 0o600)
    write(
        agent / "config.toml",
        "\n".join(
            [
                # The agent shares the server's network namespace: plain http
                # only to loopback (the agent's rule; TLS is the proxy's job).
                'server_url = "http://127.0.0.1:8080"',
                'server_id = "web-1"',
                'token_file = "/etc/actionq-agent/token"',
                'whitelist_file = "/etc/actionq-agent/whitelist.json"',
                'claim_public_key_file = "/etc/actionq-agent/claim-signing.pub"',
                "claim_wait_seconds = 5",
                "",
            ]
        ),
        0o644,
    )
    override = {
        "services": {
            "server": {
                "environment": {"ACTIONQ_WHITELIST": "/etc/actionq/whitelist.json"},
                "volumes": [f"{config}:/etc/actionq:ro"],
            },
            "agent": {
                "image": "actionq-agent:latest",
                "network_mode": "service:server",
                "depends_on": ["server"],
                "volumes": [f"{agent}:/etc/actionq-agent:ro"],
                "profiles": ["agent"],
            },
        },
        "secrets": secrets,
    }
    (folder / "override.yaml").write_text(json.dumps(override, indent=2), encoding="utf-8")
    deployment = Deployment(folder, port)
    deployment.compose("down", "-v", "--remove-orphans", check=False)
    try:
        yield deployment
    finally:
        logs = deployment.compose("logs", "--no-color", check=False)
        (Path(os.environ.get("ACTIONQ_CONTAINER_LOGS", folder)) / "compose.log").write_text(logs.stdout + logs.stderr)
        deployment.compose("--profile", "agent", "down", "-v", "--remove-orphans", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_compose_up_serves_runs_an_action_and_keeps_the_audit_across_down_and_up(deployment: Deployment) -> None:
    started = time.monotonic()
    deployment.compose("up", "-d", "--no-build", "postgres", "server")
    ready = deployment.wait_ready()
    print(f"\ncompose up -> /readyz 200: {time.monotonic() - started:.1f} s ({ready:.1f} s of it waiting)")
    assert httpx.get(deployment.url + "/healthz").json() == {"status": "ok"}

    with deployment.api() as admin:
        assert admin.post("/servers", json={"id": "web-1", "hostname": "web-1"}).status_code == 201
        assert admin.put("/servers/web-1/pause").status_code == 200
        created = admin.post("/actions", json={"server_id": "web-1", "action_type": "disk_usage"})
        assert created.status_code == 201, created.text
        action = created.json()
        assert (action["status"], action["argv"]) == ("pending", ["df", "-P", "/"])
        approved = admin.post(f"/actions/{action['id']}/approve")
        assert (approved.status_code, approved.json()["status"]) == (200, "approved"), approved.text
        assert admin.put("/servers/web-1/unpause").status_code == 200
        issued = admin.post("/credentials", json={"name": "agent-web-1", "role": "agent", "server_id": "web-1"})
        assert issued.status_code == 201, issued.text
        write(deployment.folder / "agent" / "token", issued.json()["secret"] + "\n", 0o600)

        deployment.compose("--profile", "agent", "up", "-d", "--no-build", "agent")
        deadline = time.monotonic() + 120
        while (done := admin.get(f"/actions/{action['id']}").json())["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, deployment.compose("logs", "--no-color", "agent", check=False).stdout
            time.sleep(0.5)
        assert done["status"] == "completed", done
        assert done["exit_code"] == 0
        assert done["stdout"].startswith("Filesystem"), done["stdout"]
        audit = admin.get("/audit/verify").json()
        assert audit["first_bad_event_id"] is None and audit["checked"] > 0, audit

    # The secrets went nowhere near the logs.
    logs = deployment.compose("logs", "--no-color", check=False).stdout
    for secret in (API_KEY, DB_PASSWORD, issued.json()["secret"]):
        assert secret not in logs
    server_lines = [line.split("|", 1)[1].strip() for line in logs.splitlines() if line.startswith("server") and "|" in line]
    requests = [json.loads(line) for line in server_lines if line.startswith("{") and '"actionq.server.request"' in line]
    assert any(r["route"] == "/api/v1/servers/{server_id}/actions/claim" and r["caller"] == "agent-web-1" for r in requests), requests[-5:]

    deployment.compose("--profile", "agent", "down")
    deployment.compose("up", "-d", "--no-build", "postgres", "server")
    deployment.wait_ready()
    with deployment.api() as admin:
        again = admin.get(f"/actions/{action['id']}").json()
        assert (again["status"], again["exit_code"], again["stdout"]) == ("completed", 0, done["stdout"])
        after = admin.get("/audit/verify").json()
        assert after["first_bad_event_id"] is None and after["checked"] >= audit["checked"], after


def test_the_server_image_is_what_the_contract_says(deployment: Deployment) -> None:
    inspect: list[dict[str, Any]] = json.loads(
        subprocess.run(["docker", "image", "inspect", "actionq-server:latest"], capture_output=True, text=True, check=True).stdout
    )
    config = inspect[0]["Config"]
    assert config["User"] == "actionq"
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"] == ["actionq-server"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    # No compiler in the runtime image.
    for tool in ("cc", "gcc", "cargo", "rustc"):
        found = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "sh", "actionq-server:latest", "-c", f"command -v {tool}"],
            capture_output=True,
            text=True,
        )
        assert found.returncode != 0, f"{tool} in the runtime image: {found.stdout}"
    uid = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", "actionq-server:latest", "-u"], capture_output=True, text=True, check=True
    )
    assert uid.stdout.strip() == str(SERVER_UID)
    # The HEALTHCHECK itself works: the running server's container turns healthy.
    deployment.compose("up", "-d", "--no-build", "postgres", "server")  # no-op when up
    server = deployment.compose("ps", "-q", "server").stdout.strip()
    deadline = time.monotonic() + 60
    while (health := _inspect(server, "{{.State.Health.Status}}")) != "healthy":
        assert health in ("starting", "healthy") and time.monotonic() < deadline, health
        time.sleep(1)


def _inspect(container: str, template: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", template, container], capture_output=True, text=True, check=True).stdout.strip()


def test_postgresql_stopped_makes_the_server_not_ready_until_it_is_back(deployment: Deployment) -> None:
    deployment.compose("up", "-d", "--no-build", "postgres", "server")
    deployment.wait_ready()
    server_id = deployment.compose("ps", "-q", "server").stdout.strip()
    started_at = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", server_id], capture_output=True, text=True, check=True
    ).stdout
    deployment.compose("stop", "postgres")
    ready = httpx.get(deployment.url + "/readyz", timeout=30)
    assert ready.status_code == 503, ready.text
    assert httpx.get(deployment.url + "/healthz").status_code == 200
    deployment.compose("start", "postgres")
    back = deployment.wait_ready(timeout=120)
    print(f"\nPostgreSQL started again -> /readyz 200 after {back:.1f} s")
    with deployment.api() as admin:
        assert admin.get("/servers/web-1").status_code == 200
    # The same process all along: readiness came back without a restart.
    assert subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", server_id], capture_output=True, text=True, check=True
    ).stdout == started_at
