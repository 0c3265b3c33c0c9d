"""Code, tests and docs cite the contract pages under docs/, and every citation resolves.

Three checks over the tracked files (``git ls-files``):

- no file outside ``docs/`` cites the old contract file that lived outside the
  repository (the upper-case word, or its file name): a reader of the repository
  cannot open it, so cite ``docs/contract/<page>.md#<anchor>`` instead;
- no file cites an issue number (the word "issue" and a number, ``#`` and a
  number in parentheses, "fixes"/"closes" and ``#`` and a number): the reason
  belongs in the text, the history in git;
- every ``docs/<page>.md#<anchor>`` cited anywhere, and every relative link
  between docs pages, names a page that exists and a heading it has (anchors as
  mdBook makes them).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Spelled in two parts so that this file does not match itself.
OLD_CONTRACT = re.compile(r"\b" + "SP" + r"EC\b|" + "SP" + r"EC\.md")
ISSUE_NUMBER = re.compile(r"\b[Ii]ssues? ?#?\d+\b|\(#\d+\)|\b(?:[Ff]ixes|[Cc]loses) #\d+\b")
DOCS_CITATION = re.compile(r"\bdocs/[\w./-]+?\.md(?:#[\w-]*)?")
MARKDOWN_LINK = re.compile(r"\]\(([^()\s]+?\.md)(#[^()\s]*)?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def tracked_text_files() -> Iterator[tuple[str, list[str]]]:
    """(path relative to the root, lines) of every tracked text file."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary (images, fuzz corpus)
        yield name, text.splitlines()


def anchor_of(heading: str, seen: dict[str, int]) -> str:
    """The id mdBook gives a heading (duplicates get ``-1``, ``-2``, ...)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    anchor = "".join(
        ch.lower() if ch.isalnum() or ch in "_-" else "-" if ch.isspace() else ""
        for ch in text
    )
    count = seen.get(anchor, 0)
    seen[anchor] = count + 1
    return anchor if count == 0 else f"{anchor}-{count}"


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page, fenced code skipped."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := HEADING.match(line)):
            found.add(anchor_of(m.group(2), seen))
    return found


def missing_target(page: Path, anchor: str) -> str | None:
    """Why ``page#anchor`` does not resolve, or None when it does."""
    if not page.is_file():
        return "no such page"
    if anchor and anchor not in anchors(page):
        return f"no heading with anchor #{anchor}"
    return None


def test_no_citation_of_the_old_contract_file() -> None:
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name, lines in tracked_text_files()
        if not name.startswith("docs/")
        for number, line in enumerate(lines, 1)
        if OLD_CONTRACT.search(line)
    ]
    assert not offenders, (
        "cite the docs/contract pages instead (docs/contract/README.md lists them):\n"
        + "\n".join(offenders)
    )


def test_no_issue_numbers_cited() -> None:
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name, lines in tracked_text_files()
        for number, line in enumerate(lines, 1)
        if ISSUE_NUMBER.search(line)
    ]
    assert not offenders, "say why in words, not by issue number:\n" + "\n".join(offenders)


def test_every_docs_citation_resolves() -> None:
    broken = []
    for name, lines in tracked_text_files():
        for number, line in enumerate(lines, 1):
            targets = [
                (ROOT / cited.split("#")[0], cited.partition("#")[2])
                for cited in DOCS_CITATION.findall(line)
            ]
            if name.startswith("docs/") and name.endswith(".md"):
                targets += [
                    ((ROOT / name).parent / link, anchor.lstrip("#"))
                    for link, anchor in MARKDOWN_LINK.findall(line)
                    if "://" not in link
                ]
            for page, anchor in targets:
                if why := missing_target(page.resolve(), anchor):
                    shown = page.resolve().relative_to(ROOT) if page.resolve().is_relative_to(ROOT) else page
                    broken.append(f"{name}:{number}: {shown}#{anchor}: {why}")
    assert not broken, "citations that do not resolve:\n" + "\n".join(broken)


def test_the_checks_catch_what_they_guard() -> None:
    # The patterns and the anchor rule, on known text: a check that matches
    # nothing would pass forever.
    assert OLD_CONTRACT.search("the " + "SP" + "EC's create rules")
    assert OLD_CONTRACT.search("see " + "SP" + "EC.md")
    assert not OLD_CONTRACT.search("let spec = Spec { argv };")
    # Spelled in parts, like the patterns, so that this file does not match itself.
    assert ISSUE_NUMBER.search("Iss" + "ue 22's attack") and ISSUE_NUMBER.search("(iss" + "ue #10)")
    assert ISSUE_NUMBER.search("the hashing fix (" + "#13)")
    assert not ISSUE_NUMBER.search("Could not approve #12.")
    assert DOCS_CITATION.findall("(docs/contract/errors.md#kinds).") == ["docs/contract/errors.md#kinds"]
    seen: dict[str, int] = {}
    assert anchor_of("Rule 1: malformed input", seen) == "rule-1-malformed-input"
    assert anchor_of("`ttl_seconds` and the [clock](x.md)", seen) == "ttl_seconds-and-the-clock"
    assert anchor_of("Rule 1: malformed input", seen) == "rule-1-malformed-input-1"
    errors = ROOT / "docs/contract/errors.md"
    assert missing_target(errors, "kinds") is None
    assert missing_target(errors, "no-such-heading") is not None
    assert missing_target(ROOT / "docs/contract" / "no-such-page.md", "") is not None
