"""`ActionQueue.create_action_json`: a create request read by the core's
`NewAction::from_json` (what actionq.server hands it)."""

from __future__ import annotations

import json

import pytest

import actionq


def test_reads_the_http_create_body(queue: actionq.ActionQueue) -> None:
    action = queue.create_action_json(
        json.dumps({"server_id": "web-1", "action_type": "restart_service", "service_name": "nginx", "alert_id": 3})
    )
    assert action.argv == ["systemctl", "restart", "nginx.service"] and action.alert_id == 3
    assert action.created_by == "dashboard"
    other = queue.create_action_json(
        '{"server_id": "web-1", "action_type": "restart_service", "params": {"service_name": "cron"}, "created_by": "alice"}'
    )
    assert other.service_name == "cron.service" and other.created_by == "alice"


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        ('{"server_id": "web-1", "action_type": "restart_service", "service_name": "a", "params": {"service_name": "b"}}',
         "service_name given both on its own and in params"),
        ('{"server_id": "web-1", "action_type": "clear_logs", "bogus": 1}', "unknown field `bogus`"),
        ('{"server_id": "web-1", "action_type": "restart_service", "params": {"service_name": 5}}', "invalid type"),
        ('{"server_id": "web-1"', "invalid create request"),
    ],
)  # fmt: skip
def test_refusals_are_invalid_input(queue: actionq.ActionQueue, request_text: str, message: str) -> None:
    with pytest.raises(actionq.InvalidInputError, match=message):
        queue.create_action_json(request_text)
    assert queue.list_actions().total == 0


def test_then_the_create_rules(queue: actionq.ActionQueue) -> None:
    with pytest.raises(actionq.NotFoundError):
        queue.create_action_json('{"server_id": "nope", "action_type": "clear_logs"}')
    with pytest.raises(actionq.NotWhitelistedError):
        queue.create_action_json('{"server_id": "web-1", "action_type": "reboot"}')
