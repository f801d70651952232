"""Generated blocks of docs/performance.md: each benchmark that measures a number writes it there
itself, between a pair of markers named after the benchmark, under the command line, the commit and
the date that produced it. Nothing between the markers is typed by hand; the prose around them says
what the rows mean without repeating their numbers.

    <!-- generated:<key> -->
    ...written by the benchmark...
    <!-- /generated:<key> -->
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DOC = REPO / "docs" / "performance.md"


def begin(key: str) -> str:
    return f"<!-- generated:{key} -->"


def end(key: str) -> str:
    return f"<!-- /generated:{key} -->"


def commit(repo: Path = REPO) -> str:
    """The checked-out commit, with "+changes" when the tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+changes" if dirty else "")


# the code a benchmark measures is the code when it started: edits made while it runs are not in it
STARTED_AT = commit()
# how busy the machine was when it started: timings taken beside other work say less
STARTED_LOAD = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def stamp(argv: list[str] | None = None) -> str:
    """One line naming the command, the commit the benchmark started at and the date."""
    args = sys.argv if argv is None else argv
    command = " ".join(["python", os.path.relpath(Path(args[0]).resolve(), REPO)] + list(args[1:]))
    return (f"Written by `{command}` at commit {STARTED_AT} on {datetime.date.today().isoformat()}. "
            f"Load average {STARTED_LOAD:.1f} on {os.cpu_count()} CPUs when it started.")


def write_block(key: str, text: str, doc: Path | str = DOC) -> None:
    """Replace the block ``key`` of ``doc`` with ``text`` (atomically: a crash leaves the old page)."""
    from workflow.storage.atomic import write_marked_block

    write_marked_block(doc, begin(key), end(key), text)


def blocks(doc: Path | str = DOC) -> dict[str, str]:
    """Every generated block of ``doc``: key -> its text."""
    page = Path(doc).read_text()
    found = {}
    for chunk in page.split("<!-- generated:")[1:]:
        key = chunk.split(" -->", 1)[0]
        body = chunk.split(" -->", 1)[1]
        if end(key) not in body:
            raise ValueError(f"{doc}: block {key!r} has no closing {end(key)!r}")
        found[key] = body.split(end(key), 1)[0].strip()
    return found


class Transcript:
    """Prints each line and keeps it, so a benchmark's printed output can become its block."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def block(self) -> str:
        """The stamp and the printed lines as a code block."""
        return "\n".join([stamp(), "", "```", *self.lines, "```"])
