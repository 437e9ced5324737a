"""Out-of-core data for the classical models: one streaming pass over row chunks.

FA, PPCA, PCA and the linear autoencoder need only the mean and the covariance of
the data (sufficient statistics), and ``transform`` / ``score_samples`` treat each
row on its own, so all of them run on data larger than memory. Accepted sources:

* an ``np.memmap`` (read in row chunks; the pages of each chunk are released with
  ``madvise(MADV_DONTNEED)`` once used, so the resident memory stays one chunk);
* a path (``str`` or ``os.PathLike``) to a ``.npy`` file, read with ordinary file
  reads (no mapping at all);
* a path to a directory of ``.npy`` shards, concatenated along rows in name order;
* a Dask array: the moments are computed by Dask, in parallel (on a cluster if a
  distributed client is active), and the row-wise methods run block by block.

:func:`as_chunk_source` returns None for every other input, so the in-memory code
paths are unchanged.
"""

from __future__ import annotations

import functools
import mmap
import os
import warnings
from pathlib import Path

import numpy as np
from scipy.linalg import blas
from sklearn.utils.validation import check_is_fitted

from .._anndata import fitted_layer, is_anndata
from ..exceptions import DataError, DataFileNotFoundError
from ..persistence.files import open_regular

#: rows per chunk (float32 chunk products sum at most this many terms; see sample_covariance)
CHUNK_ROWS = 4096


# --------------------------------------------------------------------------- finiteness

def check_chunk_finite(chunk: np.ndarray, first_row: int, origin=None, *,
                       allow_nan: bool = False) -> None:
    """Raise DataError naming the global row of the first bad entry, and for a shard
    (``origin = (name, first row of the shard)``) the shard and the row inside it."""
    bad = np.isinf(chunk) if allow_nan else ~np.isfinite(chunk)
    if not bad.any():
        return
    r, c = np.argwhere(bad)[0]
    what = "NaN" if np.isnan(chunk[r, c]) else "inf"
    row = first_row + int(r)
    inside = f" (row {row - origin[1]} of {origin[0]})" if origin else ""
    hint = ("NaN is accepted as missing, inf is not" if allow_nan else
            "remove or impute them; out-of-core fitting needs complete data "
            "(FactorAnalysis, PPCA(solver='em') and VBPCA treat NaN as missing for "
            "in-memory arrays only)")
    raise DataError(f"X contains {int(bad.sum())} non-finite value(s) in rows "
                    f"{first_row}-{first_row + chunk.shape[0] - 1}; the first is {what} at "
                    f"row {row}{inside}, column {int(c)}; {hint}")


# --------------------------------------------------------------------------- sources

class ChunkSource:
    """Rows of a 2-D array read in chunks. Subclasses set ``n_samples``,
    ``n_features``, ``dtype`` and implement ``_chunks(chunk_rows)`` yielding
    ``(first_row, chunk, origin)`` with ``chunk`` an in-memory ndarray and ``origin``
    None or ``(shard name, first row of the shard)`` for error messages."""

    n_samples: int
    n_features: int
    dtype: np.dtype

    def _chunks(self, chunk_rows: int):
        raise NotImplementedError

    def iter_chunks(self, chunk_rows: int = CHUNK_ROWS, *, allow_nan: bool = False):
        """Yield ``(first_row, chunk)``; each chunk is checked for NaN/inf."""
        for first, chunk, origin in self._chunks(chunk_rows):
            check_chunk_finite(chunk, first, origin, allow_nan=allow_nan)
            yield first, chunk

    def moments(self, chunk_rows: int = CHUNK_ROWS, *,
                data_precision: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and ML covariance (divisor N) in one pass.

        Sums are taken about a shift (the mean of the first chunk), so the
        one-pass formula S = C/N - (s/N)(s/N)' with s = sum(x - shift),
        C = sum (x - shift)(x - shift)' loses no accuracy to a large mean. Chunk
        products use ``syrk`` in the data's precision (float64 if not
        ``data_precision``), accumulated in float64, as :func:`sample_covariance`
        does in memory."""
        d = self.n_features
        single = self.dtype == np.float32 and data_precision
        syrk, dtype = (blas.ssyrk, np.float32) if single else (blas.dsyrk, np.float64)
        shift = total = None
        upper = np.zeros((d, d))
        for _, chunk in self.iter_chunks(chunk_rows):
            if shift is None:
                shift = chunk.mean(axis=0, dtype=np.float64)
                shift_cast = shift.astype(dtype)
                total = np.zeros(d)
            centred = np.asfortranarray(chunk, dtype=dtype) - shift_cast  # (rows, d)
            total += centred.sum(axis=0, dtype=np.float64)
            upper += syrk(1.0, centred, trans=1, lower=0)
        n = self.n_samples
        C = np.triu(upper) + np.triu(upper, 1).T
        offset = total / n  # mean - shift_cast
        S = C / n - np.outer(offset, offset)
        return shift_cast.astype(np.float64) + offset, S

    def map_rows(self, fn, *, allow_nan: bool = False, chunk_rows: int = CHUNK_ROWS):
        """Apply ``fn`` (an in-memory row-wise method) chunk by chunk and stack."""
        parts = [fn(chunk) for _, chunk in self.iter_chunks(chunk_rows, allow_nan=allow_nan)]
        return np.concatenate(parts, axis=0)


def _float_dtype(dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _check_2d(shape, where: str) -> None:
    if len(shape) != 2:
        raise DataError(f"{where} must hold a 2-D array (n_samples, n_features); "
                        f"got shape {tuple(shape)}")
    if shape[1] == 0:
        raise DataError(f"{where} has 0 features (shape {tuple(shape)})")


def _check_numeric(dtype, where: str) -> None:
    if np.dtype(dtype).kind not in "biuf":
        raise DataError(f"{where} must be numeric; got dtype {dtype}")


class MemmapSource(ChunkSource):
    """An ``np.memmap`` (or a view of one): each chunk is copied out of the mapping and
    its pages are then dropped from this process (``MADV_DONTNEED``)."""

    def __init__(self, X: np.memmap):
        _check_2d(X.shape, "the memory-mapped array")
        _check_numeric(X.dtype, "the memory-mapped array")
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.dtype = _float_dtype(X.dtype)
        mm = getattr(X, "_mmap", None)
        # never for copy-on-write maps (mode "c"): dropping pages would lose edits
        usable = hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED") and X.mode != "c"
        self._mmap = mm if usable else None
        if self._mmap is not None:
            base = np.frombuffer(self._mmap, dtype=np.uint8)
            self._base, self._size = base.ctypes.data, base.size
            del base

    def _release(self, view: np.ndarray) -> None:
        if self._mmap is None or view.size == 0:
            return
        lo, hi = _byte_bounds(view)
        page = mmap.PAGESIZE
        start = max((lo - self._base) // page * page, 0)
        stop = min(hi - self._base, self._size)
        if stop > start:
            self._mmap.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def _chunks(self, chunk_rows):
        for first in range(0, self.n_samples, chunk_rows):
            view = self.X[first:first + chunk_rows]
            chunk = np.array(view, dtype=self.dtype, order="C")
            self._release(view)
            yield first, chunk, None


def _byte_bounds(a: np.ndarray) -> tuple[int, int]:
    try:
        from numpy.lib.array_utils import byte_bounds
    except ImportError:  # numpy < 2
        byte_bounds = np.byte_bounds
    return byte_bounds(a)


class NpyFileSource(ChunkSource):
    """A ``.npy`` file read in row chunks with plain file reads (nothing is mapped,
    so only the current chunk is resident)."""

    def __init__(self, path: Path, first_row: int = 0, label: str = ""):
        self.path = path
        self.label = label
        self.first_row = first_row
        try:  # a FIFO, a device or a link into /proc: one line, nothing read
            with open_regular(path, label or "data file", error=DataError) as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, fortran, dtype = read_header(f)
                self.offset = f.tell()
        except DataError:
            raise
        except (ValueError, OSError) as exc:
            raise DataError(f"{label or path} is not a readable .npy file: {exc}") from None
        where = label or str(path)
        _check_2d(shape, where)
        _check_numeric(dtype, where)
        if dtype.hasobject:
            raise DataError(f"{where} holds Python objects; save a numeric array")
        if fortran:
            raise DataError(f"{where} is stored in Fortran (column-major) order, which cannot "
                            "be read by rows; save it with np.save(path, np.ascontiguousarray(X))")
        self.n_samples, self.n_features = shape
        self.file_dtype = dtype
        self.dtype = _float_dtype(dtype)

    def _chunks(self, chunk_rows):
        row_bytes = self.n_features * self.file_dtype.itemsize
        origin = (self.label, self.first_row) if self.label else None
        with open_regular(self.path, self.label or "data file", error=DataError) as f:
            f.seek(self.offset)
            for first in range(0, self.n_samples, chunk_rows):
                rows = min(chunk_rows, self.n_samples - first)
                buf = np.empty((rows, self.n_features), dtype=self.file_dtype)
                got = f.readinto(memoryview(buf).cast("B"))
                if got != rows * row_bytes:
                    raise DataError(f"{self.label or self.path} is truncated: expected "
                                    f"{self.n_samples} rows, the file ends in row {first}")
                chunk = buf if buf.dtype == self.dtype else buf.astype(self.dtype)
                yield self.first_row + first, chunk, origin


class ShardDirectorySource(ChunkSource):
    """A directory of ``.npy`` shards with the same number of columns, stacked by rows
    in the order of their file names."""

    def __init__(self, path: Path):
        files = sorted(p for p in path.iterdir() if p.suffix == ".npy" and p.is_file())
        if not files:
            raise DataError(f"directory {path} holds no .npy shards")
        self.shards = []
        first = 0
        for p in files:
            shard = NpyFileSource(p, first_row=first, label=f"shard {p.name}")
            if self.shards and shard.n_features != self.shards[0].n_features:
                raise DataError(
                    f"shard {p.name} in {path} has {shard.n_features} feature(s) but "
                    f"shard {files[0].name} has {self.shards[0].n_features}; every shard "
                    "must have the same number of columns")
            self.shards.append(shard)
            first += shard.n_samples
        self.n_samples = first
        self.n_features = self.shards[0].n_features
        self.dtype = np.dtype(np.float32) if all(s.dtype == np.float32 for s in self.shards) \
            else np.dtype(np.float64)

    def _chunks(self, chunk_rows):
        for shard in self.shards:
            for first, chunk, origin in shard._chunks(chunk_rows):
                yield first, chunk.astype(self.dtype, copy=False), origin


class DaskSource(ChunkSource):
    """A Dask array: moments and row-wise maps are Dask computations (parallel, and
    distributed when a ``dask.distributed`` client is active)."""

    def __init__(self, X):
        _check_2d(X.shape, "the Dask array")
        _check_numeric(X.dtype, "the Dask array")
        if any(np.isnan(c) for c in X.shape):
            raise DataError("the Dask array has unknown chunk sizes; call "
                            "X.compute_chunk_sizes() first")
        self.dtype = _float_dtype(X.dtype)
        self.X = X.astype(self.dtype).rechunk({1: -1})  # whole rows in each block
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self._starts = np.concatenate([[0], np.cumsum(self.X.chunks[0])[:-1]])

    def _chunks(self, chunk_rows):
        for i, start in enumerate(self._starts):
            yield int(start), self.X.blocks[i].compute(), None

    def moments(self, chunk_rows: int = CHUNK_ROWS, *, data_precision: bool = True):
        import dask
        import dask.array as da

        X = self.X
        shift = np.asarray(X[:min(chunk_rows, self.n_samples)].mean(axis=0, dtype=np.float64)
                           .compute())
        centred = X.astype(np.float64) - shift
        finite = da.isfinite(X).all(axis=1)
        total, C, all_finite = dask.compute(centred.sum(axis=0), centred.T @ centred,
                                            finite.all())
        if not all_finite:
            row = int(da.argmin(finite.astype(np.int8)).compute())
            block = int(np.searchsorted(self._starts, row, side="right") - 1)
            start = int(self._starts[block])
            check_chunk_finite(X.blocks[block].compute(), start)
        offset = np.asarray(total) / self.n_samples
        S = np.asarray(C) / self.n_samples - np.outer(offset, offset)
        S = 0.5 * (S + S.T)
        return shift + offset, S

    def map_rows(self, fn, *, allow_nan: bool = False, chunk_rows: int = CHUNK_ROWS):
        probe = fn(np.zeros((1, self.n_features), dtype=self.dtype))
        starts = self._starts

        def block_fn(block, block_info=None):
            first = int(starts[block_info[0]["chunk-location"][0]])
            check_chunk_finite(block, first, allow_nan=allow_nan)
            return fn(block)

        if probe.ndim == 1:
            out = self.X.map_blocks(block_fn, drop_axis=1, dtype=probe.dtype)
        else:
            out = self.X.map_blocks(block_fn, dtype=probe.dtype,
                                    chunks=(self.X.chunks[0], (probe.shape[1],)))
        return np.asarray(out.compute())


class SparseSource(ChunkSource):
    """A scipy sparse matrix (cells x genes), kept sparse: the moments come from the
    sparse product X'X (never a dense copy of X), the row-wise methods see dense row
    chunks. ``feature_names``: an AnnData's var_names, or None."""

    def __init__(self, X, feature_names=None):
        _check_2d(X.shape, "the sparse matrix")
        _check_numeric(X.dtype, "the sparse matrix")
        self.dtype = _float_dtype(X.dtype)
        self.X = X.tocsr().astype(self.dtype)
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.feature_names = feature_names
        if not np.isfinite(self.X.data).all():
            check_chunk_finite(self._dense_rows(self._first_nonfinite_row()), 0)

    def _first_nonfinite_row(self) -> slice:
        entry = int(np.argmin(np.isfinite(self.X.data)))
        row = int(np.searchsorted(self.X.indptr, entry, side="right") - 1)
        return slice(row, row + 1)

    def _dense_rows(self, rows: slice) -> np.ndarray:
        return self.X[rows].toarray()

    def _chunks(self, chunk_rows):
        for start in range(0, self.n_samples, chunk_rows):
            yield start, self._dense_rows(slice(start, start + chunk_rows)), None

    def moments(self, chunk_rows: int = CHUNK_ROWS, *, data_precision: bool = True):
        """Mean and ML covariance (divisor N): S = X'X/N - mean mean' in float64 (X'X a
        sparse product made dense: d x d; the one-pass formula is exact enough for
        counts and log-normalized values, whose means are small beside their spread)."""
        X64 = self.X.astype(np.float64)
        mean = np.asarray(X64.sum(axis=0)).ravel() / self.n_samples
        C = (X64.T @ X64).toarray()
        S = C / self.n_samples - np.outer(mean, mean)
        return mean, 0.5 * (S + S.T)


def _anndata_source(adata) -> ChunkSource | None:
    """An AnnData's X as a source named by its var_names (sparse or dense)."""
    from scipy import sparse

    matrix = adata.X
    if matrix is None:
        raise DataError("adata.X is empty; pass a layer's matrix (adata.layers[name])")
    names = np.asarray([str(v) for v in adata.var_names], dtype=object)
    if sparse.issparse(matrix):
        return SparseSource(matrix, feature_names=names)
    return DenseSource(np.asarray(matrix), feature_names=names)


class DenseSource(ChunkSource):
    """An in-memory array with feature names (an AnnData's dense X)."""

    def __init__(self, X: np.ndarray, feature_names=None):
        _check_2d(X.shape, "the array")
        _check_numeric(X.dtype, "the array")
        self.dtype = _float_dtype(X.dtype)
        self.X, self.feature_names = X, feature_names
        self.n_samples, self.n_features = (int(s) for s in X.shape)

    def _chunks(self, chunk_rows):
        for start in range(0, self.n_samples, chunk_rows):
            yield start, np.asarray(self.X[start:start + chunk_rows], dtype=self.dtype), None


# --------------------------------------------------------------------------- dispatch

def _is_dask_array(X) -> bool:
    module = type(X).__module__ or ""
    return module.startswith("dask") and hasattr(X, "chunks") and hasattr(X, "compute")


def as_chunk_source(X) -> ChunkSource | None:
    """A :class:`ChunkSource` for out-of-core input, None for anything held in memory."""
    if isinstance(X, ChunkSource):
        return X
    if isinstance(X, np.memmap):
        return MemmapSource(X)
    if isinstance(X, (str, os.PathLike)):
        path = Path(X)
        if not path.exists():
            raise DataFileNotFoundError(f"no such file or directory: {path}")
        if path.is_dir():
            return ShardDirectorySource(path)
        if path.suffix != ".npy":
            raise DataError(f"{path}: out-of-core input must be a .npy file or a directory "
                            "of .npy shards (load other formats with elbokit.data)")
        return NpyFileSource(path)
    if _is_dask_array(X):
        return DaskSource(X)
    if is_anndata(X):
        return _anndata_source(X)
    from scipy import sparse

    if sparse.issparse(X):
        return SparseSource(X)
    return None


def streaming_moments(estimator, source: ChunkSource, *, min_samples: int = 2,
                      data_precision: bool = False):
    """Mean, ML covariance and sample count of ``source`` in one pass; records
    ``n_features_in_`` on ``estimator`` (no feature names, as for a plain array).
    ``data_precision``: float32 chunk products for float32 data (else float64)."""
    if source.n_samples < min_samples:
        raise DataError(f"X has {source.n_samples} sample(s); at least {min_samples} "
                        "are required")
    from .._validation import check_covariance_memory

    check_covariance_memory(source.n_features)
    mean, S = source.moments(data_precision=data_precision)
    estimator.n_features_in_ = source.n_features
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    names = getattr(source, "feature_names", None)
    if names is not None:  # an AnnData's var_names, as a DataFrame's columns
        estimator.feature_names_in_ = names
    return mean, S, source.n_samples


def _check_names(estimator, names) -> None:
    """An AnnData's var_names against the names the model was fitted with, if both."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if names is None or fitted is None or list(names) == list(fitted):
        return
    j = next(i for i, (a, b) in enumerate(zip(names, fitted)) if a != b)
    raise DataError(f"feature {j} is {names[j]!r} but {type(estimator).__name__} was fitted "
                    f"with {fitted[j]!r} there; give the genes in the fitted order")


def streams_rows(method):
    """Decorate a row-wise method (``transform``, ``score_samples``, ...) so that
    out-of-core input is processed chunk by chunk with the in-memory method."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        source = as_chunk_source(fitted_layer(self, X))  # an AnnData: the fit's layer
        if source is None:
            return method(self, X, *args, **kwargs)
        check_is_fitted(self)
        if source.n_features != self.n_features_in_:
            raise DataError(f"X has {source.n_features} features, but "
                            f"{type(self).__name__} was fitted with {self.n_features_in_}")
        _check_names(self, getattr(source, "feature_names", None))
        with warnings.catch_warnings():  # the chunks are arrays: names checked above
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            return source.map_rows(lambda chunk: method(self, chunk, *args, **kwargs),
                                   allow_nan=self._allow_nan_now())

    return wrapper
