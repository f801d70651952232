"""Provenance recorded in every artifact: library versions, code revision, creation time, and where
it was computed (device, GPU name, torch / CUDA versions, numerical switches)."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

_LIBRARIES = ("torch", "numpy", "scipy", "h5py", "pandas", "scikit-learn", "snakemake")


@functools.cache
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    return versions


@functools.cache
def code_revision() -> str:
    """git commit of the package's checkout (with -dirty for local edits), else 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=here,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def creation_time() -> str:
    # SOURCE_DATE_EPOCH makes outputs byte-reproducible when a user wants that
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch else _dt.datetime.now(_dt.timezone.utc)
    return t.isoformat(timespec="seconds")


def provenance() -> dict:
    from ..device import job_record

    return {"versions": library_versions(), "code_revision": code_revision(), "created": creation_time(),
            "compute": job_record()}
