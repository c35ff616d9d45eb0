"""Every code block in README.md and docs/*.md runs, as written.

The convention (any new docs/*.md is picked up by itself):

* ```python blocks run as standalone scripts, each in a fresh temporary
  directory (so ``sqlite:///bus.db`` is a fresh file);
* ```bash, ```sh and ```shell blocks run with ``bash -e`` in a fresh
  temporary directory, with ``tidings`` on PATH (this interpreter's bin)
  and TIDINGS_URL pointing at a fresh SQLite file there;
* ```text and ```console blocks (output, things that need a server, …)
  and other labelled blocks (json, toml, …) are not run;
* a fence with no language, and an indented code block (four spaces after
  a blank line), are refused: fence it, with a language.

A failure names the file, the block's index in it and its first line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
TIMEOUT_S = 60  # a block should take a few seconds; this is for a loaded machine


class Block(NamedTuple):
    path: Path
    index: int  # 0-based, among the fenced blocks of its file
    line: int  # 1-based line of its opening fence
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}#{self.index}(line {self.line})"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    found: list[Block] = []
    opened: tuple[str, int, str] | None = None  # fence, line, language
    body: list[str] = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        m = FENCE.match(text)
        if opened is None and m:
            opened, body = (m.group(1), number, m.group(2).lower()), []
        elif opened is not None and text.strip() == opened[0]:
            found.append(Block(path, len(found), opened[1], opened[2], "\n".join(body) + "\n"))
            opened = None
        elif opened is not None:
            body.append(text)
    assert opened is None, f"{path.name}: the fence opened on line {opened[1]} is never closed"
    return found


def indented(path: Path) -> list[int]:
    """Lines that open an indented (unfenced, unlabelled) code block."""
    found, fenced, previous = [], False, ""
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(text):
            fenced = not fenced
        elif not fenced and not previous.strip() and text.startswith(("    ", "\t")):
            found.append(number)
        previous = text
    return found


ALL = [b for doc in documents() for b in blocks(doc)]


def block_env(tmp_path: Path) -> dict[str, str]:
    """``tidings`` of this interpreter first on PATH; a fresh SQLite file."""
    return {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "TIDINGS_URL": f"sqlite:///{tmp_path / 'docs.db'}",
    }


@pytest.mark.parametrize("block", [b for b in ALL if b.language in RUN], ids=lambda b: b.name)
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    if RUN[block.language] == "python":
        script = tmp_path / "block.py"
        script.write_text(block.code)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-e", "-c", block.code]
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=block_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.name} exited {done.returncode}\n--- block\n{block.code}"
        f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    )


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_is_labelled_and_no_design_link(doc: Path) -> None:
    """A bare fence leaves a reader (and this test) guessing whether it
    runs; the design notes outside this repository are not a reference."""
    unlabelled = [b.name for b in blocks(doc) if not b.language]
    assert unlabelled == [], "label these blocks (python, bash, text, console, …)"
    assert indented(doc) == [], "fence these indented blocks, with a language"
    assert "DESIGN.md" not in doc.read_text(), "link docs/contracts.md instead"


def test_shown_output_is_what_the_command_prints(tmp_path: Path) -> None:
    """docs/cli.md shows what ``produce --print-acks`` prints: the text block
    right after the example is its exact stdout."""
    doc = blocks(ROOT / "docs" / "cli.md")
    (example,) = [b for b in doc if b.language == "bash" and "--print-acks" in b.code]
    shown = doc[example.index + 1]
    assert shown.language == "text"
    done = subprocess.run(
        ["bash", "-e", "-c", example.code],
        cwd=tmp_path,
        env=block_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=True,
    )
    assert done.stdout.splitlines()[-2:] == shown.code.splitlines()
