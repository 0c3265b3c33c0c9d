"""The HTTP host's driver for the cross-host scenarios (tests/scenarios/*.json).

Runs every step of one scenario as a request to ``actionq.server``'s app (the
HTTP contract of docs/contract/http.md, through FastAPI's TestClient: the whole ASGI stack, no socket)
and prints the transcript, a JSON array with one outcome per step, on stdout.

The contract differs from the library where docs/contract/http.md says so: approvals, rejections
and cancellations are always by ``dashboard``, ``created_by`` is never taken
from the body, an action type outside the whitelist is a request-shape 422,
and there is no route for ``expire_leases``. A step that meets one of these
needs an ``http`` expectation in its scenario (see tests/README.md).

Bytes that are not UTF-8 (``$bytes_hex``) are sent as a careless client would:
raw in the JSON body, percent-encoded in a path. Path segments are
percent-encoded, so an id with ``/`` stays one segment on the wire (the server
decodes it before routing: the contract's routes cannot take it). An error outside the
contract's shape (a bare 404 of an unknown route) is ``HTTP_<status>`` with
FastAPI's detail.

Usage: ``python http_driver.py SCENARIO.json STORE`` (STORE: ``memory`` or a
SQLite file path). A malformed scenario exits with status 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from scenario_host import BadScenario, ScenarioHost, expand, main, skipped

import actionq
from actionq.server import create_app

HOST = "http"
API_KEY = "scenario-key"
AGENT_SECRET_PREFIX = "aq_ag_"
"""How an agent credential's secret begins (its role prefix)."""
BY = "dashboard"


class Raw(bytes):
    """Bytes that are not UTF-8, to be sent as they are."""


def query(step: dict[str, Any], *names: str) -> dict[str, Any]:
    given = {n: step[n] for n in names if step.get(n) is not None}
    if any(isinstance(v, Raw) for v in given.values()):
        raise BadScenario("raw bytes in a query string: not supported by this driver")
    return given


def body(step: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: step[n] for n in names if n in step}


def segment(value: Any) -> str:
    """A path segment, percent-encoded (raw bytes included)."""
    return quote(value if isinstance(value, bytes) else str(value), safe="")


def encode(value: Any) -> bytes:
    """JSON text, with `Raw` strings written as their bytes (so not UTF-8)."""
    if isinstance(value, Raw):
        return b'"' + bytes(value) + b'"'
    if isinstance(value, dict):
        items = (json.dumps(k).encode() + b":" + encode(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode(v) for v in value) + b"]"
    return json.dumps(value).encode()


class Host(ScenarioHost):
    def __init__(self, scenario: dict[str, Any], store: str) -> None:
        super().__init__(scenario)
        self.signing_key = actionq.ClaimSigningKey.generate()
        app = create_app(
            None if store == "memory" else store,
            api_key=API_KEY,
            whitelist=scenario.get("whitelist"),
            clock=self.clock,
            signing_key=self.signing_key,
        )
        self.client = TestClient(app, raise_server_exceptions=True)

    def request(self, step: dict[str, Any]) -> tuple[str, str, dict[str, Any], Any]:
        """(method, path, query, JSON body) of a step."""
        name = step["call"]
        if step.get("by", BY) != BY:
            raise BadScenario(f"{name}: the HTTP contract acts as {BY!r} only")
        s = f"/api/v1/servers/{segment(step.get('server_id', step.get('id')))}"
        a = f"/api/v1/actions/{segment(step.get('id'))}"
        routes: dict[str, tuple[str, str, dict[str, Any], Any]] = {
            "create_server": ("POST", "/api/v1/servers", {}, body(step, "id", "hostname")),
            "get_server": ("GET", s, {}, None),
            "pause_server": ("PUT", f"{s}/pause", {}, None),
            "unpause_server": ("PUT", f"{s}/unpause", {}, None),
            "list_server_actions": ("GET", f"{s}/actions", query(step, "status", "limit", "offset"), None),
            "create_action": (
                "POST",
                "/api/v1/actions",
                {},
                body(step, "server_id", "action_type", "service_name", "params", "alert_id"),
            ),
            "get_action": ("GET", a, {}, None),
            "list_actions": (
                "GET",
                "/api/v1/actions",
                query(step, "status", "server_id", "action_type", "limit", "offset"),
                None,
            ),
            "approve_action": ("POST", f"{a}/approve", {}, None),
            "reject_action": ("POST", f"{a}/reject", {}, body(step, "reason")),
            "cancel_action": ("POST", f"{a}/cancel", {}, None),
            "claim_next": ("POST", f"{s}/actions/claim", {}, body(step, "lease_seconds")),
            "events_since": ("GET", "/api/v1/events", {"after": step.get("cursor"), **query(step, "limit")}, None),
            "list_servers": ("GET", "/api/v1/servers", {}, None),
            "verify_audit": ("GET", "/api/v1/audit/verify", {}, None),
            "prune": ("POST", "/api/v1/prune", {}, body(step, "older_than_seconds")),
            "issue_credential": ("POST", "/api/v1/credentials", {}, body(step, "name", "role", "server_id")),
            "list_credentials": ("GET", "/api/v1/credentials", {}, None),
            "revoke_credential": ("DELETE", f"/api/v1/credentials/{segment(step.get('id'))}", {}, None),
            # Who a secret is: the caller of /me with that secret as its key.
            "authenticate": ("GET", "/api/v1/me", {}, None),
        }
        agent_calls = {
            "heartbeat": ("heartbeat", ("lease_seconds",)),
            "await_cancel": ("heartbeat", ("lease_seconds", "wait_seconds")),
            "report_result": ("result", ("exit_code", "stdout", "stderr")),
            "report_cancelled": ("result", ("exit_code", "stdout", "stderr")),
            "append_output": ("output", ("seq", "stdout", "stderr")),
        }
        if name in agent_calls:
            route, fields = agent_calls[name]
            payload = body(step, "lease_token", *fields)
            if "lease_token" in payload:
                payload["lease_token"] = self.token(payload["lease_token"])
            if name == "report_cancelled":
                payload["cancelled"] = True
            return ("POST", f"{a}/{route}", {}, payload)
        if name == "output_since":
            return ("GET", f"{a}/output", {"after": step.get("after")}, None)
        if name not in routes:
            raise BadScenario(f"unknown call {name!r}")
        return routes[name]

    def call(self, given: dict[str, Any]) -> dict[str, Any]:
        step = expand(given, Raw)
        name = step["call"]
        if name == "advance_clock":
            self.clock.advance(step["seconds"])
            return {"none": True}
        if name == "expire_leases":
            return {"unsupported": True, "why": "no HTTP route"}
        method, path, params, payload = self.request(step)
        content = None if payload is None else encode(payload)
        headers = {} if payload is None else {"Content-Type": "application/json"}
        # Acting as an issued principal: its secret is the request's key, in the
        # header its role uses (an agent's in X-Agent-Token, which only the agent
        # routes read); else the bootstrap key.
        key = step.get("secret") if name == "authenticate" else step.get("as")
        secret = API_KEY if key is None else self.secret(key)
        headers["X-Agent-Token" if secret.startswith(AGENT_SECRET_PREFIX) else "X-API-Key"] = secret
        response = self.client.request(method, path, params=params, content=content, headers=headers)
        if response.status_code == 204:
            return {"none": True}
        content = response.json()
        if response.status_code >= 400:
            detail = content["detail"]
            if isinstance(detail, list):  # FastAPI's request-shape error
                return {"error": {"code": "VALIDATION_ERROR", "request_shape": True}}
            if isinstance(detail, str):  # outside the contract, e.g. no such route
                return {"error": {"code": f"HTTP_{response.status_code}", "message": detail}}
            return {
                "error": {
                    "code": detail["code"],
                    "message": detail["message"],
                    "existing_action_id": detail.get("existing_action_id"),
                }
            }
        if name == "claim_next":
            # Only HTTP signs claims: checked here, then left out of the transcript.
            self.signing_key.public_key().verify_json(response.text)
            del content["signature"]
            if "save_token" in step:
                self.tokens[step["save_token"]] = content["lease_token"]
            content["lease_token"] = "<token>"
        if name == "issue_credential" and "save_secret" in step:
            self.secrets[step["save_secret"]] = content["secret"]
        if name == "append_output":  # {"stored": bool}: the library hosts' bool
            return {"ok": content["stored"]}
        return {"ok": content}


def run(scenario: dict[str, Any], store: str) -> list[dict[str, Any]]:
    host = Host(scenario, store)
    return [{"skipped": True} if skipped(HOST, step) else host.call(step) for step in scenario["steps"]]


if __name__ == "__main__":
    sys.exit(main("http_driver.py", run))
