"""Coordinate ascent on the ELBO of Bishop's variational PCA (Bishop, 1999).

The model, for rows x_n of the data (n = 1..N, d features, L latent dimensions)::

    x_n = W z_n + mu + noise,   noise ~ N(0, tau^-1 I_d)
    z_n ~ N(0, I_L)
    w_i ~ N(0, alpha_i^-1 I_d)      (column i of W: automatic relevance determination)
    alpha_i ~ Gamma(a_alpha, b_alpha),   tau ~ Gamma(a_tau, b_tau)
    mu ~ N(0, beta^-1 I_d)

and the mean-field family ``q(Z) q(W) q(mu) q(alpha) q(tau)``. Each ``update_*``
function below is the lecture's "Mean Field update": freeze the other factors, take
the expectation of ``log p(X, Z, W, mu, alpha, tau)`` under them, and set the factor
to ``q_j ∝ exp(E_{-j}[log p])``, which is the exact maximiser of the ELBO in that
factor (slide "Why does Variational Inference work?"). The functions are pure: they
take a :class:`Posterior` and return a new one, so tests can check each update
against a numerical maximisation of :func:`elbo` in that factor alone.

Gaussian factors store their covariances either shared, of shape (L, L), or one per
row, of shape (n, L, L). With complete data the closed-form updates produce the
shared form (every row has the same optimal covariance); with missing entries (NaN
in X, handled as in Ilin & Raiko, 2010) each row of Z and of W gets its own.
:func:`elbo` accepts both, which is what lets the tests search over the wider family.

The update equations are those of Bishop (1999), "Variational principal
components", ICANN, section 3; the general mean-field result is PRML eq. (10.9).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._math import (
    LOG_2PI,
    batched_spd_inverse,
    cholesky,
    gamma_entropy,
    gamma_expected_log,
    gamma_expected_log_prior,
    gaussian_entropy,
    logdet_from_cholesky,
    spd_inverse,
)


@dataclass(frozen=True)
class Priors:
    """Hyper-parameters of the priors (shape/rate parametrisation of the Gammas)."""

    alpha_shape: float = 1e-3  # a_alpha
    alpha_rate: float = 1e-3  # b_alpha
    tau_shape: float = 1e-3  # a_tau
    tau_rate: float = 1e-3  # b_tau
    mean_precision: float = 1e-3  # beta


@dataclass(frozen=True)
class Posterior:
    """Parameters of the mean-field factors.

    z_mean (N, L), z_cov (L, L) or (N, L, L): q(z_n) = N(z_mean[n], z_cov[n])
    w_mean (d, L), w_cov (L, L) or (d, L, L): q(w_k) = N(w_mean[k], w_cov[k]) for
        row k of W (the rows are independent under q)
    mu_mean (d,), mu_var (d,): q(mu) = N(mu_mean, diag(mu_var))
    alpha_shape (L,), alpha_rate (L,): q(alpha_i) = Gamma(alpha_shape[i], alpha_rate[i])
    tau_shape, tau_rate: q(tau) = Gamma(tau_shape, tau_rate)
    """

    z_mean: np.ndarray
    z_cov: np.ndarray
    w_mean: np.ndarray
    w_cov: np.ndarray
    mu_mean: np.ndarray
    mu_var: np.ndarray
    alpha_shape: np.ndarray
    alpha_rate: np.ndarray
    tau_shape: float
    tau_rate: float

    @property
    def alpha_expected(self) -> np.ndarray:
        """E[alpha_i] = a_i / b_i, shape (L,)."""
        return self.alpha_shape / self.alpha_rate

    @property
    def tau_expected(self) -> float:
        """E[tau] = a / b."""
        return self.tau_shape / self.tau_rate

    def w_second_moment(self) -> np.ndarray:
        """E[W^T W] = sum_k E[w_k w_k^T], shape (L, L)."""
        return self.w_mean.T @ self.w_mean + summed_cov(self.w_cov, self.w_mean.shape[0])

    def z_second_moment(self) -> np.ndarray:
        """E[Z^T Z] = sum_n E[z_n z_n^T], shape (L, L)."""
        return self.z_mean.T @ self.z_mean + summed_cov(self.z_cov, self.z_mean.shape[0])

    def column_sq_norms(self) -> np.ndarray:
        """E[||w_i||^2] for each column i of W, shape (L,)."""
        return np.sum(self.w_mean**2, axis=0) + np.diag(
            summed_cov(self.w_cov, self.w_mean.shape[0]))


# --------------------------------------------------------------------------- small helpers

def summed_cov(cov: np.ndarray, count: int) -> np.ndarray:
    """sum of the ``count`` row covariances: ``count * cov`` when shared, else the sum."""
    return count * cov if cov.ndim == 2 else cov.sum(axis=0)


def summed_logdet(cov: np.ndarray, count: int) -> float:
    """sum of log|cov_n| over the ``count`` rows (shared or one per row)."""
    if cov.ndim == 2:
        return count * logdet_from_cholesky(cholesky(cov))
    sign, logdets = np.linalg.slogdet(cov)
    if np.any(sign <= 0):
        return -np.inf
    return float(np.sum(logdets))


def _rows(cov: np.ndarray, count: int) -> np.ndarray:
    """The covariances as a stack (count, L, L), whether shared or per row."""
    return np.broadcast_to(cov, (count,) + cov.shape[-2:]) if cov.ndim == 2 else cov


def _second_moments(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """E[v v'] = m m' + S for each row, flattened to (count, L*L)."""
    count, L = mean.shape
    outer = mean[:, :, None] * mean[:, None, :]
    return (outer + _rows(cov, count)).reshape(count, L * L)


def split_missing(X: np.ndarray):
    """``(X with NaN set to 0, mask of observed entries as floats)``, or ``(X, None)``
    when nothing is missing (the fast complete-data formulas then apply)."""
    missing = np.isnan(X)
    if not missing.any():
        return X, None
    return np.where(missing, 0.0, X), (~missing).astype(np.float64)


# --------------------------------------------------------------------------- the updates
#
# With missing entries (NaN), every sum over n or k runs over the observed entries
# only (Ilin & Raiko, 2010, section 3): each row of Z and of W then has its own
# covariance. Without, the covariances are shared and the sums are matrix products.

def update_z(X: np.ndarray, post: Posterior, priors: Priors) -> Posterior:
    """q(z_n) = N(m_n, Sigma_n) with Sigma_n = (I + E[tau] sum_{k in O_n} E[w_k w_k'])^-1
    and m_n = E[tau] Sigma_n sum_{k in O_n} E[w_k] (x_nk - E[mu_k]); O_n = observed
    entries of row n (all of them: Sigma_n = (I + E[tau] E[W'W])^-1 for every n)."""
    X, mask = split_missing(X)
    tau = post.tau_expected
    n, L = X.shape[0], post.w_mean.shape[1]
    if mask is None:
        z_cov = spd_inverse(np.eye(L) + tau * post.w_second_moment())
        z_mean = tau * (X - post.mu_mean) @ post.w_mean @ z_cov  # (N, L)
        return replace(post, z_mean=z_mean, z_cov=z_cov)
    observed_w = (mask @ _second_moments(post.w_mean, post.w_cov)).reshape(n, L, L)
    z_cov = batched_spd_inverse(np.eye(L) + tau * observed_w)  # (N, L, L)
    projected = tau * ((X - post.mu_mean) * mask) @ post.w_mean  # (N, L)
    z_mean = np.einsum("nij,nj->ni", z_cov, projected)
    return replace(post, z_mean=z_mean, z_cov=z_cov)


def update_mu(X: np.ndarray, post: Posterior, priors: Priors) -> Posterior:
    """q(mu_k) = N(m_k, s_k^2) with s_k^2 = 1 / (beta + |O_k| E[tau]) and
    m_k = E[tau] s_k^2 sum_{n in O_k} (x_nk - E[w_k]' E[z_n]); O_k = rows where
    feature k is observed (all N of them without missing data)."""
    X, mask = split_missing(X)
    tau = post.tau_expected
    if mask is None:
        mask = np.ones_like(X)
    var = 1.0 / (priors.mean_precision + tau * mask.sum(axis=0))
    residual = (X - post.z_mean @ post.w_mean.T) * mask
    return replace(post, mu_mean=tau * var * residual.sum(axis=0), mu_var=var)


def update_w(X: np.ndarray, post: Posterior, priors: Priors) -> Posterior:
    """q(w_k) = N(m_k, Sigma_k) for each row k of W with
    Sigma_k = (diag E[alpha] + E[tau] sum_{n in O_k} E[z_n z_n'])^-1 and
    m_k = E[tau] Sigma_k sum_{n in O_k} E[z_n] (x_nk - E[mu_k])."""
    X, mask = split_missing(X)
    tau = post.tau_expected
    d, L = X.shape[1], post.w_mean.shape[1]
    if mask is None:
        w_cov = spd_inverse(np.diag(post.alpha_expected) + tau * post.z_second_moment())
        w_mean = tau * (X - post.mu_mean).T @ post.z_mean @ w_cov  # (d, L)
        return replace(post, w_mean=w_mean, w_cov=w_cov)
    observed_z = (mask.T @ _second_moments(post.z_mean, post.z_cov)).reshape(d, L, L)
    w_cov = batched_spd_inverse(np.diag(post.alpha_expected) + tau * observed_z)
    projected = tau * ((X - post.mu_mean) * mask).T @ post.z_mean  # (d, L)
    w_mean = np.einsum("kij,kj->ki", w_cov, projected)
    return replace(post, w_mean=w_mean, w_cov=w_cov)


def update_alpha(X: np.ndarray, post: Posterior, priors: Priors) -> Posterior:
    """q(alpha_i) = Gamma(a_alpha + d/2, b_alpha + E[||w_i||^2] / 2)."""
    d, L = post.w_mean.shape
    shape = np.full(L, priors.alpha_shape + 0.5 * d)
    rate = priors.alpha_rate + 0.5 * post.column_sq_norms()
    return replace(post, alpha_shape=shape, alpha_rate=rate)


def expected_sse(X: np.ndarray, post: Posterior) -> float:
    """E[sum_{(n,k) observed} (x_nk - w_k' z_n - mu_k)^2] under q.

    Complete data: ||X - E[mu] - E[Z] E[W]'||^2 + N tr Cov(mu) + tr(E[W]'E[W] S_z)
    + tr(S_w E[Z]'E[Z]) + tr(S_w S_z), with S_z, S_w the summed covariances (the
    variance terms are written out rather than as tr(E[W'W] E[Z'Z]) - tr(...) to
    avoid cancellation). With missing data the same terms, entry by entry."""
    X, mask = split_missing(X)
    n, d = X.shape
    residual = X - post.mu_mean - post.z_mean @ post.w_mean.T
    if mask is None:
        s_z = summed_cov(post.z_cov, n)
        s_w = summed_cov(post.w_cov, d)
        return float(
            np.sum(residual**2) + n * np.sum(post.mu_var)
            + np.sum((post.w_mean.T @ post.w_mean) * s_z)
            + np.sum(s_w * (post.z_mean.T @ post.z_mean)) + np.sum(s_w * s_z))
    L = post.w_mean.shape[1]
    z_cov = _rows(post.z_cov, n).reshape(n, L * L)
    w_cov = _rows(post.w_cov, d).reshape(d, L * L)
    w_outer = (post.w_mean[:, :, None] * post.w_mean[:, None, :]).reshape(d, L * L)
    z_outer = (post.z_mean[:, :, None] * post.z_mean[:, None, :]).reshape(n, L * L)
    return float(
        np.sum(mask * residual**2) + mask.sum(axis=0) @ post.mu_var
        + np.sum((mask @ w_outer) * z_cov)  # E[w_k]' Sigma_n E[w_k]
        + np.sum((mask.T @ z_outer) * w_cov)  # E[z_n]' Sigma_k E[z_n]
        + np.sum((mask @ w_cov) * z_cov))  # tr(Sigma_k Sigma_n)


def n_observed(X: np.ndarray) -> int:
    """Number of observed (non-NaN) entries."""
    return int(X.size - np.count_nonzero(np.isnan(X)))


def update_tau(X: np.ndarray, post: Posterior, priors: Priors) -> Posterior:
    """q(tau) = Gamma(a_tau + |O| / 2, b_tau + E[sum_{O} (x_nk - w_k' z_n - mu_k)^2] / 2),
    |O| the number of observed entries (N d without missing data)."""
    shape = priors.tau_shape + 0.5 * n_observed(X)
    rate = priors.tau_rate + 0.5 * expected_sse(X, post)
    return replace(post, tau_shape=float(shape), tau_rate=float(rate))


#: one sweep of coordinate ascent, in order
UPDATES = (update_z, update_mu, update_w, update_alpha, update_tau)


def sweep(X: np.ndarray, post: Posterior, priors: Priors) -> Posterior:
    """One pass of every factor's update; the ELBO cannot decrease."""
    for update in UPDATES:
        post = update(X, post, priors)
    return post


# --------------------------------------------------------------------------- the bound

def elbo_terms(X: np.ndarray, post: Posterior, priors: Priors) -> dict[str, float]:
    """The ELBO E_q[log p(X, Z, W, mu, alpha, tau)] + H[q], term by term, in nats."""
    n, d = X.shape
    L = post.w_mean.shape[1]
    e_tau = post.tau_expected
    e_log_tau = float(gamma_expected_log(post.tau_shape, post.tau_rate))
    e_alpha = post.alpha_expected
    e_log_alpha = gamma_expected_log(post.alpha_shape, post.alpha_rate)
    mu_sq = float(np.sum(post.mu_mean**2) + np.sum(post.mu_var))
    return {
        # E[log p(X | Z, W, mu, tau)]
        "likelihood": 0.5 * n_observed(X) * (e_log_tau - LOG_2PI)
        - 0.5 * e_tau * expected_sse(X, post),
        # E[log p(Z)]
        "prior_z": -0.5 * n * L * LOG_2PI - 0.5 * float(np.trace(post.z_second_moment())),
        # E[log p(W | alpha)]
        "prior_w": float(np.sum(0.5 * d * (e_log_alpha - LOG_2PI)
                                - 0.5 * e_alpha * post.column_sq_norms())),
        "prior_alpha": float(np.sum(gamma_expected_log_prior(
            post.alpha_shape, post.alpha_rate, priors.alpha_shape, priors.alpha_rate))),
        "prior_mu": 0.5 * d * (np.log(priors.mean_precision) - LOG_2PI)
        - 0.5 * priors.mean_precision * mu_sq,
        "prior_tau": float(gamma_expected_log_prior(
            post.tau_shape, post.tau_rate, priors.tau_shape, priors.tau_rate)),
        # entropies of the Gaussian factors: k/2 (1 + log 2 pi) + 1/2 log|Sigma|
        "entropy_z": gaussian_entropy(summed_logdet(post.z_cov, n), n * L),
        "entropy_w": gaussian_entropy(summed_logdet(post.w_cov, d), d * L),
        "entropy_mu": gaussian_entropy(float(np.sum(np.log(post.mu_var))), d),
        "entropy_alpha": float(np.sum(gamma_entropy(post.alpha_shape, post.alpha_rate))),
        "entropy_tau": float(gamma_entropy(post.tau_shape, post.tau_rate)),
    }


def elbo(X: np.ndarray, post: Posterior, priors: Priors) -> float:
    """The evidence lower bound L(q) <= log p(X), in nats (PRML eq. 10.3)."""
    return float(sum(elbo_terms(X, post, priors).values()))


# --------------------------------------------------------------------------- the start

def initial_posterior(X: np.ndarray, n_components: int, priors: Priors,
                      rng: np.random.RandomState) -> Posterior:
    """A starting point from the closed-form PPCA fit with ``n_components`` dimensions
    (Tipping & Bishop, 1999): E[W] = U (Lambda - sigma^2 I)^(1/2), E[tau] = 1/sigma^2,
    sigma^2 the mean discarded eigenvalue. Columns with no variance left get a tiny
    random direction so the data, not the start, decides whether they are pruned.
    q(Z) is left at its prior; the first update of a sweep replaces it. Missing
    entries (NaN) are filled with their feature's mean for this start only."""
    n, d = X.shape
    L = n_components
    mean = np.nanmean(X, axis=0) if np.isnan(X).any() else X.mean(axis=0)
    centred = np.nan_to_num(X - mean, nan=0.0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    eig = np.zeros(d)
    eig[: singular.size] = singular**2 / n  # ML covariance eigenvalues, padded with zeros
    total = max(float(eig.mean()), 1e-12)
    sigma2 = float(eig[L:].mean()) if L < d else 1e-2 * total
    sigma2 = max(sigma2, 1e-6 * total)
    directions = np.zeros((d, L))
    k = min(L, vt.shape[0])
    directions[:, :k] = vt[:k].T
    w_mean = directions * np.sqrt(np.maximum(eig[:L] - sigma2, 0.0))
    dead = np.sum(w_mean**2, axis=0) <= 1e-12 * total
    w_mean[:, dead] = 1e-3 * np.sqrt(sigma2) * rng.standard_normal((d, int(dead.sum())))
    tau_shape = priors.tau_shape + 0.5 * n * d
    post = Posterior(
        z_mean=np.zeros((n, L)), z_cov=np.eye(L),
        w_mean=w_mean, w_cov=(sigma2 / n) * np.eye(L),
        mu_mean=mean, mu_var=np.full(d, sigma2 / n),
        alpha_shape=np.ones(L), alpha_rate=np.ones(L),
        tau_shape=float(tau_shape), tau_rate=float(tau_shape * sigma2),
    )
    return update_alpha(X, post, priors)


def permute_components(post: Posterior, order: np.ndarray) -> Posterior:
    """Reorder the latent dimensions (a symmetry of the model and of q: the ELBO is
    unchanged)."""
    def cov(c):
        return c[..., order[:, None], order[None, :]]

    return replace(post, z_mean=post.z_mean[:, order], z_cov=cov(post.z_cov),
                   w_mean=post.w_mean[:, order], w_cov=cov(post.w_cov),
                   alpha_shape=post.alpha_shape[order], alpha_rate=post.alpha_rate[order])
