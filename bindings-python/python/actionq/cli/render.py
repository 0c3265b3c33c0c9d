"""What the command line prints for people: tables that fit the terminal (80
columns when it is not one), one line per event, an action field by field."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["action_lines", "event_line", "params_text", "short_time", "table", "width"]

_GAP = "  "


def width() -> int:
    """Columns to fill: the terminal's (``COLUMNS`` first), else 80."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room - 1, 0)] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], flexible: Sequence[int], columns: int | None = None) -> str:
    """Rows under headers, left-aligned. When the table is wider than
    ``columns``, the ``flexible`` columns (indexes) give up room, widest
    first, and their cells end in "…"."""
    room = width() if columns is None else columns
    cells = [[c.replace("\n", " ") for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    excess = sum(widths) + len(_GAP) * (len(widths) - 1) - room
    while excess > 0:
        i = max(flexible, key=lambda k: widths[k])
        floor = max(len(headers[i]), 4)
        if widths[i] <= floor:
            break
        cut = min(excess, widths[i] - floor)
        widths[i] -= cut
        excess -= cut
    lines = []
    for row in [list(headers), *cells]:
        text = _GAP.join(_clip(c, w).ljust(w) for c, w in zip(row, widths)).rstrip()
        lines.append(_clip(text, room))
    return "\n".join(lines)


def short_time(stamp: str | None) -> str:
    """``2026-12-07T01:45:13.123Z`` as ``12-07 01:45:13`` (UTC); "-" for none."""
    if not stamp:
        return "-"
    date, _, clock = stamp.partition("T")
    return f"{date[5:]} {clock[:8]}"


def params_text(params: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "-"


def event_line(event: Mapping[str, Any], columns: int | None = None) -> str:
    """One audit event on one line: id, time, who, what changed, detail."""
    kind = event.get("kind", "action")
    if kind == "action":
        what = f"action {event['action_id']} on {event['subject']}: "
        what += f"{event['from_status'] or 'new'} -> {event['to_status']}"
    else:
        what = f"{kind} {event['subject']}"
    detail = f" ({event['detail']})" if event.get("detail") else ""
    line = f"#{event['id']} {short_time(event['at'])} {event['by']}: {what}{detail}"
    return _clip(line, width() if columns is None else columns)


def action_lines(action: Mapping[str, Any]) -> list[str]:
    """An action field by field, for ``show``."""
    fields = [
        ("id", action["id"]),
        ("server", action["server_id"]),
        ("type", action["action_type"]),
        ("status", action["status"]),
        ("params", params_text(action.get("params") or {})),
        ("command", action["command"]),
        ("created", f"{action['created_at']} by {action['created_by']}"),
    ]
    for approval in action.get("approvals") or []:
        fields.append(("approval", f"{approval['at']} by {approval['by']}"))
    for label, when, who in (
        ("approved", "approved_at", "approved_by"),
        ("rejected", "rejected_at", "rejected_by"),
        ("cancelled", "cancelled_at", "cancelled_by"),
    ):
        if action.get(when):
            fields.append((label, f"{action[when]} by {action[who]}"))
    if action.get("rejection_reason"):
        fields.append(("reason", action["rejection_reason"]))
    for label, key in (("started", "executed_at"), ("lease until", "lease_expires_at"), ("completed", "completed_at")):
        if action.get(key):
            fields.append((label, action[key]))
    if action.get("exit_code") is not None:
        fields.append(("exit code", action["exit_code"]))
    fields.append(("digest", action["digest"]))
    lines = [f"{label + ':':<13}{value}" for label, value in fields]
    for stream in ("stdout", "stderr"):
        if action.get(stream):
            lines.append(f"--- {stream} ---")
            lines.extend(str(action[stream]).rstrip("\n").splitlines())
    return lines
