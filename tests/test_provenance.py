"""Provenance (workflow/storage/provenance.py) and the prepared data file (workflow/storage/prepared.py)."""

import numpy as np
import pytest

from workflow.storage import provenance
from workflow.storage.artifacts import ArtifactError
from workflow.storage.prepared import data_identity, load_prepared, write_prepared


def test_source_date_epoch_fixes_the_creation_time(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    assert provenance.creation_time() == "1970-01-02T00:00:00+00:00"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert provenance.creation_time().startswith("20")


def test_versions_and_revision_name_the_libraries_and_the_commit():
    versions = provenance.library_versions()
    assert set(versions) >= {"python", "torch", "numpy", "h5py", "snakemake"}
    assert versions["numpy"] == np.__version__
    rev = provenance.code_revision()
    assert rev == "unknown" or len(rev.removesuffix("-dirty")) == 40


class Digits:
    name, n_classes = "digits", 3
    x_train, y_train = np.ones((4, 2), np.float32), np.array([0, 1, 2, 0])
    x_test, y_test = np.zeros((2, 2), np.float32), np.array([1, 2])


def test_prepared_data_round_trips_and_wrong_files_are_refused(tmp_path):
    write_prepared(tmp_path / "d.npz", Digits, {"dataset": "digits", "root": "/r"})
    data = load_prepared(tmp_path / "d.npz")
    assert data["n_classes"] == 3 and data["input_shape"] == (2,) and data["config"]["root"] == "/r"
    assert data["y_test"].tolist() == [1, 2]
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ArtifactError, match="other.npz: not a prepared data set written by 'prepare-data'"):
        load_prepared(tmp_path / "other.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:100])
    with pytest.raises(ArtifactError, match="cut.npz: not a prepared data set"):
        load_prepared(tmp_path / "cut.npz")


def test_where_data_is_read_from_is_not_its_identity():
    assert data_identity({"dataset": "mnist", "root": "/a", "download": True, "n_train": 5}) == {
        "dataset": "mnist", "n_train": 5}
