"""Numerics shared by every classical model: log-sum-exp, Gaussian log-densities,
Cholesky solves and the Woodbury identity for covariances ``Psi + W W^T``.

Each function is tested against a direct dense computation in ``tests/test_math.py``.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import logsumexp as _scipy_logsumexp

LOG_2PI = float(np.log(2.0 * np.pi))


def logsumexp(a, axis=None, keepdims: bool = False):
    """log(sum(exp(a))) computed without overflow (scipy's implementation)."""
    return _scipy_logsumexp(a, axis=axis, keepdims=keepdims)


def cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric positive-definite matrix.

    Adds a small multiple of the identity when the matrix is only semi-definite
    through round-off (up to 1e-10 of its mean diagonal)."""
    try:
        return linalg.cholesky(A, lower=True, check_finite=False)
    except linalg.LinAlgError:
        jitter = 1e-10 * max(float(np.mean(np.diag(A))), 1e-300)
        return linalg.cholesky(A + jitter * np.eye(A.shape[0]), lower=True, check_finite=False)


def cho_solve(chol: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``A X = B`` given the lower Cholesky factor of ``A``."""
    return linalg.cho_solve((chol, True), B, check_finite=False)


def logdet_from_cholesky(chol: np.ndarray) -> float:
    """log|A| from the lower Cholesky factor of A."""
    return 2.0 * float(np.sum(np.log(np.diag(chol))))


def gaussian_logpdf_dense(Xc: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x | 0, cov) for each row of the centred data ``Xc`` (dense covariance)."""
    chol = cholesky(cov)
    solved = linalg.solve_triangular(chol, Xc.T, lower=True, check_finite=False)  # (d, n)
    quad = np.sum(solved**2, axis=0)
    return -0.5 * (Xc.shape[1] * LOG_2PI + logdet_from_cholesky(chol) + quad)


class LowRankGaussian:
    """The covariance ``C = diag(psi) + W W^T`` of a linear-Gaussian model.

    Holds the factors the Woodbury identity and the matrix-determinant lemma need:
    ``M = I + W^T Psi^-1 W`` (L x L) and its Cholesky factor. Every log-density,
    posterior and precision of the classical models goes through this class.

    Parameters
    ----------
    W : array of shape (d, L)
        Loading matrix.
    psi : array of shape (d,)
        Diagonal noise variances (all > 0).
    """

    def __init__(self, W: np.ndarray, psi: np.ndarray):
        self.W = W
        self.psi = psi
        self.psi_inv_W = W / psi[:, None]  # Psi^-1 W, (d, L)
        M = np.eye(W.shape[1]) + W.T @ self.psi_inv_W  # (L, L)
        self.chol_M = cholesky(M)

    @property
    def dim(self) -> int:
        return self.W.shape[0]

    def logdet(self) -> float:
        """log|Psi + W W^T| = sum(log psi) + log|M| (matrix-determinant lemma)."""
        return float(np.sum(np.log(self.psi))) + logdet_from_cholesky(self.chol_M)

    def posterior_cov(self) -> np.ndarray:
        """G = M^-1 = (I + W^T Psi^-1 W)^-1, the posterior covariance of z given x."""
        return cho_solve(self.chol_M, np.eye(self.W.shape[1]))

    def posterior_mean(self, Xc: np.ndarray) -> np.ndarray:
        """E[z|x] = G W^T Psi^-1 (x - mu) for each centred row, shape (n, L)."""
        return cho_solve(self.chol_M, (Xc @ self.psi_inv_W).T).T

    def quadratic(self, Xc: np.ndarray) -> np.ndarray:
        """x^T C^-1 x for each centred row, by Woodbury: x'Psi^-1x - b'M^-1 b, b = W'Psi^-1 x."""
        b = Xc @ self.psi_inv_W  # (n, L)
        half = linalg.solve_triangular(self.chol_M, b.T, lower=True, check_finite=False)
        return np.sum(Xc**2 / self.psi, axis=1) - np.sum(half**2, axis=0)

    def logpdf(self, Xc: np.ndarray) -> np.ndarray:
        """log N(x | 0, Psi + W W^T) for each centred row of ``Xc``, in nats."""
        return -0.5 * (self.dim * LOG_2PI + self.logdet() + self.quadratic(Xc))

    def mean_logpdf_from_cov(self, S: np.ndarray, S_psi_inv_W: np.ndarray | None = None) -> float:
        """Mean log-density over a data set whose (biased) covariance about the model
        mean is ``S``: -1/2 (d log 2pi + log|C| + tr(C^-1 S)).

        ``S_psi_inv_W`` (= S Psi^-1 W) may be passed when the caller has it already."""
        if S_psi_inv_W is None:
            S_psi_inv_W = S @ self.psi_inv_W
        trace = float(np.sum(np.diag(S) / self.psi))
        B = self.psi_inv_W.T @ S_psi_inv_W  # W' Psi^-1 S Psi^-1 W, (L, L)
        trace -= float(np.trace(cho_solve(self.chol_M, B)))
        return -0.5 * (self.dim * LOG_2PI + self.logdet() + trace)

    def covariance(self) -> np.ndarray:
        """The dense d x d covariance Psi + W W^T."""
        return self.W @ self.W.T + np.diag(self.psi)

    def precision(self) -> np.ndarray:
        """The dense d x d precision by Woodbury: Psi^-1 - Psi^-1 W M^-1 W^T Psi^-1."""
        inner = cho_solve(self.chol_M, self.psi_inv_W.T)  # (L, d)
        return np.diag(1.0 / self.psi) - self.psi_inv_W @ inner


def gaussian_kl_to_standard(mean: np.ndarray, cov: np.ndarray) -> float:
    """KL( N(mean, cov) || N(0, I) ) in nats, for one full-covariance Gaussian."""
    chol = cholesky(cov)
    k = mean.shape[-1]
    return 0.5 * (np.trace(cov) + float(mean @ mean) - k - logdet_from_cholesky(chol))
