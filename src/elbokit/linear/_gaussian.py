"""The shared algebra of x = W z + mu + noise, z ~ N(0, I), noise ~ N(0, diag(psi)).

:class:`LinearGaussianMixin` gives every classical model (PCA, PPCA, factor
analysis, the linear autoencoder's probabilistic reading) the same estimator API:
``transform`` (posterior mean E[z|x]), ``inverse_transform``, ``score_samples``
(log p(x) in nats), ``score``, ``sample``, ``get_covariance``, ``get_precision``.
A subclass fits and then exposes its loading matrix through ``_model_loadings()`` and
its noise variances through ``_model_noise_diag()``, for the data it was fitted to
(standardized with ``standardize=True``); ``_loadings()`` and ``_noise_diag()`` give the
model in the units of X, which every method uses. Rows with NaN entries (for the
estimators that accept them) are handled by conditioning on their observed entries.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._warn import warn
from .._math import LowRankGaussian, ObservedPosteriors, bits_per_dim, observed_dims
from .. import _validation
from .._validation import (check_bool, check_choice, check_covariance_memory, check_int,
                           check_memory, check_random_state, validate_X)
from ..exceptions import DataError, ParameterError
from ._protocol import LinearProtocolMixin
from ._streaming import as_chunk_source, streaming_moments, streams_rows
from ._wide import FactoredCovariance, takes_factor_path


def sample_covariance(X: np.ndarray, chunk_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and maximum-likelihood covariance (divisor N) of the rows of X.

    The centred cross-product is accumulated chunk by chunk with BLAS ``syrk`` (half
    the work of a general matrix product, and no centred copy of X). Each chunk's
    product is computed in the input's precision (float32 data: ``ssyrk``, twice as
    fast; at most ``chunk_rows`` terms are summed in float32, a relative error of
    order 1e-6) and accumulated in float64."""
    n, d = X.shape
    check_covariance_memory(d)
    mean = np.zeros(d)
    for start in range(0, n, chunk_rows):
        mean += X[start:start + chunk_rows].sum(axis=0, dtype=np.float64)
    mean /= n
    single = X.dtype == np.float32
    syrk, dtype = (blas.ssyrk, np.float32) if single else (blas.dsyrk, np.float64)
    centre = mean.astype(dtype)
    upper = np.zeros((d, d))
    for start in range(0, n, chunk_rows):
        chunk = np.asfortranarray(X[start:start + chunk_rows], dtype=dtype) - centre
        upper += syrk(1.0, chunk, trans=1, lower=0)
    S = np.triu(upper) + np.triu(upper, 1).T
    return mean, S / n


def moments_of(X: np.ndarray, n_components: int):
    """Mean and ML covariance of a complete in-memory table for PPCA and the linear
    autoencoder: a :class:`~elbokit.linear._wide.FactoredCovariance` for a wide one
    (:func:`~elbokit.linear._wide.takes_factor_path`), else :func:`sample_covariance`."""
    if takes_factor_path(*X.shape, n_components):
        _validation.check_memory(3 * 8.0 * X.size, f"the {X.shape[0]} x {X.shape[1]} "
                                 "centred data and its SVD", "use fewer features")
        return FactoredCovariance.of_rows(X)
    return sample_covariance(X)


#: a feature is exactly constant when its variance is at most this times its squared
#: mean (round-off of a centred constant column is ~1e-32 of it in float64)
CONSTANT_RTOL = 1e-12

#: PCA/PPCA/linear AE: a noise variance below this times the mean feature variance
#: means the kept components explain the data exactly (rank-deficient data); it is
#: then raised to this guard so the density stays finite. Never above the ML value
#: otherwise, and relative, so every model is equivariant under a global scale.
NOISE_GUARD = 1e-12

#: the feature variances span "very different units" when the largest is more than
#: this times the median (digits: 2.3; wine: 1.5e5; raw breast cancer: 6e7)
SCALE_SPREAD_WARN = 1e4


def constant_features(mean: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Indices of the exactly constant features (variance 0 up to round-off)."""
    return np.flatnonzero(variances <= CONSTANT_RTOL * np.asarray(mean) ** 2)


#: a feature is "spiky" when at least this share of the rows hold one value (its
#: median): a pixel that is 0 in all but a handful of images. FactorAnalysis does not
#: let such a feature become a Heywood case through a start that would explain its few
#: other values exactly (see FactorAnalysis, n_init)
SPIKE_SHARE = 0.99


def spiky_features(X: np.ndarray) -> np.ndarray:
    """Boolean mask (d,) of the features whose median value fills at least
    ``SPIKE_SHARE`` of the rows of X (constant features included)."""
    X = np.asarray(X)
    return np.mean(X == np.median(X, axis=0), axis=0) >= SPIKE_SHARE


def variance_scale(mean: np.ndarray, variances: np.ndarray) -> float:
    """The scale relative guards refer to: the mean feature variance (for all-constant
    data the mean squared feature mean, and 1 for data that are all zero)."""
    scale = float(np.mean(variances))
    if scale > 0:
        return scale
    scale = float(np.mean(np.asarray(mean) ** 2))
    return scale if scale > 0 else 1.0


def noise_guard(mean: np.ndarray, variances: np.ndarray) -> float:
    """Smallest isotropic noise variance (PCA, PPCA, linear AE): see ``NOISE_GUARD``."""
    return NOISE_GUARD * variance_scale(mean, variances)


def describe_features(indices: np.ndarray, names=None, limit: int = 10) -> str:
    """``"indices 2, 7"``, with the feature names when known: ``"indices 2, 7 ('mean
    perimeter', 'worst area')"``; at most ``limit`` of them."""
    shown = ", ".join(str(i) for i in indices[:limit]) + (" ..." if indices.size > limit else "")
    if names is not None:
        shown += " (" + ", ".join(repr(str(names[i])) for i in indices[:limit]) + ")"
    return f"indices {shown}"


def warn_constant_features(constant: np.ndarray, model: str, consequence: str,
                           names=None) -> np.ndarray:
    """Warn, naming them, about exactly constant features."""
    if constant.size:
        warn(f"{model}: {constant.size} feature(s) are constant "
             f"({describe_features(constant, names)}); {consequence}. Consider "
             "dropping them.", UserWarning)
    return constant


def warn_scale_spread(variances: np.ndarray, model: str) -> None:
    """PCA, PPCA and VBPCA are not scale-invariant: say so when the units differ widely."""
    positive = variances[variances > 0]
    if positive.size < 2:
        return
    spread = float(positive.max() / np.median(positive))
    if spread > SCALE_SPREAD_WARN:
        warn(f"{model}: feature variances differ by a factor {spread:.2g} (largest / "
             "median); the fit is dominated by the largest-variance features. Pass "
             "standardize=True (CLI: --standardize) to fit the correlation structure "
             "instead.",
             UserWarning)


def independent_loglike(variances: np.ndarray) -> float | None:
    """Mean log-likelihood per row (nats) of independent Gaussians, one ML variance per
    feature, on the rows those variances are of: -1/2 sum_j (log 2 pi s_j^2 + 1); None
    when a feature is constant (that baseline has no density). The closed form of the
    mean of :func:`independent_log_likelihood` (X, X), for a fit that keeps only the
    variances; the test holds the two equal."""
    variances = np.asarray(variances, dtype=np.float64)
    if variances.size == 0 or not np.all(variances > 0):
        return None
    return float(-0.5 * np.sum(np.log(2 * np.pi * variances) + 1.0))


def independent_log_likelihood(train: np.ndarray, test: np.ndarray,
                               floor: float = 1e-3) -> np.ndarray:
    """log p(x) per test row (nats) under independent Gaussians, one per feature, with the
    ML mean and variance of the training rows (over their observed entries; a test row's
    NaN entries are left out, as the models' log p(x_observed)): the baseline a model of
    the dependence between features must beat. A constant feature gets ``floor`` x the
    mean feature variance, as FactorAnalysis's noise floor."""
    from .._math import LOG_2PI

    train, test = np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)
    mean, var = np.nanmean(train, axis=0), np.nanvar(train, axis=0)
    var[constant_features(mean, var)] = floor * variance_scale(mean, var)
    terms = -0.5 * (LOG_2PI + np.log(var) + (test - mean) ** 2 / var)
    return np.sum(np.where(np.isnan(test), 0.0, terms), axis=1)


def warn_worse_than_independent(loglike: float, variances: np.ndarray, model: str) -> None:
    """Warn when a model with one noise variance (PCA, PPCA) fits its training rows
    worse than independent Gaussians per feature: the shared noise cannot follow
    feature variances that differ (gene expression: 500x), and a diagonal Gaussian,
    FactorAnalysis or ``standardize=True`` would do better."""
    baseline = independent_loglike(variances)
    if baseline is None or not loglike < baseline - 1e-9 * abs(baseline):
        return
    positive = variances[variances > 0]
    warn(f"{model}: its log-likelihood on the training rows, {loglike:.6g} nats/row, "
         f"is {baseline - loglike:.3g} below independent Gaussians per feature "
         f"({baseline:.6g}): one noise variance for features whose variances differ "
         f"by a factor {positive.max() / positive.min():.3g}. Pass standardize=True "
         "(CLI: --standardize) or use FactorAnalysis (a noise variance per feature).",
         UserWarning)


def subspace_loadings(components: np.ndarray, explained_variance: np.ndarray,
                      noise_variance: float) -> np.ndarray:
    """PPCA loadings W = U (Lambda - sigma^2 I)^(1/2) from orthonormal directions U'
    (L, d) and the data variance Lambda along them (Tipping & Bishop 1999, eq. 7)."""
    return components.T * np.sqrt(np.maximum(explained_variance - noise_variance, 0.0))


def standardization(mean: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Per-feature scales for ``standardize=True``: the standard deviations (divisor
    N), 1 for exactly constant features (as scikit-learn's StandardScaler)."""
    scale = np.sqrt(np.asarray(variances, dtype=np.float64))
    scale[constant_features(mean, variances)] = 1.0
    return scale


def nan_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance (divisor N) over the observed (non-NaN) entries."""
    mask = ~np.isnan(X)
    counts = np.maximum(mask.sum(axis=0), 1)
    X0 = np.where(mask, X, 0.0)
    mean = X0.sum(axis=0) / counts
    variances = (np.where(mask, X0 - mean, 0.0) ** 2).sum(axis=0) / counts
    return mean, variances


def check_observed_columns(mask: np.ndarray, model: str) -> None:
    """Every feature needs at least one observed (non-NaN) entry."""
    empty = np.flatnonzero(mask.sum(axis=0) == 0)
    if empty.size:
        raise DataError(f"feature(s) {empty[:10].tolist()} are missing (NaN) in every "
                        f"sample; drop them before fitting {model}")


class LinearGaussianMixin(LinearProtocolMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                          BaseEstimator):
    """Estimator API shared by the linear-Gaussian models.

    With ``standardize=True`` a model is fitted to (x - m) / s (m, s: the feature means
    and standard deviations) and stores ``feature_scale_ = s``; its parameters
    (``components_``, ``noise_variance_``) describe the standardized data, while
    ``mean_`` and every method (densities included: log p(x) = log p_std(x_std) -
    sum_j log s_j) are in the units of X. The model in those units is exactly the
    linear-Gaussian model with loadings diag(s) W and noise variances s^2 psi.
    """

    #: whether fit accepts NaN (as missing values)
    _accepts_nan = False

    # ---- implemented by subclasses: the fitted model (of the standardized data)
    def _model_loadings(self) -> np.ndarray:  # (d, L)
        raise NotImplementedError

    def _model_noise_diag(self) -> np.ndarray:  # (d,)
        raise NotImplementedError

    # ---- the model in the units of X
    def _feature_scale(self) -> np.ndarray | None:
        return getattr(self, "feature_scale_", None)

    def _loadings(self) -> np.ndarray:
        """Loadings in the units of X, diag(s) W (d, L)."""
        W = self._model_loadings()
        scale = self._feature_scale()
        return W if scale is None else W * scale[:, None]

    def _noise_diag(self) -> np.ndarray:
        """Noise variances in the units of X, s^2 psi (d,)."""
        psi = self._model_noise_diag()
        scale = self._feature_scale()
        return psi if scale is None else psi * scale**2

    def _to_model_units(self, X: np.ndarray) -> np.ndarray:
        """(x - mean_) / s: centred rows in the units the model was fitted in."""
        scale = self._feature_scale()
        Xc = X - self.mean_
        return Xc if scale is None else Xc / scale

    def _from_model_units(self, Y: np.ndarray) -> np.ndarray:
        scale = self._feature_scale()
        return (Y if scale is None else Y * scale) + self.mean_

    @property
    def _n_features_out(self) -> int:
        """Columns of ``transform`` (for ``get_feature_names_out``)."""
        return self.components_.shape[0]

    # ---- standardize=True, at fit time
    def _standardizing(self) -> bool:
        return check_bool(getattr(self, "standardize", False), "standardize")

    def _standardize_data(self, X: np.ndarray):
        """``(X_std, center, scale)``, NaN-aware; ``(X, None, None)`` without standardize."""
        if not self._standardizing():
            return X, None, None
        center, variances = nan_moments(X)
        scale = standardization(center, variances)
        return (X - center) / scale, center, scale

    def _missing_data_start(self, X: np.ndarray, missing: np.ndarray, model: str):
        """What an EM fit on the observed entries starts from: ``(mask, X, X0, center,
        scale, mean, variances)``: the 0/1 mask of observed entries (every column
        observed somewhere, else a one-line error), X standardized when asked, X with
        its missing entries set to 0, and the NaN-aware column means and variances."""
        mask = (~missing).astype(np.float64)
        check_observed_columns(mask, model)
        X, center, scale = self._standardize_data(X)
        mean, variances = nan_moments(X)
        return mask, X, np.where(missing, 0.0, X), center, scale, mean, variances

    def _standardize_moments(self, mean: np.ndarray, S: np.ndarray):
        """``(mean_std, S_std, center, scale)`` from the mean and covariance of X."""
        if not self._standardizing():
            return mean, S, None, None
        scale = standardization(mean, np.diag(S))
        scaled = S.scaled(scale) if isinstance(S, FactoredCovariance) else \
            S / np.outer(scale, scale)
        return np.zeros_like(mean), scaled, mean, scale

    def _finish_standardize(self, center, scale) -> None:
        """Map ``mean_`` back to the units of X and record ``feature_scale_``."""
        if scale is None:
            if "feature_scale_" in vars(self):
                del self.feature_scale_
            return
        self.mean_ = center + scale * self.mean_
        self.feature_scale_ = scale

    @staticmethod
    def _log_jacobian(scale, mask=None) -> float:
        """Mean over samples of sum_j log s_j over the (observed) entries; 0 without scale."""
        if scale is None:
            return 0.0
        log_scale = np.log(scale)
        return float(log_scale.sum()) if mask is None else float(np.mean(mask @ log_scale))

    # ---- helpers
    def _check_n_components(self, n_samples: int, n_features: int, *, max_components: int):
        if self.n_components is None:
            return max_components
        n = check_int(self.n_components, "n_components", minimum=1)
        if n > max_components:
            raise ParameterError(
                f"n_components={n} is too large for data with {n_samples} samples and "
                f"{n_features} feature(s); at most {max_components} is possible")
        return n

    def _gaussian(self) -> LowRankGaussian:
        return LowRankGaussian(self._loadings(), self._noise_diag())

    def _observed(self, X: np.ndarray, missing: np.ndarray) -> ObservedPosteriors:
        """Posteriors and densities given the observed entries of each row."""
        mask = (~missing).astype(np.float64)
        return ObservedPosteriors(np.where(missing, 0.0, X - self.mean_), mask,
                                  self._loadings(), self._noise_diag())

    def _checked_rows(self, X) -> tuple[np.ndarray, np.ndarray]:
        """X checked against the fitted model, and its NaN mask (the missing entries)."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return X, np.isnan(X)

    def _validate(self, X, *, reset: bool):
        return validate_X(self, X, reset=reset, allow_nan=self._allow_nan_now(),
                          min_samples=2 if reset else 1)

    def _allow_nan_now(self) -> bool:
        return False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan_now()
        tags.input_tags.sparse = True  # the covariance pass keeps it sparse (VBPCA densifies)
        return tags

    @staticmethod
    def _out_of_core(X):
        """A chunk source for out-of-core X (memmap, .npy path, directory of .npy
        shards, Dask array), None for in-memory data (the unchanged path)."""
        return as_chunk_source(X)

    def _moments(self, source, *, data_precision: bool = False):
        """``(mean, S, n_samples)`` of an out-of-core source in one streaming pass;
        sets ``n_features_in_``. Chunk products are float64 unless ``data_precision``
        (float32 for float32 data), matching each model's in-memory path."""
        return streaming_moments(self, source, data_precision=data_precision)

    # ---- public API
    @streams_rows
    def transform(self, X):
        """Posterior mean E[z|x] = (I + W' Psi^-1 W)^-1 W' Psi^-1 (x - mu), shape (n, L);
        for a row with NaN entries (estimators that accept them), E[z | x_o] given its
        observed entries. FactorAnalysis with an oblique rotation returns the posterior
        mean of its correlated factors (the regression factor scores)."""
        X, missing = self._checked_rows(X)
        if missing.any():
            return self._scores_from_latent(self._observed(X, missing).mean)
        return self._scores_from_latent(self._gaussian().posterior_mean(X - self.mean_))

    def inverse_transform(self, Z):
        """Decoder mean W z + mu for latent codes Z of shape (n, L)."""
        check_is_fitted(self)
        Z = np.asarray(Z, dtype=float)
        W = self._loadings()
        if Z.ndim != 2 or Z.shape[1] != W.shape[1]:
            raise DataError(f"Z must have shape (n, {W.shape[1]}); got {Z.shape}")
        return self._latent_from_scores(Z) @ W.T + self.mean_

    # the codes transform returns, from z ~ N(0, I) and back: the identity here; the
    # correlated factors of an oblique rotation in FactorAnalysis
    def _scores_from_latent(self, Z: np.ndarray) -> np.ndarray:
        return Z

    def _latent_from_scores(self, F: np.ndarray) -> np.ndarray:
        return F

    @streams_rows
    def score_samples(self, X):
        """log p(x) under N(mu, Psi + W W^T) for each row, in nats; for a row with NaN
        entries, log p(x_o) of its observed entries (the missing ones marginalised)."""
        X, missing = self._checked_rows(X)
        if missing.any():
            return self._observed(X, missing).logpdf()
        return self._gaussian().logpdf(X - self.mean_)

    def score(self, X, y=None):
        """Mean log-likelihood per sample, in nats."""
        return float(np.mean(self.score_samples(X)))

    @streams_rows
    def impute(self, X):
        """Fill each NaN with its conditional mean E[x_m | x_o] = W_m E[z | x_o] + mu_m
        (for the estimators that accept NaN: PPCA(solver="em"), FactorAnalysis, VBPCA)."""
        X, missing = self._checked_rows(X)
        X = np.array(X, dtype=np.float64)
        if missing.any():
            X[missing] = self.inverse_transform(self.transform(X))[missing]
        return X

    def get_covariance(self):
        """Model covariance Psi + W W^T, shape (d, d)."""
        check_is_fitted(self)
        return self._gaussian().covariance()

    def get_precision(self):
        """Model precision (Psi + W W^T)^-1 by the Woodbury identity, shape (d, d)."""
        check_is_fitted(self)
        return self._gaussian().precision()

    def posterior_covariance(self):
        """Covariance of z given x, G = (I + W' Psi^-1 W)^-1 (the same for every x)."""
        check_is_fitted(self)
        return self._gaussian().posterior_cov()

    def sample(self, n_samples: int = 1, random_state=None, *, sampler: str = "prior"):
        """Draw x = W z + mu + noise with z ~ N(0, I); returns shape (n_samples, d)
        (``sampler``: the protocol's, "prior" the only one)."""
        check_is_fitted(self)
        check_choice(sampler, "sampler", self.samplers)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        rng = check_random_state(random_state)
        W, psi = self._loadings(), self._noise_diag()
        # z, the noise, the product and the sum: about three (n, d) float64 arrays
        check_memory(8.0 * n_samples * (W.shape[1] + 3 * W.shape[0]),
                     f"sample({n_samples}) of {W.shape[0]} features", "draw fewer samples")
        z = rng.standard_normal((n_samples, W.shape[1]))
        noise = rng.standard_normal((n_samples, W.shape[0])) * np.sqrt(psi)
        return z @ W.T + self.mean_ + noise

    def bits_per_dim(self, X) -> float:
        """Negative mean log-likelihood in bits per dimension (no dequantization); with
        missing entries, per observed entry (:func:`elbokit._math.observed_dims`)."""
        score = self.score(X)
        complete = self._out_of_core(X) is not None  # out-of-core data hold no NaN
        return bits_per_dim(score, self.n_features_in_ if complete
                            else observed_dims(np.asarray(X, dtype=np.float64)))


class SubspaceGaussianMixin(LinearGaussianMixin):
    """Models described by orthonormal directions ``components_`` (L, d), the data
    variance ``explained_variance_`` along them and one isotropic ``noise_variance_``
    (PCA and the linear autoencoder read as PPCA)."""

    def _model_loadings(self):
        return subspace_loadings(self.components_, self.explained_variance_,
                                 self.noise_variance_)

    def _model_noise_diag(self):
        return np.full(self.components_.shape[1], self.noise_variance_)
