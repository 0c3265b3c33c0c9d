"""Embedding actionq with your own whitelist: action types, typed parameters and
conflict policies defined in a config (JSON text or a dict), no recompiling.

Run with ``python examples/python/custom_whitelist.py`` after
``make python-develop`` (or ``pip install .``).
"""

from __future__ import annotations

import actionq

WHITELIST = {
    "actions": {
        "vacuum_journal": {
            "command": "journalctl --vacuum-time={days}d",
            "params": {"days": {"kind": "integer", "min": 1, "max": 30}},
            "conflict": "pending_duplicate",
        },
        "install_package": {
            "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
            "params": {"package": {"kind": "debian_package"}},
            "conflict": {"exclusive_group": "apt"},
        },
        "set_governor": {
            "command": "cpupower frequency-set -g {governor}",
            "params": {"governor": {"kind": "one_of", "values": ["performance", "powersave"]}},
        },
    }
}


def main() -> None:
    queue = actionq.ActionQueue(whitelist=WHITELIST)  # or a SQLite path first
    print("action types:", ", ".join(queue.action_types))
    queue.create_server("db-1")

    vacuum = queue.create_action("db-1", "vacuum_journal", params={"days": 3})
    print(f"#{vacuum.id} {vacuum.status}: argv={vacuum.argv}")
    install = queue.create_action("db-1", "install_package", params={"package": "htop"})
    print(f"#{install.id} {install.status}: argv={install.argv} env={install.env}")

    # Values that fail their validator are refused, never cleaned up.
    refused: list[tuple[str, dict[str, str | int]]] = [
        ("vacuum_journal", {"days": 90}),
        ("install_package", {"package": "htop; reboot"}),
        ("set_governor", {"governor": "turbo"}),
    ]
    for action_type, params in refused:
        try:
            queue.create_action("db-1", action_type, params=params)
        except actionq.NotWhitelistedError as err:
            print(f"refused {action_type} {params}: {err.message}")
    # The default whitelist's types are not in this one.
    try:
        queue.create_action("db-1", "restart_service", "nginx")
    except actionq.NotWhitelistedError as err:
        print(f"refused: {err.message}")


if __name__ == "__main__":
    main()
