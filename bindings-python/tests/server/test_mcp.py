"""The MCP endpoint (docs/contract/cli-and-mcp.md#mcp), driven by the official
`mcp` client over streamable HTTP against a real `actionq-server` on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from fastapi.testclient import TestClient
from mcp.shared._httpx_utils import create_mcp_http_client

from actionq.server import create_app
from actionq.server.models import ActionCreate, ActionQuery
from serve_support import BOOTSTRAP_KEY, Served, serve

TOOLS = {"list_servers", "list_action_types", "list_actions", "get_action", "request_action", "get_events"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("mcp")) as s:
        assert s.admin.post("/servers", json={"id": "web-1"}).status_code == 201
        assert s.admin.put("/servers/web-1/pause").status_code == 200
        assert s.admin.post("/servers", json={"id": "web-2"}).status_code == 201
        yield s


@asynccontextmanager
async def connect(served: Served, headers: dict[str, str], mode: str = "auto") -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers=headers)
    async with http, Client(streamable_http_client(served.url + "/mcp", http_client=http), mode=mode) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def call(served: Served, headers: dict[str, str], name: str, arguments: dict[str, Any] | None = None, mode: str = "auto") -> Any:
    async def go() -> Any:
        async with connect(served, headers, mode) as client:
            return await client.call_tool(name, arguments or {})

    return anyio.run(go)


def tools(served: Served, headers: dict[str, str], mode: str = "auto") -> Any:
    async def go() -> Any:
        async with connect(served, headers, mode) as client:
            return (await client.list_tools()).tools

    return anyio.run(go)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_lists_the_tools_and_no_tool_decides(served: Served, mode: str) -> None:
    listed = {t.name: t for t in tools(served, bearer(served.secrets["vera"]), mode)}
    assert set(listed) == TOOLS
    assert not any(word in name for name in listed for word in ("approve", "reject", "cancel", "pause"))
    # a request may wait for a human, and the tool says so
    assert "waits" in listed["request_action"].description or "wait" in listed["request_action"].description
    assert "human" in listed["request_action"].description
    # input schemas are the HTTP API's own models
    assert listed["request_action"].input_schema["properties"] == ActionCreate.model_json_schema()["properties"]
    assert listed["list_actions"].input_schema["properties"]["limit"] == ActionQuery.model_json_schema()["properties"]["limit"]
    assert listed["list_actions"].input_schema["properties"]["limit"]["maximum"] == 100
    assert listed["request_action"].annotations.read_only_hint is False
    assert listed["get_events"].annotations.read_only_hint is True


def test_request_on_paused_server_waits_under_the_callers_name(served: Served) -> None:
    result = call(
        served,
        bearer(served.secrets["rita"]),
        "request_action",
        {"server_id": "web-1", "action_type": "restart_service", "params": {"service_name": "nginx"}},
    )
    assert not result.is_error, result
    action = result.structured_content["action"]
    assert (action["status"], action["created_by"], action["params"]) == (
        "pending",
        "rita",
        {"service_name": "nginx.service"},
    )
    assert "server 'web-1' is paused" in result.structured_content["waiting_for"]
    assert "human" in result.structured_content["waiting_for"]
    assert json.loads(result.content[0].text) == result.structured_content
    # the same action over HTTP: no second business path
    assert served.admin.get(f"/actions/{action['id']}").json() == action
    # get_action says why it still waits
    again = call(served, {"X-API-Key": served.secrets["vera"]}, "get_action", {"action_id": action["id"]})
    assert again.structured_content["action"]["id"] == action["id"] and "paused" in again.structured_content["waiting_for"]


def test_two_approvals_policy_is_why_it_waits(served: Served) -> None:
    result = call(served, bearer(served.secrets["alice"]), "request_action", {"server_id": "web-2", "action_type": "clear_logs"})
    assert result.structured_content["action"]["status"] == "pending"
    assert "needs 2 approvals" in result.structured_content["waiting_for"]
    assert "paused" not in result.structured_content["waiting_for"]


def test_viewer_refused_with_the_cores_error(served: Served) -> None:
    before = served.admin.get("/actions").json()["total"]
    result = call(
        served,
        bearer(served.secrets["vera"]),
        "request_action",
        {"server_id": "web-1", "action_type": "restart_service", "params": {"service_name": "sshd"}},
    )
    assert result.is_error and result.structured_content["code"] == "PERMISSION_DENIED"
    assert "Viewer 'vera'" in result.structured_content["message"]
    assert served.admin.get("/actions").json()["total"] == before


@pytest.mark.parametrize("value", ["nginx; rm -rf /", "$(reboot)", "-f", "nginx\nsshd", "systemd-journald"])
def test_injected_parameter_refused(served: Served, value: str) -> None:
    before = served.admin.get("/actions").json()["total"]
    result = call(
        served,
        bearer(served.secrets["alice"]),
        "request_action",
        {"server_id": "web-1", "action_type": "restart_service", "params": {"service_name": value}},
    )
    assert result.is_error and result.structured_content["code"] == "FORBIDDEN", result
    assert served.admin.get("/actions").json()["total"] == before


def test_bad_arguments_are_a_validation_error(served: Served) -> None:
    result = call(served, bearer(served.secrets["alice"]), "request_action", {"server_id": "web-1"})
    assert result.is_error and result.structured_content["code"] == "VALIDATION_ERROR"
    assert "action_type" in result.structured_content["message"]
    page = call(served, bearer(served.secrets["alice"]), "list_actions", {"limit": 0})
    assert page.is_error and page.structured_content["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer aq_op_wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic eDp5"}],
)
def test_no_or_wrong_key_refused(served: Served, headers: dict[str, str]) -> None:
    with pytest.raises(BaseException):  # the client cannot even start a session
        tools(served, headers)
    # as the HTTP API refuses it: 401 with the API's error body
    raw = httpx.post(
        served.url + "/mcp",
        headers={**headers, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
    )
    assert raw.status_code == 401
    assert raw.json()["detail"]["code"] == "UNAUTHENTICATED"


def test_reading_tools(served: Served) -> None:
    key = bearer(served.secrets["vera"])
    servers = call(served, key, "list_servers").structured_content["servers"]
    assert {s["id"]: s["is_paused"] for s in servers} == {"web-1": True, "web-2": False}
    types_ = {t["name"]: t for t in call(served, key, "list_action_types").structured_content["action_types"]}
    assert types_["restart_service"]["params"]["service_name"]["kind"] == "systemd_unit"
    assert types_["clear_logs"]["approval"]["required"] == 2
    assert types_["restart_service"]["approval"] == {}  # the defaults
    assert types_["restart_service"]["command"] == "systemctl restart {service_name}"
    page = call(served, key, "list_actions", {"server_id": "web-1", "status": "pending", "limit": 5}).structured_content
    assert page["limit"] == 5 and all(a["server_id"] == "web-1" for a in page["actions"])
    events = call(served, key, "get_events", {"after": 0, "limit": 3}).structured_content["events"]
    assert len(events) == 3 and events == served.admin.get("/events", params={"limit": 3}).json()
    missing = call(served, key, "get_action", {"action_id": 999999})
    assert missing.is_error and missing.structured_content["code"] == "NOT_FOUND"


def test_bootstrap_key_acts_as_dashboard(served: Served) -> None:
    result = call(
        served,
        {"X-API-Key": BOOTSTRAP_KEY},
        "request_action",
        {"server_id": "web-1", "action_type": "apt_update"},
    )
    assert result.structured_content["action"]["created_by"] == "dashboard"


def test_outside_the_apps_lifespan_it_says_so() -> None:
    """The SDK's sessions live in the app's lifespan: without it, a clear 503,
    not an error from inside the SDK."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"X-API-Key": "k", "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    app = create_app(api_key="k")
    response = TestClient(app).post("/mcp", headers=headers, json=message)
    assert response.status_code == 503 and response.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
    for _ in range(2):  # each run of the app has its own session manager
        with TestClient(app) as client:
            listed = client.post("/mcp", headers=headers, json=message)
            assert listed.status_code == 200 and {t["name"] for t in listed.json()["result"]["tools"]} == TOOLS
    assert TestClient(app).post("/mcp", headers=headers, json=message).status_code == 503
