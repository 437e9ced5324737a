"""Data sets: scikit-learn's 8x8 digits (the embedded default), MNIST and
Fashion-MNIST from IDX files, and the user's own ``.npy``/``.npz``/``.csv`` files.

:func:`load` returns a :class:`Dataset` with float32 ``train``/``test`` arrays of
shape (n, d). Image data sets are scaled to [0, 1]; user files are returned as they
are (no scaling). Splits are seeded and so reproducible.
"""

from __future__ import annotations

import csv
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import check_finite
from .exceptions import DataError, DataFileNotFoundError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SPECS = ("mnist", "fashion-mnist")
SPECS = ("digits",) + IMAGE_SPECS

# IDX type codes (LeCun's format): code -> (numpy dtype, big-endian bytes per item)
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


@dataclass
class Dataset:
    """A train/test split.

    Attributes
    ----------
    train, test : float32 arrays of shape (n, d)
    train_labels, test_labels : int arrays of shape (n,), or None
    image_shape : (height, width) when rows are flattened images, else None
    name : the spec the data came from
    value_range : (low, high) the documented range of the values, or None if unknown
    feature_names : one name per column (a CSV header, a built-in table's names), or None
    target_names : names of the label values (class names), or None
    """

    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    image_shape: tuple[int, int] | None = None
    name: str = ""
    value_range: tuple[float, float] | None = None
    feature_names: list[str] | None = None
    target_names: list[str] | None = None

    @property
    def n_features(self) -> int:
        return self.train.shape[1]


# --------------------------------------------------------------------------- entry point

def load(spec: str, *, data_dir: str | os.PathLike | None = None, test_fraction: float = 0.2,
         seed: int = 0, allow_nan: bool = False) -> Dataset:
    """Load a data set by name or path.

    Parameters
    ----------
    spec : ``"digits"``, ``"mnist"``, ``"fashion-mnist"``, or a path to a
        ``.npy``, ``.npz`` or ``.csv`` file.
    data_dir : where to look first for IDX files (then ``$ELBOKIT_DATA``, then, for
        Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``).
    test_fraction : share of rows held out for ``digits`` and user files.
    seed : seed of the split.
    allow_nan : keep NaN entries of user files (for PPCA(solver="em")).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    spec = str(spec)
    if spec == "digits":
        return _load_digits(test_fraction, seed)
    if spec in IMAGE_SPECS:
        return _load_idx_dataset(spec, data_dir)
    path = Path(spec)
    if path.suffix.lower() in (".npy", ".npz", ".csv"):
        X, y = _load_file(path)
        X = _check_matrix(X, str(path), allow_nan=allow_nan)
        return _split(X, y, test_fraction, seed, name=str(path))
    raise DataError(f"unknown data spec {spec!r}: use one of {list(SPECS)} or a path to a "
                    ".npy, .npz or .csv file")


def _check_matrix(X: np.ndarray, name: str, allow_nan: bool = False) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected a numeric array, got dtype {X.dtype}")
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    if X.shape[1] == 0:
        raise DataError(f"{name}: the data has zero features (shape {X.shape})")
    if X.shape[0] < 2:
        raise DataError(f"{name}: the data has {X.shape[0]} sample(s); at least 2 are needed "
                        "to split it into train and test")
    X = X.astype(np.float32)
    check_finite(X, name, allow_nan=allow_nan)
    return X


def _split(X, y, test_fraction, seed, *, name, image_shape=None, value_range=None) -> Dataset:
    n = X.shape[0]
    n_test = min(max(1, int(round(test_fraction * n))), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    return Dataset(
        train=np.ascontiguousarray(X[train_idx]), test=np.ascontiguousarray(X[test_idx]),
        train_labels=None if y is None else y[train_idx],
        test_labels=None if y is None else y[test_idx],
        image_shape=image_shape, name=name, value_range=value_range,
    )


# --------------------------------------------------------------------------- digits

def _load_digits(test_fraction: float, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)  # pixel counts 0..16 -> [0, 1]
    return _split(X, bunch.target.astype(np.int64), test_fraction, seed, name="digits",
                  image_shape=(8, 8), value_range=(0.0, 1.0))


# --------------------------------------------------------------------------- IDX files

_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _search_dirs(spec: str, data_dir) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    if os.environ.get("ELBOKIT_DATA"):
        roots.append(Path(os.environ["ELBOKIT_DATA"]))
    dirs = []
    for root in roots:
        dirs += [root / spec, root]
    if spec == "fashion-mnist":
        dirs.append(DEBIAN_FASHION_MNIST_DIR)
    return dirs


def _find_idx(spec: str, data_dir) -> dict[str, Path]:
    searched = _search_dirs(spec, data_dir)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataFileNotFoundError(f"data directory {data_dir} does not exist")
    for directory in searched:
        found = {}
        for key, stems in _IDX_NAMES.items():
            for stem in stems:
                for candidate in (directory / (stem + ".gz"), directory / stem):
                    if candidate.is_file():
                        found.setdefault(key, candidate)
        if len(found) == len(_IDX_NAMES):
            return found
        if found:  # a partial set is an error worth naming
            missing = sorted(set(_IDX_NAMES) - set(found))
            raise DataFileNotFoundError(
                f"{directory} holds some {spec} IDX files but not {missing} "
                f"(expected names like {_IDX_NAMES[missing[0]][0]}[.gz])")
    where = ", ".join(str(d) for d in searched) or "(no directory given)"
    hint = ("install Debian's package dataset-fashion-mnist (apt-get install "
            "dataset-fashion-mnist), or pass --data-dir / set ELBOKIT_DATA"
            if spec == "fashion-mnist" else
            "put train-images-idx3-ubyte[.gz] etc. in a directory and pass --data-dir "
            "or set ELBOKIT_DATA")
    raise DataFileNotFoundError(f"{spec} IDX files not found in {where}; {hint}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a numpy array, checking its header."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{path} is a damaged or truncated gzip file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_len:
        raise DataError(f"{path} is not a valid IDX file (header of {ndim} dimensions is "
                        "truncated)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_len + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: the IDX header gives shape {shape} ({expected} bytes) but "
                        f"the file holds {len(raw)} bytes; it is truncated or corrupted")
    return np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)


def _load_idx_dataset(spec: str, data_dir) -> Dataset:
    files = _find_idx(spec, data_dir)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(f"{spec} {split} files disagree: images {images.shape}, "
                            f"labels {labels.shape}")
    image_shape = tuple(arrays["train_images"].shape[1:])

    def flat(images):
        return (images.reshape(images.shape[0], -1).astype(np.float32) / 255.0)

    return Dataset(
        train=flat(arrays["train_images"]), test=flat(arrays["test_images"]),
        train_labels=arrays["train_labels"].astype(np.int64),
        test_labels=arrays["test_labels"].astype(np.int64),
        image_shape=image_shape, name=spec, value_range=(0.0, 1.0),
    )


# --------------------------------------------------------------------------- user files

def _load_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise DataFileNotFoundError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path), None
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            for key in ("X", "x", "data"):
                if key in archive:
                    y = next((archive[k] for k in ("y", "labels") if k in archive), None)
                    return archive[key], y
            if len(keys) == 1:
                return archive[keys[0]], None
            raise DataError(f"{path} holds arrays {keys}; name the data array 'X' "
                            "(and labels 'y')")
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path} cannot be read as a numeric {suffix} file ({exc}); object "
                        "arrays are refused because loading them could run code") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a valid {suffix} file ({exc})") from None


def _read_csv(path: Path) -> np.ndarray:
    """Read a numeric CSV (an optional header row), naming the first bad cell."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise DataError(f"{path} is empty")

    def is_number(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    start = 0 if all(is_number(c) for c in rows[0]) else 1  # a header row
    body = rows[start:]
    if not body:
        raise DataError(f"{path} has a header but no data rows")
    width = len(rows[0])
    values = np.empty((len(body), width), dtype=np.float64)
    for i, row in enumerate(body):
        line = i + start + 1
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} cells, expected {width}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(f"{path}: non-numeric cell {cell!r} at line {line}, column "
                                f"{j + 1}") from None
    return values


def binarize(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dynamic binarization: each entry becomes 1 with probability equal to its value."""
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)
