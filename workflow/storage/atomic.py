"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A reader (or a rerun after a kill) sees either the old file, no file, or the complete new one,
never a half-written artifact.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix last: some writers (matplotlib, numpy) pick the format from it
    suffix = suffix if suffix is not None else path.suffix
    _remove_stale_temporaries(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); artifacts get the usual permissions of new files
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_stale_temporaries(path: Path, suffix: str) -> None:
    """Remove temporaries of this target left by a writer killed before its cleanup (SIGKILL). One
    job writes a target at a time (Snakemake locks its outputs), so any left is stale."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]+{re.escape(suffix)}")
    for old in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if pattern.fullmatch(old.name):
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_marked_block(path: str | os.PathLike, begin: str, end: str, body: str) -> None:
    """Replace what stands between the one line ``begin`` and the one line ``end`` of a text file
    with ``body``, atomically (a generated part of a hand-written page)."""
    path = Path(path)
    text = path.read_text()
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"{path} needs exactly one line {begin!r} and one {end!r} around the block written here")
    head, rest = text.split(begin, 1)
    write_text(path, f"{head}{begin}\n{body.strip()}\n{end}{rest.split(end, 1)[1]}")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
