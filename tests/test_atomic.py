"""Atomic artifact writes (workflow/storage/atomic.py), and a full disk while an artifact is written.

A full disk is simulated by making the write raise ENOSPC part-way, after some bytes or datasets
were written: the target must then be absent (or the old complete file), with no temporary left.
"""

import errno
import json
import logging
import os
import stat

import pandas as pd
import pytest

from workflow.storage.artifacts import ArtifactError, read_posterior, write_posterior
from workflow.storage.atomic import atomic_path, write_csv, write_text

from .conftest import make_mlp
from .test_artifacts import samples_posterior


def disk_full():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_success_renames_into_place_with_the_usual_permissions(tmp_path):
    write_text(tmp_path / "sub" / "a.txt", "hello")
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"
    assert os.listdir(tmp_path / "sub") == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "sub" / "a.txt").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("old", [None, "old complete content"])
def test_disk_full_part_way_leaves_no_file_or_the_old_one(tmp_path, old):
    path = tmp_path / "t.csv"
    if old is not None:
        path.write_text(old)
    with pytest.raises(OSError) as err, atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("a,b\n1,")  # half a table, flushed to the temporary
            f.flush()
            raise disk_full()
    assert err.value.errno == errno.ENOSPC
    if old is None:
        assert os.listdir(tmp_path) == []
    else:
        assert os.listdir(tmp_path) == ["t.csv"] and path.read_text() == old


def test_disk_full_while_writing_a_csv(tmp_path, monkeypatch):
    def to_csv_until_full(self, target, **kwargs):
        with open(target, "w") as f:
            f.write("x\n1\n")
        raise disk_full()

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv_until_full)
    with pytest.raises(OSError):
        write_csv(tmp_path / "table.csv", pd.DataFrame({"x": [1, 2]}))
    assert os.listdir(tmp_path) == []


def test_disk_full_in_the_middle_of_an_hdf5_posterior(tmp_path, monkeypatch):
    """Some datasets are written, then the disk is full: no posterior a later step could read."""
    import workflow.storage.artifacts as artifacts

    _, _, params = make_mlp()
    real, calls = artifacts._dataset, []

    def dataset_until_full(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise disk_full()
        return real(*args, **kwargs)

    monkeypatch.setattr(artifacts, "_dataset", dataset_until_full)
    path = tmp_path / "seed0.h5"
    with pytest.raises(OSError):
        write_posterior(path, samples_posterior(params))
    assert len(calls) == 3  # two datasets were really written before the failure
    assert os.listdir(tmp_path) == []
    with pytest.raises((ArtifactError, FileNotFoundError)):
        read_posterior(path)


def test_a_train_job_on_a_full_disk_fails_with_one_line_and_no_artifact(tmp_path, monkeypatch, caplog):
    """The job's command line reports the full disk in one line; Snakemake then sees a failed job."""
    import workflow.storage.artifacts as artifacts
    from workflow import cli
    data = tmp_path / "digits.npz"
    assert cli.main(["prepare-data", "--out", str(data), "--config",
                     json.dumps({"data": {"dataset": "digits", "n_train": 100, "n_test": 50}})]) == 0

    def full(*args, **kwargs):
        raise disk_full()

    monkeypatch.setattr(artifacts, "_dataset", full)
    out = tmp_path / "post" / "seed0.h5"
    cfg = {"name": "t", "model": {"architecture": "mlp", "hidden": [8]}, "ensemble": {"epochs": 1, "checkpoint_every": 0}}
    with caplog.at_level(logging.ERROR):
        code = cli.main(["train", "--method", "ensemble", "--data", str(data), "--seed", "0", "--out", str(out),
                         "--config", json.dumps(cfg)])
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0], errors
    assert not out.exists() and os.listdir(out.parent) == []


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """SIGKILL skips the cleanup: the next write of the same target removes what was left."""
    stale = tmp_path / ".seed0.h5.abc123.h5"
    stale.write_bytes(b"half")
    other = tmp_path / ".seed1.h5.abc123.h5"  # another target's temporary: not ours to touch
    other.write_bytes(b"half")
    write_text(tmp_path / "seed0.h5", "complete")
    assert sorted(os.listdir(tmp_path)) == [".seed1.h5.abc123.h5", "seed0.h5"]
