"""The model protocol: what every elbokit model offers to evaluation, figures, reports
and ``elbokit compare``.

A model of data x with latents z, a prior p(z), a decoder p(x|z) and a posterior
(exact, or the encoder's approximation) q(z|x), is read only through the members
below. :mod:`elbokit.evaluate`, :mod:`elbokit.plots`, :mod:`elbokit.report`,
:mod:`elbokit.runs` and ``elbokit compare`` use nothing else (no ``getattr`` or
``hasattr`` on a model, no comparison of kind names: ``tests/test_protocol.py``
holds them to it), so a new kind of model that implements them (and registers itself
with :func:`elbokit.kinds.register_kind`) gets every metric, figure and report page
with no other change.

Implemented by: ``PCA``, ``PPCA``, ``FactorAnalysis``, ``LinearAutoencoder`` and
``VBPCA`` (through :class:`elbokit.linear._protocol.LinearProtocolMixin`), ``VAE`` and,
as far as it applies, the deterministic ``Autoencoder`` (``has_density = False``: its
codes are point masses, and its density members raise
:class:`elbokit.exceptions.NoDensityError`).

Members
-------
kind : str (class attribute)
    The model's registry name (``"pca"``, ``"vae"``, ...), recorded in model.json.
exact_log_likelihood : bool (class attribute)
    True when :meth:`log_likelihood_samples` is the closed-form log p(x) (and
    ``score_samples`` is log p(x)); False when it is an importance-sampled estimate
    (and ``score_samples`` the ELBO: the VAE).
has_density : bool (class attribute)
    False for a model with no p(x) (the Autoencoder): ``compare``, the runs' metrics
    and the report then show its ``reconstruction_error`` instead of nats, and no KL.
linear_gaussian : bool (class attribute)
    True for x = W z + mu + noise: the model then also implements
    :class:`LinearGaussianModel` (the loadings, communality and eigenvalue figures and
    the factor tables read it).
conditional : bool
    Whether the model is fitted with labels or covariates y (a conditional VAE): its
    scoring and sampling members then take ``y=``, and ``classes_`` holds the class
    labels (None when y are covariates).
accepts_missing : bool
    Whether ``fit`` (and the posterior members) take NaN entries as missing values.
fit_options : frozenset of str
    The keywords ``fit(X, y, **options)`` takes besides X and y (a VAE's
    ``validation``, ``checkpoint_dir``, ``resume``, ``on_nan``, ``callbacks``).
binarize : str
    How the training rows were binarized (``"none"``, ``"dynamic"``, ``"static"``):
    a model trained on binary pixels is scored on binarized rows.
samplers : tuple of str
    The names ``sample(n, random_state=..., sampler=name)`` accepts, the default first
    (``"prior"``: draws from p(z); a VAE's ``"gmm"``, an autoencoder's ``"fitted"``).
n_features_in_ : int
    Features seen at fit.
latent_dim_ : int
    Latent dimensions of the fitted model.
n_iter_ : int or None
    Iterations (EM) or epochs run by the fit; None for a closed-form fit (PCA).
transform(X) -> (n, L)
    The model's codes: PCA's projections, the posterior means of PPCA/FA/VBPCA/VAE,
    the autoencoder's code.
posterior_moments(X) -> (mean, var)
    Mean (n, L) and per-dimension variance (n, L) of q(z|x) (rows with NaN, for the
    models that accept them: given their observed entries).
posterior_samples(X, n_samples, random_state) -> (n, k, L)
    k draws from q(z|x) for each row.
prior_moments() -> (mean, std)
    Per-dimension mean and standard deviation of p(z), (L,) each (traversals sweep them).
prior_log_prob(Z) -> (n,)
    log p(z) of each row of Z under the model's own prior (N(0, I), a mixture, a
    VampPrior, ...).
kl_to_prior(X, *, per_dimension=False, n_samples=256, random_state=0, y=None) -> (n,)
    KL(q(z|x) || p(z)) per row against the model's own prior: closed form for a
    Gaussian q and p = N(0, I), Monte Carlo E_q[log q - log p] otherwise; with
    ``per_dimension``, (n, L): KL(q(z_j|x) || p(z_j)) against the prior's marginal.
decode_mean(Z) -> (n, d)
    The decoder mean E[x|z] of each row of Z.
reconstruct(X) -> (n, d)
    The model's own reconstruction of X (for PCA and the linear autoencoder the
    projection onto their subspace, for the others the decoder mean at E[z|x]).
sample(n_samples, random_state, *, sampler) -> (n, d)
    Draws from the model (a VAE: decoder means of prior draws).
score_samples(X) -> (n,)
    log p(x) per row (``exact_log_likelihood``), else the model's bound on it.
log_likelihood_samples(X, *, n_importance, batch_size, random_state, progress) -> (n,)
    log p(x) per row in nats (see ``exact_log_likelihood``); ``progress`` is None or a
    callable given the number of rows done.
elbo_samples(X, *, n_samples, random_state) -> (n,)
    The ELBO per row (for an exact posterior it equals log p(x)).
density_kind(X) -> str or None
    Only for a model whose log-likelihood is not exact (a VAE; the exact ones are
    continuous densities): what its log p of the rows X is, ``"discrete"`` (the
    probability of the data's values: bits/dim compares with published figures),
    ``"continuous"`` (a density), or None (no density of X: a Bernoulli's
    cross-entropy of intensities), for which no bits/dim is reported.
training_curve() -> list or None
    The fit's trace for the training-curve figure: one dict per epoch (``train_elbo``,
    ``val_elbo``, ``seconds``, ...) or one float per EM iteration (log-likelihood);
    None without one.
check_fit(X, what, *, reference)
    Raise :class:`elbokit.exceptions.TrainingError` if the fitted model is unusable on X
    (a diverged VAE); the exact models never are.
reconstruction_error(X) -> (n,)
    Only for a model without a density: its reconstruction loss per row.

Optional members
    A model may implement these; consumers read them with :func:`optional`, which gives
    the default below where a model has none (a new kind needs none of them).
latent_layers_ -> tuple of int (default None: one layer)
    The sizes of the stochastic layers, in the order of z's coordinates (a VAE with
    ``top_latent_dim``: (L1, L2), z = (z1, z2)): the active units and the KL per
    dimension are then shown per layer.
complete(X, region, n_draws, *, image_shape, random_state) -> Completions (default None)
    Answers for a hidden region of each image drawn from p(x_mis | x_obs), with their
    log-likelihoods (a VAE's ``complete``): the report's completions figure.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from .exceptions import ParameterError


@runtime_checkable
class LatentVariableModel(Protocol):
    """A fitted latent-variable model as evaluate/plots/report/runs/compare read it (see
    the module docstring for the meaning and shapes of each member)."""

    kind: ClassVar[str]
    exact_log_likelihood: ClassVar[bool]
    has_density: ClassVar[bool]
    linear_gaussian: ClassVar[bool]
    conditional: bool
    accepts_missing: bool
    fit_options: frozenset
    binarize: str
    samplers: tuple

    def transform(self, X) -> np.ndarray: ...

    def posterior_moments(self, X) -> tuple[np.ndarray, np.ndarray]: ...

    def posterior_samples(self, X, n_samples: int, random_state=0) -> np.ndarray: ...

    def prior_moments(self) -> tuple[np.ndarray, np.ndarray]: ...

    def prior_log_prob(self, Z) -> np.ndarray: ...

    def kl_to_prior(self, X, *, per_dimension: bool = False, n_samples: int = 256,
                    random_state: int = 0, y=None) -> np.ndarray: ...

    def decode_mean(self, Z) -> np.ndarray: ...

    def reconstruct(self, X) -> np.ndarray: ...

    def sample(self, n_samples: int = 1, random_state=None, *,
               sampler: str = "prior") -> np.ndarray: ...

    def score_samples(self, X) -> np.ndarray: ...

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


OPTIONAL_MEMBERS = {"latent_layers_": None, "complete": None}


def optional(model, name: str):
    """The optional member ``name`` of ``model`` (see the module docstring), or its
    default where the model does not implement it."""
    return getattr(model, name, OPTIONAL_MEMBERS[name])


def as_model(model) -> LatentVariableModel:
    """``model`` itself if it implements :class:`LatentVariableModel`; else a one-line
    :class:`ParameterError` naming what is missing."""
    # looked up on the class (or the instance's own settings) without evaluating a
    # property: an unfitted model answers fitted questions only after fit
    own = model.__dict__ if hasattr(model, "__dict__") else {}
    missing = [name for name in _MEMBERS if not (hasattr(type(model), name) or name in own)]
    if missing:
        raise ParameterError(f"{type(model).__name__} is not an elbokit model: it lacks "
                             f"{', '.join(missing)} of the model protocol")
    return model


_MEMBERS = ("kind", "exact_log_likelihood", "has_density", "linear_gaussian",
            "conditional", "accepts_missing", "fit_options", "binarize", "samplers",
            "transform", "posterior_moments", "posterior_samples", "prior_moments",
            "prior_log_prob", "kl_to_prior", "decode_mean", "reconstruct", "sample",
            "score_samples", "log_likelihood_samples", "elbo_samples", "check_fit",
            "training_curve")
