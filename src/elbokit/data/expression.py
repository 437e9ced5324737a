"""Expression data as biologists keep them: AnnData (``.h5ad`` files and in-memory
objects), Matrix Market ``.mtx`` files with their ``genes``/``features`` and
``barcodes`` files, 10x Genomics folders (``matrix.mtx[.gz]``, ``features.tsv[.gz]``
or ``genes.tsv[.gz]``, ``barcodes.tsv[.gz]``), and scipy sparse matrices in memory.

Each reader returns ``(X, labels or None, feature names or None, class names or
None)``: a dense float matrix of cells x genes, checked before anything is allocated
(the header's shape against the file's size and the memory the dense matrix takes).
``anndata`` is imported only when an AnnData file or object is read (``pip install
elbokit[anndata]``).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..exceptions import DataError
from ._reading import brief, brief_error, check_fits, load_peak_bytes, open_binary

# obs columns taken as the cells' labels, first found (scanpy's and CellxGene's names)
LABEL_COLUMNS = ("cell_type", "celltype", "cell_types", "labels", "label", "bulk_labels",
                 "louvain", "leiden", "clusters", "cluster")
MTX_MIN_ENTRY_BYTES = 6  # "1 1 1\n": an entry of a coordinate file takes at least this
MTX_CHUNK = 2**18  # entries parsed at a time
TEN_X_MATRIX = ("matrix.mtx", "matrix.mtx.gz")
TEN_X_FEATURES = ("features.tsv", "features.tsv.gz", "genes.tsv", "genes.tsv.gz")
TEN_X_BARCODES = ("barcodes.tsv", "barcodes.tsv.gz")
# what a damaged plain or gzip file raises while read (gzip's, zlib's, numpy's parse)
READ_ERRORS = (OSError, EOFError, ValueError, zlib.error)


# --------------------------------------------------------------------------- dense

def densify(matrix, name: str) -> np.ndarray:
    """A scipy sparse matrix as a dense float array, its memory checked first."""
    n_rows, n_columns = matrix.shape
    check_fits(load_peak_bytes(n_rows * n_columns, np.dtype(matrix.dtype)), name,
               f"the sparse matrix of shape ({n_rows}, {n_columns}) as a dense array")
    return matrix.toarray()


# --------------------------------------------------------------------------- AnnData

def anndata_matrix(adata, layer: str | None = None, name: str = "adata"):
    """The matrix of an AnnData object: ``adata.X`` or ``adata.layers[layer]`` (dense or
    sparse, as stored)."""
    if layer is None:
        matrix = adata.X
        if matrix is None:
            raise DataError(f"{name}.X is empty; pass layer= (one of {list(adata.layers)})")
        return matrix
    if layer not in adata.layers:
        raise DataError(f"{name} has no layer {layer!r}; its layers: {list(adata.layers)}")
    return adata.layers[layer]


def anndata_labels(adata, labels: str | None, name: str = "adata"):
    """(int64 codes, class names) of an obs column: ``labels``, or the first of
    :data:`LABEL_COLUMNS` present; (None, None) where there is none."""
    obs = adata.obs
    if labels is None:
        labels = next((c for c in LABEL_COLUMNS if c in obs.columns), None)
        if labels is None:
            return None, None
    elif labels not in obs.columns:
        raise DataError(f"{name}.obs has no column {labels!r}; its columns: "
                        f"{brief(list(obs.columns))}")
    import pandas as pd

    column = obs[labels]
    categories = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) \
        else pd.Index(sorted(column.dropna().unique(), key=str))
    codes = pd.Categorical(column, categories=categories).codes.astype(np.int64)
    if (codes < 0).any():
        raise DataError(f"{name}.obs[{labels!r}] has {int((codes < 0).sum())} missing labels")
    return codes, [str(c) for c in categories]


def from_anndata(adata, layer: str | None = None, labels: str | None = None,
                 name: str = "adata"):
    """(X dense, labels or None, var_names, class names or None) of an AnnData object."""
    matrix = anndata_matrix(adata, layer, name)
    X = densify(matrix, name) if _is_sparse(matrix) else np.asarray(matrix)
    y, classes = anndata_labels(adata, labels, name)
    return X, y, [str(v) for v in adata.var_names], classes


def read_h5ad(path: Path, layer: str | None = None, labels: str | None = None):
    """An ``.h5ad`` file: its shape read first (backed mode: nothing of X loaded) and the
    dense matrix's memory checked, then read."""
    try:
        import anndata
    except ImportError:
        raise DataError(f"{path}: reading .h5ad files needs anndata (pip install "
                        "'elbokit[anndata]')") from None
    open_binary(path, "data file").close()  # missing, FIFO, device: one line
    try:
        backed = anndata.read_h5ad(path, backed="r")
        n_obs, n_vars = backed.shape
        backed.file.close()
        check_fits(load_peak_bytes(n_obs * n_vars, np.dtype(np.float64)), str(path),
                   f"the matrix of shape ({n_obs}, {n_vars}) as a dense array")
        adata = anndata.read_h5ad(path)
    except DataError:
        raise
    except Exception as exc:  # h5py's OSError, KeyError of a file that is not AnnData
        raise DataError(f"{path} is not a readable .h5ad file ({brief_error(exc)})") from None
    return from_anndata(adata, layer, labels, name=str(path))


def _is_sparse(matrix) -> bool:
    from scipy import sparse

    return sparse.issparse(matrix)


# --------------------------------------------------------------------------- Matrix Market

def _open_text(path: Path, what: str):
    """A text stream of a plain or gzip file (by its suffix)."""
    handle = open_binary(path, what)
    stream = gzip.GzipFile(fileobj=handle) if path.suffix.lower() == ".gz" else handle
    return handle, stream


def _mtx_header(stream, path: Path):
    """(field, symmetry, rows, columns, entries) of a coordinate Matrix Market file."""
    banner = stream.readline(1024).decode("ascii", "replace").split()
    if len(banner) != 5 or banner[0].lower() != "%%matrixmarket":
        raise DataError(f"{path} is not a Matrix Market file (its first line must begin "
                        "%%MatrixMarket)")
    obj, fmt, field, symmetry = (word.lower() for word in banner[1:])
    if obj != "matrix" or fmt != "coordinate":
        raise DataError(f"{path}: elbokit reads coordinate (sparse) Matrix Market files; "
                        f"this one is {brief(fmt)}")
    if field not in ("real", "integer", "pattern") or symmetry != "general":
        raise DataError(f"{path}: a Matrix Market file of {brief(field)} {brief(symmetry)} "
                        "values; elbokit reads real, integer or pattern, general")
    for _ in range(10**6):
        line = stream.readline(1024)
        if not line.startswith(b"%"):
            break
    sizes = line.split()
    if len(sizes) != 3 or not all(s.isdigit() for s in sizes):
        raise DataError(f"{path}: the size line must be three integers (rows columns "
                        f"entries); got {brief(line.decode('ascii', 'replace'))!r}")
    return (field, *(int(s) for s in sizes))


def read_mtx(path: Path, *, transpose: bool = False) -> "object":
    """A coordinate ``.mtx`` file (plain or gzip) as a scipy CSR matrix; ``transpose``:
    rows are genes and columns cells (10x's layout)."""
    from scipy import sparse

    handle, stream = _open_text(path, "data file")
    with handle:
        try:
            field, n_rows, n_columns, n_entries = _mtx_header(stream, path)
            if not path.suffix.lower() == ".gz":
                left = os.fstat(handle.fileno()).st_size - handle.tell()
                if n_entries * (4 if field == "pattern" else MTX_MIN_ENTRY_BYTES) > left + 1:
                    raise DataError(f"{path}: the size line gives {n_entries} entries but the "
                                    f"file holds {left} bytes after it; it is truncated")
            if n_entries > n_rows * n_columns:
                raise DataError(f"{path}: {n_entries} entries in a {n_rows} x {n_columns} "
                                "matrix")
            check_fits(load_peak_bytes(n_rows * n_columns, np.dtype(np.float64))
                       + 24 * n_entries, str(path),
                       f"the matrix of shape ({n_rows}, {n_columns}) as a dense array")
            rows, columns, values = _mtx_entries(stream, path, field, n_entries)
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise DataError(f"{path} cannot be read as Matrix Market "
                            f"({brief_error(exc)})") from None
    if n_entries and (rows.min() < 1 or rows.max() > n_rows or columns.min() < 1
                      or columns.max() > n_columns):
        raise DataError(f"{path}: an entry's index lies outside the {n_rows} x {n_columns} "
                        "matrix its size line gives")
    matrix = sparse.coo_matrix((values, (rows - 1, columns - 1)),
                               shape=(n_rows, n_columns)).tocsr()
    return matrix.T.tocsr() if transpose else matrix


def _mtx_entries(stream, path: Path, field: str, n_entries: int):
    """The (1-based) rows, columns and values of ``n_entries`` entries, parsed in chunks."""
    width = 2 if field == "pattern" else 3
    out = np.empty((n_entries, width), np.float64)
    filled = 0
    while filled < n_entries:
        count = min(MTX_CHUNK, n_entries - filled)
        lines = [stream.readline(1024) for _ in range(count)]
        lines = [line for line in lines if line.strip()]
        if not lines:
            raise DataError(f"{path} ends after {filled} of the {n_entries} entries its size "
                            "line gives; it is truncated")
        chunk = np.loadtxt(lines, dtype=np.float64, ndmin=2)
        if chunk.shape[1] != width:
            raise DataError(f"{path}: an entry must hold {width} numbers; got "
                            f"{chunk.shape[1]}")
        out[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    if not np.isfinite(out).all():
        raise DataError(f"{path} holds a non-finite value")
    rows, columns = out[:, 0].astype(np.int64), out[:, 1].astype(np.int64)
    values = np.ones(n_entries) if field == "pattern" else out[:, 2]
    return rows, columns, values


def read_names(path: Path, limit: int, column: int = 0) -> list[str]:
    """Up to ``limit`` + 1 names, one a line (the ``column``-th tab-separated field; a
    10x features file's second is the gene symbol)."""
    handle, stream = _open_text(path, "names file")
    names = []
    with handle:
        for line in iter(lambda: stream.readline(4096), b""):
            if len(names) > limit:
                break
            fields = line.decode("utf-8", "replace").rstrip("\r\n").split("\t")
            names.append(fields[min(column, len(fields) - 1)])
    return names


def _first(folder: Path, candidates) -> Path | None:
    return next((folder / c for c in candidates if (folder / c).is_file()), None)


def is_10x_folder(path: Path) -> bool:
    """Whether a folder holds a 10x matrix (``matrix.mtx`` or ``matrix.mtx.gz``)."""
    return path.is_dir() and _first(path, TEN_X_MATRIX) is not None


def read_mtx_dataset(path: Path):
    """A ``.mtx`` file, or a 10x folder, as (X cells x genes, None, gene names, None).

    With a genes/features file and a barcodes file beside it (10x's names, in its
    folder), a matrix of genes x barcodes is transposed to cells x genes and the genes
    named by their symbols (a features file's second column); a bare ``.mtx`` is read
    with its rows as samples (as scanpy.read_mtx)."""
    folder = path if path.is_dir() else path.parent
    matrix_path = _first(path, TEN_X_MATRIX) if path.is_dir() else path
    genes_path, barcodes_path = _first(folder, TEN_X_FEATURES), _first(folder, TEN_X_BARCODES)
    if path.is_dir() and (genes_path is None or barcodes_path is None):
        raise DataError(f"{path}: a 10x folder needs features.tsv (or genes.tsv) and "
                        "barcodes.tsv beside matrix.mtx (each may be .gz)")
    transpose, names = False, None
    if genes_path is not None and barcodes_path is not None:
        try:
            names = _ten_x_names(matrix_path, genes_path, barcodes_path)
        except DataError:
            raise
        except READ_ERRORS as exc:
            raise DataError(f"{folder}: cannot read the 10x files ({brief_error(exc)})") \
                from None
        transpose = True
    matrix = read_mtx(matrix_path, transpose=transpose)
    return densify(matrix, str(matrix_path)), None, names, None


def _ten_x_names(matrix_path: Path, genes_path: Path, barcodes_path: Path) -> list[str]:
    """The gene symbols of a 10x matrix, its names files checked against its size line."""
    handle, stream = _open_text(matrix_path, "data file")
    with handle:
        _, n_rows, n_columns, _ = _mtx_header(stream, matrix_path)
    genes = read_names(genes_path, n_rows, column=1)
    barcodes = read_names(barcodes_path, n_columns)
    if (len(genes), len(barcodes)) != (n_rows, n_columns):
        raise DataError(f"{matrix_path} is {n_rows} x {n_columns} but {genes_path.name} "
                        f"names {len(genes)} genes and {barcodes_path.name} "
                        f"{len(barcodes)} barcodes; they must name its rows and columns")
    return genes
