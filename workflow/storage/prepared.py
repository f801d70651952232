"""The prepared data file (format ``bnn-dataset``): the split, standardised data every job reads.

An .npz holding x_train, y_train, x_test, y_test, the data set's name, its number of classes and
the data config it was made from (JSON), so a posterior trained on one split is never evaluated on
another.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .artifacts import ArtifactError
from .atomic import atomic_path

DATA_FORMAT = "bnn-dataset"


def write_prepared(out: str | os.PathLike, ds, data_cfg: dict) -> None:
    with atomic_path(out) as tmp:
        np.savez(tmp, format=DATA_FORMAT, name=ds.name, n_classes=ds.n_classes, config=json.dumps(data_cfg),
                 x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)


def load_prepared(path: str | os.PathLike) -> dict:
    """The prepared data set as torch tensors (CPU), validated."""
    import torch

    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != DATA_FORMAT:
                raise ValueError(f"format {z['format']!r}")
            data = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            name, n_classes, data_cfg = str(z["name"]), int(z["n_classes"]), json.loads(str(z["config"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ArtifactError(f"{path}: not a prepared data set written by 'prepare-data' ({err})") from err
    out = {k: torch.from_numpy(v) for k, v in data.items()}
    out.update(name=name, n_classes=n_classes, input_shape=tuple(data["x_train"].shape[1:]), config=data_cfg)
    return out


def data_identity(data_cfg: dict) -> dict:
    """The data settings that decide the examples (not where the files are read from)."""
    return {k: v for k, v in data_cfg.items() if k not in ("root", "download")}
