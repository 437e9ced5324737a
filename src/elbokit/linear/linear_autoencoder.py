"""The tied linear autoencoder of the lecture's slide "Auto-encoders and PCA":
x_hat = W' W x, trained by gradient descent on E||x - W' W x||^2.

Its minima span the top-L principal subspace (Baldi & Hornik 1989); the tests
check the learned subspace against PCA's. For ``score`` the autoencoder is read
probabilistically: the maximum-likelihood PPCA whose loading matrix is confined
to the learned subspace (exactly PPCA when the subspace is the principal one).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.utils.validation import check_is_fitted

from .._anndata import reads_anndata
from .._iteration import iterate, relative_change_below
from .._validation import check_float, check_int, check_random_state
from ..exceptions import DataError, TrainingError
from ._gaussian import SubspaceGaussianMixin, moments_of, noise_guard
from ._wide import top_eigh
from ._streaming import streams_rows


def reconstruction_loss_and_grad(W: np.ndarray, S: np.ndarray):
    """Mean squared reconstruction error of x_hat = W' W x over centred data with
    covariance S, and its gradient in W (L, d).

    f(W) = tr(S) - 2 tr(W S W') + tr(W' W S W' W)
    df/dW = -4 W S + 2 (W S W' W + W W' W S)
    """
    WS = W @ S  # (L, d)
    WWt = W @ W.T  # (L, L)
    WSWt = WS @ W.T  # (L, L)
    loss = float(np.trace(S) - 2.0 * np.trace(WSWt) + np.sum(WSWt * WWt))
    grad = -4.0 * WS + 2.0 * (WSWt @ W + WWt @ WS)
    return loss, grad


class LinearAutoencoder(SubspaceGaussianMixin):
    """Tied linear autoencoder trained by gradient descent (with Nesterov momentum).

    Parameters
    ----------
    n_components : int or None
        Code size L; None uses ``n_features - 1``.
    learning_rate : float
        Step size relative to 1 / (largest eigenvalue of the covariance).
    momentum : float
        Nesterov momentum in [0, 1).
    tol : float
        Stop when the relative change of the loss is below ``tol``.
    max_iter : int
        Maximum number of full-batch gradient steps (``ConvergenceWarning``).
    standardize : bool
        Train on the standardized data (see :class:`LinearGaussianMixin`); ``weights_``
        and ``components_`` then refer to it, ``transform`` divides by
        ``feature_scale_`` first.
    random_state : seed of the random initial weights.

    Attributes
    ----------
    weights_ : (L, d) the encoder W (the decoder is W').
    loss_ : list of the mean squared reconstruction error per iteration.
    components_ : (L, d) orthonormal basis of the learned subspace, ordered by variance.
    explained_variance_ : (L,) data variance along each basis vector.
    noise_variance_ : float, ML noise variance outside the subspace.
    mean_ : (d,)
    n_iter_ : gradient steps run.
    """

    kind = "linear-ae"  # the registry name (elbokit.kinds)

    def __init__(self, n_components=None, *, learning_rate=0.1, momentum=0.9, tol=1e-10,
                 max_iter=20000, standardize=False, random_state=None, verbose=False):
        self.n_components = n_components
        self.standardize = standardize
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    @reads_anndata
    def fit(self, X, y=None):
        """Train W on ``X`` (centred by its mean) by full-batch gradient descent."""
        check_float(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        check_float(self.momentum, "momentum", low=0.0, high=0.999)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.max_iter, "max_iter", minimum=1)
        source = self._out_of_core(X)
        if source is not None:
            n, d = source.n_samples, source.n_features
        else:
            X = self._validate(X, reset=True).astype(np.float64)
            n, d = X.shape
        if d < 2:
            raise DataError(f"LinearAutoencoder needs at least 2 features; X has {d} feature(s)")
        L = self._check_n_components(n, d, max_components=d - 1)
        if source is not None:  # memmap, .npy path, shard directory, Dask array
            mean, S, _ = self._moments(source)
        else:
            mean, S = moments_of(X, L)  # a wide table's as its n x d factor
        self.mean_, S, center, scale = self._standardize_moments(mean, S)
        top = float(top_eigh(S, 1)[0][0])
        step_size = self.learning_rate / max(top, 1e-300)
        rng = check_random_state(self.random_state)
        W = rng.standard_normal((L, d)) * (0.1 / np.sqrt(d))
        state = {"W": W, "velocity": np.zeros_like(W)}

        def step():  # Nesterov: the gradient at the look-ahead point
            W, velocity = state["W"], state["velocity"]
            loss, grad = reconstruction_loss_and_grad(W + self.momentum * velocity, S)
            state["velocity"] = self.momentum * velocity - step_size * grad
            state["W"] = W + state["velocity"]
            return loss

        self.loss_ = iterate(step, converged=relative_change_below(self.tol, after=10),
                             max_iter=self.max_iter, model="LinearAutoencoder",
                             desc="linear AE", verbose=self.verbose)
        self.n_iter_ = len(self.loss_)
        W = state["W"]
        if not np.all(np.isfinite(W)):  # gradient descent overshot
            raise TrainingError(f"LinearAutoencoder diverged (non-finite weights after "
                                f"{self.n_iter_} iterations) with learning_rate="
                                f"{self.learning_rate:g}; use a smaller one (the default "
                                "is stable)")
        self.weights_ = W
        self._fit_probabilistic_reading(S, L)
        self._finish_standardize(center, scale)
        self.n_components_ = L
        return self

    def _fit_probabilistic_reading(self, S, L):
        """ML PPCA with the loadings confined to span(W'): eigen-decompose S inside
        the subspace; sigma^2 is the mean variance left outside it."""
        basis = linalg.orth(self.weights_.T)  # (d, L') orthonormal
        if basis.shape[1] < L:
            raise DataError("the learned weights are rank-deficient; the data may have fewer "
                            f"than {L} directions of non-zero variance")
        inside, rotation = linalg.eigh(basis.T @ S @ basis)
        order = np.argsort(inside)[::-1]
        d = S.shape[0]
        components = (basis @ rotation[:, order]).T
        # deterministic signs (largest absolute loading positive), as PCA
        signs = np.sign(components[np.arange(L), np.argmax(np.abs(components), axis=1)])
        self.components_ = components * signs[:, None]
        self.explained_variance_ = np.maximum(inside[order], 0.0)
        guard = noise_guard(np.zeros(d), np.diag(S))
        self.noise_variance_ = max(float((np.trace(S) - inside.sum()) / (d - L)), guard)

    @streams_rows
    def transform(self, X):
        """The code W (x - mean), shape (n, L)."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        return self._to_model_units(X) @ self.weights_.T

    def inverse_transform(self, Z):
        """The decoder W' z + mean."""
        check_is_fitted(self)
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2 or Z.shape[1] != self.weights_.shape[0]:
            raise DataError(f"Z must have shape (n, {self.weights_.shape[0]}); got {Z.shape}")
        return self._from_model_units(Z @ self.weights_)
