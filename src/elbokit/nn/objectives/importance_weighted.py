"""The importance-weighted bounds: IWAE (Burda et al. 2016) and beside it the
multi-sample bounds of Rainforth et al. (2018, "Tighter variational bounds are not
necessarily better"), each with the DReG encoder gradient (Tucker et al. 2019).

With log w_mk = log p(x, z_mk) - log q(z_mk|x), z_mk ~ q(z|x), m = 1..M, k = 1..K,
and IWAE_K = log 1/K sum_k w_k:

* :class:`IWAE`: IWAE_K, a tighter bound than the ELBO that tends to log p(x) as K
  grows; equal to L_A for K = 1.
* :class:`MIWAE` (M, K): 1/M sum_m log 1/K sum_k w_mk, the average of M independent
  K-sample IWAE bounds (M * K draws per point). K = 1 is L_A with M samples; M = 1 is
  IWAE_K.
* :class:`CIWAE` (beta): beta * L_A + (1 - beta) * IWAE_K on the same K draws
  (beta = 1: L_A; beta = 0: IWAE_K).
* :class:`PIWAE` (M, K): the decoder (theta) trained on IWAE_{MK}, the bound of all
  M * K draws, the encoder (phi) on MIWAE(M, K): two losses whose gradients go to
  disjoint parameter sets. The estimate's value is IWAE_{MK}.

Here K is the ``n_samples`` of a call and M an attribute (``miwae_m`` in the training
config): ``MIWAE(8)(model, x, 8)`` is MIWAE(8, 8). Each takes ``gradient="dreg"``
(Tucker et al. 2019) for its encoder gradient: every IWAE_K term's encoder gradient
sum_k wt_k^2 d log w_k/dz_k dz_k/dphi (wt_k normalised within its group; for CIWAE's
L_A term, wt = 1/K: the STL gradient). All log-weights come from
``ELBOEstimator.log_weights`` / ``posterior_log_weights``.
"""

from __future__ import annotations

import numbers
from dataclasses import replace

import torch

from ...exceptions import ParameterError
from .._math import log_mean_exp
from ..config import CIWAE_BETA, MIWAE_M
from ..model import PosteriorSample
from .base import ELBOEstimator, path_log_weights, scale_path_gradient


def _check_m(m) -> int:
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
        raise ParameterError(f"M (miwae_m) must be an integer >= 1; got {m!r}")
    return int(m)


def _groups(log_w: torch.Tensor, m: int) -> torch.Tensor:
    """(M * K, B) log-weights as (M, K, B): M groups of K draws (i.i.d., so any split is
    as good as another)."""
    if log_w.shape[0] % m:
        raise ParameterError(f"{log_w.shape[0]} draws do not split into M = {m} groups")
    return log_w.view(m, log_w.shape[0] // m, *log_w.shape[1:])


def _miwae(log_w: torch.Tensor, m: int) -> torch.Tensor:
    """MIWAE(M, K) from (M * K, B) log-weights: the mean over groups of IWAE_K, (B,)."""
    return log_mean_exp(_groups(log_w, m), dim=1).mean(0)


def _group_weights(log_w: torch.Tensor, m: int) -> torch.Tensor:
    """wt_mk = w_mk / sum_k' w_mk', normalised within each group, shaped like log_w."""
    return torch.softmax(_groups(log_w.detach(), m), dim=1).view_as(log_w)


def _zero_valued(t: torch.Tensor) -> torch.Tensor:
    """0 exactly, with the gradient of ``t``: adds a gradient, never a value."""
    return t - t.detach()


class _ImportanceWeighted(ELBOEstimator):
    """Shared by the four: z of shape (S, B, L) always, and "dreg" as the gradient
    option (the Gaussian posterior only). A subclass gives the bound from the
    log-weights (:meth:`from_log_weights`) and its DReG coefficients."""

    accepts_single_sample = False
    gradients = ("dreg",)

    def from_posterior(self, model, x, post):
        if self.gradient != "standard":
            self._gaussian_for_gradient(post)
            return self.from_encoding(model, x, post.mean, post.logvar, post.z)
        return self.from_log_weights(self.posterior_log_weights(model, x, post))

    def from_encoding(self, model, x, mean, logvar, z):
        if self.gradient != "dreg":
            return self.from_log_weights(self.log_weights(model, x, mean, logvar, z))
        log_w, z_in = path_log_weights(self, model, x, mean, logvar, z)  # (S, B)
        scale_path_gradient(z_in, self.path_scale(log_w.detach()))
        return self.from_log_weights(log_w)

    def from_log_weights(self, log_w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dreg_coefficients(self, log_w: torch.Tensor):
        """(d estimate / d log w, the DReG encoder coefficients), both (S, B)."""
        raise NotImplementedError

    def path_scale(self, log_w: torch.Tensor) -> torch.Tensor:
        """The factor (S, B) on each draw's encoder path: the estimate's gradient in
        log w is ``theta``, the path should carry ``phi`` instead (phi <= theta, and
        phi = 0 where theta = 0)."""
        theta, phi = self.dreg_coefficients(log_w)
        return torch.where(theta > 0, phi / theta, torch.zeros_like(phi))


class IWAE(_ImportanceWeighted):
    """The importance-weighted bound log mean_j exp(log w_j) (Burda et al. 2016).
    ``gradient="dreg"``: the doubly reparameterized encoder gradient (Tucker et al. 2019;
    see :mod:`elbokit.nn.objectives`)."""

    name = "iwae"
    config_fields = {"gradient": "gradient"}

    def __init__(self, gradient: str = "standard"):
        self.gradient = self._check_gradient(gradient)

    def from_log_weights(self, log_w):
        return log_mean_exp(log_w, dim=0)

    def path_scale(self, log_w):
        # the estimate's gradient in log w_j is wt_j, DReG's wt_j^2: wt_j on the path
        return torch.softmax(log_w, dim=0)


class _Groups(_ImportanceWeighted):
    """A bound over M groups of K draws: called with ``n_samples`` = K, it draws M * K."""

    config_fields = {"miwae_m": "m", "gradient": "gradient"}

    def __init__(self, m: int = MIWAE_M, gradient: str = "standard"):
        self.m = _check_m(m)
        self.gradient = self._check_gradient(gradient)

    def __call__(self, model, x, n_samples: int = 1, generator=None, *, encoding=None):
        return super().__call__(model, x, self.m * n_samples, generator, encoding=encoding)


class MIWAE(_Groups):
    """MIWAE(M, K) = 1/M sum_m IWAE_K(group m): ``MIWAE(m)(model, x, k)`` draws M * K
    samples per point (Rainforth et al. 2018, eq. 7). ``objective="miwae"`` with
    ``miwae_m=M, n_samples=K``."""

    name = "miwae"

    def from_log_weights(self, log_w):
        return _miwae(log_w, self.m)

    def dreg_coefficients(self, log_w):
        weights = _group_weights(log_w, self.m)
        return weights / self.m, weights.square() / self.m


class CIWAE(_ImportanceWeighted):
    """CIWAE(beta) = beta * L_A + (1 - beta) * IWAE_K on the same K draws (Rainforth et
    al. 2018, eq. 6). ``objective="ciwae"`` with ``ciwae_beta=beta, n_samples=K``."""

    name = "ciwae"
    config_fields = {"ciwae_beta": "beta", "gradient": "gradient"}

    def __init__(self, beta: float = CIWAE_BETA, gradient: str = "standard"):
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta <= 1:
            raise ParameterError(f"beta (ciwae_beta) must be a number in [0, 1]; got {beta!r}")
        self.beta = float(beta)
        self.gradient = self._check_gradient(gradient)

    def from_log_weights(self, log_w):
        return self.beta * log_w.mean(0) + (1 - self.beta) * log_mean_exp(log_w, dim=0)

    def dreg_coefficients(self, log_w):
        # L_A's term is STL's (DReG with K = 1 per draw): 1/K on both parameter sets
        weights, k = torch.softmax(log_w, dim=0), log_w.shape[0]
        return (self.beta / k + (1 - self.beta) * weights,
                self.beta / k + (1 - self.beta) * weights.square())


class PIWAE(_Groups):
    """PIWAE(M, K) (Rainforth et al. 2018, section 4): the decoder's gradient is that of
    IWAE_{MK} over all M * K draws, the encoder's that of MIWAE(M, K); the value is
    IWAE_{MK}. ``objective="piwae"`` with ``miwae_m=M, n_samples=K``.

    One backward pass gives each its own: the log-weights are computed twice from the
    same draws, once with z and the posterior's parameters detached (log w^theta: a
    gradient to the decoder and the prior only) and once as usual (log w). The
    surrogate is

        IWAE_{MK}(log w^theta) + [MIWAE(log w) - MIWAE(log w^theta)]

    whose bracket is 0 in value (added as such) and whose decoder gradients cancel
    inside the bracket (same draws, same numbers), so theta gets IWAE_{MK}'s gradient
    and phi MIWAE's. With ``gradient="dreg"`` the bracket is
    sum_mk c_mk (log w_mk - log w^theta_mk), c = wt^2 / M, log q's parameters detached
    in log w. (A prior whose log-density uses the encoder, the VampPrior, gives the
    encoder's weights IWAE_{MK}'s gradient through p(z) too.) Costs two decoder passes
    in training; one under ``torch.no_grad``."""

    name = "piwae"

    def from_posterior(self, model, x, post):
        if not torch.is_grad_enabled():  # the value alone: one pass
            return log_mean_exp(self.posterior_log_weights(model, x, post), dim=0)
        if self.gradient != "standard":
            self._gaussian_for_gradient(post)
        log_w_theta = self.posterior_log_weights(model, x, _detached(post))  # (M * K, B)
        if self.gradient == "dreg":
            log_w, _ = path_log_weights(self, model, x, post.mean, post.logvar, post.z)
            coefficients = _group_weights(log_w, self.m).square() / self.m
            encoder_term = (coefficients * (log_w - log_w_theta)).sum(0)
        else:
            log_w = self.posterior_log_weights(model, x, post)
            encoder_term = _miwae(log_w, self.m) - _miwae(log_w_theta, self.m)
        return log_mean_exp(log_w_theta, dim=0) + _zero_valued(encoder_term)

    def from_encoding(self, model, x, mean, logvar, z):
        return self.from_posterior(model, x, PosteriorSample(z, z, mean, logvar))


def _detached(post):
    """The draws with every tensor detached: log-weights from it have gradients to the
    generative model only."""
    return replace(post, z0=post.z0.detach(), z=post.z.detach(), mean=post.mean.detach(),
                   logvar=post.logvar.detach(),
                   log_det=None if post.log_det is None else post.log_det.detach())
