"""A sparse matrix as the VAE's rows: cells x genes kept sparse (scipy CSR, float32) and
densified one minibatch at a time, in training (the loop's ``index_select``), in
validation and in every evaluation (the batches of ``encode``, ``elbo``, the
importance-sampled log p(x)), so a count matrix that does not fit in memory as a dense
array still fits and is scored. :class:`SparseRows` offers what those loops take of a
tensor of rows: ``shape``, ``device``, ``len``, slices and ``index_select`` of rows."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse


class SparseRows:
    """The rows of a CSR matrix (n, d) as dense float32 tensors on ``device``, made as
    they are asked for (a batch of 128 rows x 2,000 genes: 1 MB)."""

    dtype = torch.float32

    def __init__(self, matrix, device=None):
        self.matrix = sparse.csr_matrix(matrix, dtype=np.float32)
        self.device = torch.device("cpu" if device is None else device)
        self.shape = torch.Size(self.matrix.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> torch.Tensor:
        """The dense rows ``rows`` (a slice, or indices: an array or a tensor), (B, d)."""
        if isinstance(rows, torch.Tensor):
            rows = rows.cpu().numpy()
        if not isinstance(rows, (slice, np.ndarray, list)):
            raise TypeError(f"SparseRows takes a slice or row indices; got {type(rows).__name__}")
        dense = self.matrix[rows].toarray()  # (B, d) float32, C order
        return torch.from_numpy(dense).to(self.device)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("SparseRows selects rows only (dim=0)")
        return self[index]

    def to(self, device) -> "SparseRows":
        return self if torch.device(device) == self.device else SparseRows(self.matrix, device)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def row_sums(self) -> torch.Tensor:
        """The total of each row, (n, 1) float32 (a count matrix's library sizes)."""
        return torch.from_numpy(np.asarray(self.matrix.sum(axis=1), dtype=np.float32))


def as_rows(X, device=None):
    """A sparse matrix as :class:`SparseRows` (on ``device``); anything else as given."""
    return SparseRows(X, device) if sparse.issparse(X) else X


def append_columns(X, columns: np.ndarray):
    """X (n, d) with ``columns`` (n, c) appended: a conditional VAE's coded y; sparse X
    stays sparse."""
    if sparse.issparse(X):
        return sparse.hstack([X, sparse.csr_matrix(columns)], format="csr", dtype=np.float32)
    return np.hstack([X, columns])


def dense_block(X) -> np.ndarray:
    """Rows of X as a dense array (a sparse block densified)."""
    return X.toarray() if sparse.issparse(X) else np.asarray(X)
