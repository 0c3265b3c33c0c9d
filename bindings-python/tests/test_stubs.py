"""The `.pyi` stubs match the built module, and the typed code checks with mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_stubtest_matches_runtime() -> None:
    result = run("mypy.stubtest", "actionq", "--mypy-config-file", str(ROOT / "pyproject.toml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "paths",
    [
        ["bindings-python/python/actionq", "bindings-python/tests", "bindings-python/bench"],
        ["examples/python"],  # the quickstart, the FastAPI backend and its tests
    ],
)
def test_mypy_strict(paths: list[str]) -> None:
    # Two runs: each test folder has its own top-level `conftest` module.
    result = run("mypy", "--config-file", str(ROOT / "pyproject.toml"), *paths)
    assert result.returncode == 0, result.stdout + result.stderr
