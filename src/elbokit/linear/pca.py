"""Principal component analysis by SVD, with the probabilistic-PCA log-likelihood.

The lecture's slide "Auto-encoders and PCA": the top-L principal directions are
the subspace a tied linear autoencoder finds. ``score`` reads PCA as the
limit of probabilistic PCA (Tipping & Bishop 1999) with the maximum-likelihood
noise variance: sigma^2 = mean of the discarded eigenvalues of the covariance
with divisor N (scikit-learn divides by N - 1).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .._anndata import reads_anndata
from .._validation import check_bool, check_float, check_memory
from ..exceptions import ParameterError
from ._gaussian import (SubspaceGaussianMixin, noise_guard, warn_scale_spread,
                        warn_worse_than_independent)
from ._streaming import streams_rows


class PCA(SubspaceGaussianMixin):
    """PCA by singular value decomposition.

    Parameters
    ----------
    n_components : int, float or None
        Number of components L; None keeps ``min(n_samples, n_features)``; a float in
        (0, 1) keeps the fewest components whose explained variance reaches that
        fraction (as scikit-learn's PCA).
    whiten : bool
        If True, ``transform`` returns unit-variance scores, which equal the
        posterior mean E[z|x] of the sigma^2 -> 0 limit of probabilistic PCA.
        If False (default), the projections onto the components (scikit-learn's).
    standardize : bool
        PCA of the standardized data (the correlation matrix); see
        :class:`LinearGaussianMixin`. PCA is not scale-invariant: on data in mixed
        units (a warning says so) you want it.

    Attributes
    ----------
    components_ : (L, d) orthonormal principal directions.
    explained_variance_ : (L,) eigenvalues of the ML covariance (divisor N).
    explained_variance_ratio_ : (L,) share of the total variance.
    singular_values_ : (L,) singular values of the centred data.
    noise_variance_ : float, mean of the discarded eigenvalues (ML estimate).
    mean_ : (d,) feature means.
    """

    kind = "pca"  # the registry name (elbokit.kinds)

    def __init__(self, n_components=None, *, whiten=False, standardize=False):
        self.n_components = n_components
        self.whiten = whiten
        self.standardize = standardize

    @reads_anndata
    def fit(self, X, y=None):
        """Fit the principal directions of ``X`` (n_samples, n_features).

        Out-of-core ``X`` (memmap, .npy path, directory of .npy shards, Dask array)
        is reduced to its mean and covariance S in one pass, and S is
        eigen-decomposed instead (the same components, up to rounding)."""
        check_bool(self.whiten, "whiten")
        source = self._out_of_core(X)
        if source is not None:
            mean, S, n = self._moments(source)
            mean, S, center, scale = self._standardize_moments(mean, S)
            self._fit_covariance(mean, S, n)
            self._finish_standardize(center, scale)
            return self
        X = self._validate(X, reset=True).astype(np.float64)  # accuracy: always float64
        n, d = X.shape
        L = self._components_or_fraction(n, d)
        check_memory(8.0 * (2 * n * d + 2 * min(n, d) * d),
                     f"the SVD of a {n} x {d} data matrix", "use fewer samples or features")
        X, center, scale = self._standardize_data(X)
        self.mean_ = X.mean(axis=0)
        _, s, Vt = linalg.svd(X - self.mean_, full_matrices=False, check_finite=False)
        self._set_spectrum(Vt, s, n, L, self.mean_, np.var(X, axis=0))
        self._finish_standardize(center, scale)
        return self

    def _fit_covariance(self, mean, S, n):
        """PCA from the mean and the ML covariance S (divisor N): eigenvectors of S."""
        d = S.shape[0]
        L = self._components_or_fraction(n, d)
        eigenvalues, vectors = linalg.eigh(S, check_finite=False)
        rank = min(n, d)  # centred data of n rows: at most n nonzero eigenvalues
        eigenvalues = np.maximum(eigenvalues[::-1][:rank], 0.0)
        self.mean_ = mean
        return self._set_spectrum(vectors[:, ::-1][:, :rank].T.copy(),
                                  np.sqrt(eigenvalues * n), n, L, mean, np.diag(S))

    def _components_or_fraction(self, n: int, d: int):
        """L, or None for a fraction 0 < n_components < 1 (resolved from the spectrum)."""
        if isinstance(self.n_components, float) and not isinstance(self.n_components, bool):
            check_float(self.n_components, "n_components", low=0.0, high=1.0,
                        low_inclusive=False)
            if self.n_components < 1.0:
                return None
            raise ParameterError("n_components must be an integer >= 1, or a fraction of "
                                 f"the variance in (0, 1); got {self.n_components!r}")
        return self._check_n_components(n, d, max_components=min(n, d))

    def _set_spectrum(self, Vt, s, n, L, mean, variances):
        """Set the fitted attributes from the principal directions Vt (rows) and the
        singular values s of the centred data, in decreasing order."""
        d = Vt.shape[1]
        eigenvalues = s**2 / n  # ML covariance eigenvalues (divisor N)
        # sign convention: largest absolute loading of each component positive
        signs = np.sign(Vt[np.arange(Vt.shape[0]), np.argmax(np.abs(Vt), axis=1)])
        Vt *= signs[:, None]
        all_eigen = np.zeros(d)
        all_eigen[: eigenvalues.size] = eigenvalues
        total = all_eigen.sum()
        if L is None:  # n_components a fraction: the fewest components explaining it
            explained = np.cumsum(eigenvalues) / total if total > 0 else np.ones_like(s)
            L = int(min(np.searchsorted(explained, self.n_components) + 1, eigenvalues.size))
        self.components_ = Vt[:L]
        self.singular_values_ = s[:L]
        self.explained_variance_ = eigenvalues[:L]
        self.explained_variance_ratio_ = self.explained_variance_ / total if total > 0 \
            else np.zeros(L)
        discarded = all_eigen[L:]
        # the ML value, guarded only when the kept components explain the data exactly
        guard = noise_guard(mean, variances)
        self.noise_variance_ = float(max(discarded.mean(), guard)) if discarded.size else guard
        if not self._standardizing():
            warn_scale_spread(variances, "PCA")
            # the ML log-likelihood of the PPCA reading (Tipping & Bishop 1999, eq. 16)
            kept = np.maximum(self.explained_variance_, self.noise_variance_)
            loglike = -0.5 * (d * np.log(2 * np.pi) + np.sum(np.log(kept))
                              + (d - L) * np.log(self.noise_variance_) + d)
            warn_worse_than_independent(float(loglike), variances, "PCA")
        self.n_components_ = L
        return self

    @streams_rows
    def transform(self, X):
        """Projections onto the components (divided by sqrt of the eigenvalues if whiten)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = self._validate(X, reset=False)
        Z = self._to_model_units(X) @ self.components_.T
        if self.whiten:
            Z /= np.sqrt(np.maximum(self.explained_variance_, 1e-300))
        return Z

    def inverse_transform(self, Z):
        """Map scores back to data space (the inverse of ``transform`` on the subspace)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2 or Z.shape[1] != self.components_.shape[0]:
            from ..exceptions import DataError

            raise DataError(f"Z must have shape (n, {self.components_.shape[0]}); "
                            f"got {Z.shape}")
        if self.whiten:
            Z = Z * np.sqrt(self.explained_variance_)
        return self._from_model_units(Z @ self.components_)
