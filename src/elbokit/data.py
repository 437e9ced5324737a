"""Data sets: scikit-learn's 8x8 digits (the embedded default) and tables (breast
cancer, wine, diabetes, iris), MNIST and Fashion-MNIST from IDX files, and the user's
own ``.npy``/``.npz``/``.csv`` files.

:func:`load` returns a :class:`Dataset` with ``train``/``test`` arrays of shape (n, d).
Image data sets are float32 scaled to [0, 1]; tables and user files are returned as
they are (no scaling), in float64 unless the file stores values that float32 holds
exactly. Splits are seeded and so reproducible.

Every file is checked before it is trusted: the header of an ``.npy`` array or an IDX
file is read first, its shape compared with the size of the file (or of the zip
member) and the memory it would take compared with the memory available, before
anything is allocated; gzip streams are decompressed as a stream, capped at the size
the header implies. A bad file raises :class:`~elbokit.exceptions.DataError` with a
one-line message.
"""

from __future__ import annotations

import array
import ast
import csv
import gzip
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._columns import check_selection, drop_hint, selected_indices
from ._validation import check_finite, check_int
from .exceptions import DataError, DataFileNotFoundError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SPECS = ("mnist", "fashion-mnist")
TABLE_SPECS = ("breast-cancer", "wine", "diabetes", "iris")
SPECS = ("digits",) + TABLE_SPECS + IMAGE_SPECS
FILE_SUFFIXES = (".npy", ".npz", ".csv")
DEFAULT_TEST_FRACTION = 0.2  # held-out share of the embedded data sets and user files

# IDX type codes (LeCun's format): code -> numpy dtype (big-endian)
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]

CSV_MAX_LINE_BYTES = 16 * 2**20  # a physical CSV line longer than this is refused
CSV_FIRST_MEMORY_CHECK = 2**20  # values parsed before the memory is first checked (doubling)
_CSV_MISSING = frozenset({"", "na", "n/a", "nan", "+nan", "-nan", "null"})
# A CSV number: decimal digits (ASCII only), optional fraction and exponent, or inf.
_CSV_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                         r"|[+-]?(?:inf|infinity)", re.IGNORECASE)
_CSV_DECIMAL = r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*"
_CSV_DECIMAL_ROW = re.compile(rf"{_CSV_DECIMAL}(?:,{_CSV_DECIMAL})*")  # the common case, fast
_READ_CHUNK = 2**20


@dataclass
class Dataset:
    """A train/test split.

    Attributes
    ----------
    train, test : arrays of shape (n, d): float32 for image data sets (and files whose
        values float32 holds exactly), float64 for tables, CSV files and float64 files
    train_labels, test_labels : int64 arrays of shape (n,), or None
    image_shape : (height, width) when rows are flattened images, else None
    name : the spec the data came from
    value_range : (low, high) the documented range of the values, or None if unknown
    feature_names : one name per column (a CSV header, a built-in table's names), or None
    target_names : names of the label values (class names), or None
    channels : colour channels C of image rows (1 grey, 3 RGB); a row holds the
        C*H*W values of one image, channel first
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
    channels: int = 1
    load_options: dict | None = None  # load's resize/crop of an image folder, to load it again
    columns: list[str] | None = None  # the columns chosen by name (columns/drop_columns), kept

    @property
    def n_features(self) -> int:
        return self.train.shape[1]


# --------------------------------------------------------------------------- entry point

def load(spec: str, *, data_dir: str | os.PathLike | None = None,
         test_fraction: float = DEFAULT_TEST_FRACTION,
         seed: int = 0, allow_nan: bool = False, resize=None, crop=None,
         columns=None, drop_columns=None) -> Dataset:
    """Load a data set by name or path.

    Parameters
    ----------
    spec : ``"digits"``, ``"breast-cancer"``, ``"wine"``, ``"diabetes"``, ``"iris"``,
        ``"mnist"``, ``"fashion-mnist"``, a path to a ``.npy``, ``.npz`` or ``.csv``
        file, or a folder of PNG/JPEG images (labels from its sub-folders' names, if
        the images sit in sub-folders; see :mod:`elbokit._images`).
    data_dir : where to look first for IDX files (then ``$ELBOKIT_DATA``, then, for
        Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``).
    test_fraction : share of rows held out for the embedded data sets and user files,
        in [0, 1); 0 keeps every row for training (``test`` is then empty, shape (0, d)).
    seed : seed of the split (an integer >= 0).
    allow_nan : keep missing entries of user files as NaN (empty CSV cells, ``NA``,
        ``nan``; NaN in arrays), for the models that accept missing values.
    resize, crop : image folders only: ``resize=(h, w)`` resizes every image,
        ``crop="center"`` crops about the centre (to the smallest size in the set, or
        to the aspect ratio of ``resize`` before resizing). Without either, the images
        must share one size.
    columns, drop_columns : tables only (a CSV file with a header, a built-in table):
        the columns to keep, in that order, or the columns to leave out, by name (a list
        or a comma-separated string; see :mod:`elbokit._columns`). Left-out columns of a
        CSV file are not parsed, so they may hold text (an id, "male"/"female").
        ``Dataset.columns`` records the names kept.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must lie in [0, 1); got {test_fraction}")
    selection = check_selection(columns, drop_columns)
    selected = selection != (None, None)
    seed = check_int(seed, "seed", minimum=0)
    spec = str(spec)
    folder = spec not in SPECS and Path(spec).is_dir() and \
        Path(spec).suffix.lower() not in FILE_SUFFIXES
    if (resize is not None or crop is not None) and not folder:
        raise DataError("resize and crop apply to folders of images only")
    if selected and (folder or spec in IMAGE_SPECS or spec == "digits"):
        raise DataError(f"{spec}: columns and drop_columns choose the columns of a table; "
                        "these rows are images")
    if spec == "digits":
        return _load_digits(test_fraction, seed)
    if spec in TABLE_SPECS:
        return _load_table(spec, test_fraction, seed, selection)
    if spec in IMAGE_SPECS:
        return _load_idx_dataset(spec, data_dir)
    path = Path(spec)
    if folder:
        return _load_image_folder(path, test_fraction, seed, resize, crop)
    if path.suffix.lower() in FILE_SUFFIXES:
        X, y, names = _load_file(path, allow_nan, selection)
        X = _check_matrix(X, str(path), allow_nan=allow_nan)
        if y is not None:
            y = _check_labels(y, X.shape[0], str(path))
        dataset = _split(X, y, test_fraction, seed, name=str(path), feature_names=names)
        dataset.columns = list(names) if selected else None
        return dataset
    raise DataError(f"unknown data spec {spec!r}: use one of {list(SPECS)}, a path to a "
                    ".npy, .npz or .csv file, or a folder of PNG/JPEG images")


def _load_image_folder(path: Path, test_fraction, seed, resize, crop) -> Dataset:
    from ._images import read_folder

    X, y, classes, size, channels = read_folder(
        path, resize=resize, crop=crop,
        check_fits=lambda nbytes, what: _check_fits(nbytes, str(path), what))
    dataset = _split(X, y, test_fraction, seed, name=str(path), image_shape=size,
                     value_range=(0.0, 1.0), target_names=classes)
    dataset.channels = channels
    dataset.load_options = {"resize": None if resize is None else [int(v) for v in resize],
                            "crop": crop}
    return dataset


def _check_matrix(X: np.ndarray, name: str, allow_nan: bool = False) -> np.ndarray:
    """X as a float (n, d) matrix: 1-D arrays are one column, N-D arrays are flattened."""
    if X.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected a numeric array, got dtype {X.dtype}")
    if X.ndim == 0:
        raise DataError(f"{name}: the array is 0-dimensional (a single number); expected "
                        "a matrix of shape (n_samples, n_features)")
    shape = X.shape
    n_features = math.prod(shape[1:])
    if shape[0] < 2:
        raise DataError(f"{name}: the data has {shape[0]} sample(s) (shape {_brief(shape)}); at "
                        "least 2 are needed to split it into train and test")
    if n_features == 0:
        raise DataError(f"{name}: the data has zero features (shape {_brief(shape)})")
    with np.errstate(over="ignore", invalid="ignore"):  # long doubles beyond float64: inf,
        X = X.reshape(shape[0], n_features).astype(_float_dtype_for(X.dtype), copy=False)
    check_finite(X, name, allow_nan=allow_nan)  # ... and named here
    return X


def _float_dtype_for(dtype: np.dtype) -> np.dtype:
    """float32 where it holds every value of ``dtype`` exactly, else float64."""
    exact_in_float32 = (dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize <= 2)
                        or (dtype.kind == "f" and dtype.itemsize <= 4))
    return np.dtype(np.float32 if exact_in_float32 else np.float64)


def _check_labels(y: np.ndarray, n_samples: int, name: str) -> np.ndarray:
    """y as int64 class labels of shape (n_samples,)."""
    if y.ndim != 1:
        raise DataError(f"{name}: labels y must be a 1-D array of shape ({n_samples},); got "
                        f"shape {_brief(y.shape)} (use y.ravel() if it is one column)")
    if y.shape[0] != n_samples:
        raise DataError(f"{name}: labels y hold {y.shape[0]} entries but X has {n_samples} "
                        "rows; they must have one label per row")
    if y.dtype.kind in "biu":
        if y.dtype.kind == "u" and y.dtype.itemsize == 8 and y.size and y.max() > 2**63 - 1:
            raise DataError(f"{name}: labels y hold values above the int64 range")
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        integral = np.isfinite(y) & (np.abs(y) < 2**63) & (y == np.round(y))
        if not integral.all():
            i = int(np.argmin(integral))
            raise DataError(f"{name}: labels y must be integer class labels; entry {i} is "
                            f"{float(y[i])!r}")
        return y.astype(np.int64)
    raise DataError(f"{name}: labels y must be integer class labels; got dtype {_brief(y.dtype)}")


def _split(X, y, test_fraction, seed, *, name, image_shape=None, value_range=None,
           feature_names=None, target_names=None) -> Dataset:
    n = X.shape[0]
    n_test = 0 if test_fraction == 0 else min(max(1, int(round(test_fraction * n))), n - 1)
    # no test rows: every row for training, in the file's order
    order = np.random.default_rng(seed).permutation(n) if n_test else np.arange(n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    return Dataset(
        train=np.ascontiguousarray(X[train_idx]), test=np.ascontiguousarray(X[test_idx]),
        train_labels=None if y is None else y[train_idx],
        test_labels=None if y is None else y[test_idx],
        image_shape=image_shape, name=name, value_range=value_range,
        feature_names=None if feature_names is None else list(feature_names),
        target_names=None if target_names is None else list(target_names),
    )


# --------------------------------------------------------------------------- memory

MEMINFO = Path("/proc/meminfo")
# (limit, usage) files of a container's memory cgroup, v2 then v1
CGROUP_MEMORY_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
     Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or None where that is unknown:
    ``MemAvailable`` of ``/proc/meminfo``, or less where a container's memory cgroup
    limit leaves less."""
    candidates = []
    try:
        with open(MEMINFO) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in CGROUP_MEMORY_FILES:
        try:
            limit, usage = int(limit_file.read_text()), int(usage_file.read_text())
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        if limit < 2**60:
            candidates.append(max(limit - usage, 0))
        break
    return min(candidates) if candidates else None


def _gib(nbytes: int) -> str:
    if nbytes >= 2**80:  # a header's absurd claim; float division would overflow
        return f"about 2^{nbytes.bit_length() - 31} GiB"
    return f"{nbytes / 2**30:.1f} GiB"


def _brief(value, limit: int = 80) -> str:
    """``value`` as text for a one-line message: whitespace collapsed, clipped (a header
    may hold thousands of dimensions, a library error the bytes it choked on)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _count(nbytes: int) -> str:
    return str(nbytes) if nbytes < 10**18 else f"about 2^{nbytes.bit_length() - 1}"


def _check_fits(nbytes: int, name: str, what: str) -> None:
    """Refuse, before allocating, what would not fit in the available memory."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise DataError(f"{name}: {what} needs {_gib(nbytes)} of memory to load but only "
                        f"{_gib(available)} is available")


def _load_peak_bytes(count: int, dtype: np.dtype) -> int:
    """Peak memory of reading ``count`` items of ``dtype``, converting them to floats and
    splitting them into train and test (two float copies at most at once)."""
    converted = count * _float_dtype_for(dtype).itemsize
    return max(count * dtype.itemsize, converted) + converted


# --------------------------------------------------------------------------- built-in sets

def _load_digits(test_fraction: float, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)  # pixel counts 0..16 -> [0, 1]
    return _split(X, bunch.target.astype(np.int64), test_fraction, seed, name="digits",
                  image_shape=(8, 8), value_range=(0.0, 1.0),
                  feature_names=list(bunch.feature_names),
                  target_names=[str(t) for t in bunch.target_names])


def _load_table(spec: str, test_fraction: float, seed: int,
                selection=(None, None)) -> Dataset:
    """A table scikit-learn ships, unscaled, in float64, with its feature names.

    Breast cancer, wine and iris carry class labels; diabetes' target (disease
    progression after one year) is continuous, so it has no labels and is not loaded."""
    from sklearn import datasets

    if spec == "diabetes":
        bunch = datasets.load_diabetes(scaled=False)  # raw units (age in years, ...)
        labels, target_names = None, None
    else:
        bunch = getattr(datasets, "load_" + spec.replace("-", "_"))()
        labels = bunch.target.astype(np.int64)
        target_names = [str(t) for t in bunch.target_names]
    X = np.asarray(bunch.data, dtype=np.float64)
    names = [str(f) for f in bunch.feature_names]
    keep = selected_indices(names, *selection, spec)
    if keep is not None:
        X, names = X[:, keep], [names[j] for j in keep]
    dataset = _split(X, labels, test_fraction, seed, name=spec, feature_names=names,
                     target_names=target_names)
    dataset.columns = None if keep is None else names
    return dataset


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


def _open_binary(path: Path, what: str):
    if not path.exists():
        raise DataFileNotFoundError(f"{what} {path} does not exist")
    if not path.is_file():
        raise DataError(f"{what} {path} is not a regular file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_up_to(stream, nbytes: int) -> bytes:
    """Up to ``nbytes`` bytes of a (possibly decompressing) stream: fewer only at its end."""
    data = stream.read(nbytes)
    return data if data is not None else b""


def _read_payload(stream, nbytes: int, size_is_proven: bool) -> np.ndarray:
    """Up to ``nbytes`` bytes of ``stream`` as a uint8 array (shorter only at its end).

    Read in bounded chunks. Where the size is proven (a plain file whose size matches
    its header) the array is allocated at once; for a decompressing stream, whose header
    may claim more than it holds, the buffer grows (doubling) as data arrives, so that a
    false claim costs at most twice what the stream really delivers."""
    buffer = np.empty(nbytes if size_is_proven else min(nbytes, _READ_CHUNK), np.uint8)
    filled = 0
    while filled < nbytes:
        if filled == len(buffer):
            grown = np.empty(min(nbytes, 2 * len(buffer)), np.uint8)
            grown[:filled] = buffer
            buffer = grown
        chunk = _read_up_to(stream, min(_READ_CHUNK, len(buffer) - filled))
        if not chunk:
            break
        buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
        filled += len(chunk)
    return buffer[:filled]


def _idx_header(stream, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Read an IDX header: (dtype, shape, header length in bytes)."""
    magic = _read_up_to(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {magic.hex()})")
    dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
    dims = _read_up_to(stream, 4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise DataError(f"{path} is not a valid IDX file (header of {ndim} dimensions is "
                        "truncated)")
    shape = struct.unpack(f">{ndim}I", dims)
    return dtype, shape, 4 + 4 * ndim


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a numpy array.

    The header is read first; the size it implies is compared with the file (raw
    files) and with the available memory before anything is allocated, and a gzip
    stream is decompressed in chunks up to exactly that size."""
    path = Path(path)
    with _open_binary(path, "IDX file") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        try:
            stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
            return _read_idx_stream(stream, path, compressed, os.fstat(handle.fileno()).st_size)
        except (EOFError, OSError, zlib.error) as exc:
            if not compressed:
                raise DataError(f"cannot read {path}: {_brief(exc)}") from None
            raise DataError(f"{path} is a damaged or truncated gzip file "
                            f"({_brief(exc)})") from None


def _read_idx_stream(stream, path: Path, compressed: bool, file_size: int) -> np.ndarray:
    dtype, shape, header_len = _idx_header(stream, path)
    count = math.prod(shape)  # Python ints: no overflow
    expected = header_len + count * dtype.itemsize
    if not compressed and file_size != expected:
        raise DataError(f"{path}: the IDX header gives shape {_brief(shape)} "
                        f"({_count(expected)} bytes) but the file holds {file_size} bytes; "
                        "it is truncated or corrupted")
    if count == 0:
        raise DataError(f"{path}: the IDX header gives shape {_brief(shape)}, which holds no data")
    # the raw array and its float32 copy
    _check_fits(count * (dtype.itemsize + 4), str(path), f"an IDX array of shape {_brief(shape)}")
    payload = _read_payload(stream, count * dtype.itemsize, size_is_proven=not compressed)
    if len(payload) < count * dtype.itemsize:
        raise DataError(f"{path}: the IDX header gives shape {_brief(shape)} "
                        f"({_count(expected)} bytes) but the decompressed stream holds only "
                        f"{header_len + len(payload)} "
                        "bytes; it is truncated or corrupted")
    if compressed and _read_up_to(stream, 1):
        raise DataError(f"{path}: the decompressed stream holds more than the {expected} "
                        f"bytes the IDX header's shape {_brief(shape)} implies; it is corrupted")
    return payload.view(dtype).reshape(shape)


def _load_idx_dataset(spec: str, data_dir) -> Dataset:
    files = _find_idx(spec, data_dir)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(f"{spec} {split} files disagree: images {_brief(images.shape)}, "
                            f"labels {_brief(labels.shape)}")
        if images.dtype != np.uint8:
            raise DataError(f"{files[f'{split}_images']}: images must be unsigned bytes "
                            f"(IDX type 0x08); got {images.dtype}")
        if labels.dtype.kind not in "iu":
            raise DataError(f"{files[f'{split}_labels']}: labels must be integers; got "
                            f"{labels.dtype}")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"{spec}: train images are {arrays['train_images'].shape[1:]} but test "
                        f"images {arrays['test_images'].shape[1:]}")
    image_shape = tuple(arrays["train_images"].shape[1:])

    def flat(images):
        out = images.reshape(images.shape[0], -1).astype(np.float32)
        out /= 255.0
        return out

    names = FASHION_MNIST_CLASSES if spec == "fashion-mnist" else [str(i) for i in range(10)]
    labels = {split: arrays[f"{split}_labels"].astype(np.int64) for split in ("train", "test")}
    n_classes = int(max(labels["train"].max(), labels["test"].max())) + 1
    return Dataset(
        train=flat(arrays["train_images"]), test=flat(arrays["test_images"]),
        train_labels=labels["train"], test_labels=labels["test"],
        image_shape=image_shape, name=spec, value_range=(0.0, 1.0),
        target_names=names if n_classes <= len(names) and labels["train"].min() >= 0 else None,
    )


# --------------------------------------------------------------------------- .npy / .npz

def _load_file(path: Path, allow_nan: bool, selection=(None, None)):
    """(X, y or None, feature names or None) from a user file; ``selection``: the
    (columns, drop_columns) of a CSV file with a header."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        X, names = _read_csv(path, allow_nan, selection)
        return X, None, names
    selected_indices(None, *selection, str(path))  # no names: a selection is refused
    with _open_binary(path, "data file") as handle:
        if suffix == ".npy":
            size = os.fstat(handle.fileno()).st_size
            return _read_npy(handle, size, str(path)), None, None
        try:
            return (*_read_npz(handle, path), None)
        except DataError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                NotImplementedError, RuntimeError, ValueError, struct.error) as exc:
            # ValueError: zipfile's UnicodeDecodeError on a mangled member name, and the like
            raise DataError(f"{path} is not a valid .npz file ({_brief(exc)})") from None


def _read_npz(handle, path: Path):
    with zipfile.ZipFile(handle) as archive:
        members = {info.filename[:-4]: info for info in archive.infolist()
                   if info.filename.endswith(".npy")}
        keys = list(members)
        key = next((k for k in ("X", "x", "data") if k in members), None)
        if key is None and len(keys) == 1:
            key = keys[0]
        if key is None:
            raise DataError(f"{path} holds arrays {_brief(keys)}; name the data array 'X' "
                            "(and labels 'y')")
        label_key = next((k for k in ("y", "labels") if k in members and k != key), None)

        def read(k):
            info = members[k]
            with archive.open(info) as stream:
                return _read_npy(stream, info.file_size, f"{path}[{k}]", size_is_proven=False)

        X = read(key)
        y = read(label_key) if label_key is not None else None
    return X, y


def _read_npy_header(stream, name: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse a ``.npy`` header (format versions 1 to 3) without trusting it:
    (dtype, shape, fortran_order, header length in bytes)."""
    magic = _read_up_to(stream, 8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise DataError(f"{name} is not a valid .npy file (bad magic string {magic[:6]!r})")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise DataError(f"{name}: unsupported .npy format version {version[0]}.{version[1]}")
    length_format = "<H" if version == (1, 0) else "<I"
    raw_length = _read_up_to(stream, struct.calcsize(length_format))
    if len(raw_length) < struct.calcsize(length_format):
        raise DataError(f"{name} is not a valid .npy file (truncated header)")
    (length,) = struct.unpack(length_format, raw_length)
    if length > 65536:
        raise DataError(f"{name}: the .npy header claims {length} bytes; refused as unsafe")
    raw_header = _read_up_to(stream, length)
    if len(raw_header) < length:
        raise DataError(f"{name} is not a valid .npy file (truncated header)")
    try:
        with warnings.catch_warnings():  # a mangled header must not print Python's warnings
            warnings.simplefilter("ignore")
            header = ast.literal_eval(raw_header.decode("utf8" if version == (3, 0) else
                                                        "latin1"))
        shape, fortran = header["shape"], header["fortran_order"]
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (ValueError, TypeError, SyntaxError, KeyError, IndexError, RecursionError,
            MemoryError, UnicodeDecodeError) as exc:
        raise DataError(f"{name} is not a valid .npy file (unreadable header: "
                        f"{type(exc).__name__})") from None
    if not (isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape)):
        raise DataError(f"{name} is not a valid .npy file (shape {_brief(repr(shape))} in its "
                        "header)")
    if not isinstance(fortran, bool):
        raise DataError(f"{name} is not a valid .npy file (fortran_order {fortran!r})")
    return dtype, shape, fortran, len(magic) + len(raw_length) + length


def _read_npy(stream, size: int, name: str, size_is_proven: bool = True) -> np.ndarray:
    """Read a ``.npy`` array of ``size`` bytes from a stream, checking its header's dtype,
    shape and size against the file and the available memory before allocating.

    ``size_is_proven``: ``size`` is the size of the file itself, not a claim (a zip
    member's size in the archive's directory is a claim)."""
    dtype, shape, fortran, header_len = _read_npy_header(stream, name)
    if dtype.hasobject:
        raise DataError(f"{name} cannot be read as a numeric file (dtype {_brief(dtype)}); object "
                        "arrays are refused because loading them could run code")
    if dtype.kind not in "biuf":
        raise DataError(f"{name}: expected a numeric array, got dtype {_brief(dtype)}")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if size - header_len != nbytes:
        raise DataError(f"{name}: the header gives shape {_brief(shape)} of {dtype} "
                        f"({_count(nbytes)} bytes) "
                        f"but the file holds {size - header_len} bytes of data; it is "
                        "truncated or corrupted")
    _check_fits(_load_peak_bytes(count, dtype), name,
                f"an array of shape {_brief(shape)} ({dtype})")
    payload = _read_payload(stream, nbytes, size_is_proven)
    if len(payload) < nbytes:
        raise DataError(f"{name}: the data ends before the {_count(nbytes)} bytes its header "
                        "gives; it is truncated")
    out = payload.view(dtype)
    if fortran:
        return out.reshape(shape[::-1]).transpose()
    return out.reshape(shape)


# --------------------------------------------------------------------------- CSV

def _csv_lines(handle, path: Path):
    """Decoded physical lines of a UTF-8 CSV file (a byte-order mark dropped), each
    checked: valid UTF-8 (else a DataError naming the line) and shorter than
    ``CSV_MAX_LINE_BYTES``."""
    for number in range(1, 2**63):
        raw = handle.readline(CSV_MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > CSV_MAX_LINE_BYTES:
            raise DataError(f"{path}: line {number} is longer than "
                            f"{CSV_MAX_LINE_BYTES // 2**20} MiB; refused")
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise DataError(f"{path} is UTF-16 encoded (byte-order mark {raw[:2].hex()}); "
                                "save it as UTF-8")
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"byte {exc.start + 1} of the line); elbokit reads UTF-8 CSV files: convert "
                f"it, e.g. iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}") from None


def _show(cell: str) -> str:
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _parse_cell(cell: str) -> float | None:
    """A CSV cell as a float, ``nan`` for a missing value, or None if not a number."""
    text = cell.strip()
    if text.lower() in _CSV_MISSING:
        return math.nan
    if _CSV_NUMBER.fullmatch(text):
        return float(text)
    return None


def _other_notation(cell: str) -> bool:
    """Whether a cell that is not a decimal number is one in another notation (``0x10``,
    ``0b1``, ``1_000``, ``0x1p3``, non-ASCII digits, a decimal comma ``1,5``): no header
    name, but a value elbokit does not read."""
    text = cell.strip()
    if text.lower().lstrip("+-").startswith("0x"):
        text = text.lower().replace("0x", "", 1)
        parsers = (lambda t: int(t, 16), float.fromhex)
    else:
        parsers = (float, lambda t: int(t, 0), lambda t: float(t.replace(",", ".", 1)))
    for parse in parsers:
        try:
            parse(text)
            return True
        except ValueError:
            pass
    return False


def _is_header(row: list[str]) -> bool:
    """A first row is a header when no cell is a number (in any notation) and some cell
    is not empty.

    A row with a number in it (``0x10,1,2``, and ``0x10`` alone) is data, so its bad
    cell is named rather than the row dropped as a header."""
    values = [_parse_cell(c) for c in row]
    if not any(v is None for v in values):
        return False
    return all((v is None and not _other_notation(c)) or (v is not None and math.isnan(v))
               for v, c in zip(values, row))


def _read_csv(path: Path, allow_nan: bool = False, selection=(None, None)
              ) -> tuple[np.ndarray, list[str] | None]:
    """Read a numeric CSV (an optional header row), naming the first bad cell (and its
    column, when there is a header).

    Returns the values (float64) and the header's names (None without a header): of
    the columns ``selection`` (columns, drop_columns) keeps, when it names any; the
    others are not parsed. Line and column numbers in messages count from 1 as in the
    file (blank lines included)."""
    with _open_binary(path, "data file") as handle:
        reader = csv.reader(_csv_lines(handle, path))
        values = array.array("d")
        names, width, n_rows, next_check = None, None, 0, CSV_FIRST_MEMORY_CHECK
        keep = None  # the indices of the columns parsed (None: all)
        try:
            for row in reader:
                if not row:
                    continue  # blank line
                line = reader.line_num
                if width is None:
                    width = len(row)
                    if _is_header(row):
                        names = [c.strip() or f"column_{j + 1}" for j, c in enumerate(row)]
                        keep = selected_indices(names, *selection, str(path))
                        continue
                    selected_indices(None, *selection, str(path))  # no header: refused
                if len(row) != width:
                    raise DataError(f"{path}: line {line} has {len(row)} cells, expected "
                                    f"{width}{_separator_hint(row)}")
                first = n_rows == 0 and names is None
                if keep is not None:
                    row = [row[j] for j in keep]
                values.extend(_parse_row(row, path, line, allow_nan, first, keep, names))
                n_rows += 1
                if len(values) >= next_check:  # the values so far and their split copy
                    _check_fits(2 * len(values) * 8, str(path), f"the table (at line {line})")
                    next_check = 2 * len(values)
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num} cannot be read as CSV "
                            f"({_brief(exc)})") from None
    if width is None:
        raise DataError(f"{path} is empty")
    if n_rows == 0:
        raise DataError(f"{path} has a header but no data rows")
    if keep is not None:
        width, names = len(keep), [names[j] for j in keep]
    X = np.frombuffer(values, dtype=np.float64).reshape(n_rows, width)
    return X, names


def _separator_hint(row: list[str]) -> str:
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        if any(separator in cell for cell in row):
            return f" (elbokit reads comma-separated files; this one seems to use {name})"
    return ""


def _parse_row(row: list[str], path: Path, line: int, allow_nan: bool,
               first: bool = False, keep=None, names=None) -> list[float]:
    """The cells of one row as floats. ``keep``: the file's column index of each cell
    (None: the cells are the whole row); ``names``: the header's names, if any."""
    if _CSV_DECIMAL_ROW.fullmatch(",".join(row)):  # plain decimal numbers only
        try:
            parsed = list(map(float, row))
        except ValueError:  # a quoted cell held a comma
            pass
        else:
            if not any(map(math.isinf, parsed)):  # else an overflow, named below
                return parsed
    parsed = []
    for i, cell in enumerate(row):
        value = _parse_cell(cell)
        j = i if keep is None else keep[i]
        where = f"at line {line}, column {j + 1}"
        if names is not None:
            where += f" ({names[j]!r})"
        if value is None:
            hint = _separator_hint([cell])
            if not hint and _other_notation(cell):
                hint = " (elbokit reads decimal numbers only, such as 16, -2.5 or 1e-3)"
            elif not hint and first:
                hint = (" (taken as data because other cells of the line are numbers: a "
                        "header row must hold no number)")
            elif not hint and names is not None:
                hint = f": the column is not numeric; {drop_hint(names[j])}"
            raise DataError(f"{path}: non-numeric cell {_show(cell)} {where}{hint}")
        if math.isnan(value) and not allow_nan:
            raise DataError(f"{path}: missing value {_show(cell)} {where}; fill it in, or fit "
                            "a model that accepts missing values (FA, PPCA solver='em', VBPCA)")
        if math.isinf(value):
            if "inf" not in cell.lower():
                raise DataError(f"{path}: value {_show(cell)} {where} is beyond float64's "
                                "range (about 1.8e308)")
            raise DataError(f"{path}: infinite value {_show(cell)} {where}; inf is refused")
        parsed.append(value)
    return parsed


def binarize(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dynamic binarization: each entry becomes 1 with probability equal to its value."""
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)
