"""The record classes: attributes, to_dict, equality, immutability, pydantic."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal, Optional

import pydantic
import pytest

import actionq

ACTION_FIELDS = [
    "id", "server_id", "action_type", "status", "service_name", "command", "argv", "env",
    "alert_id", "created_at", "created_by", "approved_at", "approved_by", "rejected_at",
    "rejected_by", "rejection_reason", "cancelled_at", "cancelled_by", "executed_at",
    "lease_expires_at", "completed_at", "exit_code", "stdout", "stderr",
    # The approval policy's fields (docs/contract/domain.md#action-fields): after the seed's fields
    "approvals", "digest", "whitelist_version",
    "params",  # README "Security": what the command was built from
    "cancel_requested_at", "cancel_requested_by",  # docs/contract/cancel-and-output.md
]  # fmt: skip


class ServerModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(from_attributes=True)
    id: str
    hostname: Optional[str]
    is_paused: bool
    paused_at: Optional[datetime]
    created_at: datetime


class ApprovalModel(pydantic.BaseModel):
    by: str
    at: datetime
    digest: str


class ActionModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(from_attributes=True)
    id: int
    server_id: str
    action_type: str
    status: actionq.ActionStatus
    service_name: Optional[str]
    command: str
    argv: list[str]
    env: dict[str, str]
    alert_id: Optional[int]
    created_at: datetime
    created_by: str
    approved_at: Optional[datetime]
    approved_by: Optional[str]
    rejected_at: Optional[datetime]
    rejected_by: Optional[str]
    rejection_reason: Optional[str]
    cancelled_at: Optional[datetime]
    cancelled_by: Optional[str]
    executed_at: Optional[datetime]
    lease_expires_at: Optional[datetime]
    completed_at: Optional[datetime]
    exit_code: Optional[int]
    stdout: Optional[str]
    stderr: Optional[str]
    approvals: list[ApprovalModel]
    digest: str
    whitelist_version: str
    params: dict[str, str]
    cancel_requested_at: Optional[datetime]
    cancel_requested_by: Optional[str]


class LiteralStatusModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(from_attributes=True)
    status: Literal["pending", "approved", "rejected", "cancelled", "executing", "completed", "failed"]


class PageModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(from_attributes=True)
    actions: list[ActionModel]
    total: int
    limit: int
    offset: int


def test_action_to_dict_has_every_wire_field(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "apt_update", alert_id=4)
    d = action.to_dict()
    assert list(d) == ACTION_FIELDS
    for name in ACTION_FIELDS:
        assert getattr(action, name) == d[name]
    assert type(d["status"]) is str
    assert isinstance(d["created_at"], datetime) and d["created_at"].tzinfo is timezone.utc
    assert d["env"] == {"DEBIAN_FRONTEND": "noninteractive"}


def test_server_to_dict(queue: actionq.ActionQueue) -> None:
    server = queue.pause_server("web-1")
    assert server.to_dict() == {
        "id": "web-1",
        "hostname": "web-1.lan",
        "is_paused": True,
        "paused_at": server.paused_at,
        "created_at": server.created_at,
    }


def test_timestamps_microsecond_utc(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "clear_logs")
    assert action.created_at.tzinfo is timezone.utc
    assert action.created_at.utcoffset() is not None
    # what was stored is what comes back (microsecond precision, both stores)
    assert queue.get_action(action.id).created_at == action.created_at


def test_pydantic_from_attributes(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "restart_service", "nginx")
    model = ActionModel.model_validate(action, from_attributes=True)
    assert model.model_dump() == {**action.to_dict(), "status": actionq.ActionStatus.APPROVED}
    assert LiteralStatusModel.model_validate(action).status == "approved"
    assert ServerModel.model_validate(queue.get_server("web-1")).id == "web-1"
    page = PageModel.model_validate(queue.list_actions())
    assert page.total == 1 and page.actions[0].id == action.id
    claim = queue.claim_next("web-1")
    assert ActionModel.model_validate(claim).status == "executing"
    dumped = ActionModel.model_validate(action).model_dump(mode="json")
    assert dumped["created_at"].endswith("Z") or dumped["created_at"].endswith("+00:00")


def test_equality_and_hash(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "clear_logs")
    same = queue.get_action(action.id)
    assert action == same and not (action != same)
    assert action != queue.create_action("web-1", "clear_logs")
    assert action != "not an action"
    with pytest.raises(TypeError):
        hash(action)
    assert queue.list_actions() == queue.list_actions()
    assert queue.list_actions() != queue.list_actions(limit=1)
    assert queue.list_actions() != 3
    assert queue.get_server("web-1") == queue.get_server("web-1")


def test_records_are_frozen(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "clear_logs")
    with pytest.raises(AttributeError):
        action.status = actionq.ActionStatus.COMPLETED  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        action.extra = 1  # type: ignore[attr-defined]
    argv = action.argv
    argv.append("--evil")
    assert "--evil" not in action.argv
    server = queue.get_server("web-1")
    with pytest.raises(AttributeError):
        server.is_paused = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        actionq.Action()


def test_page(queue: actionq.ActionQueue) -> None:
    created = [queue.create_action("web-1", "clear_logs") for _ in range(3)]
    page = queue.list_actions(limit=2)
    assert page.actions == created[::-1][:2]
    assert page.actions[0] is page.actions[0]
    assert page.to_dict() == {
        "actions": [a.to_dict() for a in created[::-1][:2]],
        "total": 3,
        "limit": 2,
        "offset": 0,
        "next_before_id": created[1].id,
    }
    assert repr(page) == "ActionPage(actions=<2 actions>, total=3, limit=2, offset=0)"
    last = queue.list_actions(limit=2, before_id=page.next_before_id)
    assert last.actions == created[:1] and last.next_before_id is None


def test_reprs(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "restart_service", "nginx")
    assert repr(action) == (
        f"Action(id={action.id}, server_id='web-1', action_type='restart_service', "
        "status='approved', service_name='nginx.service')"
    )
    assert repr(queue.get_server("web-1")) == "Server(id='web-1', hostname='web-1.lan', is_paused=False)"
    assert repr(actionq.ActionQueue()) == "ActionQueue(None)"
    assert type(action).__module__ == "actionq"


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 1, 1, tzinfo=timezone.utc),  # no microseconds: pydantic writes none
        datetime(2026, 1, 1, 0, 0, 0, 120000, tzinfo=timezone.utc),  # trailing zeros kept
        datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=timezone.utc),
    ],
)
def test_to_json_is_the_http_models_json(start: datetime) -> None:
    """`to_json()` (what actionq.server sends, encoded by the core) is byte for
    byte what the HTTP response models would write for the same record."""
    from actionq.server import models

    clock = actionq.ManualClock(start)
    queue = actionq.ActionQueue(clock=clock)
    server = queue.create_server("web-1", "h\u00e9 <\"x\">")
    created = queue.create_action("web-1", "restart_service", service_name="nginx", alert_id=7)
    clock.advance(1.5)
    claim = queue.claim_next("web-1", 30)
    assert claim is not None
    done = queue.report_result(created.id, claim.lease_token, 3, "out \u2603 \x01\t\"\\", None)
    queue.pause_server("web-1")
    rejected = queue.reject_action(
        queue.create_action("web-1", "clear_logs").id, "no \u00e9", by="alice </script>"
    )
    pairs: list[tuple[object, type[pydantic.BaseModel]]] = [
        (server, models.ServerOut),
        (queue.get_server("web-1"), models.ServerOut),
        (created, models.ActionOut),
        (done, models.ActionOut),
        (rejected, models.ActionOut),
        (queue.list_actions(), models.ActionListOut),
        *((event, models.EventOut) for event in queue.events_since(0)),
    ]
    for record, model in pairs:
        assert record.to_json() == model.model_validate(record).model_dump_json(), record  # type: ignore[attr-defined]
    # The claim route sends the claim's JSON with the server's signature appended.
    signed = claim.to_json()[:-1] + ',"signature":"c2ln"}'
    assert signed == models.ClaimOut.model_validate({**claim.to_dict(), "signature": "c2ln"}).model_dump_json()
