"""Checks that the OpenAPI document tells the truth: schemathesis (every check,
every phase, the stateful one following the document's links) against a real
``actionq-server`` on loopback. ``make test-openapi`` runs it; exits with
schemathesis' own code (0: no failure).

    python schemathesis_run.py [--max-examples N] [extra schemathesis options]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from serve_support import BIN, BOOTSTRAP_KEY, serve  # noqa: E402


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="actionq-schemathesis-") as tmp, serve(Path(tmp)) as served:
        # Servers for the generated requests to find (the stateful phase makes its own).
        for server_id in ("web-1", "db-1"):
            served.admin.post("/servers", json={"id": server_id})
        command = [
            str(BIN / "schemathesis"),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            served.url + "/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--workers",
            "1",
            "--header",
            f"X-API-Key: {BOOTSTRAP_KEY}",
            "--suppress-health-check",
            "too_slow",
            # The events stream never ends by itself; test_push_http.py
            # follows it (its errors, JSON like every route's, are in the document).
            "--exclude-operation-id",
            "stream_events",
            *argv,
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("schemathesis_hooks.py"))}
        return subprocess.run(command, cwd=tmp, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
