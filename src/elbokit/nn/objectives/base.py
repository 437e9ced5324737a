"""What every objective shares: the :class:`ELBOEstimator` protocol, the one place
p(z) is read (:func:`prior_log_prob`), the draws from q(z|x) and the log-weights
log w_j = log p(x, z_j) - log q(z_j|x), and the path-gradient helpers of STL and DReG
(see :mod:`elbokit.nn.objectives` for the estimators themselves)."""

from __future__ import annotations

import torch

from ...exceptions import ParameterError
from .._math import diag_gaussian_log_prob, reparameterize, standard_normal_log_prob
from ..model import PosteriorSample
from ..priors import StandardNormal


def prior_log_prob(model, z: torch.Tensor) -> torch.Tensor:
    """log p(z) summed over the last axis: ``model.prior.log_prob`` (N(0, I) for a
    duck-typed model without a prior). The one place every estimator reads p(z)."""
    prior = getattr(model, "prior", None)
    return standard_normal_log_prob(z) if prior is None else prior.log_prob(z)


def model_prior(model):
    """``model.prior``, or N(0, I) for a duck-typed model without one."""
    prior = getattr(model, "prior", None)
    return StandardNormal(1) if prior is None else prior


def draw_posterior(model, x: torch.Tensor, n_samples: int | None,
                   generator: torch.Generator | None = None, encoding=None):
    """``model.posterior(...)`` (a :class:`~elbokit.nn.model.PosteriorSample`); a
    duck-typed model with only ``encode`` (a Gaussian q) is served too."""
    if hasattr(model, "posterior"):
        return model.posterior(x, n_samples, generator, encoding=encoding)
    mean, logvar = model.encode(x) if encoding is None else encoding[:2]
    z = reparameterize(mean, logvar, n_samples, generator)
    return PosteriorSample(z, z, mean, logvar)


def encode_posterior(model, x: torch.Tensor):
    """(mean, logvar, flow context or None) of q(z|x) for x (B, d)."""
    if hasattr(model, "encode_posterior"):
        return model.encode_posterior(x)
    return (*model.encode(x), None)


def sample_mean(values: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Average (S, B, ...) values over the samples; (B, ...) values (one sample, z of
    shape (B, L)) pass through."""
    return values if z.dim() == 2 else values.mean(0)


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
                 generator: torch.Generator | None = None, *, encoding=None) -> torch.Tensor:
        """The estimate per row of x, (B,); ``encoding``: q(z|x)'s precomputed
        ``encode_posterior(x)``, when the caller has it."""
        single = n_samples == 1 and self.accepts_single_sample
        post = draw_posterior(model, x, None if single else n_samples, generator, encoding)
        return self.from_posterior(model, x, post)  # z: (S, B, L) or (B, L)

    def from_posterior(self, model, x, post) -> torch.Tensor:
        """The estimate from draws ``post`` of q(z|x); by default
        :meth:`from_encoding`, which knows the Gaussian posterior only."""
        if not post.gaussian:
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
            allowed = ["standard", *self.gradients]
            raise ParameterError(f"{type(self).__name__} takes gradient in {allowed}; got "
                                 f"{gradient!r} ('stl' is for MonteCarloELBO (L_A), 'dreg' "
                                 "for the importance-weighted bounds)")
        return gradient

    def _gaussian_for_gradient(self, post) -> None:
        """STL and DReG need log q(z|x) at given z with the parameters held fixed,
        which the Gaussian posterior has in closed form and a flow only by inversion."""
        if not post.gaussian:
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
