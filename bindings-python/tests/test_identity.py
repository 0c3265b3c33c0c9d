"""Identity from Python: credentials (issue, list, revoke, authenticate), the
queue acting as a principal (``as_principal``) or a trusted name (``by``), sync
and async, the two new exception kinds, and a revocation seen at once by another
process on the same SQLite file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import actionq
from actionq import ActionQueue, AsyncActionQueue, limits


def test_error_kinds_in_the_hierarchy() -> None:
    for cls, code, status in (
        (actionq.UnauthenticatedError, "UNAUTHENTICATED", 401),
        (actionq.PermissionDeniedError, "PERMISSION_DENIED", 403),
    ):
        assert issubclass(cls, actionq.ActionQueueError)
        assert cls.code == code and cls.http_status == status


def test_issue_list_revoke_authenticate(queue: actionq.ActionQueue) -> None:
    assert limits.ROLES == ("admin", "operator", "requester", "viewer", "agent")
    issued = queue.issue_credential("web-1-agent", "agent", "web-1")
    assert issued.secret.startswith("aq_ag_") and issued.secret.startswith(issued.prefix)
    assert issued.secret not in repr(issued) and issued.secret not in repr(issued.credential)
    assert issued.to_dict()["secret"] == issued.secret
    principal = queue.authenticate(issued.secret)
    assert principal == actionq.Principal("web-1-agent", "agent", "web-1")
    assert principal.to_dict() == {"name": "web-1-agent", "role": "agent", "server_id": "web-1"}
    listed = queue.list_credentials()
    assert listed == [issued.credential]
    assert issued.secret not in listed[0].to_json() and "secret" not in listed[0].to_dict()
    revoked = queue.revoke_credential(issued.id)
    assert revoked.revoked_at is not None
    with pytest.raises(actionq.UnauthenticatedError) as refused:
        queue.authenticate(issued.secret)
    assert issued.secret not in str(refused.value)
    with pytest.raises(actionq.NotFoundError, match="Credential 99 not found"):
        queue.revoke_credential(99)
    with pytest.raises(actionq.InvalidInputError, match="Invalid role 'root'"):
        queue.issue_credential("x", "root")
    with pytest.raises(actionq.InvalidInputError, match="Invalid role"):
        actionq.Principal("x", "root")


@pytest.mark.parametrize("secret", ["", " ", "x" * (limits.MAX_SECRET_BYTES + 1), "ключ", "aq_op_\x00", "a" * 10_000_000])
def test_malformed_secrets_are_unauthenticated(queue: actionq.ActionQueue, secret: str) -> None:
    with pytest.raises(actionq.UnauthenticatedError):
        queue.authenticate(secret)


def test_a_principals_queue_records_the_principal_and_refuses_what_the_role_may_not(
    paused: actionq.ActionQueue,
) -> None:
    queue = paused
    rita = queue.authenticate(queue.issue_credential("rita", "requester").secret)
    victor = queue.authenticate(queue.issue_credential("victor", "viewer").secret)
    as_rita = queue.as_principal(rita)
    assert type(as_rita) is ActionQueue and as_rita.principal == rita and queue.principal is None
    action = as_rita.create_action("web-1", "restart_service", "nginx")
    assert action.created_by == "rita"
    events = queue.events_since()
    with pytest.raises(actionq.PermissionDeniedError, match="Viewer 'victor' cannot approve actions") as denied:
        queue.as_principal(victor).approve_action(action.id)
    assert denied.value.http_status == 403
    with pytest.raises(actionq.PermissionDeniedError):
        as_rita.approve_action(action.id)
    for refused in (
        lambda: queue.as_principal(victor).create_action("web-1", "clear_logs"),
        lambda: queue.as_principal(victor).create_action_json('{"server_id": "web-1", "action_type": "clear_logs"}'),
        lambda: queue.as_principal(victor).pause_server("web-1"),
        lambda: as_rita.claim_next("web-1"),
        lambda: as_rita.issue_credential("x", "admin"),
        lambda: as_rita.list_credentials(),
    ):
        with pytest.raises(actionq.PermissionDeniedError):
            refused()
    assert queue.events_since() == events and queue.get_action(action.id).status == actionq.ActionStatus.PENDING
    assert as_rita.cancel_action(action.id).cancelled_by == "rita"
    # a host that authenticates people itself builds the principal
    alice = actionq.Principal("alice", "operator")
    second = queue.as_principal(alice).create_action_json(
        '{"server_id": "web-1", "action_type": "clear_logs", "created_by": "mallory"}'
    )
    assert second.created_by == "alice"
    assert queue.as_principal(alice).approve_action(second.id).approved_by == "alice"


def test_by_records_a_trusted_name_and_a_principal_cannot_take_one(paused: ActionQueue) -> None:
    queue = paused
    first, second = (queue.create_action("web-1", t) for t in ("clear_logs", "apt_update"))
    third = queue.create_action("web-1", "restart_service", "cron")
    # by= on the call and the by() view are the core's one `by`
    assert queue.approve_action(first.id, by="alice").approved_by == "alice"
    as_bob = queue.by("bob")
    assert type(as_bob) is ActionQueue and as_bob.principal is None
    assert as_bob.reject_action(second.id, "not now").rejected_by == "bob"
    assert as_bob.cancel_action(third.id, by="carol").cancelled_by == "carol"  # the call's name wins
    assert as_bob.create_action("web-1", "clear_logs", created_by="mallory").created_by == "bob"
    assert queue.create_action("web-1", "apt_update").created_by == limits.DASHBOARD
    for bad in ("", "x" * (limits.MAX_NAME_CHARS + 1), "ops\n"):
        with pytest.raises(actionq.InvalidInputError, match="actor"):
            queue.by(bad)
    # a principal's name is what its queue records: no trusted name over it
    olga = queue.as_principal(actionq.Principal("olga", "operator"))
    pending = queue.create_action("web-1", "restart_service", "nginx")
    with pytest.raises(actionq.InvalidInputError, match="acting as principal 'olga'"):
        olga.by("alice")
    with pytest.raises(actionq.InvalidInputError, match="acting as principal 'olga'"):
        olga.approve_action(pending.id, by="alice")
    assert queue.get_action(pending.id).status == actionq.ActionStatus.PENDING
    assert olga.approve_action(pending.id).approved_by == "olga"
    opened = repr(queue).removesuffix(")")
    assert repr(olga) == opened + ", principal=Principal(name='olga', role='operator', server_id=None))"
    assert repr(as_bob) == opened + ", by='bob')"


@pytest.mark.parametrize("path", [None, "file"])
def test_async_principal_queue(tmp_path: Path, path: str | None) -> None:
    async def main() -> None:
        aqueue = await AsyncActionQueue.open(None if path is None else tmp_path / "q.sqlite3")
        await aqueue.create_server("web-1")
        issued = await aqueue.issue_credential("web-1-agent", "agent", "web-1")
        agent = await aqueue.authenticate(issued.secret)
        acting = aqueue.as_principal(agent)
        assert type(acting) is AsyncActionQueue and acting.principal == agent and aqueue.principal is None
        assert acting.queue.principal == agent and acting._executor is aqueue._executor  # one thread pool
        await aqueue.create_action("web-1", "clear_logs")
        claim = await acting.claim_next("web-1")
        assert claim is not None
        done = await acting.report_result(claim.id, claim.lease_token, 0)
        assert done.status == actionq.ActionStatus.COMPLETED
        with pytest.raises(actionq.PermissionDeniedError):
            await acting.get_action(claim.id)
        aqueue.close()

    asyncio.run(main())


CHILD = """
import sys, actionq
queue = actionq.ActionQueue(sys.argv[1])
try:
    print(queue.authenticate(sys.argv[2]).name)
except actionq.UnauthenticatedError as e:
    print("refused:", e.code)
"""


def test_revocation_is_seen_at_once_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    queue = actionq.ActionQueue(db)
    issued = queue.issue_credential("alice", "operator")

    def other_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(db), issued.secret], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert other_process() == "alice"
    queue.revoke_credential(issued.id)
    assert other_process() == "refused: UNAUTHENTICATED"
