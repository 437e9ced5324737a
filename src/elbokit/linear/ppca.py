"""Probabilistic PCA (Tipping & Bishop 1999): factor analysis with Psi = sigma^2 I.

Two solvers: the closed form (``solver="closed"``) and EM (``solver="em"``). EM
treats NaN entries as missing values: its E step conditions on the observed entries
of each sample, and ``transform``, ``score_samples`` and :meth:`PPCA.impute` do the
same, so PPCA(solver="em") is the estimator to use on incomplete data.
"""

from __future__ import annotations

import numpy as np

from .._anndata import reads_anndata
from .._iteration import absolute_change_below, finite_steps, iterate
from .._math import (LowRankGaussian, ObservedPosteriors, augmented_m_step, cho_solve, cholesky,
                     observed_logpdf)
from .._validation import check_choice, check_float, check_int, check_random_state
from ._gaussian import (LinearGaussianMixin, constant_features, moments_of, variance_scale,
                        warn_constant_features, warn_scale_spread,
                        warn_worse_than_independent)
from ._wide import top_eigh


_SHARED_NOISE = ("PPCA models them with the shared noise variance alone, which stays finite, "
                 "but they add nothing to the fit")


def ppca_closed_form(S: np.ndarray, L: int, floor: float):
    """Maximum-likelihood PPCA from the covariance S (Tipping & Bishop, eqs. 7-8):
    sigma^2 = mean of the d - L discarded eigenvalues, W = U_L (Lambda_L - sigma^2 I)^(1/2).
    ``floor`` only guards the degenerate case (discarded eigenvalues ~0, or L = d).

    Returns ``(W, sigma2)`` with W of shape (d, L)."""
    d = S.shape[0]
    # only the top L eigenpairs: the discarded ones enter through their sum, tr(S) - top
    # (S dense, or a wide table's factor: elbokit.linear._wide)
    eigenvalues, eigenvectors = top_eigh(S, L)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]
    discarded_sum = max(float(np.trace(S)) - float(eigenvalues.sum()), 0.0)
    sigma2 = max(discarded_sum / (d - L), floor) if d > L else floor
    U = eigenvectors[:, :L]
    U = U * np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(L)])  # deterministic signs
    W = U * np.sqrt(np.maximum(eigenvalues[:L] - sigma2, 0.0))
    return W, sigma2


def ppca_em_step(S: np.ndarray, W: np.ndarray, sigma2: float, floor: float):
    """One EM iteration on complete data from the covariance S (Tipping & Bishop 1999,
    eqs. 29-30). Returns ``(W_new, sigma2_new, loglike)``, the log-likelihood being
    the mean per sample of the input parameters."""
    d, L = W.shape
    SW = S @ W  # (d, L)
    loglike = LowRankGaussian(W, np.full(d, sigma2)).mean_logpdf_from_cov(S, SW / sigma2)
    chol_M = cholesky(W.T @ W + sigma2 * np.eye(L))
    Minv_WtSW = cho_solve(chol_M, W.T @ SW)
    # numpy's solve: scipy 1.17's lu_solve takes milliseconds on ill-conditioned 5 x 5s
    W_new = np.linalg.solve((sigma2 * np.eye(L) + Minv_WtSW).T, SW.T).T
    Minv_Wnew_t = cho_solve(chol_M, W_new.T)  # (L, d)
    sigma2_new = (np.trace(S) - np.sum(SW * Minv_Wnew_t.T)) / d
    return W_new, max(float(sigma2_new), floor), loglike


# --------------------------------------------------------------------------- missing data

def ppca_em_step_missing(X0, mask, W, mu, sigma2, floor):
    """One exact EM iteration of PPCA with missing entries (mask == 0).

    The mean is estimated jointly with W through the augmented loadings [W, mu]
    and latent [z, 1] (:func:`elbokit._math.augmented_m_step`), so each iteration is
    an exact M step and the observed-data log-likelihood never decreases.
    Returns ``(W, mu, sigma2, mean loglike)``."""
    post = ObservedPosteriors(X0 - mu, mask, W, sigma2)
    loglike = float(post.logpdf().mean())
    W_new, mu_new, residual, counts = augmented_m_step(X0, mask, post)
    sigma2_new = max(float(residual.sum() / counts.sum()), floor)
    return W_new, mu_new, sigma2_new, loglike


class PPCA(LinearGaussianMixin):
    """Probabilistic PCA.

    Parameters
    ----------
    n_components : int or None
        Latent dimension L; None uses ``n_features - 1``.
    solver : "closed" or "em"
        Closed-form maximum likelihood, or EM (which accepts NaN as missing).
    tol, max_iter : EM stopping rule: change of the mean log-likelihood per sample
        below ``tol`` nats, or ``max_iter`` iterations (``ConvergenceWarning``).
    noise_floor : float
        Smallest sigma^2 relative to the mean feature variance (default 1e-12). The ML
        sigma^2 (the mean discarded eigenvalue) is never raised otherwise; the guard
        binds only when the kept components explain the data exactly.
    standardize : bool
        Fit to the standardized data (see :class:`LinearGaussianMixin`); PPCA is not
        scale-invariant, so data in mixed units want it (a warning says so).
    random_state : seed of EM's random initialisation.
    verbose : bool
        Show a progress bar during EM.

    Attributes
    ----------
    components_ : (L, d) loadings W' (of the standardized data with standardize=True).
    noise_variance_ : float, sigma^2.
    mean_ : (d,)
    loglike_ : (EM) mean log-likelihood per sample at each iteration, non-decreasing.
    n_iter_ : EM iterations run (1 for the closed form).
    feature_scale_ : (d,) the standard deviations divided out (standardize=True only).
    """

    kind = "ppca"  # the registry name (elbokit.kinds)

    def __init__(self, n_components=None, *, solver="closed", tol=1e-8, max_iter=2000,
                 noise_floor=1e-12, standardize=False, random_state=None, verbose=False):
        self.n_components = n_components
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.noise_floor = noise_floor
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose

    def _allow_nan_now(self):
        return getattr(self, "solver", None) == "em"

    @reads_anndata
    def fit(self, X, y=None):
        """Fit W, sigma^2 and mu to ``X``; with solver="em", NaN entries are missing.

        ``X`` may also be out of core (memmap, .npy path, directory of .npy shards,
        Dask array), reduced to its mean and covariance in one pass; it must then be
        complete (no NaN)."""
        check_choice(self.solver, "solver", {"closed", "em"})
        check_random_state(self.random_state)  # checked for the closed form too
        check_float(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_float(self.noise_floor, "noise_floor", low=0.0, low_inclusive=False)
        source = self._out_of_core(X)
        if source is not None:
            n, d = source.n_samples, source.n_features
        else:
            X = self._validate(X, reset=True).astype(np.float64, copy=False)
            n, d = X.shape
        if d < 2:
            from ..exceptions import DataError

            raise DataError(f"PPCA needs at least 2 features (it keeps L < d and estimates "
                            f"the noise from the rest); X has {d} feature(s)")
        L = self._check_n_components(n, d, max_components=d - 1)
        missing = None if source is not None else np.isnan(X)
        if missing is not None and missing.any():
            self._fit_missing(X, missing, L)
        else:
            mean, S = moments_of(X, L) if source is None else self._moments(source)[:2]
            mean, S, center, scale = self._standardize_moments(mean, S)
            self._fit_complete(mean, S, L)
            self.loglike_ = [v - self._log_jacobian(scale) for v in self.loglike_]
            self._finish_standardize(center, scale)
        self.n_components_ = L
        return self

    def _check_data_scale(self, mean, variances):
        warn_constant_features(constant_features(mean, variances), "PPCA", _SHARED_NOISE,
                               getattr(self, "feature_names_in_", None))
        if not self._standardizing():
            warn_scale_spread(variances, "PPCA")
        return self.noise_floor * variance_scale(mean, variances)

    def _fit_complete(self, mean, S, L):
        """Closed form or EM from the mean and ML covariance of complete data."""
        floor = self._check_data_scale(mean, np.diag(S))
        self.mean_ = mean
        if self.solver == "closed":
            W, sigma2 = ppca_closed_form(S, L, floor)
            self.n_iter_ = 1  # one eigendecomposition
            self.loglike_ = [LowRankGaussian(W, np.full(S.shape[0], sigma2))
                             .mean_logpdf_from_cov(S)]
        else:
            W, sigma2 = self._em_complete(S, L, floor)
        self.components_, self.noise_variance_ = W.T, float(sigma2)
        if not self._standardizing():
            warn_worse_than_independent(self.loglike_[-1], np.diag(S), "PPCA")

    def _init_em(self, variances, L, d):
        rng = check_random_state(self.random_state)
        scale = np.sqrt(np.mean(variances) / max(L, 1))
        return rng.standard_normal((d, L)) * scale, float(np.mean(variances))

    def _iterate(self, step, desc):
        """Run ``step() -> loglike`` until the change is below tol or max_iter."""
        step = finite_steps(step, model="PPCA EM", hint="the data may be too large for "
                            "float64 at this scale; try standardize=True")
        self.loglike_ = iterate(step, converged=absolute_change_below(self.tol),
                                max_iter=self.max_iter, model="PPCA EM", desc=desc,
                                verbose=self.verbose)
        self.n_iter_ = len(self.loglike_)

    def _em_complete(self, S, L, floor):
        W, sigma2 = self._init_em(np.diag(S), L, S.shape[0])
        state = {"W": W, "sigma2": sigma2}

        def step():
            state["W"], state["sigma2"], loglike = ppca_em_step(S, state["W"], state["sigma2"],
                                                                floor)
            return loglike

        self._iterate(step, "PPCA EM")
        self.loglike_.append(LowRankGaussian(state["W"], np.full(S.shape[0], state["sigma2"]))
                             .mean_logpdf_from_cov(S))
        return state["W"], state["sigma2"]

    def _fit_missing(self, X, missing, L):
        n, d = X.shape
        mask, X, X0, center, scale, mean, variances = self._missing_data_start(
            X, missing, "PPCA")
        floor = self._check_data_scale(mean, variances)
        W, sigma2 = self._init_em(variances, L, d)
        state = {"W": W, "mu": mean, "sigma2": sigma2}

        def step():
            state["W"], state["mu"], state["sigma2"], loglike = ppca_em_step_missing(
                X0, mask, state["W"], state["mu"], state["sigma2"], floor)
            return loglike

        self._iterate(step, "PPCA EM (missing)")
        self.loglike_.append(float(observed_logpdf(X0 - state["mu"], mask, state["W"],
                                                   state["sigma2"]).mean()))
        jacobian = self._log_jacobian(scale, mask)
        self.loglike_ = [v - jacobian for v in self.loglike_]
        self.components_, self.mean_ = state["W"].T, state["mu"]
        self.noise_variance_ = float(state["sigma2"])
        self._finish_standardize(center, scale)

    def _model_loadings(self):
        return self.components_.T

    def _model_noise_diag(self):
        return np.full(self.components_.shape[1], self.noise_variance_)
