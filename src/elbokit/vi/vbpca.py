"""Variational Bayesian PCA with automatic relevance determination (Bishop, 1999).

The lecture's slides "Variational Inference" and "Mean Field update" describe
coordinate ascent on a factorised q; :class:`VBPCA` is that algorithm applied to a
fully Bayesian PPCA whose ARD priors switch off the latent dimensions the data does
not need. The update equations and the bound live in :mod:`._mean_field`.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._anndata import reads_anndata
from .._iteration import iterate, relative_change_below, single_blas_thread
from .._validation import check_float, check_int, check_random_state
from ..exceptions import DataError, ModelFileError
from ..linear._gaussian import LinearGaussianMixin, nan_moments, warn_scale_spread
from ._mean_field import (Priors, elbo, initial_posterior, n_observed, permute_components,
                          summed_cov, sweep)


class VBPCA(LinearGaussianMixin):
    """Variational Bayesian PCA with automatic relevance determination.

    The model is ``x = W z + mu + noise`` with ``z ~ N(0, I_L)``, columns
    ``w_i ~ N(0, alpha_i^-1 I_d)``, ``alpha_i ~ Gamma(alpha_shape, alpha_rate)``,
    isotropic noise of precision ``tau ~ Gamma(tau_shape, tau_rate)`` and
    ``mu ~ N(0, mean_precision^-1 I_d)``. The posterior is approximated by the
    mean-field family ``q(Z) q(W) q(mu) q(alpha) q(tau)``; each factor is updated in
    closed form as ``q_j ∝ exp(E_{-j}[log p(X, ...)])`` (the lecture's "Mean Field
    update", PRML eq. 10.9), so the ELBO never decreases. Components whose
    ``E[alpha_i]`` grows large are switched off: the user gives only an upper bound
    ``n_components`` on the latent dimension.

    The priors apply to the data divided by its overall scale ``scale_`` (the root
    mean feature variance), so the fit does not depend on the units of ``X``; in the
    units of ``X`` the rate parameters are multiplied by ``scale_**2``.

    Parameters
    ----------
    n_components : int or None, default=None
        Largest latent dimension L to start from. None means
        ``min(n_samples, n_features) - 1`` (at least 1).
    max_iter : int, default=1000
        Maximum number of coordinate-ascent sweeps.
    tol : float, default=1e-6
        Stop when the ELBO rises by less than ``tol * |ELBO|`` in one sweep.
    alpha_shape, alpha_rate : float, default=1e-3
        Gamma prior on each ARD precision alpha_i (broad by default).
    tau_shape, tau_rate : float, default=1e-3
        Gamma prior on the noise precision tau.
    mean_precision : float, default=1e-3
        Precision beta of the Gaussian prior on mu.
    active_threshold : float, default=1.0
        Component i is active when its posterior-mean loading adds at least
        ``t = active_threshold`` times the noise variance, plus its own posterior
        spread, to the variance along its direction: ``||E[w_i]||^2 > t (1/E[tau] +
        tr Cov_q(w_i))``. Because ``E[alpha_i] = (a + d/2) / (b + E||w_i||^2 / 2)``,
        this is the same as ``E[alpha_i] < alpha_threshold_[i] = (a + d/2) / (b +
        (t / E[tau] + (1 + t) tr Cov_q(w_i)) / 2)``. Mean-field VB keeps, with a tiny
        loading, a component whose sample eigenvalue sits just above the noise edge
        (about ``sigma^2 (1 + sqrt(d/N))^2``); the default threshold does not count it.
    standardize : bool, default=False
        Fit to the standardized data (see :class:`~elbokit.linear._gaussian.LinearGaussianMixin`):
        ``loadings_``, ``components_`` and the posteriors then refer to it, ``mean_``,
        the methods and ``elbo_`` to X. The noise is isotropic, so data in mixed units
        want it (a warning says so).
    random_state : int, RandomState or None, default=None
        Seeds the tiny random start of components with no variance in the PCA start.

    Attributes
    ----------
    loadings_ : ndarray of shape (n_features, L)
        E[W], all L columns, ordered by increasing E[alpha_i] (most relevant first).
    loadings_cov_ : ndarray of shape (L, L), or (n_features, L, L) with missing data
        Covariance of each row of W under q: shared by every row when X is complete,
        one per row when X had NaN entries.
    components_ : ndarray of shape (n_components_, n_features)
        The active columns of E[W], transposed (scikit-learn's convention).
    mean_ : ndarray of shape (n_features,)
        E[mu]; ``mean_var_`` holds its posterior variances.
    alpha_ : ndarray of shape (L,)
        E[alpha_i]; ``alpha_shape_`` and ``alpha_rate_`` are the parameters of q(alpha_i).
    alpha_threshold_ : ndarray of shape (L,)
        The value of E[alpha_i] below which component i counts as active.
    tau_ : float
        E[tau]; ``tau_shape_`` and ``tau_rate_`` are the parameters of q(tau).
    noise_variance_ : float
        1 / E[tau], the plug-in noise variance.
    active_components_ : ndarray of int
        Indices (into the L columns) of the active components.
    n_components_ : int
        The selected latent dimension, ``len(active_components_)``.
    elbo_ : ndarray of shape (n_iter_,)
        The ELBO (nats, for the data in its own units) after each sweep.
    n_iter_ : int
        Number of sweeps run.
    scale_ : float
        The scale the priors refer to.

    Notes
    -----
    ``transform``, ``score_samples``, ``score`` and ``sample`` use the plug-in model
    ``N(E[mu], E[W_active] E[W_active]^T + E[tau]^-1 I)`` restricted to the active
    components (pruned columns of E[W] are numerically zero).

    Missing values: NaN entries of ``X`` are treated as missing at random, as in Ilin
    & Raiko (2010): every sum in the updates runs over the observed entries, so each
    row of Z and of W gets its own posterior covariance (slower: batched L x L
    inverses). ``score_samples`` and ``transform`` then condition on the observed
    entries of each row, and :meth:`impute` fills the gaps.

    The noise is isotropic, so on data whose feature variances differ widely (the
    8x8 digits: 3 constant pixels and many near-constant ones) the evidence keeps
    almost every direction: started from 63 components on digits, VBPCA keeps 60
    (scikit-learn's ``PCA(n_components="mle")``, Minka's evidence, picks 61).

    Examples
    --------
    >>> import numpy as np
    >>> from elbokit.vi import VBPCA
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.standard_normal((500, 3)) @ rng.standard_normal((3, 20))
    >>> X = signal + 0.5 * rng.standard_normal((500, 20))
    >>> VBPCA(10).fit(X).n_components_
    3

    References
    ----------
    C. M. Bishop, "Variational principal components", ICANN 1999.
    C. M. Bishop, Pattern Recognition and Machine Learning, 2006, sections 10.1, 12.2.3.
    A. Ilin and T. Raiko, "Practical approaches to principal component analysis in
    the presence of missing values", JMLR 11, 2010.
    """

    kind = "vbpca"  # the registry name (elbokit.kinds)

    def __init__(self, n_components=None, *, max_iter=1000, tol=1e-6, alpha_shape=1e-3,
                 alpha_rate=1e-3, tau_shape=1e-3, tau_rate=1e-3, mean_precision=1e-3,
                 active_threshold=1.0, standardize=False, random_state=None):
        self.n_components = n_components
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol
        self.alpha_shape = alpha_shape
        self.alpha_rate = alpha_rate
        self.tau_shape = tau_shape
        self.tau_rate = tau_rate
        self.mean_precision = mean_precision
        self.active_threshold = active_threshold
        self.random_state = random_state

    # ---- fitting
    def _priors(self) -> Priors:
        positive = {name: check_float(getattr(self, name), name, low=0.0, low_inclusive=False)
                    for name in ("alpha_shape", "alpha_rate", "tau_shape", "tau_rate",
                                 "mean_precision")}
        return Priors(**positive)

    @reads_anndata
    def fit(self, X, y=None):
        """Fit q by coordinate ascent on the ELBO.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        X = self._validate(X, reset=True).astype(np.float64, copy=False)
        n, d = X.shape
        _check_observed(X)
        priors = self._priors()
        L = self._check_n_components(n, d, max_components=d) if self.n_components is not None \
            else max(1, min(n, d) - 1)
        max_iter = check_int(self.max_iter, "max_iter", minimum=1)
        tol = check_float(self.tol, "tol", low=0.0)
        check_float(self.active_threshold, "active_threshold", low=0.0)
        rng = check_random_state(self.random_state)
        observed = (~np.isnan(X)).astype(np.float64)
        X, center, feature_scale = self._standardize_data(X)
        if feature_scale is None:
            warn_scale_spread(nan_moments(X)[1], "VBPCA")

        scale = float(np.sqrt(np.mean(np.nanvar(X, axis=0))))
        scale = scale if scale > 0 else 1.0
        X_scaled = X / scale
        # Small (L x L) linear algebra in a loop: one BLAS thread is faster.
        with single_blas_thread():
            post, history = self._coordinate_ascent(X_scaled, L, priors, max_iter, tol, rng)
        # the bound on the density of X, not of X / scale
        history = np.asarray(history) - n_observed(X) * np.log(scale)
        if feature_scale is not None:  # and of X, not of the standardized X
            history = history - observed.sum(axis=0) @ np.log(feature_scale)
        self._store(post, history, scale, priors)
        self._finish_standardize(center, feature_scale)
        return self

    def _coordinate_ascent(self, X, L, priors, max_iter, tol, rng):
        state = {"post": initial_posterior(X, L, priors, rng)}

        def step():
            state["post"] = sweep(X, state["post"], priors)
            return elbo(X, state["post"], priors)

        # each sweep can only raise the ELBO: stop when it rose by < tol * |ELBO|
        history = iterate(step, converged=relative_change_below(tol), max_iter=max_iter,
                          model="VBPCA")
        return state["post"], history

    def _store(self, post, history, scale, priors):
        d = post.w_mean.shape[0]
        order = np.argsort(post.alpha_expected, kind="stable")
        post = permute_components(post, order)
        s2 = scale**2
        self.scale_ = scale
        self.loadings_ = scale * post.w_mean
        self.loadings_cov_ = s2 * post.w_cov
        self.mean_ = scale * post.mu_mean
        self.mean_var_ = s2 * post.mu_var
        self.alpha_shape_ = post.alpha_shape.copy()
        self.alpha_rate_ = s2 * post.alpha_rate
        self.alpha_ = self.alpha_shape_ / self.alpha_rate_
        self.tau_shape_ = float(post.tau_shape)
        self.tau_rate_ = float(s2 * post.tau_rate)
        self.tau_ = self.tau_shape_ / self.tau_rate_
        self.noise_variance_ = 1.0 / self.tau_
        spread = np.diag(summed_cov(self.loadings_cov_, d))  # tr Cov_q(w_i), (L,)
        # active  <=>  ||E[w_i]||^2 > t (1/E[tau] + spread_i)  <=>  E[alpha_i] below this
        t = self.active_threshold
        self.alpha_threshold_ = (priors.alpha_shape + 0.5 * d) / (
            s2 * priors.alpha_rate + 0.5 * (t * self.noise_variance_ + (1.0 + t) * spread))
        self.active_components_ = np.flatnonzero(self.alpha_ < self.alpha_threshold_)
        self.n_components_ = int(self.active_components_.size)
        self.components_ = self.loadings_[:, self.active_components_].T.copy()
        self.elbo_ = history
        self.n_iter_ = int(history.size)

    # ---- missing values (NaN): condition on the observed entries of each row
    def _allow_nan_now(self) -> bool:
        return True

    # ---- the model protocol: the ARD relevance figure reads this
    def relevance(self) -> dict:
        """E[alpha_i] per component (``alpha``, small: relevant), each component's
        activity threshold (``threshold``) and the indices of the active ones."""
        check_is_fitted(self)
        return {"alpha": np.asarray(self.alpha_, dtype=np.float64),
                "threshold": np.asarray(self.alpha_threshold_, dtype=np.float64),
                "active": np.asarray(self.active_components_, dtype=int)}

    # ---- LinearGaussianMixin hooks
    def _model_loadings(self) -> np.ndarray:
        return self.components_.T

    def _model_noise_diag(self) -> np.ndarray:
        return np.full(self.n_features_in_, self.noise_variance_)

    def _check_loaded(self) -> None:
        """Called by :func:`elbokit.persistence.load_estimator`: the arrays must fit together."""
        d = np.shape(getattr(self, "mean_", ()))[0] if np.ndim(getattr(self, "mean_", 0)) else 0
        ok = (d > 0 and getattr(self, "n_features_in_", None) == d
              and np.shape(self.components_)[1:] == (d,)
              and np.shape(self.loadings_)[0] == d
              and np.shape(self.components_)[0] == np.size(self.active_components_)
              and np.isfinite(self.noise_variance_) and self.noise_variance_ > 0)
        if not ok:
            raise ModelFileError("the saved VBPCA arrays do not fit together (shapes or "
                                 "noise variance); the model files were modified")


def _check_observed(X: np.ndarray) -> None:
    """Every feature needs at least one observed (non-NaN) value."""
    empty = np.flatnonzero(np.all(np.isnan(X), axis=0))
    if empty.size:
        shown = ", ".join(str(i) for i in empty[:10]) + (" ..." if empty.size > 10 else "")
        raise DataError(f"{empty.size} feature(s) of X have no observed value (all NaN; "
                        f"indices {shown}); drop them before fitting VBPCA")


__all__ = ["VBPCA"]
