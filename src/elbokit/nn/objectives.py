"""Estimators of the ELBO, as small interchangeable objects (in the spirit of
Pyro's ``Trace_ELBO`` / ``TraceMeanField_ELBO``).

Each is called as ``estimator(model, x, n_samples, generator)`` and returns one
estimate per data point, shape (B,), in nats. With z_j ~ q(z|x), j = 1..L, drawn by
reparameterisation (z_j = mean + sigma * eps_j, then the flow if the model has one;
see :meth:`~elbokit.nn.model.VAENetwork.posterior`):

* :class:`MonteCarloELBO` (the slides' L_A; old name ``EstimatorA``),
  L_A = 1/L sum_j [log p(x, z_j) - log q(z_j|x)] (slide "Computing the loss").
* :class:`AnalyticKLELBO` (the slides' L_B; old name ``EstimatorB``),
  L_B = -KL(q(z|x) || p(z)) + 1/L sum_j log p(x|z_j), the KL in
  closed form (slide "A lower variance estimator of the loss"). With an IAF
  posterior (z_0 Gaussian, z = f(z_0)) the KL has no closed form; L_B then keeps
  the closed form for the Gaussian part and estimates only what the flow adds:

      KL(q || p) = KL(q_0 || p) + E_{z_0 ~ q_0}[log p(z_0) - log p(f(z_0)) - log|det df/dz_0|]

  (exact: change variables z = f(z_0) in E_q[log q(z) - log p(z)]). The Monte-Carlo
  term is exactly 0 for the identity flow and small near it, where the plain
  Monte-Carlo KL, 1/L sum_j [log q(z_j|x) - log p(z_j)], carries the full noise of
  log q and log p (in every collapsed dimension too).
* :class:`IWAE`, log 1/L sum_j p(x, z_j) / q(z_j|x): a tighter bound
  (Burda et al. 2016) that tends to log p(x) as L grows; equal to L_A for L = 1.

All three are unbiased for their target; A and B share the target, the ELBO.
log q(z|x) always includes the flow's log-determinant. p(z) is the model's prior
(``model.prior``, see :mod:`elbokit.nn.priors`), read in one place,
:func:`prior_log_prob`, through :meth:`ELBOEstimator.log_weights` and
:meth:`~ELBOEstimator.posterior_log_weights`; L_B under a prior without a closed-form KL
is described at :class:`AnalyticKLELBO`. The multi-sample bounds of
Rainforth et al. (2018), MIWAE, CIWAE and PIWAE, are in :mod:`elbokit.nn.multisample`.

**Gradient estimators** (``gradient=``; the value of every estimate is unchanged, only
its gradient differs). With log w_j = log p(x, z_j) - log q(z_j|x), z_j = z_phi(eps_j):

* ``"standard"``: autograd of the estimate. The encoder's gradient of log w_j has a
  path term, d log w_j/dz_j * dz_j/dphi, and a score term, -d log q_phi(z_j|x)/dphi at
  fixed z_j, zero in expectation but not per draw.
* ``"stl"``, sticking the landing (Roeder et al. 2017), for L_A: log q(z|x) is
  evaluated with the posterior's parameters detached, which drops the score term. The
  estimator stays unbiased, and at q = p(z|x) log w_j = log p(x) for every z, so each
  draw's encoder gradient is exactly 0.
* ``"dreg"``, doubly reparameterized gradients (Tucker et al. 2019, eq. 5), for the
  importance-weighted bounds: the encoder's gradient of IWAE is
  sum_j wt_j^2 d log w_j/dz_j dz_j/dphi with wt_j = w_j / sum_i w_i, log q with its
  parameters detached; the decoder's stays sum_j wt_j d log w_j/dtheta. One backward
  pass: the weights are computed once, with log q's parameters detached, and a hook on
  z multiplies the gradient reaching the encoder by wt_j (see :func:`scale_path_gradient`).
  Both need the Gaussian posterior (with a flow, log q at a given z needs the flow's
  inverse).

:func:`training_loss` is what the training loop minimises: -ELBO, or with
``beta`` / ``kl_warmup`` / ``free_bits`` a reweighted KL term (the ELBO itself is
returned alongside, unweighted).
"""

from __future__ import annotations

import torch

from ._math import (
    diag_gaussian_log_prob,
    gaussian_log_prob,
    kl_diag_gaussians_dims,
    log_mean_exp,
    reparameterize,
    standard_normal_log_prob,
)


def prior_log_prob(model, z: torch.Tensor) -> torch.Tensor:
    """log p(z) summed over the last axis: ``model.prior.log_prob`` (N(0, I) for a
    duck-typed model without a prior). The one place every estimator reads p(z)."""
    prior = getattr(model, "prior", None)
    return standard_normal_log_prob(z) if prior is None else prior.log_prob(z)


def _prior(model):
    from .priors import StandardNormal

    prior = getattr(model, "prior", None)
    return StandardNormal(1) if prior is None else prior


def draw_posterior(model, x: torch.Tensor, n_samples: int | None,
                   generator: torch.Generator | None = None, encoding=None):
    """``model.posterior(...)`` (a :class:`~elbokit.nn.model.PosteriorSample`); a
    duck-typed model with only ``encode`` (a Gaussian q) is served too."""
    if hasattr(model, "posterior"):
        return model.posterior(x, n_samples, generator, encoding=encoding)
    from .model import PosteriorSample

    mean, logvar = model.encode(x) if encoding is None else encoding[:2]
    z = reparameterize(mean, logvar, n_samples, generator)
    return PosteriorSample(z, z, mean, logvar)


def encode_posterior(model, x: torch.Tensor):
    """(mean, logvar, flow context or None) of q(z|x) for x (B, d)."""
    if hasattr(model, "encode_posterior"):
        return model.encode_posterior(x)
    return (*model.encode(x), None)


class ELBOEstimator:
    """Base class: subclasses implement :meth:`from_posterior` (any posterior) or
    :meth:`from_encoding` (the Gaussian posterior only), and set ``name``; a name
    outside the built-in objectives is recorded as "custom" in the training config.
    ``config_fields`` maps the :class:`~elbokit.nn.config.TrainingConfig` fields an
    estimator carries to its constructor's arguments (and attributes)."""

    name = "custom"
    #: the gradient estimators (besides "standard") the subclass implements
    gradients: tuple[str, ...] = ()
    gradient = "standard"
    config_fields: dict[str, str] = {}
    #: whether one sample per point may come as z of shape (B, L) instead of (1, B, L)
    #: (fewer autograd nodes on the hot path of training)
    accepts_single_sample = True

    def __call__(self, model, x: torch.Tensor, n_samples: int = 1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        single = n_samples == 1 and self.accepts_single_sample
        post = draw_posterior(model, x, None if single else n_samples, generator)
        return self.from_posterior(model, x, post)  # z: (S, B, L) or (B, L)

    def from_posterior(self, model, x, post) -> torch.Tensor:
        """The estimate from draws ``post`` of q(z|x); by default
        :meth:`from_encoding`, which knows the Gaussian posterior only."""
        if not post.gaussian:
            from ..exceptions import ParameterError

            raise ParameterError(f"{type(self).__name__} implements from_encoding only, for "
                                 "the Gaussian posterior; implement from_posterior to use it "
                                 "with posterior='iaf'")
        return self.from_encoding(model, x, post.mean, post.logvar, post.z)

    def from_encoding(self, model, x, mean, logvar, z) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def log_weights(model, x, mean, logvar, z) -> torch.Tensor:
        """log p(x, z_j) - log q(z_j|x) for the Gaussian posterior, shape (S, B) (or
        (B,) for z of shape (B, L))."""
        log_joint = model.log_likelihood(x, z) + prior_log_prob(model, z)
        return log_joint - diag_gaussian_log_prob(z, mean, logvar)

    @staticmethod
    def posterior_log_weights(model, x, post) -> torch.Tensor:
        """log p(x, z_j) - log q(z_j|x) for any posterior (flow included), like
        :meth:`log_weights`."""
        log_joint = model.log_likelihood(x, post.z) + prior_log_prob(model, post.z)
        return log_joint - post.log_q()

    def kl_dims(self, post, model=None) -> torch.Tensor:
        """Per-dimension terms of KL(q || p) (B, L) summing to this estimator's KL
        estimate; used by the KL-weighted training loss. ``model``: whose prior p is
        (N(0, I) when None)."""
        raise NotImplementedError(f"{type(self).__name__} has no separate KL term")

    @classmethod
    def from_config(cls, config) -> "ELBOEstimator":
        """The estimator with the settings of a TrainingConfig."""
        return cls(**{arg: getattr(config, name) for name, arg in cls.config_fields.items()})

    def settings(self) -> dict:
        """The TrainingConfig fields this estimator stands for (what ``VAE`` records)."""
        return {name: getattr(self, arg) for name, arg in self.config_fields.items()}

    def _check_gradient(self, gradient: str) -> str:
        if gradient != "standard" and gradient not in self.gradients:
            from ..exceptions import ParameterError

            allowed = ["standard", *self.gradients]
            raise ParameterError(f"{type(self).__name__} takes gradient in {allowed}; got "
                                 f"{gradient!r} ('stl' is for MonteCarloELBO (L_A), 'dreg' "
                                 "for the importance-weighted bounds)")
        return gradient

    def _gaussian_for_gradient(self, post) -> None:
        """STL and DReG need log q(z|x) at given z with the parameters held fixed,
        which the Gaussian posterior has in closed form and a flow only by inversion."""
        if not post.gaussian:
            from ..exceptions import ParameterError

            raise ParameterError(f"gradient={self.gradient!r} needs the Gaussian posterior; "
                                 "use gradient='standard' with posterior='iaf'")

    def __repr__(self) -> str:
        args = ", ".join(f"{arg}={getattr(self, arg)!r}" for arg in self.config_fields.values())
        return f"{type(self).__name__}({args})"


def path_log_weights(estimator, model, x, mean, logvar, z):
    """``(log_w, z_in)``: log p(x, z_j) - log q(z_j|x) (S, B) with the posterior's
    parameters detached inside log q, so the encoder's gradient reaches them only
    through z (the path derivative; Roeder et al. 2017). ``z_in`` is the alias of z
    the weights were computed from, for :func:`scale_path_gradient`. Through
    ``estimator.log_weights``, so the model's prior is used."""
    z_in = z.view_as(z)  # its own autograd node: a hook on it sees only this path
    return estimator.log_weights(model, x, mean.detach(), logvar.detach(), z_in), z_in


def scale_path_gradient(z_in: torch.Tensor, factor: torch.Tensor) -> None:
    """Multiply the gradient that flows back through ``z_in`` (S, B, L) into the
    encoder by ``factor`` (S, B), one number per draw; nothing without autograd."""
    if z_in.requires_grad:
        factor = factor.detach().unsqueeze(-1)
        z_in.register_hook(lambda grad: grad * factor)


def _log_prior_dims(model, z: torch.Tensor) -> torch.Tensor:
    """Per-coordinate terms of log p(z) summing to it, like z: the prior's own when it
    factorizes over dimensions, else log p(z) / L in each (only the sum is a density)."""
    prior = _prior(model)
    dims = prior.log_prob_dims(z)
    if dims is not None:
        return dims
    return (prior.log_prob(z) / z.shape[-1]).unsqueeze(-1).expand_as(z)


def _mc_kl_dims(post, model=None) -> torch.Tensor:
    """Monte-Carlo KL per dimension: the sample mean of log q(z|x) - log p(z), split
    into per-coordinate terms (for a flow, coordinate i carries its share -s_i of the
    log-determinant; only the sum is a KL)."""
    terms = post.log_q_dims() - _log_prior_dims(model, post.z)
    return terms if post.z.dim() == 2 else terms.mean(0)


class MonteCarloELBO(ELBOEstimator):
    """L_A (slide "Computing the loss"): the Monte-Carlo average of
    log p(x, z) - log q(z|x), z ~ q(z|x); the KL is estimated from the samples too.
    Selected by ``objective="a"``; ``EstimatorA`` is the old name. ``gradient="stl"``:
    sticking the landing (see the module's docstring)."""

    name = "a"
    gradients = ("stl",)
    config_fields = {"gradient": "gradient"}

    def __init__(self, gradient: str = "standard"):
        self.gradient = self._check_gradient(gradient)

    def from_posterior(self, model, x, post):
        if post.gaussian:
            return self.from_encoding(model, x, post.mean, post.logvar, post.z)
        if self.gradient != "standard":
            self._gaussian_for_gradient(post)
        return _sample_mean(self.posterior_log_weights(model, x, post), post.z)

    def from_encoding(self, model, x, mean, logvar, z):
        if self.gradient == "stl":  # log q with its parameters stopped: no score term
            return _sample_mean(path_log_weights(self, model, x, mean, logvar, z)[0], z)
        return _sample_mean(self.log_weights(model, x, mean, logvar, z), z)

    def kl_dims(self, post, model=None):
        return _mc_kl_dims(post, model)


class AnalyticKLELBO(ELBOEstimator):
    """L_B (slide "A lower variance estimator of the loss"): closed-form -KL(q || p)
    plus the Monte-Carlo average of log p(x|z). With a flow posterior, the Gaussian
    base's KL in closed form plus a Monte-Carlo estimate of the flow's change to it
    (see the module's docstring). Selected by ``objective="b"`` (the default);
    ``EstimatorB`` is the old name.

    A prior without a closed-form KL (a mixture: ``prior="mog"`` with K > 1, or
    ``"vamp"``) gets a closed-form KL to a reference Gaussian r(z) = N(m, diag v), the
    prior's moment-matched Gaussian (``Prior.reference_gaussian``, held constant), plus
    a Monte-Carlo estimate of the difference, over the same draws z_j ~ q(z|x) that
    estimate the reconstruction term (z_0j the Gaussian draws before the flow, if any):

        KL(q || p) = KL(q_0 || r) + E_q[log r(z_0) - log |det dz/dz_0| - log p(z)]
                   ~= KL(q_0 || r) + 1/L sum_j [log r(z_0j) - log|det|_j - log p(z_j)]

    (exact: KL(q || p) = -H[q] - E_q[log p], and -H[q_0] = KL(q_0 || r) + E_{q_0}[log r];
    the log-determinant is 0 without a flow). Unbiased for every r, since only
    expectations are sampled. With r near p the sampled term is small: for one draw
    under a 3-component mixture in 3 dimensions its variance was 0.01 to 0.3 nats^2,
    against 0.2 to 6 for L_A's log q(z|x) - log p(z) and 0.3 to 7 for the closed-form
    entropy with a sampled cross-entropy, -H[q] - log p(z) (tests/test_priors.py)."""

    name = "b"

    def from_posterior(self, model, x, post):
        if post.gaussian:  # through from_encoding, the hook subclasses override
            return self.from_encoding(model, x, post.mean, post.logvar, post.z)
        expected_log_lik = _sample_mean(model.log_likelihood(x, post.z), post.z)  # (B,)
        return expected_log_lik - self.kl_dims(post, model).sum(-1)

    def from_encoding(self, model, x, mean, logvar, z):
        expected_log_lik = _sample_mean(model.log_likelihood(x, z), z)  # (B,)
        prior = _prior(model)
        closed = prior.kl_dims(mean, logvar)  # (B, L), or None for a mixture
        if closed is not None:
            return expected_log_lik - closed.sum(-1)
        r_mean, r_logvar = prior.reference_gaussian()  # (L,) each
        sampled = diag_gaussian_log_prob(z, r_mean, r_logvar) - prior_log_prob(model, z)
        kl = kl_diag_gaussians_dims(mean, logvar, r_mean, r_logvar).sum(-1) \
            + _sample_mean(sampled, z)  # (B,)
        return expected_log_lik - kl

    def kl_dims(self, post, model=None):
        prior = _prior(model)
        closed = prior.kl_dims(post.mean, post.logvar)  # (B, L) or None
        if closed is None:  # KL(q_0 || r) + E[log r(z_0) - log|det| - log p(z)], per coordinate
            r_mean, r_logvar = prior.reference_gaussian()
            terms = gaussian_log_prob(post.z0, r_mean, r_logvar) - _log_prior_dims(model, post.z)
            if not post.gaussian:
                terms = terms - post.log_det
            return kl_diag_gaussians_dims(post.mean, post.logvar, r_mean, r_logvar) \
                + _sample_mean(terms, post.z)
        if post.gaussian:
            return closed
        # per coordinate: log p(z0_i) - log p(z_i) - s_i (only the sum is a KL term)
        flow_terms = (_log_prior_dims(model, post.z0) - _log_prior_dims(model, post.z)
                      - post.log_det)
        return closed + _sample_mean(flow_terms, post.z)


class IWAE(ELBOEstimator):
    """The importance-weighted bound log mean_j exp(log w_j) (Burda et al. 2016).
    ``gradient="dreg"``: the doubly reparameterized encoder gradient (Tucker et al. 2019;
    see the module's docstring)."""

    name = "iwae"
    accepts_single_sample = False
    gradients = ("dreg",)
    config_fields = {"gradient": "gradient"}

    def __init__(self, gradient: str = "standard"):
        self.gradient = self._check_gradient(gradient)

    def from_posterior(self, model, x, post):
        if self.gradient != "standard":
            self._gaussian_for_gradient(post)
            return self.from_encoding(model, x, post.mean, post.logvar, post.z)
        return log_mean_exp(self.posterior_log_weights(model, x, post), dim=0)

    def from_encoding(self, model, x, mean, logvar, z):
        if self.gradient != "dreg":
            return log_mean_exp(self.log_weights(model, x, mean, logvar, z), dim=0)
        log_w, z_in = path_log_weights(self, model, x, mean, logvar, z)  # (S, B)
        # the estimate's gradient in log w_j is wt_j: times wt_j on the encoder's path
        scale_path_gradient(z_in, torch.softmax(log_w.detach(), dim=0))
        return log_mean_exp(log_w, dim=0)


EstimatorA = MonteCarloELBO  # the old names (slide labels), kept as aliases
EstimatorB = AnalyticKLELBO


def _sample_mean(values: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Average (S, B, ...) values over the samples; (B, ...) values (one sample, z of
    shape (B, L)) pass through."""
    return values if z.dim() == 2 else values.mean(0)


ESTIMATORS = {cls.name: cls for cls in (MonteCarloELBO, AnalyticKLELBO, IWAE)}


def estimator_classes() -> dict:
    """Every built-in estimator by name: :data:`ESTIMATORS` and the multi-sample
    bounds (imported here: multisample.py builds on this module)."""
    from .multisample import CIWAE, MIWAE, PIWAE

    return {**ESTIMATORS, **{cls.name: cls for cls in (MIWAE, CIWAE, PIWAE)}}


def get_estimator(estimator, config=None) -> ELBOEstimator:
    """An estimator from its name ("a", "b", "iwae", "miwae", "ciwae", "piwae"), with
    the settings of ``config`` (a TrainingConfig: gradient, miwae_m, ciwae_beta) if
    given, else the defaults; or an :class:`ELBOEstimator`, returned as it is."""
    if isinstance(estimator, ELBOEstimator):
        return estimator
    from ..exceptions import ParameterError

    classes = estimator_classes()
    if not isinstance(estimator, str) or estimator not in classes:
        raise ParameterError(f"estimator must be one of {sorted(classes)} or an "
                             f"ELBOEstimator; got {estimator!r}")
    cls = classes[estimator]
    return cls() if config is None else cls.from_config(config)


# --------------------------------------------------------------------------- KL weighting

def kl_weight(config, step: int, steps_per_epoch: int) -> float:
    """Weight of the KL term at optimiser step ``step`` (0-based, counted over the
    whole run): ``beta``, ramped linearly from 0 over the first ``kl_warmup`` epochs."""
    if not config.kl_warmup:
        return config.beta
    return config.beta * min(1.0, step / (config.kl_warmup * steps_per_epoch))


def weighted_loss(estimator, model, x, n_samples: int, generator, weight: float,
                  free_bits: float = 0.0):
    """(loss, elbo): loss = -mean log p(x|z) + weight * KL penalty, where the penalty
    is the batch-mean KL, or with ``free_bits`` = lambda, sum_j max(lambda, KL_j) over
    the batch-mean KL of each latent dimension j (Kingma et al. 2016): a dimension
    below lambda nats gets no KL gradient. ``elbo`` (B,) is the unweighted estimate."""
    post = draw_posterior(model, x, None if n_samples == 1 else n_samples, generator)
    log_lik = _sample_mean(model.log_likelihood(x, post.z), post.z)  # (B,)
    kl = estimator.kl_dims(post, model)  # (B, L)
    elbo = log_lik - kl.sum(-1)
    if free_bits:
        penalty = torch.clamp(kl.mean(0), min=free_bits).sum()
    else:
        penalty = kl.sum(-1).mean()
    return -log_lik.mean() + weight * penalty, elbo


def training_loss(objective, model, x, config, generator, step: int, steps_per_epoch: int):
    """(loss to minimise, -ELBO of the batch (mean, unweighted)) for one step."""
    if not config.kl_weighted:
        loss = -objective(model, x, config.n_samples, generator).mean()
        return loss, loss
    weight = kl_weight(config, step, steps_per_epoch)
    loss, elbo = weighted_loss(objective, model, x, config.n_samples, generator, weight,
                               config.free_bits)
    return loss, -elbo.mean()
