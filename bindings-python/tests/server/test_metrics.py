"""``/metrics``: scraped after known operations, every value checked."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import actionq
from actionq.server import create_app

KEY = "metrics-test-key"
V1 = "/api/v1"
START = "2026-03-01T12:00:00Z"


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    response = client.get("/metrics", headers={})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_after_known_operations() -> None:
    clock = actionq.ManualClock(datetime.fromisoformat(START))
    with TestClient(create_app(api_key=KEY, clock=clock), headers={"X-API-Key": KEY}) as c:
        empty = scrape(c)
        assert not any(name == "actionq_actions" for name, _ in empty)
        assert empty[("actionq_actions_created_total", ())] == 0
        assert empty[("actionq_lease_expiries_total", ())] == 0

        for server in ("web-1", "db-1"):
            assert c.post(f"{V1}/servers", json={"id": server}).status_code == 201
        assert c.put(f"{V1}/servers/db-1/pause").status_code == 200
        created = [
            c.post(f"{V1}/actions", json={"server_id": s, "action_type": "restart_service", "service_name": n}).json()
            for s, n in [("web-1", "a"), ("web-1", "b"), ("web-1", "c"), ("db-1", "d"), ("db-1", "e"), ("db-1", "f")]
        ]
        # A refused create (conflict) is not counted.
        assert c.post(f"{V1}/actions", json={"server_id": "db-1", "action_type": "restart_service", "service_name": "d"}).status_code == 409
        assert c.post(f"{V1}/actions/{created[3]['id']}/approve").status_code == 200
        assert c.post(f"{V1}/actions/{created[3]['id']}/approve").status_code == 409
        assert c.post(f"{V1}/actions/{created[4]['id']}/reject", json={"reason": "no"}).status_code == 200

        claims = []
        for _ in range(3):
            claims.append(c.post(f"{V1}/servers/web-1/actions/claim", json={"lease_seconds": 600}).json())
        assert c.post(f"{V1}/servers/web-1/actions/claim", json={}).status_code == 204  # nothing: not a claim
        clock.advance(4)
        ok = c.post(f"{V1}/actions/{claims[0]['id']}/result", json={"lease_token": claims[0]["lease_token"], "exit_code": 0})
        assert ok.status_code == 200
        clock.advance(40)
        bad = c.post(f"{V1}/actions/{claims[1]['id']}/result", json={"lease_token": claims[1]["lease_token"], "exit_code": 2})
        assert bad.status_code == 200
        # claims[2] loses its lease; the next read expires it.
        clock.advance(600)
        assert c.get(f"{V1}/actions/{claims[2]['id']}").json()["status"] == "failed"
        late = c.post(f"{V1}/actions/{claims[2]['id']}/result", json={"lease_token": claims[2]["lease_token"], "exit_code": 0})
        assert late.status_code == 409

        for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
            assert c.get(f"{V1}/events", headers=headers).status_code == 401

        m = scrape(c)

    def actions(server: str, status: str) -> float:
        return m[("actionq_actions", (("server_id", server), ("status", status)))]

    assert {s: actions("web-1", s) for s in actionq.ActionStatus} == {
        "pending": 0, "approved": 0, "rejected": 0, "cancelled": 0, "executing": 0, "completed": 1, "failed": 2,
    }
    assert {s: actions("db-1", s) for s in actionq.ActionStatus} == {
        "pending": 1, "approved": 1, "rejected": 1, "cancelled": 0, "executing": 0, "completed": 0, "failed": 0,
    }
    assert m[("actionq_server_paused", (("server_id", "db-1"),))] == 1
    assert m[("actionq_server_paused", (("server_id", "web-1"),))] == 0
    assert m[("actionq_actions_created_total", ())] == 6
    assert m[("actionq_actions_approved_total", ())] == 1
    assert m[("actionq_actions_rejected_total", ())] == 1
    assert m[("actionq_actions_claimed_total", ())] == 3
    assert m[("actionq_results_reported_total", (("outcome", "completed"),))] == 1
    assert m[("actionq_results_reported_total", (("outcome", "failed"),))] == 1
    assert m[("actionq_lease_expiries_total", ())] == 1
    assert m[("actionq_auth_failures_total", (("reason", "unauthenticated"),))] == 2
    assert m[("actionq_auth_failures_total", (("reason", "permission_denied"),))] == 0
    # Claim to result: 4 s and 44 s.
    assert m[("actionq_claim_to_result_seconds_count", ())] == 2
    assert m[("actionq_claim_to_result_seconds_sum", ())] == 48
    assert m[("actionq_claim_to_result_seconds_bucket", (("le", "5.0"),))] == 1
    assert m[("actionq_claim_to_result_seconds_bucket", (("le", "30.0"),))] == 1
    assert m[("actionq_claim_to_result_seconds_bucket", (("le", "60.0"),))] == 2


def test_metrics_need_no_key_and_each_app_counts_its_own() -> None:
    with TestClient(create_app(api_key=KEY), headers={"X-API-Key": KEY}) as a, TestClient(create_app(api_key=KEY)) as b:
        assert a.post(f"{V1}/servers", json={"id": "web-1"}).status_code == 201
        assert a.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
        assert scrape(a)[("actionq_actions_created_total", ())] == 1
        assert scrape(b)[("actionq_actions_created_total", ())] == 0
        assert "/metrics" not in a.get("/openapi.json").json()["paths"]


def test_auth_failures_tell_unauthenticated_from_permission_denied() -> None:
    with TestClient(create_app(api_key=KEY), headers={"X-API-Key": KEY}) as c:
        assert c.post(f"{V1}/servers", json={"id": "web-1"}).status_code == 201
        assert c.put(f"{V1}/servers/web-1/pause").status_code == 200
        action = c.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
        viewer = c.post(f"{V1}/credentials", json={"name": "vera", "role": "viewer"}).json()["secret"]
        agent = c.post(f"{V1}/credentials", json={"name": "a2", "role": "agent", "server_id": "web-1"}).json()["secret"]
        as_viewer = {"X-API-Key": viewer}
        assert c.post(f"{V1}/actions/{action['id']}/approve", headers=as_viewer).json()["detail"]["code"] == "PERMISSION_DENIED"
        assert c.put(f"{V1}/servers/web-1/unpause", headers=as_viewer).status_code == 403
        assert c.get(f"{V1}/events", headers={"X-API-Key": agent}).status_code == 401  # agents use X-Agent-Token
        # A refused value (403 FORBIDDEN, not whitelisted) is not an auth failure.
        refused = c.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "a;b"})
        assert refused.json()["detail"]["code"] == "FORBIDDEN"
        m = scrape(c)
    assert m[("actionq_auth_failures_total", (("reason", "permission_denied"),))] == 2
    assert m[("actionq_auth_failures_total", (("reason", "unauthenticated"),))] == 1
    assert m[("actionq_actions_approved_total", ())] == 0


def test_requests_make_no_opentelemetry_span_even_with_a_provider_configured() -> None:
    """FastAPI's own OpenTelemetry is off (docs/contract/deployment.md#logs):
    with a tracer provider set for the process, requests ask it for nothing.
    In a process of its own: a global provider can be set only once."""
    code = """
import opentelemetry.trace as trace
from fastapi.testclient import TestClient
from actionq.server import create_app

asked = []

class Provider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        asked.append(args)
        return trace.NoOpTracer()

trace.set_tracer_provider(Provider())
key = "k" * 20
with TestClient(create_app(api_key=key), headers={"X-API-Key": key}) as client:
    assert client.post("/api/v1/servers", json={"id": "web-1"}).status_code == 201
    assert client.get("/api/v1/servers").status_code == 200
print(len(asked))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
