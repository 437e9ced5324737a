"""Wide tables (far more features than rows, d >> n): the covariance held as its n x d
factor, never as the d x d matrix.

The ML covariance of n rows is S = F' F with F = (X - mean) / sqrt(n), of rank at
most n - 1. PPCA and the linear autoencoder touch S only through products S M and
M S with thin matrices, its diagonal, its trace and its top eigenpairs, which F gives
in O(n d L) (the eigenpairs from the SVD of F, O(n^2 d)): a 50 x 20,000 table takes
8 MB and a second where the d x d path took 3.2 GB per copy and minutes of an
eigendecomposition that Ctrl-C cannot stop. Factor analysis, whose fit statistics and
ML step need the d x d matrix, refuses such a table with the figure instead
(:func:`check_wide_covariance`).
"""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from ..persistence.memory import gib

#: PPCA and the linear AE take the factor path when n < d and the d x d covariance
#: would take more than this (d > 2,896); below it, the covariance path (the same fit)
FACTOR_PATH_BYTES = 64 * 2**20
#: factor analysis refuses n < d when one d x d covariance takes more than this
#: (d > 11,585): it would hold three of them and eigendecompose one
WIDE_REFUSAL_BYTES = 2**30


def takes_factor_path(n_samples: int, n_features: int, n_components: int) -> bool:
    """Whether a complete in-memory table is fitted from its factor: wide (n < d, with
    the components fewer than the rows) and its covariance larger than
    ``FACTOR_PATH_BYTES``."""
    return (n_samples < n_features and n_components < n_samples
            and 8.0 * n_features ** 2 > FACTOR_PATH_BYTES)


def check_wide_covariance(n_samples: int, n_features: int, model: str) -> None:
    """Refuse, before the d x d covariance is formed, a wide table (n < d) whose
    covariance exceeds ``WIDE_REFUSAL_BYTES``, naming its size and the models that
    take the n x d path."""
    one = 8.0 * n_features ** 2
    if n_samples < n_features and one > WIDE_REFUSAL_BYTES:
        raise DataError(f"{model} on {n_samples} rows x {n_features} features would form a "
                        f"{n_features} x {n_features} covariance ({gib(one)}, {gib(3 * one)} "
                        "with its work copies) and eigendecompose it; with fewer rows than "
                        "features use PPCA, PCA or the linear autoencoder, which work from "
                        f"the {n_samples} x {n_features} data, or select features")


class FactoredCovariance:
    """S = F' F held as F (n, d). ``S @ M``, ``M @ S``, ``np.diag(S)`` and
    ``np.trace(S)`` work as on the dense matrix (the last two through numpy's
    ``__array_function__`` protocol); anything else that would need the d x d matrix
    raises TypeError rather than forming it."""

    __array_ufunc__ = None  # ndarray @ S defers to __rmatmul__

    def __init__(self, F: np.ndarray):
        self.F = F
        self.shape = (F.shape[1], F.shape[1])
        self.ndim = 2
        self.dtype = F.dtype

    @classmethod
    def of_rows(cls, X: np.ndarray) -> tuple[np.ndarray, FactoredCovariance]:
        """(mean, S) of the rows of X (n, d), S with the divisor n as ``sample_covariance``."""
        mean = X.mean(axis=0, dtype=np.float64)
        return mean, cls((np.asarray(X, dtype=np.float64) - mean) / np.sqrt(X.shape[0]))

    def __matmul__(self, M: np.ndarray) -> np.ndarray:  # S M = F' (F M)
        return self.F.T @ (self.F @ M)

    def __rmatmul__(self, M: np.ndarray) -> np.ndarray:  # M S = (M F') F
        return (M @ self.F.T) @ self.F

    def diagonal(self) -> np.ndarray:
        return np.einsum("ij,ij->j", self.F, self.F)

    def trace(self) -> float:
        return float(np.einsum("ij,ij->", self.F, self.F))

    def scaled(self, scale: np.ndarray) -> FactoredCovariance:
        """S / outer(scale, scale): the covariance of the standardized features."""
        return FactoredCovariance(self.F / scale)

    def top_eigh(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k largest eigenvalues (ascending, as scipy's ``eigh`` with
        ``subset_by_index``) and their eigenvectors (d, k), from the SVD of F."""
        _, s, Vt = np.linalg.svd(self.F, full_matrices=False)  # (n,), (n, d)
        return (s[:k] ** 2)[::-1], Vt[:k][::-1].T

    def __array_function__(self, func, types, args, kwargs):
        if func is np.diag and len(args) == 1 and not kwargs:
            return self.diagonal()
        if func is np.trace and len(args) == 1 and not kwargs:
            return self.trace()
        return NotImplemented

    def __array__(self, *args, **kwargs):
        raise TypeError("a factored covariance is not formed as a dense d x d array")


def top_eigh(S, k: int):
    """The k largest eigenpairs of a covariance, dense or factored (ascending)."""
    if isinstance(S, FactoredCovariance):
        return S.top_eigh(k)
    from scipy import linalg

    d = S.shape[0]
    return linalg.eigh(S, subset_by_index=[d - k, d - 1], check_finite=False)
