"""Tests for workflow/storage/datasets.py. All dataset files are synthetic, written to tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from workflow.storage import datasets as data
from workflow.storage.datasets import DATASETS, Dataset, DatasetError, load_dataset, read_cifar_batch, read_idx, split_indices

# ---------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
    code = codes[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def fake_images(n: int, seed: int, shape=(28, 28)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def fake_labels(n: int, seed: int, k: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, size=n).astype(np.uint8)


def make_mnist(root: Path, folder: str = "MNIST", n_train: int = 60, n_test: int = 25, t10k_only: bool = False):
    """Write a tiny MNIST-layout dataset, mixing plain and .gz files."""
    raw = root / folder / "raw"
    arrays = {
        "t10k-images-idx3-ubyte": fake_images(n_test, 3),
        "t10k-labels-idx1-ubyte": fake_labels(n_test, 4),
    }
    if not t10k_only:
        arrays["train-images-idx3-ubyte"] = fake_images(n_train, 1)
        arrays["train-labels-idx1-ubyte"] = fake_labels(n_train, 2)
    for i, (name, arr) in enumerate(arrays.items()):
        write_idx(raw / name, arr, gz=i % 2 == 0)
    return arrays


def cifar_batch_bytes(x: np.ndarray, y: np.ndarray, label_key: bytes = b"labels") -> bytes:
    # Original files are Python 2 pickles with bytes keys; protocol 2 + bytes keys mimics them.
    return pickle.dumps({b"batch_label": b"fake", label_key: list(map(int, y)), b"data": x.reshape(len(x), -1)}, 2)


def make_cifar10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = fake_images(4, 10 + i, (3, 32, 32)), fake_labels(4, 20 + i).astype(np.int64)
        (folder / f"data_batch_{i}").write_bytes(cifar_batch_bytes(x, y))
        xs.append(x)
        ys.append(y)
    xt, yt = fake_images(6, 30, (3, 32, 32)), fake_labels(6, 31)
    (folder / "test_batch").write_bytes(cifar_batch_bytes(xt, yt))
    return np.concatenate(xs), np.concatenate(ys)


def tar_gz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# ---------------------------------------------------------------- readers


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "arr",
    [
        np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4),
        np.array([3, -7, 100000], dtype=np.int32),
        np.linspace(-1, 1, 6, dtype=np.float64).reshape(3, 2),
    ],
)
def test_read_idx_round_trip(tmp_path, arr, gz):
    path = write_idx(tmp_path / "a-idx", arr, gz=gz)
    out = read_idx(path)
    assert out.shape == arr.shape and out.dtype == arr.dtype
    np.testing.assert_array_equal(out, arr)
    out[...] = 0  # result must be writable


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x01\x02\x08\x01" + np.asarray([1], ">u4").tobytes() + b"\x00")
    with pytest.raises(DatasetError, match="bad-magic"):
        read_idx(path)


def test_read_idx_bad_dtype_code(tmp_path):
    path = tmp_path / "bad-code"
    path.write_bytes(b"\x00\x00\x42\x01" + np.asarray([1], ">u4").tobytes() + b"\x00")
    with pytest.raises(DatasetError, match="bad-code"):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_read_idx_truncated(tmp_path, cut):
    raw = idx_bytes(fake_images(3, 0, (8, 8)))
    path = tmp_path / "trunc-idx"
    path.write_bytes(raw[:-cut])
    with pytest.raises(DatasetError, match="trunc-idx"):
        read_idx(path)


def test_read_idx_trailing_bytes_and_truncated_gzip(tmp_path):
    raw = idx_bytes(fake_images(2, 0, (4, 4)))
    extra = tmp_path / "extra-idx"
    extra.write_bytes(raw + b"\x00")
    with pytest.raises(DatasetError, match="extra-idx"):
        read_idx(extra)
    badgz = tmp_path / "cut-idx.gz"
    badgz.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(DatasetError, match="cut-idx.gz"):
        read_idx(badgz)
    with pytest.raises(DatasetError, match="nothere"):
        read_idx(tmp_path / "nothere")


@pytest.mark.parametrize("label_key", [b"labels", b"fine_labels"])
def test_read_cifar_batch(tmp_path, label_key):
    x, y = fake_images(5, 0, (3, 32, 32)), np.array([0, 1, 2, 99, 4])
    path = tmp_path / "batch"
    path.write_bytes(cifar_batch_bytes(x, y, label_key))
    xo, yo = read_cifar_batch(path)
    assert xo.dtype == np.uint8 and xo.shape == (5, 3, 32, 32)
    assert yo.dtype == np.int64
    np.testing.assert_array_equal(xo, x)
    np.testing.assert_array_equal(yo, y)


def test_read_cifar_batch_errors(tmp_path):
    path = tmp_path / "short-batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}))
    with pytest.raises(DatasetError, match="short-batch"):
        read_cifar_batch(path)
    garbage = tmp_path / "garbage-batch"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="garbage-batch"):
        read_cifar_batch(garbage)


# ---------------------------------------------------------------- splits


def test_split_indices():
    tr, te = split_indices(101, 0.2, seed=5)
    assert len(te) == 20 and len(tr) == 81
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)  # sorted, no duplicates
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(101))
    tr2, te2 = split_indices(101, 0.2, seed=5)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, split_indices(101, 0.2, seed=6)[1])
    # Both sides stay non-empty at extreme fractions.
    assert len(split_indices(10, 0.01, 0)[1]) == 1 and len(split_indices(10, 0.99, 0)[0]) == 1


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_split_indices_bad_fraction(frac):
    with pytest.raises(DatasetError, match="test_fraction"):
        split_indices(10, frac, 0)


# ---------------------------------------------------------------- digits


def test_digits_offline_shapes_and_split():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", split_seed=0)
    assert isinstance(ds, Dataset) and ds.name == "digits" and ds.n_classes == 10
    assert ds.input_shape == (1, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == round(1797 * 0.25)
    # Uses split_indices: labels are the dataset's labels at those indices (disjoint, complete split).
    tr, te = split_indices(1797, 0.25, 0)
    target = load_digits().target
    np.testing.assert_array_equal(ds.y_train, target[tr])
    np.testing.assert_array_equal(ds.y_test, target[te])

    again = load_dataset("digits", split_seed=0)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    other = load_dataset("digits", split_seed=1)
    assert not np.array_equal(ds.y_test, other.y_test)

    small = load_dataset("digits", test_fraction=0.5)
    assert len(small.x_test) in (898, 899)


def test_standardization():
    ds = load_dataset("digits", split_seed=2)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    # Test data uses train statistics: close to, but not exactly, standardized.
    assert abs(ds.x_test.mean()) < 0.2


def test_standardization_multichannel_and_constant():
    x = np.zeros((4, 2, 3, 3), np.uint8)
    x[:, 1] = np.arange(4, dtype=np.uint8)[:, None, None] * 50
    tr, te = data._standardize(x, x[:2], 255.0)
    assert tr.dtype == np.float32
    np.testing.assert_array_equal(tr[:, 0], 0.0)  # constant channel: std floor, no NaN
    np.testing.assert_allclose(tr[:, 1].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(tr[:, 1].std(), 1.0, atol=1e-6)
    np.testing.assert_array_equal(te, tr[:2])


def test_subsampling():
    full = load_dataset("digits", split_seed=3)
    ds = load_dataset("digits", split_seed=3, n_train=100, n_test=40)
    assert ds.x_train.shape == (100, 1, 8, 8) and ds.x_test.shape == (40, 1, 8, 8)
    again = load_dataset("digits", split_seed=3, n_train=100, n_test=40)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    # Standardized on the subsample itself.
    np.testing.assert_allclose(ds.x_train.mean(), 0.0, atol=1e-5)
    # Test subsample does not depend on n_train.
    np.testing.assert_array_equal(load_dataset("digits", split_seed=3, n_test=40).y_test, ds.y_test)
    assert len(full.y_train) > 100


@pytest.mark.parametrize("kw", [{"n_train": 0}, {"n_train": 10**6}, {"n_test": 0}, {"n_test": 451}, {"n_train": 2.5}])
def test_subsampling_errors(kw):
    with pytest.raises(DatasetError, match="n_train|n_test"):
        load_dataset("digits", **kw)


def test_bad_arguments():
    with pytest.raises(DatasetError) as e:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(e.value)
    with pytest.raises(DatasetError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)
    with pytest.raises(DatasetError, match="split_seed"):
        load_dataset("digits", split_seed=-1)


# ---------------------------------------------------------------- file-based datasets


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like(tmp_path, name, folder):
    arrays = make_mnist(tmp_path, folder)
    ds = load_dataset(name, tmp_path)
    assert ds.x_train.shape == (60, 1, 28, 28) and ds.x_test.shape == (25, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    # Standardization is an increasing affine map of the raw pixels.
    x0 = arrays["train-images-idx3-ubyte"][0].astype(np.float64).ravel()
    assert np.corrcoef(x0, ds.x_train[0].ravel())[0, 1] > 0.9999


def test_plain_file_preferred_over_gz(tmp_path):
    make_mnist(tmp_path)  # t10k images are written as .gz (random pixels)
    raw = tmp_path / "MNIST" / "raw"
    assert (raw / "t10k-images-idx3-ubyte.gz").is_file()
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((25, 28, 28), np.uint8))  # plain, all black
    ds = load_dataset("mnist", tmp_path)
    assert ds.x_test.std() == 0.0  # the plain file was read


def test_mnist_t10k_split(tmp_path):
    arrays = make_mnist(tmp_path, n_test=50, t10k_only=True)
    ds = load_dataset("mnist-t10k", tmp_path, split_seed=4)
    assert len(ds.y_train) == 38 and len(ds.y_test) == 12  # the default test_fraction is 0.25
    tr, te = split_indices(50, 0.25, 4)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"][te])
    np.testing.assert_array_equal(ds.y_train, arrays["t10k-labels-idx1-ubyte"][tr])
    # Train files are not needed for mnist-t10k, but are for mnist.
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)


def test_count_mismatch_names_both_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", fake_images(12, 0))
    write_idx(raw / "t10k-labels-idx1-ubyte", fake_labels(11, 0))
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist-t10k", tmp_path)
    assert "t10k-images-idx3-ubyte" in str(e.value) and "t10k-labels-idx1-ubyte" in str(e.value)


def test_labels_out_of_range(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", fake_images(10, 0))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.full(10, 12, np.uint8))
    with pytest.raises(DatasetError, match="labels outside"):
        load_dataset("mnist-t10k", tmp_path)


def test_cifar10_and_cifar100(tmp_path):
    x_all, y_all = make_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.input_shape == (3, 32, 32) and ds.n_classes == 10
    np.testing.assert_array_equal(ds.y_train, y_all)
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-4)

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    ytr = np.arange(8) * 12
    (folder / "train").write_bytes(cifar_batch_bytes(fake_images(8, 0, (3, 32, 32)), ytr, b"fine_labels"))
    (folder / "test").write_bytes(cifar_batch_bytes(fake_images(3, 1, (3, 32, 32)), [99, 0, 5], b"fine_labels"))
    ds = load_dataset("cifar100", tmp_path, n_train=5)
    assert ds.n_classes == 100 and ds.x_train.shape == (5, 3, 32, 32)
    assert set(ds.y_train) <= set(ytr)


# ---------------------------------------------------------------- missing files and downloads


def test_missing_files_error_lists_paths(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist", tmp_path)
    msg = str(e.value)
    for n in data._IDX_NAMES:
        assert str(tmp_path / "FashionMNIST" / "raw" / n) in msg
    assert "download: true" in msg
    with pytest.raises(DatasetError) as e:
        load_dataset("cifar100", tmp_path)
    assert str(tmp_path / "cifar-100-python" / "train") in str(e.value)
    assert str(tmp_path / "cifar-100-python" / "test") in str(e.value)


def patch_t10k(monkeypatch, tmp_path, n=20):
    """Fake t10k .gz payloads, with the checksum table pointing at them."""
    payloads = {
        "t10k-images-idx3-ubyte": gzip.compress(idx_bytes(fake_images(n, 5))),
        "t10k-labels-idx1-ubyte": gzip.compress(idx_bytes(fake_labels(n, 6))),
    }
    for fname, gz in payloads.items():
        monkeypatch.setitem(data._MD5, f"MNIST/raw/{fname}", (md5(gz), md5(gzip.decompress(gz))))
    return payloads


def test_download_success(tmp_path, monkeypatch):
    payloads = patch_t10k(monkeypatch, tmp_path)
    fetched = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        Path(dest).write_bytes(payloads[url.rsplit("/", 1)[1].removesuffix(".gz")])

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    ds = load_dataset("mnist-t10k", tmp_path, download=True)
    assert len(ds.y_train) == 15 and len(ds.y_test) == 5
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(fetched) == 2
    data.verify_files("mnist-t10k", tmp_path)
    # Files present now: no further fetch.
    load_dataset("mnist-t10k", tmp_path, download=True)
    assert len(fetched) == 2


def test_download_accepts_recompressed_gz(tmp_path, monkeypatch):
    payloads = patch_t10k(monkeypatch, tmp_path)
    # Only the decompressed md5 is known to match: a mirror recompressed the files.
    for fname in payloads:
        key = f"MNIST/raw/{fname}"
        monkeypatch.setitem(data._MD5, key, ("0" * 32, data._MD5[key][1]))
    monkeypatch.setattr(data, "_fetch", lambda url, dest: Path(dest).write_bytes(payloads[Path(url).stem]))
    load_dataset("mnist-t10k", tmp_path, download=True)


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    patch_t10k(monkeypatch, tmp_path)
    bad = gzip.compress(b"definitely not the right content")
    monkeypatch.setattr(data, "_fetch", lambda url, dest: Path(dest).write_bytes(bad))
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist-t10k", tmp_path, download=True)
    msg = str(e.value)
    assert "checksum mismatch" in msg and "t10k-images-idx3-ubyte.gz" in msg
    assert data._MD5["MNIST/raw/t10k-images-idx3-ubyte"][0] in msg  # expected
    assert md5(bad) in msg  # actual
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def test_download_network_failure(tmp_path, monkeypatch):
    def failing_fetch(url, dest):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(data, "_fetch", failing_fetch)
    with pytest.raises(DatasetError) as e:
        load_dataset("mnist-t10k", tmp_path, download=True)
    msg = str(e.value)
    assert data._URLS["MNIST/raw/t10k-images-idx3-ubyte.gz"][0] in msg
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in msg
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def test_real_fetch_with_file_urls(tmp_path, monkeypatch):
    payloads = patch_t10k(monkeypatch, tmp_path)
    src = tmp_path / "mirror"
    src.mkdir()
    for fname, gz in payloads.items():
        (src / f"{fname}.gz").write_bytes(gz)
        # First mirror is broken: the next one is tried.
        urls = ((src / "missing.gz").as_uri(), (src / f"{fname}.gz").as_uri())
        monkeypatch.setitem(data._URLS, f"MNIST/raw/{fname}.gz", urls)
    root = tmp_path / "root"
    ds = load_dataset("mnist-t10k", root, download=True)
    assert len(ds.y_train) + len(ds.y_test) == 20


def test_verify_files_detects_corruption(tmp_path, monkeypatch):
    patch_t10k(monkeypatch, tmp_path)
    make_mnist(tmp_path, t10k_only=True)  # different content than the patched checksums
    with pytest.raises(DatasetError, match="checksum mismatch"):
        data.verify_files("mnist-t10k", tmp_path)
    assert data.verify_files("digits", tmp_path) == []


def test_cifar_download_and_extract(tmp_path, monkeypatch):
    folder = "cifar-10-batches-py"
    x, y = fake_images(2, 0, (3, 32, 32)), np.array([1, 2])
    batch = cifar_batch_bytes(x, y)
    members = {f"{folder}/data_batch_{i}": batch for i in range(1, 6)}
    members[f"{folder}/test_batch"] = batch
    archive = tar_gz_bytes(members)
    monkeypatch.setitem(data._MD5, "cifar-10-python.tar.gz", (md5(archive),))
    for name in members:
        monkeypatch.setitem(data._MD5, name, (md5(batch),))
    monkeypatch.setattr(data, "_fetch", lambda url, dest: Path(dest).write_bytes(archive))
    ds = load_dataset("cifar10", tmp_path, download=True)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    assert (tmp_path / "cifar-10-python.tar.gz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


@pytest.mark.parametrize("bad", ["../evil", "/tmp/evil-abs", "ok/../../evil"])
def test_unsafe_tar_member_refused(tmp_path, bad):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz_bytes({"good/file": b"x", bad: b"y"}))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DatasetError, match="unsafe"):
        data._extract_tar(archive, dest)
    assert list(dest.iterdir()) == []  # nothing extracted, not even the safe member
    assert not (tmp_path / "evil").exists()


def test_tar_symlink_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    archive = tmp_path / "l.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match="link"):
        data._extract_tar(archive, tmp_path)
