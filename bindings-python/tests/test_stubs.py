"""The `.pyi` stubs match the built module, and the typed code checks with mypy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # The tests' shared helpers (lock_support) import as top-level modules, as
    # pytest puts bindings-python/tests on sys.path.
    env = {**os.environ, "MYPYPATH": str(ROOT / "bindings-python" / "tests")}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )


def test_stubtest_matches_runtime() -> None:
    result = run(
        "mypy.stubtest",
        "actionq",
        "--mypy-config-file",
        str(ROOT / "pyproject.toml"),
        "--allowlist",
        str(Path(__file__).with_name("stubtest-allowlist.txt")),
    )
    assert result.returncode == 0, result.stdout + result.stderr


BINDING_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bindings-python" / "tests").glob("*.py"))


@pytest.mark.parametrize(
    "paths",
    [
        # the package, actionq.server included, its own tests and the bench
        ["bindings-python/python/actionq", *BINDING_TESTS, "bindings-python/bench"],
        ["bindings-python/tests/server"],  # the FastAPI backend's tests
        ["bindings-python/tests/browser"],  # the approvers' page in Chromium
        ["examples/python"],  # the embedding walk-throughs
    ],
    ids=["package", "server-tests", "browser-tests", "examples"],
)
def test_mypy_strict(paths: list[str]) -> None:
    # Separate runs: each test folder has its own top-level `conftest` module.
    result = run("mypy", "--config-file", str(ROOT / "pyproject.toml"), *paths)
    assert result.returncode == 0, result.stdout + result.stderr
