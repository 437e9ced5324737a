"""The shared algebra of x = W z + mu + noise, z ~ N(0, I), noise ~ N(0, diag(psi)).

:class:`LinearGaussianMixin` gives every classical model (PCA, PPCA, factor
analysis, the linear autoencoder's probabilistic reading) the same estimator API:
``transform`` (posterior mean E[z|x]), ``inverse_transform``, ``score_samples``
(log p(x) in nats), ``score``, ``sample``, ``get_covariance``, ``get_precision``.
A subclass fits and then exposes its loading matrix through ``_loadings()`` and its
noise variances through ``_noise_diag()``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import blas
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._math import LowRankGaussian
from .._validation import check_int, validate_X
from ..exceptions import DataError, ParameterError
from ._streaming import as_chunk_source, streaming_moments, streams_rows


def sample_covariance(X: np.ndarray, chunk_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and maximum-likelihood covariance (divisor N) of the rows of X.

    The centred cross-product is accumulated chunk by chunk with BLAS ``syrk`` (half
    the work of a general matrix product, and no centred copy of X). Each chunk's
    product is computed in the input's precision (float32 data: ``ssyrk``, twice as
    fast; at most ``chunk_rows`` terms are summed in float32, a relative error of
    order 1e-6) and accumulated in float64."""
    n, d = X.shape
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


def variance_floor(variances: np.ndarray, relative: float) -> float:
    """The smallest noise variance we allow: ``relative`` times the mean feature
    variance (with an absolute floor for all-constant data). It keeps precisions
    of constant features finite (see ``warn_constant_features``)."""
    scale = float(np.mean(variances))
    return max(relative * scale, 1e-12) if scale > 0 else 1e-12


def warn_constant_features(variances: np.ndarray, floor: float, model: str,
                           consequence: str | None = None) -> np.ndarray:
    """Warn, naming them, about features whose variance is below the noise floor."""
    constant = np.flatnonzero(variances < floor)
    if constant.size:
        shown = ", ".join(str(i) for i in constant[:10]) + (" ..." if constant.size > 10 else "")
        warnings.warn(
            f"{model}: {constant.size} feature(s) have (near-)zero variance (indices {shown}); "
            + (consequence or f"their noise variance is floored at {floor:.3g} so the "
               "log-likelihood stays finite")
            + ". Consider dropping them.",
            UserWarning, stacklevel=3,
        )
    return constant


def subspace_loadings(components: np.ndarray, explained_variance: np.ndarray,
                      noise_variance: float) -> np.ndarray:
    """PPCA loadings W = U (Lambda - sigma^2 I)^(1/2) from orthonormal directions U'
    (L, d) and the data variance Lambda along them (Tipping & Bishop 1999, eq. 7)."""
    return components.T * np.sqrt(np.maximum(explained_variance - noise_variance, 0.0))


class LinearGaussianMixin(TransformerMixin, BaseEstimator):
    """Estimator API shared by the linear-Gaussian models."""

    #: whether fit accepts NaN (as missing values)
    _accepts_nan = False

    # ---- implemented by subclasses
    def _loadings(self) -> np.ndarray:  # (d, L)
        raise NotImplementedError

    def _noise_diag(self) -> np.ndarray:  # (d,)
        raise NotImplementedError

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

    def _validate(self, X, *, reset: bool):
        return validate_X(self, X, reset=reset, allow_nan=self._allow_nan_now(),
                          min_samples=2 if reset else 1)

    def _allow_nan_now(self) -> bool:
        return False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan_now()
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
        """Posterior mean E[z|x] = (I + W' Psi^-1 W)^-1 W' Psi^-1 (x - mu), shape (n, L)."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return self._gaussian().posterior_mean(X - self.mean_)

    def inverse_transform(self, Z):
        """Decoder mean W z + mu for latent codes Z of shape (n, L)."""
        check_is_fitted(self)
        Z = np.asarray(Z, dtype=float)
        W = self._loadings()
        if Z.ndim != 2 or Z.shape[1] != W.shape[1]:
            raise DataError(f"Z must have shape (n, {W.shape[1]}); got {Z.shape}")
        return Z @ W.T + self.mean_

    @streams_rows
    def score_samples(self, X):
        """log p(x) under N(mu, Psi + W W^T) for each row, in nats."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return self._gaussian().logpdf(X - self.mean_)

    def score(self, X, y=None):
        """Mean log-likelihood per sample, in nats."""
        return float(np.mean(self.score_samples(X)))

    @streams_rows
    def impute(self, X):
        """Fill each NaN with its conditional mean E[x_m | x_o] = W_m E[z | x_o] + mu_m
        (for the estimators that accept NaN: PPCA(solver="em"), VBPCA)."""
        check_is_fitted(self)
        X = np.array(self._validate(X, reset=False), dtype=np.float64)
        missing = np.isnan(X)
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

    def sample(self, n_samples: int = 1, random_state=None):
        """Draw x = W z + mu + noise with z ~ N(0, I); returns shape (n_samples, d)."""
        check_is_fitted(self)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        rng = check_random_state(random_state)
        W, psi = self._loadings(), self._noise_diag()
        z = rng.standard_normal((n_samples, W.shape[1]))
        noise = rng.standard_normal((n_samples, W.shape[0])) * np.sqrt(psi)
        return z @ W.T + self.mean_ + noise

    def bits_per_dim(self, X) -> float:
        """Negative mean log-likelihood in bits per dimension (no dequantization)."""
        return -self.score(X) / (self.n_features_in_ * np.log(2.0))


class SubspaceGaussianMixin(LinearGaussianMixin):
    """Models described by orthonormal directions ``components_`` (L, d), the data
    variance ``explained_variance_`` along them and one isotropic ``noise_variance_``
    (PCA and the linear autoencoder read as PPCA)."""

    def _loadings(self):
        return subspace_loadings(self.components_, self.explained_variance_,
                                 self.noise_variance_)

    def _noise_diag(self):
        return np.full(self.components_.shape[1], self.noise_variance_)
