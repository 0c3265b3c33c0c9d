"""The exception hierarchy and its attributes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import actionq

KINDS = [
    (actionq.InvalidInputError, "VALIDATION_ERROR", 422),
    (actionq.NotFoundError, "NOT_FOUND", 404),
    (actionq.NotWhitelistedError, "FORBIDDEN", 403),
    (actionq.ConflictError, "CONFLICT", 409),
    (actionq.StorageError, "STORAGE_ERROR", 503),
]


@pytest.mark.parametrize(("cls", "code", "status"), KINDS)
def test_hierarchy_and_class_attributes(cls: type[actionq.ActionQueueError], code: str, status: int) -> None:
    assert issubclass(cls, actionq.ActionQueueError)
    assert issubclass(actionq.ActionQueueError, Exception)
    assert cls.code == code and cls.http_status == status
    assert cls.__module__ == "actionq"


def test_raised_errors_carry_their_attributes() -> None:
    q = actionq.ActionQueue()
    q.create_server("s1")
    raised: dict[type, actionq.ActionQueueError] = {}
    calls: list[Callable[[], object]] = [
        lambda: q.create_server("bad id"),
        lambda: q.get_action(1),
        lambda: q.create_action("s1", "format_disk"),
        lambda: q.create_server("s1"),
    ]
    for call in calls:
        with pytest.raises(actionq.ActionQueueError) as info:
            call()
        raised[type(info.value)] = info.value
    for cls, code, status in KINDS[:4]:
        err = raised[cls]
        assert (err.code, err.http_status) == (code, status)
        assert err.message and str(err) == err.message
        assert err.args == (err.message,)
        assert err.existing_action_id is None


def test_errors_can_be_raised_by_users() -> None:
    with pytest.raises(actionq.NotFoundError) as info:
        raise actionq.NotFoundError("custom")
    assert info.value.code == "NOT_FOUND"
    assert str(info.value) == "custom" == info.value.message
    assert info.value.existing_action_id is None
