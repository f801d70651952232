"""Dataset loading from standard raw files, with deterministic splits.

Files follow the torchvision folder layout under a data root, so an existing
torchvision download can be reused:

    {root}/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    {root}/FashionMNIST/raw/...            (same names)
    {root}/cifar-10-batches-py/data_batch_{1..5}, test_batch
    {root}/cifar-100-python/train, test

Everything is pure numpy (torchvision is not importable everywhere this runs).
Images stay uint8 until the final per-channel standardization, which keeps
memory low for the large datasets.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "load_dataset",
    "read_cifar_batch",
    "read_idx",
    "split_indices",
    "verify_files",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "mnist-t10k", "fashion-mnist", "cifar10", "cifar100")


class DatasetError(Exception):
    """Bad input, missing or corrupt dataset file, or failed download."""


# eq=False: the generated __eq__ would compare numpy arrays and raise.
@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    x_train: np.ndarray  # float32 [N, C, H, W], standardized with train statistics
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)


# --------------------------------------------------------------------------
# File tables (torchvision's resources). Paths are relative to the data root.
# --------------------------------------------------------------------------

_IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

# Accepted md5s per file. IDX files list (md5 of the .gz, md5 of the decompressed
# bytes): mirrors may recompress, so either one identifies the right data.
_MD5: dict[str, tuple[str, ...]] = {
    "MNIST/raw/train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "MNIST/raw/train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "MNIST/raw/t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "MNIST/raw/t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    "FashionMNIST/raw/train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "FashionMNIST/raw/train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
    "FashionMNIST/raw/t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
    "cifar-10-python.tar.gz": ("c58f30108f718f92721af3b95e74349a",),
    "cifar-10-batches-py/data_batch_1": ("c99cafc152244af753f735de768cd75f",),
    "cifar-10-batches-py/data_batch_2": ("d4bba439e000b95fd0a9bffe97cbabec",),
    "cifar-10-batches-py/data_batch_3": ("54ebc095f3ab1f0389bbae665268c751",),
    "cifar-10-batches-py/data_batch_4": ("634d18415352ddfa80567beed471001a",),
    "cifar-10-batches-py/data_batch_5": ("482c414d41f54cd18b22e5b47cb7c3cb",),
    "cifar-10-batches-py/test_batch": ("40351d587109b95175f43aff81a1287e",),
    "cifar-100-python.tar.gz": ("eb9058c3a382ffc7106e4002c42a8d85",),
    "cifar-100-python/train": ("16019d7e3df5f24257cddd939b257f8d",),
    "cifar-100-python/test": ("f0ef6b0ae62326f3e7ffdfab6717acfc",),
}

# Download URLs (mirrors, tried in order) per downloaded file.
_URLS: dict[str, tuple[str, ...]] = {
    **{f"MNIST/raw/{n}.gz": tuple(m + n + ".gz" for m in _MNIST_MIRRORS) for n in _IDX_NAMES},
    **{f"FashionMNIST/raw/{n}.gz": tuple(m + n + ".gz" for m in _FASHION_MIRRORS) for n in _IDX_NAMES},
    "cifar-10-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "cifar-100-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
}


@dataclass(frozen=True)
class _Spec:
    files: tuple[str, ...]  # required files, relative to root
    idx: bool  # IDX files: each may be plain or .gz and is downloaded as {file}.gz
    archive: str | None = None  # tar.gz (relative to root) that provides all files when extracted into root
    n_classes: int = 10


_CIFAR10_BATCHES = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
_SPECS: dict[str, _Spec] = {
    "mnist": _Spec(tuple(f"MNIST/raw/{n}" for n in _IDX_NAMES), idx=True),
    "mnist-t10k": _Spec(tuple(f"MNIST/raw/{n}" for n in _IDX_NAMES[2:]), idx=True),
    "fashion-mnist": _Spec(tuple(f"FashionMNIST/raw/{n}" for n in _IDX_NAMES), idx=True),
    "cifar10": _Spec(_CIFAR10_BATCHES + ("cifar-10-batches-py/test_batch",), idx=False, archive="cifar-10-python.tar.gz"),
    "cifar100": _Spec(
        ("cifar-100-python/train", "cifar-100-python/test"), idx=False, archive="cifar-100-python.tar.gz", n_classes=100
    ),
}


# --------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------

# IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip, detected by content) into a native-endian array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError as e:
        raise DatasetError(f"IDX file not found: {path}") from e
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"cannot read IDX file {path}: {e}") from e

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    if ndim < 1:
        raise DatasetError(f"{path}: IDX file declares {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"{path}: IDX size mismatch: dims {dims} need {expected} bytes, file has {len(raw)}")
    # astype copies into a writable native-endian array (frombuffer views are read-only).
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _get(d: dict, key: str):
    # encoding='bytes' gives bytes keys for the original (Python 2) files; str for re-pickled ones.
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR python batch -> (uint8 [N, 3, 32, 32], int64 [N])."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # Trusted, checksummed dataset files; pickle is their published format.
            d = pickle.load(f, encoding="bytes")
    except FileNotFoundError as e:
        raise DatasetError(f"CIFAR batch not found: {path}") from e
    except Exception as e:  # unpickling can fail in many ways on a corrupt file
        raise DatasetError(f"cannot unpickle CIFAR batch {path}: {e}") from e
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a dict in the CIFAR batch, got {type(d).__name__}")
    data = _get(d, "data")
    labels = _get(d, "labels")
    if labels is None:
        labels = _get(d, "fine_labels")  # CIFAR-100
    if data is None or labels is None:
        raise DatasetError(f"{path}: CIFAR batch lacks 'data' or 'labels'/'fine_labels'")
    x = np.asarray(data)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: CIFAR data must be uint8 [N, 3072], got {x.dtype} {x.shape}")
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise DatasetError(f"{path}: {x.shape[0]} images but {y.size} labels")
    return x.reshape(-1, 3, 32, 32), y


# --------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------


def _check_fraction(test_fraction: float) -> None:
    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction!r}")


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/test split of range(n): sorted, disjoint, covering, both non-empty."""
    _check_fraction(test_fraction)
    if n < 2:
        raise DatasetError(f"need at least 2 samples to split, got {n}")
    n_test = min(max(int(round(n * test_fraction)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _subsample_indices(n_avail: int, n: int | None, rng: np.random.Generator, what: str) -> np.ndarray | None:
    # Always consume one permutation so the test subsample does not depend on n_train,
    # and smaller subsamples are subsets of larger ones (prefixes of the same permutation).
    perm = rng.permutation(n_avail)
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= n_avail:
        raise DatasetError(f"{what} must be an integer in [1, {n_avail}] (available), got {n!r}")
    return np.sort(perm[:n])


# --------------------------------------------------------------------------
# Checksums and downloads
# --------------------------------------------------------------------------


def _md5_file(path: Path, decompress: bool = False) -> str:
    h = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if decompress else open
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _md5s(path: Path, gz_content: bool) -> dict[str, str]:
    """md5 of the file, plus of its decompressed content for a gzip'd IDX file."""
    out = {"md5": _md5_file(path)}
    if gz_content:
        try:
            out["decompressed md5"] = _md5_file(path, decompress=True)
        except (OSError, EOFError, zlib.error):
            out["decompressed md5"] = "<not valid gzip>"
    return out


def _is_gz_idx(path: Path) -> bool:
    return path.name.endswith(".gz") and not path.name.endswith(".tar.gz")


def _checksum_problem(path: Path, key: str) -> str | None:
    """None if path matches an accepted md5 for table key, else a description."""
    accepted = _MD5.get(key)
    if not accepted:
        raise DatasetError(f"no checksum known for {key}")
    actual = _md5s(path, _is_gz_idx(path))
    if set(actual.values()) & set(accepted):
        return None
    got = ", ".join(f"{k} {v}" for k, v in actual.items())
    return f"{path}: expected md5 {' or '.join(accepted)}, actual {got}"


def _fetch(url: str, dest: Path) -> None:
    """Download url into dest (module-level so tests can replace it)."""
    req = urllib.request.Request(url, headers={"User-Agent": "python-urllib (dataset fetch)"})
    with urllib.request.urlopen(req, timeout=60) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)


def _download(root: Path, rel: str, md5_key: str, needed: list[Path]) -> Path:
    """Fetch rel (relative to root) via a temp file, verify md5, then rename atomically."""
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    urls = _URLS.get(rel, ())
    # Temp file in the target dir so os.replace is atomic and concurrent jobs never see partial files.
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        errors = []
        for url in urls:
            try:
                _fetch(url, tmp)
                break
            except (OSError, ValueError) as e:  # URLError/HTTPError/timeouts are OSErrors
                errors.append(f"  {url}: {e}")
        else:
            by_hand = "\n".join(f"  {p}" for p in needed)
            raise DatasetError(
                f"download of {dest.name} failed:\n" + ("\n".join(errors) or "  no URL known") + "\n"
                f"Fetch it elsewhere and place these files by hand:\n{by_hand}"
            )
        # Check the temp file but report the final name (the .part name means nothing to users).
        accepted = _MD5.get(md5_key, ())
        actual = _md5s(tmp, _is_gz_idx(dest))
        if not set(actual.values()) & set(accepted):
            got = ", ".join(f"{k} {v}" for k, v in actual.items())
            raise DatasetError(
                f"checksum mismatch for downloaded {dest} (from {url}): expected md5 "
                f"{' or '.join(accepted) or '<unknown>'}, actual {got}; file deleted"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _extract_tar(archive: Path, dest: Path) -> None:
    """Extract regular files from a tar archive into dest, refusing unsafe members."""
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            # Check everything before writing anything.
            for m in members:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or "\\" in m.name or ":" in m.name:
                    raise DatasetError(f"{archive}: refusing unsafe member path {m.name!r}")
                if not (m.isfile() or m.isdir()):
                    raise DatasetError(f"{archive}: refusing link/special member {m.name!r}")
            # Extract into a private temp dir, then move files into place one by one (atomic per file).
            staging = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
            try:
                files = [m for m in members if m.isfile()]
                for m in files:
                    target = staging / m.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    assert src is not None  # regular files always have content
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                for m in files:
                    final = dest / m.name
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / m.name, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DatasetError(f"cannot extract archive {archive}: {e}") from e


# --------------------------------------------------------------------------
# Locating files
# --------------------------------------------------------------------------


def _spec(name: str) -> _Spec | None:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return _SPECS.get(name)  # None for digits (bundled with scikit-learn)


def _locate(root: Path, rel: str, idx: bool) -> Path | None:
    """Existing file for a required path; IDX files may be plain (preferred) or .gz."""
    for cand in (rel, rel + ".gz") if idx else (rel,):
        if (root / cand).is_file():
            return root / cand
    return None


def _missing(root: Path, spec: _Spec) -> list[str]:
    return [rel for rel in spec.files if _locate(root, rel, spec.idx) is None]


def _missing_error(name: str, root: Path, spec: _Spec, missing: list[str]) -> DatasetError:
    lines = []
    for rel in spec.files:
        if rel not in missing:
            lines.append(f"  [present] {_locate(root, rel, spec.idx)}")
        else:
            lines.append(f"  [missing] {root / rel}" + (f"  (or {root / rel}.gz)" if spec.idx else ""))
    where = (
        f"Place the IDX files (plain or .gz) in {(root / spec.files[0]).parent}"
        if spec.idx
        else f"Extract {spec.archive} into {root} (it creates {PurePosixPath(spec.files[0]).parent}/)"
    )
    urls = sorted({u for rel in _download_plan(spec, missing) for u in _URLS.get(rel, ())[:1]})
    return DatasetError(
        f"dataset {name!r}: files missing under data root {root}:\n" + "\n".join(lines) + "\n"
        f"{where}, or set `download: true` in the config to fetch them (md5-verified) from:\n"
        + "\n".join(f"  {u}" for u in urls)
    )


def _download_plan(spec: _Spec, missing: list[str]) -> list[str]:
    """Files to download (relative to root) to provide the missing ones."""
    if spec.idx:
        return [rel + ".gz" for rel in missing]
    assert spec.archive is not None
    return [spec.archive] if missing else []


def _ensure_files(name: str, root: Path, spec: _Spec, download: bool) -> None:
    missing = _missing(root, spec)
    if not missing:
        return
    if not download:
        raise _missing_error(name, root, spec, missing)
    root.mkdir(parents=True, exist_ok=True)
    needed = [root / rel for rel in missing]
    if spec.idx:
        for rel in missing:
            _download(root, rel + ".gz", md5_key=rel, needed=needed)
    else:
        assert spec.archive is not None
        archive = root / spec.archive
        # Reuse an archive already in place (e.g. copied by hand) if its checksum is right.
        if not (archive.is_file() and _checksum_problem(archive, spec.archive) is None):
            _download(root, spec.archive, md5_key=spec.archive, needed=needed)
        _extract_tar(archive, root)
    verify_files(name, root)


def verify_files(name: str, root: str | os.PathLike = "data") -> list[Path]:
    """Check that every file of a dataset exists and matches its md5; return the paths.

    Reads all files, so load_dataset only calls it after a download.
    """
    spec = _spec(name)
    if spec is None:
        return []
    root = Path(root).expanduser().absolute()
    missing = _missing(root, spec)
    if missing:
        raise _missing_error(name, root, spec, missing)
    paths = [p for rel in spec.files if (p := _locate(root, rel, spec.idx)) is not None]
    problems = [msg for rel, p in zip(spec.files, paths) if (msg := _checksum_problem(p, rel)) is not None]
    if problems:
        raise DatasetError(f"dataset {name!r}: checksum mismatch:\n" + "\n".join(f"  {m}" for m in problems))
    return paths


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _read_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DatasetError(f"{images}: expected uint8 images [N, H, W], got {x.dtype} {x.shape}")
    if y.ndim != 1:
        raise DatasetError(f"{labels}: expected labels [N], got shape {y.shape}")
    if len(x) != len(y):
        raise DatasetError(f"count mismatch: {len(x)} images in {images} but {len(y)} labels in {labels}")
    return x[:, None], y.astype(np.int64)


def _read_raw(name: str, root: Path, spec: _Spec | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """uint8 images and int64 labels: [train, test] for official splits, [all] for datasets split here."""
    if spec is None:  # digits: bundled with scikit-learn, works offline
        from sklearn.datasets import load_digits

        digits = load_digits()
        # Values are integers 0..16, so uint8 is exact (scaled by 1/16 later).
        return [(digits.images.astype(np.uint8)[:, None], digits.target.astype(np.int64))]
    f = {PurePosixPath(rel).name: _locate(root, rel, spec.idx) for rel in spec.files}
    if spec.idx:
        test = _read_idx_pair(f["t10k-images-idx3-ubyte"], f["t10k-labels-idx1-ubyte"])
        if name == "mnist-t10k":  # only the official test split is available
            return [test]
        return [_read_idx_pair(f["train-images-idx3-ubyte"], f["train-labels-idx1-ubyte"]), test]
    if name == "cifar10":
        parts = [read_cifar_batch(root / rel) for rel in _CIFAR10_BATCHES]
        train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return [train, read_cifar_batch(f["test_batch"])]
    return [read_cifar_batch(f["train"]), read_cifar_batch(f["test"])]


def _standardize(x_train: np.ndarray, x_test: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images -> float32 (x/scale - mean_c) / std_c with per-channel train statistics.

    Pixel values are integers in [0, 255], so exact float64 statistics come from a
    256-bin histogram, without a float64 copy of the whole dataset.
    """
    values = np.arange(256, dtype=np.float64) / scale
    out_train, out_test = x_train.astype(np.float32), x_test.astype(np.float32)
    for c in range(x_train.shape[1]):
        counts = np.bincount(x_train[:, c].ravel(), minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        std = max(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())), 1e-8)
        # In place, in raw pixel units: (x - scale*mean) / (scale*std).
        for out in (out_train, out_test):
            out[:, c] -= np.float32(mean * scale)
            out[:, c] *= np.float32(1.0 / (std * scale))
    return out_train, out_test


def load_dataset(
    name: str,
    root: str | os.PathLike = "data",
    *,
    split_seed: int = 0,
    test_fraction: float = 0.25,
    n_train: int | None = None,
    n_test: int | None = None,
    download: bool = False,
) -> Dataset:
    """Load a dataset as standardized float32 [N, C, H, W] arrays.

    digits and mnist-t10k are split by split_indices(n, test_fraction, split_seed);
    the others use their official train/test split (test_fraction unused but checked).
    n_train / n_test take seeded subsamples (rng seed split_seed + 1).
    """
    spec = _spec(name)
    _check_fraction(test_fraction)
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise DatasetError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    root = Path(root).expanduser().absolute()
    if spec is not None:
        _ensure_files(name, root, spec, download)
    scale, n_classes = (16.0, 10) if spec is None else (255.0, spec.n_classes)

    parts = _read_raw(name, root, spec)
    if len(parts) == 1:
        (x_all, y_all) = parts[0]
        tr, te = split_indices(len(y_all), test_fraction, int(split_seed))
        x_tr, y_tr, x_te, y_te = x_all[tr], y_all[tr], x_all[te], y_all[te]
    else:
        (x_tr, y_tr), (x_te, y_te) = parts

    rng = np.random.default_rng(int(split_seed) + 1)
    sub_tr = _subsample_indices(len(y_tr), n_train, rng, "n_train")
    sub_te = _subsample_indices(len(y_te), n_test, rng, "n_test")
    if sub_tr is not None:
        x_tr, y_tr = x_tr[sub_tr], y_tr[sub_tr]
    if sub_te is not None:
        x_te, y_te = x_te[sub_te], y_te[sub_te]

    for split, y in (("train", y_tr), ("test", y_te)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DatasetError(f"{name}: {split} labels outside [0, {n_classes}) in files under {root}")

    x_tr_f, x_te_f = _standardize(x_tr, x_te, scale)
    return Dataset(
        name=name,
        x_train=x_tr_f,
        y_train=np.ascontiguousarray(y_tr, dtype=np.int64),
        x_test=x_te_f,
        y_test=np.ascontiguousarray(y_te, dtype=np.int64),
        n_classes=n_classes,
    )
