"""The `.pyi` stubs match the built module, and the typed code checks with mypy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_stubtest_matches_runtime() -> None:
    result = run("mypy.stubtest", "actionq", "--mypy-config-file", str(ROOT / "pyproject.toml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_package_examples_and_tests() -> None:
    result = run(
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "bindings-python/python/actionq",
        "bindings-python/tests",
        "examples/python",
    )
    assert result.returncode == 0, result.stdout + result.stderr
