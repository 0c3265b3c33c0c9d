"""Two server replicas, PostgreSQL and three agents on the compose project's
private network (docs/contract/deployment.md#replicas-and-faults), then the
faults one by one: an agent cut off mid-action, a replica killed, PostgreSQL
restarted, the whole project taken down and up again.

The servers serve https with a certificate of a CA made here (trustme); each
agent trusts that CA (``ca_file``) and names both replicas (``server_urls``).
Agent ``web-N`` runs the actions of server ``web-N``: the whitelisted
``record`` command, a script that writes ``start TAG`` and ``end TAG`` to the
agent's ledger file (a directory of this test). Every action gets its own
tag, so "nothing lost, nothing run twice" is read from the ledgers: each
completed action started and ended exactly once, on its own agent; the one
cut off started once and never again.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml  # type: ignore[import-untyped]

import actionq
from compose_support import ROOT, SERVER_UID, compose, free_port, write, write_secrets

PROJECT = "actionq-fleet"
NETWORK = f"{PROJECT}_default"
REPLICAS = ("server", "server-2")
AGENTS = {"agent-1": "web-1", "agent-2": "web-2", "agent-3": "web-3"}
API_KEY = "fleet-test-bootstrap-key-0123456789"
DB_PASSWORD = "fleet-test-db-password-77a0"
# Short, so a lost lease shows within seconds: the agent heartbeats every
# third of it, the sweeper fails it within 5 s of its end.
LEASE_SECONDS = 6

WHITELIST = json.loads(actionq.DEFAULT_WHITELIST_JSON)
WHITELIST["actions"]["record"] = {
    "command": "/opt/fleet/record {tag} {seconds}",
    "params": {"tag": {"kind": "integer", "min": 1, "max": 1_000_000}, "seconds": {"kind": "integer", "min": 0, "max": 60}},
}
RECORD = """#!/bin/sh
# A tag in the ledger twice would be an action run twice.
echo "start $1" >> /runs/ledger
sleep "$2"
echo "end $1" >> /runs/ledger
"""


@dataclass
class Fleet:
    """The compose project of this module, its replicas' published ports and
    the actions created so far (id -> (server, tag)) and those cut off."""

    folder: Path
    ports: dict[str, int]
    ca: trustme.CA
    created: dict[int, tuple[str, int]] = field(default_factory=dict)
    cut_off: set[int] = field(default_factory=set)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return compose(PROJECT, self.folder, self.ports["server"], "--profile", "agents", *args, check=check)

    def url(self, replica: str) -> str:
        return f"https://127.0.0.1:{self.ports[replica]}"

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def api(self, replica: str = "server-2") -> httpx.Client:
        return httpx.Client(base_url=self.url(replica) + "/api/v1", headers={"X-API-Key": API_KEY}, timeout=30, verify=self.tls())

    def readyz(self, replica: str) -> int | None:
        try:
            return httpx.get(self.url(replica) + "/readyz", timeout=5, verify=self.tls()).status_code
        except httpx.TransportError:
            return None

    def wait_ready(self, replica: str, timeout: float = 180) -> float:
        started = time.monotonic()
        while self.readyz(replica) != 200:
            if time.monotonic() - started > timeout:
                pytest.fail(f"{replica} not ready after {timeout} s:\n{self.logs(replica)}")
            time.sleep(0.25)
        return time.monotonic() - started

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", "--tail", "80", *services, check=False).stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def create(self, server_id: str, seconds: int = 0, replica: str = "server-2") -> int:
        tag = len(self.created) + 1
        with self.api(replica) as api:
            made = api.post("/actions", json={"server_id": server_id, "action_type": "record", "params": {"tag": str(tag), "seconds": str(seconds)}})
        assert made.status_code == 201, made.text
        action = made.json()
        # An unpaused server's actions are approved at once.
        assert action["status"] == "approved", action
        self.created[action["id"]] = (server_id, tag)
        return int(action["id"])

    def wait(self, action_id: int, statuses: tuple[str, ...], timeout: float = 90, replica: str = "server-2") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        action: dict[str, Any]
        with self.api(replica) as api:
            while (action := api.get(f"/actions/{action_id}").json())["status"] not in statuses:
                assert time.monotonic() < deadline, f"{action}\n{self.logs(*AGENTS)}"
                time.sleep(0.25)
        return action

    def ledger(self, agent: str) -> list[str]:
        path = self.folder / "runs" / agent / "ledger"
        return path.read_text().splitlines() if path.exists() else []

    def assert_each_ran_once(self) -> None:
        """Every action created is over; a completed one started and ended
        once on its own agent and nowhere else; one cut off started once, and
        failed."""
        lines = {agent: Counter(self.ledger(agent)) for agent in AGENTS}
        with self.api() as api:
            for action_id, (server_id, tag) in self.created.items():
                action = api.get(f"/actions/{action_id}").json()
                own = next(a for a, s in AGENTS.items() if s == server_id)
                expected = "failed" if action_id in self.cut_off else "completed"
                assert action["status"] == expected, action
                assert lines[own][f"start {tag}"] == 1, (action, lines[own])
                if expected == "completed":
                    assert lines[own][f"end {tag}"] == 1, (action, lines[own])
                for other in set(AGENTS) - {own}:
                    assert lines[other][f"start {tag}"] == 0, (action, other, lines[other])
        assert sum(c[line] for c in lines.values() for line in c if line.startswith("start ")) == len(self.created)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    folder = Path(tempfile.mkdtemp(prefix="actionq-fleet-"))
    folder.chmod(0o755)
    ca = trustme.CA()
    certificate = ca.issue_cert(*REPLICAS, "localhost", "127.0.0.1")
    signing = actionq.ClaimSigningKey.generate()

    secrets = write_secrets(folder, API_KEY, DB_PASSWORD, signing.to_pem())
    config = folder / "config"
    config.mkdir(mode=0o755)
    write(config / "whitelist.json", json.dumps(WHITELIST), 0o644)
    write(config / "cert.pem", certificate.cert_chain_pems[0].bytes().decode(), 0o644)
    write(config / "key.pem", certificate.private_key_pem.bytes().decode(), 0o600, SERVER_UID)
    script = folder / "fleet"
    script.mkdir(mode=0o755)
    write(script / "record", RECORD, 0o755)

    agents: dict[str, Any] = {}
    for agent, server_id in AGENTS.items():
        home = folder / "agents" / agent
        home.mkdir(parents=True, mode=0o755)
        (folder / "runs" / agent).mkdir(parents=True)
        write(home / "whitelist.json", json.dumps(WHITELIST), 0o644)
        write(home / "claim-signing.pub", signing.public_key().to_pem(), 0o644)
        write(home / "ca.pem", ca.cert_pem.bytes().decode(), 0o644)
        write(home / "token", "not-issued-yet\n", 0o600)
        settings = {
            # Off loopback: https only, trusting this test's CA.
            "server_urls": [f"https://{replica}:8080" for replica in REPLICAS],
            "server_id": server_id,
            "token_file": "/etc/actionq-agent/token",
            "whitelist_file": "/etc/actionq-agent/whitelist.json",
            "claim_public_key_file": "/etc/actionq-agent/claim-signing.pub",
            "ca_file": "/etc/actionq-agent/ca.pem",
            "claim_wait_seconds": 5,
            "lease_seconds": LEASE_SECONDS,
            "retry_max_seconds": 2,
            "http_timeout_seconds": 3,
        }
        write(home / "config.toml", "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()), 0o644)
        agents[agent] = {
            "image": "actionq-agent:latest",
            "hostname": agent,
            "depends_on": list(REPLICAS),
            "volumes": [f"{home}:/etc/actionq-agent:ro", f"{script}:/opt/fleet:ro", f"{folder / 'runs' / agent}:/runs"],
            "profiles": ["agents"],
            "restart": "unless-stopped",
        }

    ports = {replica: free_port() for replica in REPLICAS}
    tls_env = {
        "ACTIONQ_WHITELIST": "/etc/actionq/whitelist.json",
        "ACTIONQ_TLS_CERT": "/etc/actionq/cert.pem",
        "ACTIONQ_TLS_KEY": "/etc/actionq/key.pem",
        "ACTIONQ_ALLOWED_HOSTS": " ".join(["localhost", "127.0.0.1", *REPLICAS]),
    }
    server = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["server"]
    # The second replica is the compose file's server, published on its own port.
    second = {key: value for key, value in server.items() if key != "build"}
    second["environment"] = {**server["environment"], **tls_env}
    second["volumes"] = [*server["volumes"], f"{config}:/etc/actionq:ro"]
    second["ports"] = [f"127.0.0.1:{ports['server-2']}:8080"]
    override = {
        "services": {
            "server": {"environment": tls_env, "volumes": [f"{config}:/etc/actionq:ro"]},
            "server-2": second,
            **agents,
        },
        "secrets": secrets,
    }
    (folder / "override.yaml").write_text(json.dumps(override, indent=2), encoding="utf-8")
    fleet = Fleet(folder, ports, ca)
    fleet.compose("down", "-v", "--remove-orphans", check=False)
    try:
        yield fleet
    finally:
        logs = fleet.compose("logs", "--no-color", check=False)
        (Path(os.environ.get("ACTIONQ_CONTAINER_LOGS", folder)) / "fleet.log").write_text(logs.stdout + logs.stderr)
        fleet.compose("down", "-v", "--remove-orphans", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_replicas_serve_https_and_three_agents_run_their_own_actions(fleet: Fleet) -> None:
    started = time.monotonic()
    fleet.compose("up", "-d", "--no-build", "postgres", *REPLICAS)
    for replica in REPLICAS:
        fleet.wait_ready(replica)
    print(f"\n2 replicas + PostgreSQL: compose up -> both /readyz 200 in {time.monotonic() - started:.1f} s")
    # https only, and only for a client that trusts the CA.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{fleet.ports['server']}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(fleet.url("server") + "/healthz", timeout=5)

    with fleet.api("server") as admin:
        for agent, server_id in AGENTS.items():
            assert admin.post("/servers", json={"id": server_id, "hostname": server_id}).status_code == 201
            issued = admin.post("/credentials", json={"name": agent, "role": "agent", "server_id": server_id})
            assert issued.status_code == 201, issued.text
            write(fleet.folder / "agents" / agent / "token", issued.json()["secret"] + "\n", 0o600)
    fleet.compose("up", "-d", "--no-build", *AGENTS)
    # Created on one replica, claimed through either.
    ids = [fleet.create(server_id, replica=replica) for server_id, replica in zip(AGENTS.values(), ("server", "server-2", "server"))]
    for action_id in ids:
        done = fleet.wait(action_id, ("completed", "failed"))
        assert (done["status"], done["exit_code"]) == ("completed", 0), done
    fleet.assert_each_ran_once()


def test_an_agent_cut_off_mid_action_loses_its_lease_and_never_runs_it_again(fleet: Fleet) -> None:
    # Long enough to be cut off in the middle; shorter than the wait for the failure.
    action_id = fleet.create("web-1", seconds=10)
    fleet.wait(action_id, ("executing",))
    agent = fleet.container("agent-1")
    subprocess.run(["docker", "network", "disconnect", NETWORK, agent], check=True)
    cut = time.monotonic()
    failed = fleet.wait(action_id, ("failed", "completed"), timeout=LEASE_SECONDS + 30)
    print(f"\nagent-1 cut off mid-action -> action {failed['status']} after {time.monotonic() - cut:.1f} s: {failed.get('stderr')!r}")
    assert failed["status"] == "failed", failed
    fleet.cut_off.add(action_id)
    # Its command runs on where the agent is (nobody can stop it from here), then
    # the agent cannot report; back on the network it must not run it again.
    deadline = time.monotonic() + 30
    while f"end {fleet.created[action_id][1]}" not in fleet.ledger("agent-1"):
        assert time.monotonic() < deadline, fleet.ledger("agent-1")
        time.sleep(0.25)
    subprocess.run(["docker", "network", "connect", NETWORK, agent], check=True)
    after = fleet.create("web-1")
    assert fleet.wait(after, ("completed", "failed"))["status"] == "completed"
    again = fleet.wait(action_id, ("failed",))
    assert again == failed  # unchanged since it failed: no late result, no second run
    fleet.assert_each_ran_once()


def test_a_replica_killed_agents_carry_on_through_the_other(fleet: Fleet) -> None:
    replica = fleet.container("server")
    subprocess.run(["docker", "kill", replica], check=True, capture_output=True)
    assert _inspect(replica, "{{.State.Running}}") == "false"
    ids = [fleet.create(server_id, seconds=1) for server_id in AGENTS.values()]
    outcomes = [fleet.wait(action_id, ("completed", "failed"))["status"] for action_id in ids]
    print(f"\nreplica `server` killed -> {len(ids)} actions through `server-2`: {outcomes}")
    assert outcomes == ["completed"] * len(ids)
    # Down all along (a restart policy did not bring it back in between).
    assert (_inspect(replica, "{{.State.Running}}"), fleet.readyz("server")) == ("false", None)
    fleet.assert_each_ran_once()
    fleet.compose("up", "-d", "--no-build", "server")
    fleet.wait_ready("server")


def test_postgresql_restarted_servers_are_not_ready_then_recover_without_a_restart(fleet: Fleet) -> None:
    started = {replica: _inspect(fleet.container(replica), "{{.State.StartedAt}}") for replica in REPLICAS}
    fleet.compose("stop", "postgres")
    assert [fleet.readyz(replica) for replica in REPLICAS] == [503, 503]
    fleet.compose("start", "postgres")
    back = [fleet.wait_ready(replica, timeout=120) for replica in REPLICAS]
    print(f"\nPostgreSQL restarted -> both replicas 503, then 200 after {max(back):.1f} s")
    assert {replica: _inspect(fleet.container(replica), "{{.State.StartedAt}}") for replica in REPLICAS} == started
    ids = [fleet.create(server_id, replica=replica) for server_id, replica in zip(AGENTS.values(), ("server", "server-2", "server"))]
    assert [fleet.wait(i, ("completed", "failed"))["status"] for i in ids] == ["completed"] * len(ids)


def test_compose_down_and_up_keeps_every_action_and_the_audit_chain(fleet: Fleet) -> None:
    with fleet.api() as api:
        before = {i: api.get(f"/actions/{i}").json() for i in fleet.created}
        audit = api.get("/audit/verify").json()
    assert audit["first_bad_event_id"] is None and audit["checked"] > 0, audit
    fleet.compose("down")
    fleet.compose("up", "-d", "--no-build", "postgres", *REPLICAS, *AGENTS)
    for replica in REPLICAS:
        fleet.wait_ready(replica)
    with fleet.api("server") as api:
        after = {i: api.get(f"/actions/{i}").json() for i in fleet.created}
        verified = api.get("/audit/verify").json()
    assert after == before
    assert verified["first_bad_event_id"] is None and verified["checked"] >= audit["checked"], verified
    print(f"\ncompose down && up -> {len(after)} actions unchanged, audit chain of {verified['checked']} events verifies")
    ids = [fleet.create(server_id) for server_id in AGENTS.values()]
    assert [fleet.wait(i, ("completed", "failed"))["status"] for i in ids] == ["completed"] * len(ids)
    fleet.assert_each_ran_once()


def _inspect(container: str, template: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", template, container], capture_output=True, text=True, check=True).stdout.strip()
