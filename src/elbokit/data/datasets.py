"""The data sets :func:`load` knows by name (scikit-learn's digits and tables, MNIST
and Fashion-MNIST) or by path (a user's file, a folder of images), the seeded
train/test split, and the :class:`Dataset` that holds them. The file formats are
read by :mod:`elbokit.data.files`, :mod:`elbokit.data.idx` and
:mod:`elbokit.data.images`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._columns import check_selection, selected_indices
from .._validation import check_finite, check_int
from ..exceptions import DataError
from ._reading import brief, check_fits, float_dtype_for
from .expression import is_10x_folder, read_h5ad, read_mtx_dataset
from .files import load_file, table_suffix
from .idx import find_idx, read_idx

IMAGE_SPECS = ("mnist", "fashion-mnist")
TABLE_SPECS = ("breast-cancer", "wine", "diabetes", "iris")
SPECS = ("digits",) + TABLE_SPECS + IMAGE_SPECS
FILE_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt", ".gz", ".mtx", ".h5ad")
DEFAULT_TEST_FRACTION = 0.2  # held-out share of the embedded data sets and user files
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]


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
         columns=None, drop_columns=None, layer: str | None = None,
         labels: str | None = None) -> Dataset:
    """Load a data set by name or path.

    Expression files (:mod:`elbokit.data.expression`): ``.h5ad``, ``.mtx`` (with 10x's
    ``features.tsv``/``genes.tsv`` and ``barcodes.tsv`` beside it: transposed to cells x
    genes, named by gene symbols), a 10x folder holding ``matrix.mtx[.gz]``, tab-separated
    ``.tsv``/``.txt`` and gzip ``.csv.gz``/``.tsv.gz`` tables. Sparse matrices are
    densified after their dense size is checked against the memory available.

    Parameters
    ----------
    spec : ``"digits"``, ``"breast-cancer"``, ``"wine"``, ``"diabetes"``, ``"iris"``,
        ``"mnist"``, ``"fashion-mnist"``, a path to a ``.npy``, ``.npz`` or ``.csv``
        file, or a folder of PNG/JPEG images (labels from its sub-folders' names, if
        the images sit in sub-folders; see :mod:`elbokit.data.images`).
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
    layer, labels : AnnData files (``.h5ad``) only: the layer read instead of ``X``
        (``"counts"``), and the ``obs`` column of the labels (by default the first of
        :data:`elbokit.data.expression.LABEL_COLUMNS` present, e.g. ``cell_type``,
        ``louvain``).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must lie in [0, 1); got {test_fraction}")
    selection = check_selection(columns, drop_columns)
    selected = selection != (None, None)
    seed = check_int(seed, "seed", minimum=0)
    spec = str(spec)
    ten_x = spec not in SPECS and is_10x_folder(Path(spec))
    folder = spec not in SPECS and Path(spec).is_dir() and not ten_x and \
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
    suffix = path.suffix.lower()
    if (layer is not None or labels is not None) and suffix != ".h5ad":
        raise DataError(f"{spec}: layer and labels choose an AnnData file's layer and obs "
                        "column; this is not an .h5ad file")
    if ten_x or suffix in FILE_SUFFIXES:
        classes = None
        if ten_x or suffix in (".mtx", ".h5ad") or path.name.lower().endswith(".mtx.gz"):
            selected_indices(None, *selection, spec)  # a selection is refused
            X, y, names, classes = (read_h5ad(path, layer, labels) if suffix == ".h5ad"
                                    else read_mtx_dataset(path))
        elif suffix == ".gz" and table_suffix(path) is None:
            raise DataError(f"{path}: elbokit reads gzip tables (.csv.gz, .tsv.gz) and "
                            "Matrix Market files (.mtx.gz); decompress other files first")
        else:
            X, y, names, classes = load_file(path, allow_nan, selection)
        X = _check_matrix(X, str(path), allow_nan=allow_nan)
        if y is not None:
            y = _check_labels(y, X.shape[0], str(path))
        if names is not None and len(names) != X.shape[1]:
            raise DataError(f"{path}: {len(names)} feature names for {X.shape[1]} columns")
        if classes is not None and (y is None or y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{path}: {len(classes)} class names for labels "
                            + ("that are absent" if y is None else
                               f"from {int(y.min())} to {int(y.max())}")
                            + f"; they name labels 0 to {len(classes) - 1}")
        dataset = _split(X, y, test_fraction, seed, name=str(path), feature_names=names,
                         target_names=classes)
        dataset.columns = list(names) if selected else None
        if layer is not None or labels is not None:  # an AnnData's: to read it again
            dataset.load_options = {"layer": layer, "labels": labels}
        return dataset
    raise DataError(f"unknown data spec {spec!r}: use one of {list(SPECS)}, a path to a "
                    ".npy, .npz, .csv, .tsv, .csv.gz, .mtx or .h5ad file, a 10x folder, or a "
                    "folder of PNG/JPEG images")


def _load_image_folder(path: Path, test_fraction, seed, resize, crop) -> Dataset:
    from .images import read_folder

    X, y, classes, size, channels = read_folder(
        path, resize=resize, crop=crop,
        check_fits=lambda nbytes, what: check_fits(nbytes, str(path), what))
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
        raise DataError(f"{name}: the data has {shape[0]} sample(s) (shape {brief(shape)}); at "
                        "least 2 are needed to split it into train and test")
    if n_features == 0:
        raise DataError(f"{name}: the data has zero features (shape {brief(shape)})")
    with np.errstate(over="ignore", invalid="ignore"):  # long doubles beyond float64: inf,
        X = X.reshape(shape[0], n_features).astype(float_dtype_for(X.dtype), copy=False)
    check_finite(X, name, allow_nan=allow_nan)  # ... and named here
    return X


def _check_labels(y: np.ndarray, n_samples: int, name: str) -> np.ndarray:
    """y as int64 class labels of shape (n_samples,)."""
    if y.ndim != 1:
        raise DataError(f"{name}: labels y must be a 1-D array of shape ({n_samples},); got "
                        f"shape {brief(y.shape)} (use y.ravel() if it is one column)")
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
    raise DataError(f"{name}: labels y must be integer class labels; got dtype {brief(y.dtype)}")


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


# --------------------------------------------------------------------------- IDX data sets

def _load_idx_dataset(spec: str, data_dir) -> Dataset:
    files = find_idx(spec, data_dir)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataError(f"{spec} {split} files disagree: images {brief(images.shape)}, "
                            f"labels {brief(labels.shape)}")
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


def binarize(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dynamic binarization: each entry becomes 1 with probability equal to its value."""
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)
