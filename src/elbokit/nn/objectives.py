"""Estimators of the ELBO, as small interchangeable objects (in the spirit of
Pyro's ``Trace_ELBO`` / ``TraceMeanField_ELBO``).

Each is called as ``estimator(model, x, n_samples, generator)`` and returns one
estimate per data point, shape (B,), in nats. With z_j = mean + sigma * eps_j,
j = 1..L (the lecture's reparameterisation):

* :class:`EstimatorA`, L_A = 1/L sum_j [log p(x, z_j) - log q(z_j|x)]
  (slide "Computing the loss").
* :class:`EstimatorB`, L_B = -KL(q(z|x) || p(z)) + 1/L sum_j log p(x|z_j), the KL in
  closed form (slide "A lower variance estimator of the loss").
* :class:`IWAE`, log 1/L sum_j p(x, z_j) / q(z_j|x): a tighter bound
  (Burda et al. 2016) that tends to log p(x) as L grows; equal to L_A for L = 1.

All three are unbiased for their target; A and B share the target, the ELBO.
"""

from __future__ import annotations

import torch

from ._math import (diag_gaussian_log_prob, kl_diag_gaussian_standard, log_mean_exp,
                    reparameterize, standard_normal_log_prob)


class ELBOEstimator:
    """Base class: subclasses implement :meth:`from_encoding` (and set ``name``; a
    name outside "a", "b", "iwae" is recorded as "custom" in the training config)."""

    name = "custom"
    #: whether one sample per point may come as z of shape (B, L) instead of (1, B, L)
    #: (fewer autograd nodes on the hot path of training)
    accepts_single_sample = True

    def __call__(self, model, x: torch.Tensor, n_samples: int = 1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        mean, logvar = model.encode(x)  # (B, L) each
        single = n_samples == 1 and self.accepts_single_sample
        z = reparameterize(mean, logvar, None if single else n_samples, generator)
        return self.from_encoding(model, x, mean, logvar, z)  # z: (S, B, L) or (B, L)

    def from_encoding(self, model, x, mean, logvar, z) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def log_weights(model, x, mean, logvar, z) -> torch.Tensor:
        """log p(x, z_j) - log q(z_j|x), shape (S, B) (or (B,) for z of shape (B, L))."""
        log_joint = model.log_likelihood(x, z) + standard_normal_log_prob(z)
        return log_joint - diag_gaussian_log_prob(z, mean, logvar)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EstimatorA(ELBOEstimator):
    """L_A: Monte-Carlo average of log p(x, z) - log q(z|x)."""

    name = "a"

    def from_encoding(self, model, x, mean, logvar, z):
        return _sample_mean(self.log_weights(model, x, mean, logvar, z), z)


class EstimatorB(ELBOEstimator):
    """L_B: closed-form -KL(q || p) plus the Monte-Carlo average of log p(x|z)."""

    name = "b"

    def from_encoding(self, model, x, mean, logvar, z):
        expected_log_lik = _sample_mean(model.log_likelihood(x, z), z)  # (B,)
        return expected_log_lik - kl_diag_gaussian_standard(mean, logvar)


class IWAE(ELBOEstimator):
    """The importance-weighted bound log mean_j exp(log w_j)."""

    name = "iwae"
    accepts_single_sample = False

    def from_encoding(self, model, x, mean, logvar, z):
        return log_mean_exp(self.log_weights(model, x, mean, logvar, z), dim=0)


def _sample_mean(values: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Average (S, B) values over the samples; (B,) values (one sample) pass through."""
    return values if z.dim() == 2 else values.mean(0)


ESTIMATORS = {cls.name: cls for cls in (EstimatorA, EstimatorB, IWAE)}


def get_estimator(estimator) -> ELBOEstimator:
    """An estimator from its name ("a", "b", "iwae") or an :class:`ELBOEstimator`."""
    if isinstance(estimator, ELBOEstimator):
        return estimator
    from ..exceptions import ParameterError

    if estimator not in ESTIMATORS:
        raise ParameterError(f"estimator must be one of {sorted(ESTIMATORS)} or an "
                             f"ELBOEstimator; got {estimator!r}")
    return ESTIMATORS[estimator]()
