"""Numerics shared by every classical model: log-sum-exp, Gaussian log-densities,
entropies and KLs, Cholesky solves, the Woodbury identity for covariances
``Psi + W W^T``, the Gamma expectations of the mean-field VI, and bits per dimension.

Each function is tested against a reference (scipy.stats / scipy.special or a direct
dense computation) in ``tests/test_math.py``. The torch counterparts of the VAE are in
``elbokit.nn._math``.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.special import digamma, gammaln
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


def diag_gaussian_logpdf(X: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log N(x | mean, diag(var)) for each row of ``X`` (summed over the last axis)."""
    return -0.5 * np.sum(LOG_2PI + np.log(var) + (X - mean) ** 2 / var, axis=-1)


def kl_diag_gaussian_standard_dims(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """KL( N(mean_j, var_j) || N(0, 1) ) per dimension (no sum), in nats:
    1/2 (var + mean^2 - 1 - log var). A variance that underflowed to 0 is read as
    1e-300 (a large but finite KL)."""
    var = np.maximum(var, 1e-300)
    return 0.5 * (var + mean**2 - 1.0 - np.log(var))


def gaussian_entropy(logdet: float, dim: int) -> float:
    """Entropy of a ``dim``-dimensional Gaussian whose covariance has log-determinant
    ``logdet``: 1/2 dim (1 + log 2 pi) + 1/2 logdet (sums of independent Gaussians:
    pass the summed dimension and log-determinant)."""
    return 0.5 * dim * (1.0 + LOG_2PI) + 0.5 * logdet


def gaussian_kl_to_standard(mean: np.ndarray, cov: np.ndarray) -> float:
    """KL( N(mean, cov) || N(0, I) ) in nats, for one full-covariance Gaussian."""
    chol = cholesky(cov)
    k = mean.shape[-1]
    return 0.5 * (np.trace(cov) + float(mean @ mean) - k - logdet_from_cholesky(chol))


def spd_inverse(A: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix by its Cholesky factor, made
    exactly symmetric."""
    inverse = cho_solve(cholesky(A), np.eye(A.shape[0]))
    return 0.5 * (inverse + inverse.T)


def batched_spd_inverse(A: np.ndarray) -> np.ndarray:
    """Inverses of a stack (m, L, L) of well-conditioned symmetric positive-definite
    matrices, made exactly symmetric (one batched LU is faster than Cholesky then two
    triangular inverses)."""
    inverse = np.linalg.inv(A)
    return 0.5 * (inverse + np.swapaxes(inverse, -1, -2))


# --------------------------------------------------------------------------- Gamma (VI)

def gamma_expected_log(shape, rate):
    """E[log x] under Gamma(shape, rate): digamma(shape) - log(rate)."""
    return digamma(shape) - np.log(rate)


def gamma_entropy(shape, rate):
    """Entropy of Gamma(shape, rate): a - log b + log Gamma(a) + (1 - a) digamma(a)."""
    return shape - np.log(rate) + gammaln(shape) + (1.0 - shape) * digamma(shape)


def gamma_expected_log_prior(shape, rate, prior_shape: float, prior_rate: float):
    """E_q[log Gamma(x | prior_shape, prior_rate)] for q = Gamma(shape, rate)."""
    return (prior_shape * np.log(prior_rate) - gammaln(prior_shape)
            + (prior_shape - 1.0) * gamma_expected_log(shape, rate)
            - prior_rate * shape / rate)


# --------------------------------------------------------------------------- bits per dim

def bits_per_dim(mean_log_px: float, n_features: float) -> float:
    """A mean log-density in nats turned into a negative log-likelihood in bits per
    dimension: -log p(x) / (d ln 2) (``n_features``: d, or :func:`observed_dims`)."""
    return -float(mean_log_px) / (n_features * np.log(2.0))


def observed_dims(X: np.ndarray) -> float:
    """The dimensions a row's log p covers, on average: d for complete rows; with
    missing (NaN) entries the mean count of observed ones (log p of a row is then the
    marginal of its observed entries), so bits/dim is per observed entry."""
    if hasattr(X, "nnz"):  # a scipy sparse X: finite, complete rows
        return float(X.shape[1])
    X = np.asarray(X)
    if X.shape[0] == 0 or not np.issubdtype(X.dtype, np.floating) or not np.isnan(X).any():
        return float(X.shape[1])
    return float(np.count_nonzero(~np.isnan(X))) / X.shape[0]


# --------------------------------------------------------------------------- missing entries

def batched_cho_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``A_i x_i = b_i`` for a stack of lower Cholesky factors (n, L, L), b (n, L)."""
    y = np.linalg.solve(chol, b[..., None])
    return np.linalg.solve(np.swapaxes(chol, -1, -2), y)[..., 0]


class ObservedPosteriors:
    """Posterior of z given the observed entries of each row under x = W z + mu + noise,
    noise ~ N(0, diag(psi)); ``mask`` is 1 where an entry is observed, 0 where missing.

    For row i with observed set o: M_i = I + W_o' Psi_o^-1 W_o (L, L),
    E[z_i] = M_i^-1 W_o' Psi_o^-1 (x_o - mu_o), Cov[z_i] = M_i^-1. The same M_i gives
    log N(x_o | mu_o, Psi_o + W_o W_o') by the matrix-determinant lemma and Woodbury.

    Parameters
    ----------
    Xc0 : (n, d) centred data ``x - mu`` with zeros at the missing entries.
    mask : (n, d) float, 1 observed / 0 missing.
    W : (d, L) loadings.  psi : (d,) or scalar noise variance(s).
    """

    def __init__(self, Xc0: np.ndarray, mask: np.ndarray, W: np.ndarray, psi):
        n, d = Xc0.shape
        L = W.shape[1]
        psi = np.broadcast_to(np.asarray(psi, dtype=np.float64), (d,))
        self.psi, self.mask = psi, mask
        psi_inv_W = W / psi[:, None]  # (d, L)
        outer = (psi_inv_W[:, :, None] * W[:, None, :]).reshape(d, L * L)  # w_j w_j' / psi_j
        self.M = np.eye(L) + (mask @ outer).reshape(n, L, L)  # (n, L, L)
        self.chol = np.linalg.cholesky(self.M)
        self.R = Xc0 * mask  # observed residuals, (n, d)
        self.b = self.R @ psi_inv_W  # W_o' Psi_o^-1 (x_o - mu_o), (n, L)
        self.mean = batched_cho_solve(self.chol, self.b)  # E[z_i], (n, L)

    def cov(self) -> np.ndarray:
        """Cov[z_i | x_o] = M_i^-1, (n, L, L)."""
        return np.linalg.inv(self.M)

    def logpdf(self) -> np.ndarray:
        """log N(x_o | mu_o, Psi_o + W_o W_o') of each row, in nats (observed entries only)."""
        d_obs = self.mask.sum(axis=1)
        logdet_M = 2.0 * np.sum(np.log(np.diagonal(self.chol, axis1=1, axis2=2)), axis=1)
        logdet_C = self.mask @ np.log(self.psi) + logdet_M
        quad = np.sum(self.R**2 / self.psi, axis=1) - np.sum(self.b * self.mean, axis=1)
        return -0.5 * (d_obs * LOG_2PI + logdet_C + quad)


def observed_logpdf(Xc0: np.ndarray, mask: np.ndarray, W: np.ndarray, psi) -> np.ndarray:
    """log N(x_o | mu_o, Psi_o + W_o W_o') of each row over its observed entries (the one
    place this density is computed; see :class:`ObservedPosteriors`)."""
    return ObservedPosteriors(Xc0, mask, W, psi).logpdf()


def augmented_m_step(X0: np.ndarray, mask: np.ndarray, post: ObservedPosteriors):
    """The exact M step of a linear-Gaussian model with missing entries, for the loadings
    and the mean together: augmented loadings [W, mu] and latent [z, 1], row by row,
    w~_j = (sum_i m_ij x_ij E[z~_i]) (sum_i m_ij E[z~ z~']_i)^-1.

    Returns ``(W (d, L), mu (d,), residual (d,), counts (d,))`` where ``residual_j =
    sum_i m_ij E[(x_ij - w~_j' z~_i)^2]`` at the new loadings and ``counts_j`` the number
    of observed entries of feature j: FA's noise update is ``residual / counts``, PPCA's
    ``residual.sum() / counts.sum()``."""
    n, d = X0.shape
    L = post.mean.shape[1]
    K = L + 1
    Ez = post.mean
    Ezt = np.concatenate([Ez, np.ones((n, 1))], axis=1)  # (n, K)
    Ezzt = np.empty((n, K, K))
    Ezzt[:, :L, :L] = post.cov() + Ez[:, :, None] * Ez[:, None, :]
    Ezzt[:, :L, L] = Ez
    Ezzt[:, L, :L] = Ez
    Ezzt[:, L, L] = 1.0
    Xm = X0 * mask
    A = (mask.T @ Ezzt.reshape(n, K * K)).reshape(d, K, K)  # (d, K, K)
    B = Xm.T @ Ezt  # (d, K)
    ridge = 1e-12 * np.trace(A, axis1=1, axis2=2)[:, None, None] / K * np.eye(K)
    Wt = np.linalg.solve(A + ridge, B[..., None])[..., 0]  # (d, K)
    # sum_i m_ij E[(x_ij - w~'z~)^2] = sum m x^2 - 2 w~'B_j + w~'A_j w~
    residual = (np.sum(Xm * X0, axis=0) - 2.0 * np.sum(Wt * B, axis=1)
                + np.einsum("dk,dkl,dl->d", Wt, A, Wt))
    return Wt[:, :L], Wt[:, L], np.maximum(residual, 0.0), mask.sum(axis=0)


def aggregate_posterior_terms(mean: np.ndarray, var: np.ndarray, z: np.ndarray,
                              chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For draws z_i ~ q(z|x_i) = N(mean_i, diag var_i), i = 1..N (all (N, L)):
    ``log q(z_i|x_i)`` and ``log q_N(z_i)``, each (N,), where q_N(z) = 1/N sum_j
    q(z|x_j) is the aggregate posterior of the N rows (Hoffman & Johnson 2016). Rows
    are taken ``chunk`` at a time, so memory is chunk x N x L floats."""
    n = mean.shape[0]
    log_q_own = diag_gaussian_logpdf(z, mean, var)
    log_q_agg = np.empty(n)
    for start in range(0, n, chunk):
        zi = z[start:start + chunk, None, :]  # (c, 1, L) against every q(.|x_j): (1, N, L)
        pair = diag_gaussian_logpdf(zi, mean[None], var[None])  # (c, N)
        log_q_agg[start:start + chunk] = logsumexp(pair, axis=1) - np.log(n)
    return log_q_own, log_q_agg
