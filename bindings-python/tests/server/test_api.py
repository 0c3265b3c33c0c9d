"""Every endpoint of the HTTP contract (docs/contract/http.md#routes) and its
error paths, through TestClient."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY
from hypothesis import given, settings
from schemathesis_hooks import CREDENTIAL_NAMES
from fastapi.testclient import TestClient

import actionq
from actionq import limits
from lock_support import LOCK_HOLDER
from actionq.server import create_app
from actionq.server.cli import api_key_from_env
from actionq import limits
from actionq.server.models import RESERVED_NAMES, ActionType

V1 = "/api/v1"
ACTION_FIELDS = {
    "id", "server_id", "action_type", "status", "service_name", "command", "argv", "env",
    "alert_id", "created_at", "created_by", "approved_at", "approved_by", "rejected_at",
    "rejected_by", "rejection_reason", "cancelled_at", "cancelled_by", "executed_at",
    "lease_expires_at", "completed_at", "exit_code", "stdout", "stderr",
    "approvals", "digest", "whitelist_version",  # docs/contract/approval-policy.md
    "params",  # README "Security": what the command was built from
    "cancel_requested_at", "cancel_requested_by",  # docs/contract/cancel-and-output.md
}  # fmt: skip

ROUTES = [
    ("POST", "/servers", {"id": "x1"}),
    ("GET", "/servers", None),
    ("GET", "/servers/web-1", None),
    ("PUT", "/servers/web-1/pause", None),
    ("PUT", "/servers/web-1/unpause", None),
    ("GET", "/servers/web-1/actions", None),
    ("GET", "/actions", None),
    ("GET", "/actions/1", None),
    ("POST", "/actions", {"server_id": "web-1", "action_type": "clear_logs"}),
    ("POST", "/actions/1/approve", None),
    ("POST", "/actions/1/reject", {"reason": "no"}),
    ("POST", "/actions/1/cancel", None),
    ("POST", "/servers/web-1/actions/claim", {}),
    ("POST", "/actions/1/heartbeat", {"lease_token": "t"}),
    ("POST", "/actions/1/result", {"lease_token": "t", "exit_code": 0}),
    ("POST", "/actions/1/output", {"lease_token": "t", "seq": 1}),
    ("GET", "/actions/1/output", None),
    ("GET", "/actions/1/output/stream", None),
    ("GET", "/events", None),
    ("POST", "/credentials", {"name": "n", "role": "viewer"}),
    ("GET", "/credentials", None),
    ("DELETE", "/credentials/1", None),
    ("GET", "/me", None),
    ("GET", "/audit/verify", None),
    ("GET", "/notifications", None),
    ("POST", "/prune", {"older_than_seconds": 0}),
    ("GET", "/export?before=2100-01-01T00:00:00Z", None),
]
OPERATIONS = {
    "create_server", "list_servers", "get_server", "pause_server", "unpause_server", "list_server_actions",
    "list_actions", "get_action", "create_action", "approve_action", "reject_action",
    "cancel_action", "claim_action", "heartbeat_action", "report_action_result", "list_events",
    "create_credential", "list_credentials", "revoke_credential", "get_me",
    "verify_audit", "stream_events", "healthz", "readyz", "list_notifications",
    "append_action_output", "list_action_output", "stream_action_output",
    "prune", "export",
}  # fmt: skip


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Asserts the error body (docs/contract/http.md#error-body) and returns its detail."""
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["detail"]
    assert detail["code"] == code
    assert isinstance(detail["message"], str) and detail["message"]
    return detail


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(f"{V1}/actions", json={"server_id": "web-1", **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def claim(client: TestClient, server: str = "web-1", **body: Any) -> dict[str, Any]:
    response = client.post(f"{V1}/servers/{server}/actions/claim", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


# App factory, auth, docs ----------------------------------------------------


def test_refuses_without_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTIONQ_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="ACTIONQ_API_KEY"):
        create_app()
    with pytest.raises(RuntimeError, match="no API key"):
        create_app(api_key="")


def test_bad_store_settings_refused(tmp_path: Path) -> None:
    with pytest.raises(actionq.InvalidInputError, match="durability 'fast' .must be one of: normal, full"):
        create_app(tmp_path / "x.sqlite3", api_key=API_KEY, durability="fast")  # type: ignore[arg-type]


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIONQ_API_KEY", "from-env")
    with TestClient(create_app()) as c:
        assert c.get(f"{V1}/events", headers={"X-API-Key": "from-env"}).status_code == 200
        assert c.get(f"{V1}/events", headers={"X-API-Key": API_KEY}).status_code == 401


def test_run_script_key_choice() -> None:
    assert api_key_from_env({"ACTIONQ_API_KEY": "abc"}) == ("abc", False)
    key, generated = api_key_from_env({})
    assert generated and len(key) >= 32
    assert api_key_from_env({})[0] != key


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_every_route_requires_the_key(
    method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    with TestClient(create_app(api_key=API_KEY)) as c:
        response = c.request(method, V1 + path, json=body, headers=headers)
        error(response, 401, "UNAUTHENTICATED")


def test_openapi_operation_ids_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ops = {op["operationId"] for methods in spec["paths"].values() for op in methods.values()}
    assert ops == OPERATIONS
    assert set(spec["components"]["schemas"]["ActionType"]["enum"]) == set(actionq.ActionQueue().action_types)
    docs = client.get("/docs", headers={})
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_action_type_enum_matches_default_whitelist() -> None:
    assert sorted(t.value for t in ActionType) == actionq.ActionQueue().action_types


# Servers ----------------------------------------------------------------------


def test_create_server(client: TestClient) -> None:
    response = client.post(f"{V1}/servers", json={"id": "db-1", "hostname": "db.lan"})
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": "db-1",
        "hostname": "db.lan",
        "is_paused": False,
        "paused_at": None,
        "created_at": body["created_at"],
    }
    assert datetime.fromisoformat(body["created_at"].replace("Z", "+00:00")).tzinfo is not None
    assert client.post(f"{V1}/servers", json={"id": "db-2"}).json()["hostname"] is None


def test_create_server_errors(client: TestClient) -> None:
    error(client.post(f"{V1}/servers", json={"id": "web-1"}), 409, "CONFLICT")
    error(client.post(f"{V1}/servers", json={"id": "bad id!"}), 422, "VALIDATION_ERROR")
    missing = client.post(f"{V1}/servers", json={"hostname": "x"})
    assert missing.status_code == 422 and isinstance(missing.json()["detail"], list)


def test_get_server(client: TestClient) -> None:
    assert client.get(f"{V1}/servers/web-1").json()["hostname"] == "web-1.lan"
    detail = error(client.get(f"{V1}/servers/nope"), 404, "NOT_FOUND")
    assert detail["message"] == "Server 'nope' not found"


def test_pause_unpause(client: TestClient) -> None:
    paused = client.put(f"{V1}/servers/web-1/pause")
    assert paused.status_code == 200
    assert paused.json()["is_paused"] is True and paused.json()["paused_at"] is not None
    assert client.put(f"{V1}/servers/web-1/pause").json()["is_paused"] is True
    resumed = client.put(f"{V1}/servers/web-1/unpause")
    assert resumed.status_code == 200
    assert resumed.json()["is_paused"] is False and resumed.json()["paused_at"] is None
    error(client.put(f"{V1}/servers/nope/pause"), 404, "NOT_FOUND")
    error(client.put(f"{V1}/servers/nope/unpause"), 404, "NOT_FOUND")


# Actions ----------------------------------------------------------------------


def test_create_action_auto_approved(client: TestClient) -> None:
    body = create(client, action_type="restart_service", service_name="nginx", alert_id=12)
    assert set(body) == ACTION_FIELDS
    assert body["status"] == "approved" and body["approved_by"] == "auto"
    assert body["approved_at"] == body["created_at"]
    assert body["command"] == "systemctl restart nginx.service"
    assert body["argv"] == ["systemctl", "restart", "nginx.service"]
    assert body["params"] == {"service_name": "nginx.service"}
    assert body["alert_id"] == 12 and body["created_by"] == "dashboard"


def test_create_action_pending_when_paused(client: TestClient) -> None:
    client.put(f"{V1}/servers/web-1/pause")
    body = create(client, action_type="apt_update")
    assert body["status"] == "pending" and body["approved_at"] is None and body["approved_by"] is None
    assert body["env"] == {"DEBIAN_FRONTEND": "noninteractive"}


def test_create_action_errors(client: TestClient) -> None:
    def post(**body: Any) -> Any:
        return client.post(f"{V1}/actions", json={"server_id": "web-1", **body})

    unknown_type = post(action_type="reboot")
    assert unknown_type.status_code == 422 and unknown_type.json()["detail"][0]["loc"] == ["body", "action_type"]
    assert post().status_code == 422  # action_type missing
    error(post(action_type="restart_service"), 422, "VALIDATION_ERROR")  # service_name required
    error(post(action_type="clear_logs", alert_id=0), 422, "VALIDATION_ERROR")
    assert post(action_type="clear_logs", alert_id=2**64).status_code == 422
    detail = error(
        client.post(f"{V1}/actions", json={"server_id": "nope", "action_type": "clear_logs"}), 404, "NOT_FOUND"
    )
    assert detail["message"] == "Server 'nope' not found"
    detail = error(post(action_type="restart_service", service_name="nginx;reboot"), 403, "FORBIDDEN")
    assert "service_name" in detail["message"]
    assert "existing_action_id" not in detail


@pytest.mark.parametrize(("method", "path", "body"), [r for r in ROUTES if r[2] is not None])
def test_a_body_that_is_not_utf8_is_a_422(client: TestClient, method: str, path: str, body: dict[str, Any]) -> None:
    """Undecodable bytes make a body that is not JSON: FastAPI's request-shape
    422 (`json_invalid`), as for malformed JSON, and nothing is written."""
    raw = json.dumps({**body, "pad": "\u00e9"}).encode().replace("\\u00e9".encode(), b"\xff")
    assert b"\xff" in raw
    before = client.get(f"{V1}/events").json()
    response = client.request(method, f"{V1}{path}", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["type"] == "json_invalid" and problem["loc"] == ["body", raw.index(b"\xff")]
    assert client.get(f"{V1}/events").json() == before
    # the same answer as a body that is not JSON at all
    broken = client.request(method, f"{V1}{path}", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_duplicate_conflicts_carry_existing_action_id(client: TestClient) -> None:
    client.put(f"{V1}/servers/web-1/pause")
    first = create(client, action_type="restart_service", service_name="nginx")
    dup = client.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"})
    detail = error(dup, 409, "CONFLICT")
    assert detail == {
        "code": "CONFLICT",
        "message": "Pending action already exists for service 'nginx.service' on server 'web-1'",
        "existing_action_id": first["id"],
    }
    apt = create(client, action_type="apt_update")
    detail = error(client.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "apt_upgrade_all"}), 409, "CONFLICT")
    assert detail["message"] == "An APT action is already pending/in-progress for server 'web-1'"
    assert detail["existing_action_id"] == apt["id"]


def test_get_action_every_field(client: TestClient) -> None:
    created = create(client, action_type="clear_logs")
    response = client.get(f"{V1}/actions/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert set(response.json()) == ACTION_FIELDS and "lease_token" not in response.json()
    error(client.get(f"{V1}/actions/999"), 404, "NOT_FOUND")
    assert client.get(f"{V1}/actions/abc").status_code == 422
    error(client.get(f"{V1}/actions/0"), 404, "NOT_FOUND")


def test_list_actions(client: TestClient) -> None:
    client.post(f"{V1}/servers", json={"id": "db-1"})
    a = create(client, action_type="clear_logs")
    b = create(client, server_id="db-1", action_type="restart_service", service_name="postgresql")
    c = create(client, action_type="apt_update")
    client.post(f"{V1}/actions/{a['id']}/cancel")

    page = client.get(f"{V1}/actions").json()
    assert [x["id"] for x in page["actions"]] == [c["id"], b["id"], a["id"]]
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)

    def ids(query: dict[str, Any]) -> list[int]:
        return [x["id"] for x in client.get(f"{V1}/actions", params=query).json()["actions"]]

    assert ids({"server_id": "web-1"}) == [c["id"], a["id"]]
    assert ids({"status": "cancelled"}) == [a["id"]]
    assert ids({"action_type": "restart_service"}) == [b["id"]]
    assert ids({"limit": 1, "offset": 1}) == [b["id"]]
    second = client.get(f"{V1}/actions", params={"limit": 1, "offset": 1}).json()
    assert (second["total"], second["limit"], second["offset"]) == (3, 1, 1)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}])
def test_list_actions_range_errors(client: TestClient, params: dict[str, int]) -> None:
    error(client.get(f"{V1}/actions", params=params), 422, "VALIDATION_ERROR")
    error(client.get(f"{V1}/servers/web-1/actions", params=params), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("params", [{"status": "bogus"}, {"action_type": "reboot"}, {"limit": "x"}])
def test_list_actions_shape_errors(client: TestClient, params: dict[str, str]) -> None:
    response = client.get(f"{V1}/actions", params=params)
    assert response.status_code == 422 and isinstance(response.json()["detail"], list)


def test_list_server_actions(client: TestClient) -> None:
    client.post(f"{V1}/servers", json={"id": "db-1"})
    mine = create(client, action_type="clear_logs")
    create(client, server_id="db-1", action_type="clear_logs")
    page = client.get(f"{V1}/servers/web-1/actions").json()
    assert [x["id"] for x in page["actions"]] == [mine["id"]] and page["total"] == 1
    assert client.get(f"{V1}/servers/web-1/actions", params={"status": "pending"}).json()["total"] == 0
    assert client.get(f"{V1}/servers/web-1/actions", params={"status": "nope"}).status_code == 422
    error(client.get(f"{V1}/servers/nope/actions"), 404, "NOT_FOUND")


def test_approve(client: TestClient) -> None:
    client.put(f"{V1}/servers/web-1/pause")
    action = create(client, action_type="clear_logs")
    response = client.post(f"{V1}/actions/{action['id']}/approve")
    assert response.status_code == 200
    assert response.json()["status"] == "approved" and response.json()["approved_by"] == "dashboard"
    detail = error(client.post(f"{V1}/actions/{action['id']}/approve"), 409, "CONFLICT")
    assert detail["message"] == "Cannot approve action with status 'approved' (must be pending)"
    error(client.post(f"{V1}/actions/999/approve"), 404, "NOT_FOUND")


def test_reject(client: TestClient) -> None:
    client.put(f"{V1}/servers/web-1/pause")
    action = create(client, action_type="clear_logs")
    url = f"{V1}/actions/{action['id']}/reject"
    error(client.post(url, json={"reason": ""}), 422, "VALIDATION_ERROR")
    error(client.post(url, json={"reason": "x" * 1001}), 422, "VALIDATION_ERROR")
    assert client.post(url).status_code == 422  # no body
    response = client.post(url, json={"reason": "x" * 1000})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "rejected" and body["rejected_by"] == "dashboard"
    assert body["rejection_reason"] == "x" * 1000 and body["rejected_at"] is not None
    error(client.post(url, json={"reason": "again"}), 409, "CONFLICT")
    error(client.post(f"{V1}/actions/999/reject", json={"reason": "r"}), 404, "NOT_FOUND")


def test_cancel(client: TestClient) -> None:
    action = create(client, action_type="clear_logs")
    response = client.post(f"{V1}/actions/{action['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["cancelled_by"] == "dashboard"
    error(client.post(f"{V1}/actions/{action['id']}/cancel"), 409, "CONFLICT")
    error(client.post(f"{V1}/actions/999/cancel"), 404, "NOT_FOUND")


# Agent side -------------------------------------------------------------------


def test_claim(client: TestClient) -> None:
    assert client.post(f"{V1}/servers/web-1/actions/claim").status_code == 204
    first = create(client, action_type="clear_logs")
    second = create(client, action_type="restart_service", service_name="nginx")
    body = claim(client)
    assert set(body) == ACTION_FIELDS | {"lease_token", "signature"}
    assert body["id"] == first["id"] and body["status"] == "executing"
    assert body["executed_at"] is not None and body["lease_expires_at"] is not None
    uuid.UUID(body["lease_token"])
    no_body = client.post(f"{V1}/servers/web-1/actions/claim")
    assert no_body.status_code == 200 and no_body.json()["id"] == second["id"]
    none_left = client.post(f"{V1}/servers/web-1/actions/claim", json={})
    assert none_left.status_code == 204 and none_left.content == b""
    error(client.post(f"{V1}/servers/nope/actions/claim"), 404, "NOT_FOUND")


@pytest.mark.parametrize("lease", [0, -5, 10**9])
def test_claim_lease_range(client: TestClient, lease: int) -> None:
    create(client, action_type="clear_logs")
    url = f"{V1}/servers/web-1/actions/claim"
    error(client.post(url, json={"lease_seconds": lease}), 422, "VALIDATION_ERROR")
    assert client.post(url, json={"lease_seconds": "soon"}).status_code == 422


def test_heartbeat(client: TestClient) -> None:
    create(client, action_type="clear_logs")
    held = claim(client, lease_seconds=30)
    url = f"{V1}/actions/{held['id']}/heartbeat"
    response = client.post(url, json={"lease_token": held["lease_token"], "lease_seconds": 600})
    assert response.status_code == 200
    assert response.json()["lease_expires_at"] > held["lease_expires_at"]
    assert client.post(url, json={"lease_token": held["lease_token"]}).status_code == 200
    error(client.post(url, json={"lease_token": str(uuid.uuid4())}), 409, "CONFLICT")
    assert client.post(url, json={}).status_code == 422
    error(client.post(f"{V1}/actions/999/heartbeat", json={"lease_token": "t"}), 404, "NOT_FOUND")


def test_result(client: TestClient) -> None:
    create(client, action_type="clear_logs")
    create(client, action_type="restart_service", service_name="nginx")
    ok, bad = claim(client), claim(client)
    url = f"{V1}/actions/{ok['id']}/result"
    error(client.post(url, json={"lease_token": "wrong", "exit_code": 0}), 409, "CONFLICT")
    assert client.post(url, json={"lease_token": ok["lease_token"], "exit_code": 2**40}).status_code == 422
    assert client.post(url, json={"lease_token": ok["lease_token"]}).status_code == 422
    done = client.post(url, json={"lease_token": ok["lease_token"], "exit_code": 0, "stdout": "freed 2G"})
    assert done.status_code == 200
    assert done.json()["status"] == "completed" and done.json()["stdout"] == "freed 2G"
    assert done.json()["stderr"] is None and done.json()["completed_at"] is not None
    failed = client.post(
        f"{V1}/actions/{bad['id']}/result",
        json={"lease_token": bad["lease_token"], "exit_code": 5, "stderr": "no such unit"},
    )
    assert failed.json()["status"] == "failed" and failed.json()["exit_code"] == 5
    error(client.post(url, json={"lease_token": ok["lease_token"], "exit_code": 1}), 409, "CONFLICT")
    error(client.post(f"{V1}/actions/999/result", json={"lease_token": "t", "exit_code": 0}), 404, "NOT_FOUND")


def test_lost_leases_surface_in_reads(client: TestClient) -> None:
    action = create(client, action_type="clear_logs")
    held = claim(client, lease_seconds=0.05)
    time.sleep(0.1)
    body = client.get(f"{V1}/actions/{action['id']}").json()
    assert body["status"] == "failed" and body["exit_code"] == -1
    assert "lease expired" in body["stderr"]
    late = client.post(f"{V1}/actions/{held['id']}/result", json={"lease_token": held["lease_token"], "exit_code": 0})
    error(late, 409, "CONFLICT")


# Audit trail ------------------------------------------------------------------


def test_events(client: TestClient) -> None:
    client.put(f"{V1}/servers/web-1/pause")
    action = create(client, action_type="clear_logs")
    client.post(f"{V1}/actions/{action['id']}/approve")
    held = claim(client)
    client.post(f"{V1}/actions/{held['id']}/result", json={"lease_token": held["lease_token"], "exit_code": 0})
    events = client.get(f"{V1}/events").json()
    assert [(e["kind"], e["subject"], e["from_status"], e["to_status"], e["by"]) for e in events] == [
        ("server", "web-1", None, None, "dashboard"),
        ("action", "web-1", None, "pending", "dashboard"),
        ("action", "web-1", "pending", "approved", "dashboard"),
        ("action", "web-1", "approved", "executing", "agent"),
        ("action", "web-1", "executing", "completed", "agent"),
    ]
    assert (events[0]["action_id"], events[0]["detail"]) == (None, "paused")
    assert set(events[0]) == {"id", "action_id", "from_status", "to_status", "by", "at", "detail", "kind", "subject"}
    after = client.get(f"{V1}/events", params={"after": events[1]["id"], "limit": 1}).json()
    assert after == [events[2]]
    assert client.get(f"{V1}/events", params={"after": events[-1]["id"]}).json() == []
    error(client.get(f"{V1}/events", params={"limit": 0}), 422, "VALIDATION_ERROR")
    error(client.get(f"{V1}/events", params={"after": -1}), 422, "VALIDATION_ERROR")


# Storage ----------------------------------------------------------------------


def test_sqlite_app_persists_and_busy_is_503(tmp_path: Path) -> None:
    db = tmp_path / "api.sqlite3"
    with TestClient(create_app(db, api_key=API_KEY, busy_timeout_seconds=0.2), headers={"X-API-Key": API_KEY}) as c:
        assert c.post(f"{V1}/servers", json={"id": "web-1"}).status_code == 201
        created = c.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline().strip() == "locked"
            error(c.post(f"{V1}/servers", json={"id": "web-2"}), 503, "STORAGE_ERROR")
        finally:
            holder.stdin.close()
            holder.wait(30)
        assert c.post(f"{V1}/servers", json={"id": "web-2"}).status_code == 201
    # a new app on the same file sees everything
    with TestClient(create_app(db, api_key=API_KEY, durability="full"), headers={"X-API-Key": API_KEY}) as c:
        assert c.get(f"{V1}/actions/{created['id']}").json() == created


# Create body: params, created_by -------------------------------------------


def test_created_by_is_never_taken_from_the_body(client: TestClient) -> None:
    # The body model has no `created_by` (extra keys are ignored, as FastAPI
    # does by default), so what reaches the core never names the requester.
    body = create(client, action_type="clear_logs", created_by="mallory")
    assert body["created_by"] == "dashboard"
    assert client.get(f"{V1}/events").json()[-1]["by"] == "dashboard"


def test_params_for_the_default_whitelist(client: TestClient) -> None:
    body = create(client, action_type="restart_service", params={"service_name": "nginx"})
    assert body["service_name"] == "nginx.service" and body["argv"] == ["systemctl", "restart", "nginx.service"]


def test_service_name_given_twice_is_the_cores_invalid_input(client: TestClient) -> None:
    response = client.post(
        f"{V1}/actions",
        json={"server_id": "web-1", "action_type": "restart_service", "service_name": "a", "params": {"service_name": "b"}},
    )
    detail = error(response, 422, "VALIDATION_ERROR")
    assert detail["message"] == "service_name given both on its own and in params"


@pytest.mark.parametrize("params", [{"service_name": 5}, ["nginx"], "nginx"])
def test_params_shape_errors(client: TestClient, params: Any) -> None:
    response = client.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "restart_service", "params": params})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", "params"]


# Custom whitelists ---------------------------------------------------------

CUSTOM = {
    "actions": {
        "vacuum_journal": {
            "command": "journalctl --vacuum-time={days}d",
            "params": {"days": {"kind": "integer", "min": 1, "max": 30}},
            "conflict": "pending_duplicate",
        },
        "set_governor": {
            "command": "cpupower frequency-set -g {governor}",
            "params": {"governor": {"kind": "one_of", "values": ["performance", "powersave"]}},
        },
    }
}


@pytest.mark.parametrize("form", ["dict", "text", "path", "path-str"])
def test_custom_whitelist_end_to_end(form: str, tmp_path: Path) -> None:
    text = json.dumps(CUSTOM)
    (tmp_path / "wl.json").write_text(text, encoding="utf-8")
    whitelist: Any = {
        "dict": CUSTOM,
        "text": text,
        "path": tmp_path / "wl.json",
        "path-str": str(tmp_path / "wl.json"),
    }[form]
    with TestClient(create_app(api_key=API_KEY, whitelist=whitelist), headers={"X-API-Key": API_KEY}) as c:
        assert c.post(f"{V1}/servers", json={"id": "web-1"}).status_code == 201
        c.put(f"{V1}/servers/web-1/pause")

        def post(**body: Any) -> Any:
            return c.post(f"{V1}/actions", json={"server_id": "web-1", **body})

        vacuum = post(action_type="vacuum_journal", params={"days": "3"}, alert_id=7)
        assert vacuum.status_code == 201, vacuum.text
        assert vacuum.json()["command"] == "journalctl --vacuum-time=3d"
        assert vacuum.json()["argv"] == ["journalctl", "--vacuum-time=3d"]
        assert vacuum.json()["status"] == "pending" and vacuum.json()["alert_id"] == 7
        dup = error(post(action_type="vacuum_journal", params={"days": "3"}), 409, "CONFLICT")
        assert dup["existing_action_id"] == vacuum.json()["id"]
        assert post(action_type="set_governor", params={"governor": "powersave"}).status_code == 201
        assert "days" in error(post(action_type="vacuum_journal", params={"days": "31"}), 403, "FORBIDDEN")["message"]
        error(post(action_type="set_governor", params={"governor": "turbo"}), 403, "FORBIDDEN")
        error(post(action_type="vacuum_journal"), 422, "VALIDATION_ERROR")  # missing parameter (the core)
        # action types outside this app's whitelist are the usual 422, in the body and in a filter
        for name in ("restart_service", "reboot"):
            shape = post(action_type=name, service_name="nginx")
            assert shape.status_code == 422 and shape.json()["detail"][0]["loc"] == ["body", "action_type"]
            listing = c.get(f"{V1}/actions", params={"action_type": name})
            assert listing.status_code == 422 and listing.json()["detail"][0]["loc"] == ["query", "action_type"]
        page = c.get(f"{V1}/actions", params={"action_type": "vacuum_journal"}).json()
        assert [a["id"] for a in page["actions"]] == [vacuum.json()["id"]]
        held = c.post(f"{V1}/actions/{vacuum.json()['id']}/approve").json()
        assert held["status"] == "approved"
        claimed = c.post(f"{V1}/servers/web-1/actions/claim").json()
        assert claimed["argv"] == ["journalctl", "--vacuum-time=3d"]
        # the OpenAPI document lists this app's action types
        schema = c.get("/openapi.json").json()
        assert sorted(schema["components"]["schemas"]["ActionType"]["enum"]) == ["set_governor", "vacuum_journal"]


def test_bad_whitelist_refused(tmp_path: Path) -> None:
    with pytest.raises(actionq.InvalidInputError, match="whitelist"):
        create_app(api_key=API_KEY, whitelist='{"actions": {}}')
    with pytest.raises(FileNotFoundError):
        create_app(api_key=API_KEY, whitelist=tmp_path / "missing.json")


# The OpenAPI document ------------------------------------------------------

OPENAPI = Path(__file__).with_name("openapi.json")


def test_openapi_document_unchanged(client: TestClient) -> None:
    """The document as committed in openapi.json (the version is the
    package's): a change to what the API promises is a change to that file,
    reviewed as such. What it promises is checked against the running app by
    schemathesis (`make test-openapi`); the routes and operation ids of the
    HomelabCmd-compatible contract by test_openapi_operation_ids_and_docs."""
    spec = client.get("/openapi.json").json()
    expected = json.loads(OPENAPI.read_text(encoding="utf-8"))
    expected["info"]["version"] = actionq.__version__
    assert spec == expected


def test_openapi_documents_push(client: TestClient) -> None:
    """The claim's wait, bounded by the core's limit, and the events stream
    (docs/contract/push.md#over-http), whose errors are JSON like every route's."""
    spec = client.get("/openapi.json").json()
    wait = spec["components"]["schemas"]["ClaimRequest"]["properties"]["wait_seconds"]
    assert (wait["type"], wait["minimum"], wait["maximum"], wait["default"]) == ("number", 0, limits.MAX_WAIT_SECONDS, 0)
    stream = spec["paths"]["/api/v1/events/stream"]["get"]
    assert stream["operationId"] == "stream_events"
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {list(r["content"]) == ["application/json"] for s, r in stream["responses"].items() if s != "200"} == {True}
    assert [(p["name"], p["in"]) for p in stream["parameters"]] == [("after", "query"), ("Last-Event-ID", "header")]


def test_openapi_states_the_cores_limits(client: TestClient) -> None:
    """Limits in the document are the core's (docs/contract/http.md#routes),
    integers as integers; every error is one schema."""
    spec = client.get("/openapi.json").json()
    listing = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/actions"]["get"]["parameters"]}
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, limits.MAX_PAGE_LIMIT)
    assert listing["offset"]["minimum"] == 0 and listing["offset"]["maximum"] == 2**63 - 1
    events = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert events["limit"]["maximum"] == limits.MAX_EVENTS_LIMIT and events["after"]["minimum"] == 0
    schemas = spec["components"]["schemas"]
    lease = schemas["ClaimRequest"]["properties"]["lease_seconds"]["anyOf"][0]
    assert lease["maximum"] == limits.DEFAULT_MAX_LEASE_SECONDS and 0 < lease["minimum"] < 1e-6
    assert schemas["ResultRequest"]["properties"]["exit_code"]["maximum"] == 2**31 - 1
    assert type(schemas["ActionCreate"]["properties"]["alert_id"]["anyOf"][0]["maximum"]) is int
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorOut", (method, path, status)
    assert "HTTPValidationError" not in schemas


def test_405_allow_names_every_method_of_the_path(client: TestClient) -> None:
    for method, path, allowed in (
        ("OPTIONS", "/api/v1/actions", "GET, POST"),
        ("DELETE", "/api/v1/servers", "GET, POST"),
        ("GET", "/api/v1/servers/web-1/pause", "PUT"),
        ("PATCH", "/api/v1/credentials/7", "DELETE"),
    ):
        response = client.request(method, path)
        assert (response.status_code, response.headers["allow"]) == (405, allowed), (method, path)


def test_reserved_names_are_the_cores() -> None:
    """The names the document says no credential may take are exactly those
    the core refuses."""
    queue = actionq.ActionQueue()
    for name in RESERVED_NAMES:
        for spelled in (name, name.upper(), name.capitalize()):
            with pytest.raises(actionq.InvalidInputError, match="reserved"):
                queue.issue_credential(spelled, "viewer")
        queue.issue_credential(name + "-x", "viewer")
    for role in limits.ROLES:
        if role not in RESERVED_NAMES:
            queue.issue_credential(role, "viewer")


# Approval policy and audit (docs/contract/approval-policy.md, docs/contract/audit.md) ----

TWO_KEYS = {
    "actions": {
        "restart_service": {
            "command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}},
            "approval": {"required": 2},
        }
    }
}


def test_approve_shows_approvals_and_stays_pending_until_enough(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    with TestClient(create_app(db_path=str(db), api_key=API_KEY, whitelist=TWO_KEYS), headers={"X-API-Key": API_KEY}) as c:
        assert c.post(f"{V1}/servers", json={"id": "web-1"}).status_code == 201
        c.put(f"{V1}/servers/web-1/pause")
        action = c.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"}).json()
        first = c.post(f"{V1}/actions/{action['id']}/approve")
        assert first.status_code == 200
        body = first.json()
        assert body["status"] == "pending" and body["approved_by"] is None
        assert [(a["by"], a["digest"]) for a in body["approvals"]] == [("dashboard", action["digest"])]
        assert c.get(f"{V1}/events", params={"after": 2}).json()[0]["detail"] == "1 of 2"
        # the same principal again: counted once, 200 with the action unchanged
        again = c.post(f"{V1}/actions/{action['id']}/approve")
        assert again.status_code == 200 and again.json() == body
        verify = c.get(f"{V1}/audit/verify")
        assert verify.status_code == 200
        assert verify.json() == {"checked": 3, "first_bad_event_id": None, "pruned_through": None}  # pause, creation, first approval
    # a changed whitelist: the older action can no longer be approved
    with TestClient(create_app(db_path=str(db), api_key=API_KEY), headers={"X-API-Key": API_KEY}) as c:
        detail = error(c.post(f"{V1}/actions/{action['id']}/approve"), 409, "CONFLICT")
        assert detail["message"] == f"Whitelist changed since action {action['id']} was created"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM action_events WHERE id = 3")  # the newest: the approval
    with TestClient(create_app(db_path=str(db), api_key=API_KEY), headers={"X-API-Key": API_KEY}) as c:
        assert c.get(f"{V1}/audit/verify").json() == {"checked": 2, "first_bad_event_id": 3, "pruned_through": None}
        assert c.get(f"{V1}/audit/verify", headers={"X-API-Key": "wrong"}).status_code == 401


FOUR_EYES_TWO = {
    "actions": {
        "restart_service": {
            "command": "systemctl restart {service_name}",
            "params": {"service_name": {"kind": "systemd_unit"}},
            "approval": {"required": 2, "four_eyes": True},
        }
    }
}


def test_two_operators_complete_an_approval_and_the_requester_may_not_approve() -> None:
    """With credentials, `required: 2` completes over HTTP: each operator's
    approval is recorded under its name, the second moves the action to
    approved; the requester (four eyes) and a repeat change nothing."""
    with TestClient(create_app(api_key=API_KEY, whitelist=FOUR_EYES_TWO), headers={"X-API-Key": API_KEY}) as c:
        secrets = {}
        for name in ("rita", "olga", "omar"):
            issued = c.post(f"{V1}/credentials", json={"name": name, "role": "operator"})
            assert issued.status_code == 201, issued.text
            secrets[name] = issued.json()["secret"]
        assert c.post(f"{V1}/servers", json={"id": "web-1"}).status_code == 201
        assert c.put(f"{V1}/servers/web-1/pause").status_code == 200

        def as_(name: str) -> dict[str, str]:
            return {"X-API-Key": secrets[name]}

        created = c.post(
            f"{V1}/actions",
            json={"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx"},
            headers=as_("rita"),
        )
        assert created.status_code == 201 and created.json()["created_by"] == "rita"
        url = f"{V1}/actions/{created.json()['id']}/approve"
        refused = error(c.post(url, headers=as_("rita")), 403, "PERMISSION_DENIED")
        assert "rita" in refused["message"]
        first = c.post(url, headers=as_("olga")).json()
        assert first["status"] == "pending" and [a["by"] for a in first["approvals"]] == ["olga"]
        assert c.post(url, headers=as_("olga")).json() == first
        second = c.post(url, headers=as_("omar")).json()
        assert second["status"] == "approved" and second["approved_by"] == "omar"
        assert [a["by"] for a in second["approvals"]] == ["olga", "omar"]
        details = [e["detail"] for e in c.get(f"{V1}/events").json() if e["action_id"] == created.json()["id"]]
        assert details[1:] == ["1 of 2", "2 of 2"]


@settings(max_examples=300, deadline=None)
@given(name=CREDENTIAL_NAMES)
def test_drawn_credential_names_are_taken(name: str) -> None:
    """The names schemathesis draws for the credential-name format are names
    the core takes."""
    actionq.ActionQueue().issue_credential(name, "viewer")


def test_prune_and_export_over_http() -> None:
    """docs/contract/retention.md: export archives what prune then deletes;
    counts, keyset pages and the audit checkpoint follow."""
    clock = actionq.ManualClock(datetime(2026, 3, 1, tzinfo=timezone.utc))
    app = create_app(api_key=API_KEY, clock=clock)
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        c.post(f"{V1}/servers", json={"id": "web-1"})
        ids = []
        for n in range(3):
            a = c.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "restart_service",
                                              "service_name": f"s{n}"}).json()  # fmt: skip
            c.post(f"{V1}/actions/{a['id']}/cancel")
            ids.append(a["id"])
        live = c.post(f"{V1}/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).json()
        clock.advance(7200)
        page = c.get(f"{V1}/actions", params={"limit": 2}).json()
        assert [a["id"] for a in page["actions"]] == [live["id"], ids[2]]
        rest = c.get(f"{V1}/actions", params={"limit": 2, "before_id": page["next_before_id"]}).json()
        assert [a["id"] for a in rest["actions"]] == [ids[1], ids[0]] and rest["next_before_id"] is None
        error(c.get(f"{V1}/actions", params={"before_id": 0}), 422, "VALIDATION_ERROR")
        with c.stream("GET", f"{V1}/export", params={"before": "2026-03-01T01:00:00Z"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonl")
            lines = [json.loads(line) for line in r.iter_lines() if line]
        assert [line["action"]["id"] for line in lines] == ids
        assert all(len(line["events"]) == 2 for line in lines)
        error(c.post(f"{V1}/prune", json={"older_than_seconds": -1}), 422, "VALIDATION_ERROR")
        report = c.post(f"{V1}/prune", json={"older_than_seconds": 3600}).json()
        assert report == {"pruned_actions": 3, "pruned_through": 6}  # create + cancel each
        assert c.get(f"{V1}/actions").json()["total"] == 1
        assert c.get(f"{V1}/audit/verify").json() == {"checked": 1, "first_bad_event_id": None, "pruned_through": 6}
        error(c.get(f"{V1}/actions/{ids[0]}"), 404, "NOT_FOUND")
        error(c.get(f"{V1}/export", params={"before": "2026-03-01T01:00:00"}), 422, "VALIDATION_ERROR")
