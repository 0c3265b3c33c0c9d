"""The book's examples cannot rot: every fenced block of README.md and the
guide (docs/README.md, docs/guide/*.md) says what it is, and is run or
checked by what it says (``make docs``).

Info strings: the language, then flags.

- ``python``: run, in a fresh directory with a ``data/`` folder, by this
  venv's Python; ``python no_run``: compiled only (top-level ``await``
  allowed: a snippet of an async program).
- ``sh``: run by ``bash -e`` in a fresh directory, this venv's tools first on
  the ``PATH``, port 8080 swapped for a free one; whatever it starts in the
  background is killed after; ``sh no_run``: ``bash -n`` (syntax only), for
  the commands that install, deploy or build.
- ``rust``: a doctest of the crate (``cargo test -p actionq --doc
  BookGuide``): the page must be one that core/src/lib.rs includes;
  ``rust ignore``: run by the test named in :data:`TESTED_ELSEWHERE`.
- ``json``, ``toml``, ``yaml``: parsed; ``c``: compiled against
  ``bindings-c/include`` (``gcc -fsyntax-only``).
- ``text``, ``console`` (a transcript), ``sql``: shown, not run.

A block without a language fails: not being run must be a choice.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
FLAGS = {
    "python": {"no_run"},
    "sh": {"no_run"},
    "rust": {"ignore"},
    "json": set(),
    "toml": set(),
    "yaml": set(),
    "c": set(),
    "text": set(),
    "console": set(),
    "sql": set(),
}
# Blocks a test of their own runs as written (with what the book cannot give
# them: a config in a variable, a manual clock): page and language -> test.
TESTED_ELSEWHERE = {
    ("docs/guide/policy-and-audit.md", "rust"): "core/tests/readme_policy.rs",
    ("docs/guide/policy-and-audit.md", "python"): "bindings-python/tests/test_policy.py",
}
RUN_TIMEOUT = 180


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    flags: frozenset[str]
    text: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(page: Path, root: Path = ROOT) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    name = str(page.relative_to(root))
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```(.*)$", lines[i])
        if not opening:
            i += 1
            continue
        indent, words = len(opening.group(1)), re.split(r"[\s,]+", opening.group(2).strip())
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        found.append(Block(name, i - len(body), words[0], frozenset(w for w in words[1:] if w), "\n".join(body) + "\n"))
        i += 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def of(language: str, *, flags: frozenset[str] = frozenset()) -> list[Block]:
    return [b for b in BLOCKS if b.language == language and b.flags == flags]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_python(code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    (folder / "data").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=clean_env()
    )


def run_shell(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``bash -e`` on ``script`` in ``folder``, in a session of its own that is
    killed after (a server it left in the background included). The output
    goes to a file: a pipe would stay open as long as that server."""
    output = folder / "shell-output.txt"
    with output.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-e", "-c", script.replace("8080", str(free_port()))],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            start_new_session=True,
        )
        try:
            shell.wait(timeout=RUN_TIMEOUT)
        finally:
            try:
                os.killpg(shell.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            shell.wait()
    return subprocess.CompletedProcess(shell.args, shell.returncode, output.read_text(), "")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONQ_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def compiles(code: str, name: str) -> None:
    compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def test_every_block_says_what_it_is() -> None:
    unknown = [f"{b}: ```{b.language} {' '.join(b.flags)}" for b in BLOCKS if b.language not in FLAGS or not b.flags <= FLAGS[b.language]]
    assert not unknown, "give each block a language (and only the flags the module docstring lists):\n" + "\n".join(unknown)


@pytest.mark.parametrize("block", of("python"), ids=str)
def test_python_blocks_run(block: Block, tmp_path: Path) -> None:
    done = run_python(block.text, tmp_path)
    assert done.returncode == 0, f"{block}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("block", of("python", flags=frozenset({"no_run"})), ids=str)
def test_python_snippets_compile(block: Block) -> None:
    compiles(block.text, str(block))


@pytest.mark.parametrize("block", of("sh"), ids=str)
def test_shell_blocks_run(block: Block, tmp_path: Path) -> None:
    done = run_shell(block.text, tmp_path)
    assert done.returncode == 0, f"{block}:\n{done.stdout}"


@pytest.mark.parametrize("block", of("sh", flags=frozenset({"no_run"})), ids=str)
def test_shell_commands_parse(block: Block) -> None:
    done = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert done.returncode == 0, f"{block}:\n{done.stderr}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language in ("json", "toml", "yaml")], ids=str)
def test_config_blocks_parse(block: Block) -> None:
    parse = {"json": json.loads, "toml": tomllib.loads, "yaml": yaml.safe_load}[block.language]
    parse(block.text)


@pytest.mark.parametrize("block", of("c"), ids=str)
def test_c_blocks_compile(block: Block) -> None:
    done = subprocess.run(
        ["gcc", "-fsyntax-only", "-Wall", "-Werror", "-I", str(ROOT / "bindings-c" / "include"), "-x", "c", "-"],
        input=block.text,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{block}:\n{done.stderr}"


def test_rust_blocks_are_doctests_or_tested_elsewhere() -> None:
    lib = (ROOT / "core" / "src" / "lib.rs").read_text(encoding="utf-8")
    included = {f"docs/{m}" for m in re.findall(r'#\[doc = include_str!\("\.\./\.\./docs/([^"]+)"\)\]', lib)}
    assert included, "core/src/lib.rs includes no book page as doctests"
    for block in of("rust"):
        assert block.page in included, f"{block}: a rust block on a page core/src/lib.rs does not include"
    for block in [b for b in BLOCKS if b.flags & {"ignore", "no_run"} and b.language in ("rust", "python")]:
        if block.language == "python" and (block.page, "python") not in TESTED_ELSEWHERE:
            continue  # a snippet, compiled above
        test = TESTED_ELSEWHERE.get((block.page, block.language))
        assert test, f"{block}: marked {set(block.flags)} but no test runs it"
        assert block.page in (ROOT / test).read_text(encoding="utf-8"), f"{test} does not read {block.page}"


def test_the_checks_catch_what_they_guard(tmp_path: Path) -> None:
    # The runners fail on a failing example, or every example would pass.
    assert run_python("raise SystemExit(3)", tmp_path).returncode == 3
    assert run_python("open('data/x', 'w').write('y')", tmp_path).returncode == 0
    assert run_shell("false\necho not reached", tmp_path).returncode != 0
    assert run_shell("sleep 600 &\necho ok", tmp_path).stdout == "ok\n"
    with pytest.raises(SyntaxError):
        compiles("def f(:\n", "x")
    compiles("await something()\n", "x")
    page = tmp_path / "page.md"
    page.write_text("a\n```\nno language\n```\n```sh no_run\nmake x\n```\n")
    found = [(b.language, set(b.flags), b.text) for b in blocks_of(page, tmp_path)]
    assert found == [("", set(), "no language\n"), ("sh", {"no_run"}, "make x\n")]
