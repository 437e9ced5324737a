"""Numbers to compare models by: log p(x) in nats (exact or importance-sampled),
active units, KL per latent dimension, reconstruction error, bits/dim.

Every function takes any fitted model that implements the model protocol
(:class:`elbokit.protocol.LatentVariableModel`) and reads it through that protocol only:
the classical models (PCA, PPCA, FA, linear autoencoder, VBPCA) have an exact Gaussian
posterior and log-likelihood; a VAE has an encoder q(z|x), so its log p(x) is estimated
by importance sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _math
from ._validation import check_int
from .progress import progress_bar
from .protocol import as_model


@dataclass
class LogLikelihood:
    """Per-sample log p(x) (nats) and its summary.

    ``stderr`` is the standard error of ``mean`` over the data points; ``exact`` is
    True for closed-form values, False for importance-sampled estimates with
    ``n_importance`` samples per point."""

    values: np.ndarray
    exact: bool
    n_importance: int | None

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def stderr(self) -> float:
        n = self.values.size
        return float(np.std(self.values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


def log_likelihood(model, X, *, n_importance: int = 5000, batch_size: int | None = None,
                   random_state: int = 0, progress: bool = False, y=None) -> LogLikelihood:
    """log p(x) for each row of X.

    Exact for the linear-Gaussian models. For a VAE: the importance-sampled estimate
    log 1/k sum_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x) (the IWAE bound with k =
    ``n_importance``), batched over data and samples so memory is bounded for any k.
    ``y``: the labels or covariates of a conditional VAE, which gives log p(x|y).
    """
    model = as_model(model)
    if y is not None:  # only a conditional model takes y (it names the problem if not)
        return LogLikelihood(np.asarray(model.log_likelihood_samples(
            X, n_importance=check_int(n_importance, "n_importance", minimum=1),
            batch_size=batch_size, random_state=random_state, y=y)), False, n_importance)
    if model.exact_log_likelihood:
        return LogLikelihood(np.asarray(model.log_likelihood_samples(X), dtype=np.float64),
                             True, None)
    k = check_int(n_importance, "n_importance", minimum=1)
    total = len(X) if hasattr(X, "__len__") else None  # the model checks X itself
    with progress_bar(total=total, desc=f"log p(x), k={k}", disable=not progress,
                      unit="pt") as bar:
        values = model.log_likelihood_samples(X, n_importance=k, batch_size=batch_size,
                                              random_state=random_state, progress=bar.update)
    return LogLikelihood(np.asarray(values), False, k)


def elbo(model, X, *, n_samples: int = 1, random_state: int = 0) -> np.ndarray:
    """Per-sample ELBO. For the classical models q is the exact posterior, so the
    ELBO equals log p(x) (the lecture's E step makes the bound tight)."""
    return np.asarray(as_model(model).elbo_samples(X, n_samples=n_samples,
                                                   random_state=random_state),
                      dtype=np.float64)


def posterior_moments(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean (n, L) and per-dimension variance (n, L) of q(z|x) (or of p(z|x)); for the
    linear models the probabilistic reading (for PCA and the linear autoencoder this
    differs from their transform, which returns projections/codes)."""
    return as_model(model).posterior_moments(X)


def active_units(model, X, *, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Burda et al. (2016): unit j is active if Cov_x(E_q[z_j | x]) > threshold.

    Returns the count and the per-unit activity (variance of the posterior mean)."""
    mean, _ = posterior_moments(model, X)
    activity = np.var(mean, axis=0)
    return int(np.sum(activity > threshold)), activity


def kl_per_dimension(model, X) -> np.ndarray:
    """Mean over x of KL( q(z_j|x) || N(0, 1) ) for each latent dimension j (nats),
    using the marginal of q on each dimension."""
    mean, var = posterior_moments(model, X)
    return np.mean(_math.kl_diag_gaussian_standard_dims(mean, var), axis=0)


def reconstruction_error(model, X) -> float:
    """Mean over samples of ||x - x_hat||^2, x_hat the model's reconstruction."""
    X = np.asarray(X, dtype=np.float64)
    X_hat = as_model(model).reconstruct(X)
    return float(np.mean(np.sum((X - X_hat) ** 2, axis=1)))


def bits_per_dim(log_px: np.ndarray | float, n_features: int, *, levels: int | None = None) -> float:
    """Negative log-likelihood in bits per dimension.

    With ``levels=None`` it is the continuous density of the data as given:
    -log p(x) / (d ln 2). With ``levels=K`` (e.g. 256 for 8-bit images scaled to
    [0, 1]) the density is read as a model of the discrete values under uniform
    dequantization, each pixel bin having width 1/K: -(log p(x) - d log K) / (d ln 2).
    """
    n_features = check_int(n_features, "n_features", minimum=1)
    value = float(np.mean(log_px))
    if levels is not None:
        value -= n_features * math.log(check_int(levels, "levels", minimum=2))
    return _math.bits_per_dim(value, n_features)


def dequantize(X: np.ndarray, *, levels: int = 256, random_state: int = 0) -> np.ndarray:
    """Uniform dequantization of 8-bit-like data scaled to [0, 1]: (round(x (K-1)) + u) / K,
    u ~ U(0, 1). Evaluating a density at these points and subtracting d log K gives a
    lower bound (in expectation) on the discrete log-likelihood (Theis et al. 2016)."""
    rng = np.random.default_rng(random_state)
    counts = np.rint(np.asarray(X, dtype=np.float64) * (levels - 1))
    return ((counts + rng.random(counts.shape)) / levels).astype(np.float32)
