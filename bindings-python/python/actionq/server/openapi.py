"""The OpenAPI document as the app serves it: FastAPI's, told the truth.

FastAPI writes the models' schemas; three things it cannot know are added
here, per app, so that a request the document calls valid is one the queue
takes (schemathesis checks it: ``make test-openapi``):

- the action types of this app's whitelist (the ``ActionType`` enum), and the
  parameters of each, on the create body;
- integer bounds as integers: FastAPI's document model holds them as floats,
  and ``2**63 - 1`` as a float is ``2**63``, one past what the queue takes;
- links between operations (a created action's id to the routes that take
  it, a claim's lease token to heartbeat and result), which clients and the
  stateful tests follow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LINKS", "action_create_variants", "finish"]

_I64 = (-(2**63), 2**63 - 1)

LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("create_server", "201"): {
        op: {"operationId": op, "parameters": {"server_id": "$response.body#/id"}}
        for op in ("get_server", "pause_server", "unpause_server", "list_server_actions", "claim_action")
    },
    ("create_action", "201"): {
        op: {"operationId": op, "parameters": {"action_id": "$response.body#/id"}}
        for op in ("get_action", "approve_action", "reject_action", "cancel_action")
    },
    ("claim_action", "200"): {
        op: {
            "operationId": op,
            "parameters": {"action_id": "$response.body#/id"},
            "requestBody": {"lease_token": "$response.body#/lease_token"},
        }
        for op in ("heartbeat_action", "report_action_result")
    },
    ("create_credential", "201"): {
        "revoke_credential": {"operationId": "revoke_credential", "parameters": {"credential_id": "$response.body#/id"}}
    },
}
"""(operation, status) -> the links of that response."""


def action_create_variants(whitelist: dict[str, Any]) -> list[dict[str, Any]]:
    """The create body's shape per action type of ``whitelist`` (the queue's
    ``whitelist_json``): which parameters each type takes (every one
    required, none other), and ``service_name`` given on its own or in
    ``params``, never both. Values are the validators' to judge (a refused
    value is 403 ``FORBIDDEN``, not a shape error)."""
    value = {"type": "string", "minLength": 1}

    def shape(names: list[str]) -> dict[str, Any]:
        exact = {"type": "object", "properties": {p: value for p in names}, "required": names, "additionalProperties": False}
        return exact if names else {"anyOf": [exact, {"type": "null"}]}

    variants = []
    for name, entry in whitelist["actions"].items():
        params = sorted(entry.get("params") or {})
        kind = {"const": name}
        if "service_name" in params:
            others = [p for p in params if p != "service_name"]
            variants.append(
                {
                    "properties": {"action_type": kind, "service_name": value, "params": shape(others)},
                    "required": ["service_name", *(["params"] if others else [])],
                }
            )
            params_only = {"action_type": kind, "service_name": {"type": "null"}, "params": shape(params)}
            variants.append({"properties": params_only, "required": ["params"]})
        else:
            only = {"action_type": kind, "service_name": {"type": "null"}, "params": shape(params)}
            variants.append({"properties": only, "required": ["params"] if params else []})
    return variants


def _integral_bounds(node: Any) -> None:
    """``minimum``/``maximum`` of integer schemas back to integers, within i64."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum"):
                if isinstance(node.get(key), float):
                    node[key] = min(max(int(node[key]), _I64[0]), _I64[1])
        for child in node.values():
            _integral_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _integral_bounds(child)


def finish(document: dict[str, Any], action_types: list[str], whitelist: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's) for an app whose queue has ``whitelist``."""
    schemas = document.get("components", {}).get("schemas", {})
    if "ActionType" in schemas:
        schemas["ActionType"]["enum"] = list(action_types)
    if "ActionCreate" in schemas:
        schemas["ActionCreate"]["anyOf"] = action_create_variants(whitelist)
    _integral_bounds(document)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((operation.get("operationId", ""), status))
                if links:
                    response["links"] = links
    return document
