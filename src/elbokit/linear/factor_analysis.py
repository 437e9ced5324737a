"""Factor analysis fitted by EM, as in the lecture's slides "EM for Factor Analysis",
"Factor Analysis E step" and "Factor Analysis M step".

Model: x = W z + mu + noise, z ~ N(0, I), noise ~ N(0, Psi) with Psi diagonal, so
p(x) = N(mu, Psi + W W^T). EM never needs the data after one pass: with the ML
covariance S (divisor N) every E- and M-step quantity is a d x L or L x L product.
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits
from scipy import linalg

from .._iteration import absolute_change_below, iterate
from .._math import LowRankGaussian, cho_solve, cholesky
from .._validation import check_choice, check_float, check_int
from ._gaussian import (LinearGaussianMixin, sample_covariance, variance_floor,
                        warn_constant_features)
from .ppca import ppca_closed_form


def fa_em_step(S: np.ndarray, W: np.ndarray, psi: np.ndarray, floor: float):
    """One EM iteration of factor analysis from the covariance S.

    Returns ``(W_new, psi_new, loglike)`` where ``loglike`` is the mean
    log-likelihood per sample of the *input* parameters (so a sequence of these
    values is the log-likelihood trace EM must never lower).

    E step (lecture):  G = (I + W' Psi^-1 W)^-1,  E[z_i] = G W' Psi^-1 x_i,
                       E[z_i z_i'] = G + E[z_i] E[z_i]'.
    Averaged over the data through S:
        (1/N) sum x_i E[z_i]'   = S Psi^-1 W G
        (1/N) sum E[z_i z_i']   = G + G W' Psi^-1 S Psi^-1 W G
    M step (lecture):  W = [sum x E[z]'] [sum E[zz']]^-1,
                       Psi = diag(S - W (1/N) sum E[z] x').
    """
    gaussian = LowRankGaussian(W, psi)
    S_piw = S @ gaussian.psi_inv_W  # S Psi^-1 W, (d, L)
    loglike = gaussian.mean_logpdf_from_cov(S, S_piw)
    G = gaussian.posterior_cov()  # (L, L)
    x_Ez = S_piw @ G  # (d, L)
    Ezz = G + G @ (gaussian.psi_inv_W.T @ S_piw) @ G  # (L, L)
    W_new = cho_solve(cholesky(Ezz), x_Ez.T).T
    psi_new = np.maximum(np.diag(S) - np.sum(W_new * x_Ez, axis=1), floor)
    return W_new, psi_new, loglike


def varimax(W: np.ndarray, *, gamma: float = 1.0, max_iter: int = 100, tol: float = 1e-8):
    """Varimax rotation of the columns of the loading matrix W (d, L) (Kaiser 1958).

    Returns the rotated loadings W R with R orthogonal; W W' (and so the
    likelihood) is unchanged."""
    d, L = W.shape
    R = np.eye(L)
    objective = 0.0
    for _ in range(max_iter):
        Lam = W @ R
        u, s, vt = linalg.svd(
            W.T @ (Lam**3 - (gamma / d) * Lam @ np.diag(np.sum(Lam**2, axis=0))))
        R = u @ vt
        new_objective = float(np.sum(s))
        if new_objective < objective * (1 + tol):
            break
        objective = new_objective
    return W @ R


class FactorAnalysis(LinearGaussianMixin):
    """Factor analysis by EM on sufficient statistics.

    Parameters
    ----------
    n_components : int or None
        Number of factors L; None uses ``n_features - 1``.
    tol : float
        Stop when the mean log-likelihood per sample rises by less than ``tol`` nats.
    max_iter : int
        Maximum number of EM iterations (``ConvergenceWarning`` if reached).
    noise_floor : float
        Smallest noise variance, relative to the mean feature variance. It keeps
        the precisions of (near-)constant features, such as the corner pixels of
        digits, finite (default 1e-3: at most 1000 / mean variance); they are
        named in a warning.
    rotation : None or "varimax"
        Rotate the loadings after fitting (the likelihood is unchanged).
    verbose : bool
        Show a progress bar.

    Attributes
    ----------
    components_ : (L, d) loadings W' (scikit-learn's convention).
    noise_variance_ : (d,) diagonal of Psi.
    mean_ : (d,) mean of the data.
    loglike_ : list of the mean log-likelihood per sample at each iteration; it
        never decreases (EM's guarantee, tested).
    n_iter_ : number of EM iterations run.
    constant_features_ : indices of the features whose variance is below the floor.
    """

    def __init__(self, n_components=None, *, tol=1e-7, max_iter=5000, noise_floor=1e-3,
                 rotation=None, verbose=False):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.noise_floor = noise_floor
        self.rotation = rotation
        self.verbose = verbose

    def fit(self, X, y=None):
        """Fit W, Psi and mu to ``X`` (n_samples, n_features) by EM. ``X`` may also be
        out of core (memmap, .npy path, directory of .npy shards, Dask array)."""
        source = self._out_of_core(X)
        if source is None:
            X = self._validate(X, reset=True)
            n, d = X.shape
        else:
            n, d = source.n_samples, source.n_features
        self._check_params()
        L = self._check_n_components(n, d, max_components=max(d - 1, 1))
        mean, S = sample_covariance(X) if source is None else self._moments(source, data_precision=True)[:2]
        return self._fit_covariance(mean, S, n, L)

    def _check_params(self):
        check_float(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_float(self.noise_floor, "noise_floor", low=0.0, low_inclusive=False)
        if self.rotation is not None:
            check_choice(self.rotation, "rotation", {"varimax"})

    def _fit_covariance(self, mean, S, n_samples, L):
        """EM from the mean and ML covariance of the data (also used out of core)."""
        variances = np.diag(S)
        floor = variance_floor(variances, self.noise_floor)
        self.constant_features_ = warn_constant_features(variances, floor, "FactorAnalysis")
        # start from the closed-form PPCA solution, Psi = sigma^2 I
        W, sigma2 = ppca_closed_form(S, L, floor)
        psi = np.full(S.shape[0], sigma2)
        start = time.perf_counter()
        state = {"W": W, "psi": psi}

        def step():
            state["W"], state["psi"], loglike = fa_em_step(S, state["W"], state["psi"], floor)
            return loglike

        # the iterations are d x L products and L x L solves: BLAS threads only add
        # synchronisation (ruinous on a busy machine), so run them single-threaded
        with threadpool_limits(limits=1, user_api="blas"):
            self.loglike_ = iterate(step, converged=absolute_change_below(self.tol),
                                    max_iter=self.max_iter, model="FactorAnalysis",
                                    desc="FA EM", verbose=self.verbose)
        self.n_iter_ = len(self.loglike_)
        W, psi = state["W"], state["psi"]
        self.loglike_.append(LowRankGaussian(W, psi).mean_logpdf_from_cov(S))
        if self.rotation == "varimax":
            W = varimax(W)
        self.components_ = W.T
        self.noise_variance_ = psi
        self.mean_ = mean
        self.n_components_ = L
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _loadings(self):
        return self.components_.T

    def _noise_diag(self):
        return self.noise_variance_
