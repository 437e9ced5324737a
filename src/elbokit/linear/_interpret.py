"""The linear-Gaussian interpretation algebra: communalities, standardized loadings
and the eigenvalues that count factors, for x = W z + mu + noise with Psi diagonal.
numpy only; the figures in :mod:`elbokit.plots` and the report read these."""

from __future__ import annotations

import numpy as np


def communalities(W: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Communality h_j^2 = sum_k W_jk^2 (the variance of x_j the factors explain, in
    the feature's squared units) and its share h_j^2 / (h_j^2 + psi_j) of the model
    variance of x_j (unit-free, in [0, 1])."""
    h2 = np.sum(W**2, axis=1)
    total = h2 + psi
    share = np.divide(h2, total, out=np.zeros_like(h2), where=total > 0)
    return h2, share


def standardized_loadings(W: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """W_jk / sqrt(h_j^2 + psi_j): the correlation of feature j with factor k under the
    model (orthogonal factors), comparable across features in different units. The
    squares of row j sum to its communality share."""
    scale = np.sqrt(np.sum(W**2, axis=1) + psi)
    return np.divide(W, scale[:, None], out=np.zeros_like(W), where=scale[:, None] > 0)


def complete_rows(X) -> np.ndarray:
    """The rows of X without NaN, as float64."""
    X = np.asarray(X, dtype=np.float64)
    return X[~np.isnan(X).any(axis=1)]


def whitened_eigenvalues(X, psi: np.ndarray) -> np.ndarray:
    """Eigenvalues (decreasing) of Psi^-1/2 S Psi^-1/2, S the ML covariance of the rows
    of X. Under factor analysis with L factors the population values are 1 + the
    eigenvalues of W' Psi^-1 W for L of them and exactly 1 for the rest, so the
    eigenvalues above the noise level 1 count the factors the data support (for an
    isotropic Psi = sigma^2 I these are the covariance eigenvalues over sigma^2)."""
    X = complete_rows(X)
    Xc = (X - X.mean(axis=0)) / np.sqrt(psi)
    S = Xc.T @ Xc / X.shape[0]
    return np.sort(np.linalg.eigvalsh(S))[::-1]


def noise_edge(n_samples: int, n_features: int) -> float:
    """Largest eigenvalue of the sample covariance of n pure-noise rows of unit variance
    as n, d grow with d/n fixed: (1 + sqrt(d/n))^2 (Marchenko-Pastur). Eigenvalues
    above it are signal, not sampling noise."""
    return (1.0 + np.sqrt(n_features / max(n_samples, 1))) ** 2
