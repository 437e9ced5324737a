"""The model protocol: what every elbokit model offers to evaluation, figures, reports
and ``elbokit compare``.

A model of data x with latents z, a prior p(z) = N(0, I), a decoder p(x|z) and a
posterior (exact, or the encoder's approximation) q(z|x), is read only through the
members below. :mod:`elbokit.evaluate`, :mod:`elbokit.plots`, :mod:`elbokit.report` and
``elbokit compare`` use nothing else, so a new kind of model that implements them
(and registers itself with :func:`elbokit.kinds.register_kind`) gets every metric,
figure and report page with no other change.

Implemented by: ``PCA``, ``PPCA``, ``FactorAnalysis``, ``LinearAutoencoder`` (through
:class:`elbokit.linear._gaussian.LinearGaussianMixin`), ``VBPCA``, ``VAE`` and, as far as
it applies, the deterministic ``Autoencoder`` (``has_density = False``: its codes are
point masses, and its ``log_likelihood_samples`` and ``elbo_samples`` raise
:class:`elbokit.exceptions.NoDensityError`).

Members
-------
kind : str (class attribute)
    The model's registry name (``"pca"``, ``"vae"``, ...), recorded in model.json.
exact_log_likelihood : bool (class attribute)
    True when :meth:`log_likelihood_samples` is the closed-form log p(x); False when it
    is an importance-sampled estimate (the VAE).
linear_gaussian : bool (class attribute)
    True for x = W z + mu + noise: the model then also implements
    :class:`LinearGaussianModel` (the loadings, communality and eigenvalue figures and
    the factor tables read it).
n_features_in_ : int
    Features seen at fit.
posterior_moments(X) -> (mean, var)
    Mean (n, L) and per-dimension variance (n, L) of q(z|x) (rows with NaN, for the
    models that accept them: given their observed entries).
posterior_samples(X, n_samples, random_state) -> (n, k, L)
    k draws from q(z|x) for each row.
decode_mean(Z) -> (n, d)
    The decoder mean E[x|z] of each row of Z.
reconstruct(X) -> (n, d)
    The model's own reconstruction of X (for PCA and the linear autoencoder the
    projection onto their subspace, for the others the decoder mean at E[z|x]).
sample(n_samples, random_state) -> (n, d)
    Draws from the model (a VAE: decoder means of prior draws).
log_likelihood_samples(X, *, n_importance, batch_size, random_state, progress) -> (n,)
    log p(x) per row in nats (see ``exact_log_likelihood``); ``progress`` is None or a
    callable given the number of rows done.
elbo_samples(X, *, n_samples, random_state) -> (n,)
    The ELBO per row (for an exact posterior it equals log p(x)).
training_curve() -> list or None
    The fit's trace for the training-curve figure: one dict per epoch (``train_elbo``,
    ``val_elbo``) or one float per EM iteration (log-likelihood); None without one.
has_density : bool (optional class attribute, True when absent)
    False for a model with no p(x) (the Autoencoder): ``compare``, the runs' metrics
    and the report then show its reconstruction error instead of nats, and no KL.
check_fit(X, what, *, reference)
    Raise :class:`elbokit.exceptions.TrainingError` if the fitted model is unusable on X
    (a diverged VAE); the exact models never are.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from .exceptions import ParameterError


@runtime_checkable
class LatentVariableModel(Protocol):
    """A fitted latent-variable model as evaluate/plots/report/compare read it (see the
    module docstring for the meaning and shapes of each member)."""

    kind: ClassVar[str]
    exact_log_likelihood: ClassVar[bool]
    linear_gaussian: ClassVar[bool]

    def posterior_moments(self, X) -> tuple[np.ndarray, np.ndarray]: ...

    def posterior_samples(self, X, n_samples: int, random_state=0) -> np.ndarray: ...

    def decode_mean(self, Z) -> np.ndarray: ...

    def reconstruct(self, X) -> np.ndarray: ...

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray: ...

    def log_likelihood_samples(self, X, *, n_importance: int = 5000,
                               batch_size: int | None = None, random_state: int = 0,
                               progress=None) -> np.ndarray: ...

    def elbo_samples(self, X, *, n_samples: int = 1, random_state: int = 0) -> np.ndarray: ...

    def check_fit(self, X, what: str = "test", *, reference=None) -> None: ...

    def training_curve(self) -> list | None: ...


@runtime_checkable
class LinearGaussianModel(Protocol):
    """What a model with ``linear_gaussian = True`` adds: x = W z + mu + noise,
    noise ~ N(0, diag(psi)), read in the units of X."""

    components_: np.ndarray  # (L, d); its row count is the number of factors
    noise_variance_: float | np.ndarray  # scalar (isotropic) or (d,) (factor analysis)
    fitted_rotation: str | None  # the rotation fitted (its ``rotation`` setting) or None
    rotation_normalize: bool  # Kaiser's normalization of that rotation

    def loading_matrix(self) -> np.ndarray: ...  # W (d, L)

    def noise_variances(self) -> np.ndarray: ...  # psi (d,)

    def get_covariance(self) -> np.ndarray: ...  # W W' + diag(psi) (d, d)

    def factor_solution(self): ...  # the fitted FactorSolution on the correlation scale

    def relevance(self) -> dict | None: ...  # VBPCA's ARD: alpha, threshold, active


def as_model(model) -> LatentVariableModel:
    """``model`` itself if it implements :class:`LatentVariableModel`; else a one-line
    :class:`ParameterError` naming what is missing."""
    missing = [name for name in _MEMBERS if not hasattr(model, name)]
    if missing:
        raise ParameterError(f"{type(model).__name__} is not an elbokit model: it lacks "
                             f"{', '.join(missing)} of the model protocol")
    return model


_MEMBERS = ("kind", "exact_log_likelihood", "linear_gaussian", "posterior_moments",
            "posterior_samples", "decode_mean", "reconstruct", "sample",
            "log_likelihood_samples", "elbo_samples", "check_fit", "training_curve")
