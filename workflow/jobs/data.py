"""Stage data: load, split and standardise the data set once."""

from __future__ import annotations

import logging
import os

from ..storage.prepared import write_prepared

log = logging.getLogger(__name__)


def prepare_data(data_cfg: dict, out: str | os.PathLike) -> None:
    """Load and split the data set once; every later job reads this file."""
    from ..storage.datasets import load_dataset

    ds = load_dataset(data_cfg["dataset"], data_cfg["root"], split_seed=data_cfg["split_seed"],
                      test_fraction=data_cfg["test_fraction"], n_train=data_cfg["n_train"],
                      n_test=data_cfg["n_test"], download=data_cfg["download"])
    write_prepared(out, ds, data_cfg)
    log.info("%s: %d train / %d test examples, input %s, %d classes", ds.name, len(ds.y_train), len(ds.y_test),
             ds.input_shape, ds.n_classes)
