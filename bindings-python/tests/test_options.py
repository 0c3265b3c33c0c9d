"""Opening a queue: paths, persistence, durability, whitelists."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import actionq

CUSTOM = {
    "actions": {
        "install_package": {
            "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
            "params": {"package": {"kind": "debian_package"}},
            "conflict": {"exclusive_group": "apt"},
        },
        "set_swappiness": {
            "command": "sysctl vm.swappiness={value}",
            "params": {"value": {"kind": "integer", "min": 0, "max": 100}},
        },
    }
}


def test_path_types_and_persistence(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    first = actionq.ActionQueue(str(db), durability="full")
    assert first.path == db
    first.create_server("web-1")
    action = first.create_action("web-1", "clear_logs")
    del first
    again = actionq.ActionQueue(db)  # os.PathLike
    assert again.get_action(action.id) == action
    assert repr(again) == f"ActionQueue({str(db)!r})"
    # two queues on one file see each other's writes
    other = actionq.ActionQueue(db)
    assert other.list_actions().total == 1


def test_in_memory_queues_are_separate() -> None:
    a, b = actionq.ActionQueue(), actionq.ActionQueue(None)
    a.create_server("s1")
    with pytest.raises(actionq.NotFoundError):
        b.get_server("s1")
    assert a.path is None


def test_bad_settings_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        actionq.ActionQueue(tmp_path / "a.db", durability="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="busy_timeout_seconds"):
        actionq.ActionQueue(tmp_path / "a.db", busy_timeout_seconds=-1)
    with pytest.raises(TypeError):
        actionq.ActionQueue(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        actionq.ActionQueue(whitelist=["not", "a", "config"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        actionq.ActionQueue(None, "positional whitelist")  # type: ignore[call-arg]


def test_unopenable_path_is_storage_error(tmp_path: Path) -> None:
    with pytest.raises(actionq.StorageError) as info:
        actionq.ActionQueue(tmp_path / "missing-dir" / "q.sqlite3")
    assert info.value.code == "STORAGE_ERROR" and info.value.http_status == 503


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 9999")
    with pytest.raises(actionq.StorageError, match="9999|newer"):
        actionq.ActionQueue(db)


def test_custom_whitelist_from_dict_and_text() -> None:
    for config in (CUSTOM, json.dumps(CUSTOM)):
        q = actionq.ActionQueue(whitelist=config)
        assert q.action_types == ["install_package", "set_swappiness"]
        q.create_server("s1")
        a = q.create_action("s1", "install_package", params={"package": "htop"})
        assert a.argv == ["apt-get", "install", "-y", "htop"]
        assert a.env == {"DEBIAN_FRONTEND": "noninteractive"}
        assert q.create_action("s1", "set_swappiness", params={"value": 10}).command == "sysctl vm.swappiness=10"
        with pytest.raises(actionq.NotWhitelistedError, match="value"):
            q.create_action("s1", "set_swappiness", params={"value": 101})
        with pytest.raises(actionq.NotWhitelistedError, match="value"):
            q.create_action("s1", "set_swappiness", params={"value": -1})
        with pytest.raises(TypeError):
            q.create_action("s1", "set_swappiness", params={"value": True})
        with pytest.raises(actionq.NotWhitelistedError):
            q.create_action("s1", "restart_service", "nginx")
        with pytest.raises(actionq.InvalidInputError):
            q.create_action("s1", "install_package", params={"package": "htop", "extra": "x"})
        # the config round-trips
        assert actionq.ActionQueue(whitelist=q.whitelist_json).action_types == q.action_types


def test_default_whitelist_json() -> None:
    q = actionq.ActionQueue()
    assert q.action_types == ["apt_update", "apt_upgrade_all", "clear_logs", "restart_service"]
    assert json.loads(q.whitelist_json) == json.loads(
        actionq.ActionQueue(whitelist=actionq.DEFAULT_WHITELIST_JSON).whitelist_json
    )


@pytest.mark.parametrize(
    "config",
    ['{"actions": {}}', "not json", {"actions": {"x": {"command": "rm {f}", "params": {"f": {"kind": "free_text"}}}}}],
)
def test_bad_whitelist_is_invalid_input(config: object) -> None:
    with pytest.raises(actionq.InvalidInputError, match="whitelist"):
        actionq.ActionQueue(whitelist=config)  # type: ignore[arg-type]


def test_lease_settings() -> None:
    q = actionq.ActionQueue(default_lease_seconds=30, max_lease_seconds=60)
    q.create_server("s1")
    q.create_action("s1", "clear_logs")
    with pytest.raises(actionq.InvalidInputError):
        q.claim_next("s1", lease_seconds=61)
    claim = q.claim_next("s1")
    assert claim is not None and claim.lease_expires_at is not None and claim.executed_at is not None
    assert round((claim.lease_expires_at - claim.executed_at).total_seconds()) == 30


def test_version() -> None:
    assert actionq.__version__.count(".") == 2
