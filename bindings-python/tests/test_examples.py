"""The embedding walk-throughs in examples/python run as the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("quickstart.py", "completed, exit 0"),
        ("custom_whitelist.py", "refused install_package"),
    ],
)
def test_walk_through_runs(script: str, says: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert says in result.stdout, result.stdout
