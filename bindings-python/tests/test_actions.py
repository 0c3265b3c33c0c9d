"""Creating, listing and deciding on actions: the create rules
(docs/contract/create-rules.md#order) and the status machine
(docs/contract/domain.md#status-machine)."""

from __future__ import annotations

import pytest

import actionq

APT_UPGRADE = (
    "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -q -y "
    '-o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold" '
    "-o APT::Sandbox::User=root"
)


def test_default_whitelist_commands(queue: actionq.ActionQueue) -> None:
    restart = queue.create_action("web-1", "restart_service", "nginx")
    assert restart.command == "systemctl restart nginx.service"
    assert restart.argv == ["systemctl", "restart", "nginx.service"]
    assert restart.env == {}
    assert restart.service_name == "nginx.service"
    logs = queue.create_action("web-1", "clear_logs")
    assert logs.command == "journalctl --vacuum-time=7d"
    assert logs.service_name is None
    upgrade = queue.create_action("web-1", "apt_upgrade_all")
    assert upgrade.command == APT_UPGRADE
    assert upgrade.env == {"DEBIAN_FRONTEND": "noninteractive"}
    assert upgrade.argv[:3] == ["apt-get", "dist-upgrade", "-q"]
    assert "Dpkg::Options::=--force-confdef" in upgrade.argv


def test_auto_approved_when_not_paused(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "restart_service", "nginx", alert_id=7, created_by="alerts")
    assert action.status == "approved"
    assert action.status == actionq.ActionStatus.APPROVED
    assert action.approved_by == "auto"
    assert action.approved_at == action.created_at
    assert action.alert_id == 7
    assert action.created_by == "alerts"
    assert action.id >= 1


def test_pending_when_paused(paused: actionq.ActionQueue) -> None:
    action = paused.create_action("web-1", "clear_logs")
    assert action.status == "pending"
    assert action.approved_at is None and action.approved_by is None
    assert action.created_by == "dashboard"


def test_ids_strictly_increase(queue: actionq.ActionQueue) -> None:
    ids = [queue.create_action("web-1", "clear_logs").id for _ in range(5)]
    assert ids == sorted(set(ids))


def test_params_dict_and_service_name(queue: actionq.ActionQueue) -> None:
    action = queue.create_action("web-1", "restart_service", params={"service_name": "sshd"})
    assert action.argv == ["systemctl", "restart", "sshd.service"]
    assert action.params == {"service_name": "sshd.service"}
    with pytest.raises(actionq.InvalidInputError, match="service_name given both on its own and in params"):
        queue.create_action("web-1", "restart_service", "a", params={"service_name": "b"})
    with pytest.raises(TypeError):
        queue.create_action("web-1", "restart_service", params={"service_name": 1.5})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        queue.create_action("web-1", "restart_service", params={1: "x"})  # type: ignore[dict-item]


def test_create_rule_order(queue: actionq.ActionQueue) -> None:
    # 1. malformed input beats everything else
    with pytest.raises(actionq.InvalidInputError, match="service_name is required"):
        queue.create_action("nope", "restart_service")
    with pytest.raises(actionq.InvalidInputError, match="alert_id"):
        queue.create_action("nope", "nonexistent", alert_id=0)
    # 2. unknown server before whitelist
    with pytest.raises(actionq.NotFoundError, match="Server 'nope' not found"):
        queue.create_action("nope", "nonexistent")
    # 3. whitelist
    with pytest.raises(actionq.NotWhitelistedError) as info:
        queue.create_action("web-1", "rm_rf")
    assert info.value.message == "Action type 'rm_rf' not in whitelist"
    assert info.value.code == "FORBIDDEN" and info.value.http_status == 403


@pytest.mark.parametrize(
    "value", ["nginx; rm -rf /", "-nginx", "ng inx", "nginx\n", "nginé", "x" * 300, "$(id)"]
)
def test_refused_parameter_is_not_whitelisted(queue: actionq.ActionQueue, value: str) -> None:
    with pytest.raises(actionq.NotWhitelistedError, match="service_name"):
        queue.create_action("web-1", "restart_service", value)


def test_restart_duplicate_conflict(paused: actionq.ActionQueue) -> None:
    first = paused.create_action("web-1", "restart_service", "nginx")
    with pytest.raises(actionq.ConflictError) as info:
        paused.create_action("web-1", "restart_service", "nginx")
    err = info.value
    assert err.message == "Pending action already exists for service 'nginx.service' on server 'web-1'"
    assert err.existing_action_id == first.id
    assert str(err) == err.message
    # another service is fine
    paused.create_action("web-1", "restart_service", "sshd")


def test_apt_exclusive_group(queue: actionq.ActionQueue) -> None:
    first = queue.create_action("web-1", "apt_update")
    with pytest.raises(actionq.ConflictError) as info:
        queue.create_action("web-1", "apt_upgrade_all")
    assert info.value.message == "An APT action is already pending/in-progress for server 'web-1'"
    assert info.value.existing_action_id == first.id
    queue.cancel_action(first.id)
    queue.create_action("web-1", "apt_upgrade_all")


def test_get_action(queue: actionq.ActionQueue) -> None:
    created = queue.create_action("web-1", "clear_logs")
    assert queue.get_action(created.id) == created
    with pytest.raises(actionq.NotFoundError) as info:
        queue.get_action(999)
    assert info.value.message == "Action 999 not found"


def test_list_actions_filters_and_pages(queue: actionq.ActionQueue) -> None:
    queue.create_server("db-1")
    a = queue.create_action("web-1", "clear_logs")
    b = queue.create_action("db-1", "restart_service", "postgresql")
    c = queue.create_action("web-1", "restart_service", "nginx")
    queue.cancel_action(a.id)

    page = queue.list_actions()
    assert [x.id for x in page.actions] == [c.id, b.id, a.id]  # newest first
    assert (page.total, page.limit, page.offset) == (3, 50, 0)
    assert len(page) == 3

    assert [x.id for x in queue.list_actions(server_id="web-1").actions] == [c.id, a.id]
    assert [x.id for x in queue.list_actions(status="cancelled").actions] == [a.id]
    assert [x.id for x in queue.list_actions(status=actionq.ActionStatus.APPROVED).actions] == [c.id, b.id]
    assert [x.id for x in queue.list_actions(action_type="restart_service", server_id="db-1").actions] == [b.id]

    second = queue.list_actions(limit=1, offset=1)
    assert [x.id for x in second.actions] == [b.id]
    assert (second.total, second.limit, second.offset) == (3, 1, 1)
    assert queue.list_actions(offset=10).actions == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -5}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "bogus"}, "Invalid status"),
    ],
)
def test_list_actions_validation_reaches_core(
    queue: actionq.ActionQueue, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(actionq.InvalidInputError, match=fragment):
        queue.list_actions(**kwargs)  # type: ignore[arg-type]


def test_list_server_actions(queue: actionq.ActionQueue) -> None:
    queue.create_server("db-1")
    mine = queue.create_action("web-1", "clear_logs")
    queue.create_action("db-1", "clear_logs")
    page = queue.list_server_actions("web-1")
    assert [x.id for x in page.actions] == [mine.id]
    assert page.total == 1
    assert queue.list_server_actions("web-1", status="pending").total == 0
    assert queue.list_server_actions("web-1", limit=1, offset=0).limit == 1
    with pytest.raises(actionq.NotFoundError):
        queue.list_server_actions("nope")
    with pytest.raises(actionq.InvalidInputError):
        queue.list_server_actions("web-1", limit=1000)


def test_wrong_argument_types_are_type_errors(queue: actionq.ActionQueue) -> None:
    with pytest.raises(TypeError):
        queue.get_action("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        queue.list_actions(limit="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        queue.create_server(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        queue.create_action("web-1", "clear_logs", alert_id="3")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        queue.list_actions(limit=2**70)
    with pytest.raises(OverflowError):
        queue.get_action(-(2**70))


def test_approve(paused: actionq.ActionQueue) -> None:
    action = paused.create_action("web-1", "clear_logs")
    approved = paused.approve_action(action.id)
    assert approved.status == "approved"
    assert approved.approved_by == "dashboard"
    assert approved.approved_at is not None and approved.approved_at >= action.created_at
    assert paused.approve_action(paused.create_action("web-1", "clear_logs").id, by="alice").approved_by == "alice"
    with pytest.raises(actionq.ConflictError) as info:
        paused.approve_action(action.id)
    assert info.value.message == "Cannot approve action with status 'approved' (must be pending)"
    assert info.value.existing_action_id is None
    with pytest.raises(actionq.NotFoundError):
        paused.approve_action(12345)


def test_reject(paused: actionq.ActionQueue) -> None:
    action = paused.create_action("web-1", "clear_logs")
    rejected = paused.reject_action(action.id, "not during business hours")
    assert rejected.status == "rejected"
    assert rejected.rejected_by == "dashboard"
    assert rejected.rejection_reason == "not during business hours"
    assert rejected.rejected_at is not None
    with pytest.raises(actionq.ConflictError, match="Cannot reject action with status 'rejected'"):
        paused.reject_action(action.id, "again")
    other = paused.create_action("web-1", "clear_logs")
    for bad in ("", "x" * 1001):
        with pytest.raises(actionq.InvalidInputError, match="reason"):
            paused.reject_action(other.id, bad)
    assert paused.reject_action(other.id, "x" * 1000, by="bob").rejected_by == "bob"


def test_cancel(paused: actionq.ActionQueue) -> None:
    pending = paused.create_action("web-1", "clear_logs")
    cancelled = paused.cancel_action(pending.id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_by == "dashboard" and cancelled.cancelled_at is not None
    paused.unpause_server("web-1")
    approved = paused.create_action("web-1", "clear_logs")
    assert paused.cancel_action(approved.id, by="carol").cancelled_by == "carol"
    executing = paused.create_action("web-1", "clear_logs")
    claim = paused.claim_next("web-1")
    assert claim is not None and claim.id == executing.id
    # A running action: a request its agent answers (docs/contract/cancel-and-output.md#cancel-request).
    asked = paused.cancel_action(executing.id, by="carol")
    assert (asked.status, asked.cancel_requested_by) == ("executing", "carol")
    assert asked.cancel_requested_at is not None
    assert paused.cancel_action(executing.id).cancel_requested_by == "carol"  # the first request stands
    paused.report_result(executing.id, claim.lease_token, 0, "done", None)
    with pytest.raises(actionq.ConflictError, match="Cannot cancel action with status 'completed'"):
        paused.cancel_action(executing.id)
