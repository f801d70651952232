"""What "identical artifacts" means in the fault and determinism tests: every number and every
recorded setting, bit for bit; only the creation time (and the figures' embedded dates) may differ."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

# attributes that record how a file came about, not what it holds: when it was written, and from
# which checkpoint epoch / iteration a resumed job went on
VOLATILE_ATTRS = {"created", "resumed_from"}


def _attrs(obj) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()
            if k not in VOLATILE_ATTRS}


def h5_digest(path: Path) -> str:
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        h.update(json.dumps(_attrs(f), sort_keys=True, default=str).encode())

        def visit(name, obj):
            h.update(name.encode())
            h.update(json.dumps(_attrs(obj), sort_keys=True, default=str).encode())
            if isinstance(obj, h5py.Dataset):
                value = obj[()]
                h.update(str(obj.dtype).encode() + str(obj.shape).encode())
                h.update(value if isinstance(value, bytes) else np.ascontiguousarray(value).tobytes())

        f.visititems(visit)
    return h.hexdigest()


def npz_digest(path: Path) -> str:
    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as z:
        for k in sorted(z.files):
            h.update(k.encode() + np.ascontiguousarray(z[k]).tobytes())
    return h.hexdigest()


def artifact_digests(root: Path) -> dict[str, str]:
    """relative path -> digest of every artifact below ``root``: HDF5 posteriors and alignments, prepared
    data, and the CSV / Markdown / LaTeX / HTML tables. Logs, figures (they embed dates) and Snakemake's own
    folder are left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or "/logs/" in f"/{rel}" or rel.startswith(".snakemake"):
            continue
        if path.suffix == ".h5":
            out[rel] = h5_digest(path)
        elif path.suffix == ".npz":
            out[rel] = npz_digest(path)
        elif path.suffix in (".csv", ".md", ".tex", ".html"):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Artifacts missing on either side or holding other content."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
