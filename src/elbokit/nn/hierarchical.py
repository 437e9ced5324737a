"""The hierarchical VAE with two stochastic layers (the HVAE of Tomczak & Welling 2018,
section 3.3), selected by ``top_latent_dim`` = L2 > 0:

    p(x, z1, z2) = p(z2) p(z1|z2) p(x|z1, z2),    q(z1, z2|x) = q(z2|x) q(z1|x, z2)

p(z2) the prior ``config.prior`` names (standard, mog, or the VampPrior over z2, whose
components are q(z2|u_k)); p(z1|z2) = N(mu(z2), diag exp(s(z2))) and q(z1|x, z2), q(z2|x)
diagonal Gaussians given by networks; the decoder p(x|z1, z2) is the one-layer model's,
on z = (z1, z2). ``latent_dim`` counts both layers: z1 has L1 = latent_dim - L2
coordinates, the first of z.

:class:`HierarchicalVAENetwork` keeps :class:`~elbokit.nn.model.VAENetwork`'s protocol:
``posterior`` draws z = (z1, z2) with log q(z|x) = log q(z2|x) + log q(z1|x, z2), and
``prior`` is a :class:`HierarchicalPrior`, log p(z) = log p(z2) + log p(z1|z2), so the
estimators, importance sampling, training, checkpoints, save/load and sampling serve it
unchanged. L_B's KL is KL(q(z2|x) || p(z2)) (the one-layer rule) plus
E_q(z2|x)[KL(q(z1|x, z2) || p(z1|z2))], closed-form for each drawn z2
(:meth:`HierarchicalPosteriorSample.analytic_kl_dims`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch

from ._math import gaussian_log_prob, kl_diag_gaussians_dims
from .config import ArchitectureConfig
from .model import PosteriorSample, VAENetwork
from .networks import MLPEncoder, build_encoder
from .priors import Prior, build_prior, mixture_marginals

MARGINAL_DRAWS = 256  # seeded draws of z2 whose p(z1|z2) approximate each marginal p(z1_j)


@dataclass
class HierarchicalPosteriorSample(PosteriorSample):
    """Draws z = (z1, z2) ~ q(z2|x) q(z1|x, z2): ``mean``, ``logvar`` like z, those of
    q(z1|x, z2) at each drawn z2 then q(z2|x)'s; ``prior_mean``, ``prior_logvar`` (like
    z1) those of p(z1|z2); ``top`` the draws of z2 alone (a Gaussian PosteriorSample)."""

    prior_mean: torch.Tensor | None = None
    prior_logvar: torch.Tensor | None = None
    top: PosteriorSample | None = None

    @property
    def gaussian(self) -> bool:  # q(z|x) is no one diagonal Gaussian: the general paths
        return False

    def log_q_dims(self) -> torch.Tensor:
        return gaussian_log_prob(self.z, self.mean, self.logvar)

    def analytic_kl_dims(self, estimator, prior) -> torch.Tensor:
        """L_B's KL per coordinate, like z's last axis (B, L): the sample mean of the
        closed-form KL(q(z1|x, z2_j) || p(z1|z2_j)), then ``estimator``'s KL of the
        Gaussian q(z2|x) from ``prior.top`` = p(z2)."""
        l1 = self.prior_mean.shape[-1]
        bottom = kl_diag_gaussians_dims(self.mean[..., :l1], self.logvar[..., :l1],
                                        self.prior_mean, self.prior_logvar)
        bottom = bottom if bottom.dim() == 2 else bottom.mean(0)  # (B, L1)
        top = estimator.kl_dims(self.top, SimpleNamespace(prior=prior.top))  # (B, L2)
        return torch.cat([bottom, top], dim=-1)


class _TopEncoder:
    """What a prior over z2 sees of the network: ``encode`` = q(z2|x) (the VampPrior's
    components). A plain object, so the encoder's weights stay the network's."""

    def __init__(self, network):
        self.network = network

    def encode(self, x):
        return self.network.encode_top(x)


class HierarchicalPrior(Prior):
    """p(z) = p(z2) p(z1|z2) over z = (z1, z2): ``top`` the prior p(z2) (L2), and
    ``conditional`` (z2 -> mean, logvar of z1) the network of p(z1|z2)."""

    def __init__(self, top: Prior, conditional: torch.nn.Module, bottom_dim: int):
        super().__init__(bottom_dim + top.latent_dim)
        self.top, self.conditional, self.bottom_dim = top, conditional, int(bottom_dim)
        self.name = top.name
        # the mixture components of marginal_log_prob_dims (sizes the KL's batches)
        self.n_components = max(MARGINAL_DRAWS, getattr(top, "n_components", 1))

    def attach(self, network) -> None:
        self.top.attach(_TopEncoder(network))

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., L) -> z1 (..., L1), z2 (..., L2)."""
        return z[..., :self.bottom_dim], z[..., self.bottom_dim:]

    def log_prob(self, z):
        z1, z2 = self.split(z)
        mean, logvar = self.conditional(z2)
        return self.top.log_prob(z2) + gaussian_log_prob(z1, mean, logvar).sum(-1)

    def sample(self, n, generator=None):
        z2 = self.top.sample(n, generator)
        mean, logvar = self.conditional(z2)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device,
                          dtype=mean.dtype)
        return torch.cat([mean + torch.exp(0.5 * logvar) * eps, z2], dim=-1)

    def marginal_log_prob_dims(self, z):
        """log p(z1_j) then log p(z2_j), like z: p(z1_j) = E_p(z2) N(z1_j | mu_j(z2),
        exp(s_j(z2))) as the mean over MARGINAL_DRAWS seeded draws of z2 (a mixture of
        that many Gaussians; Monte Carlo), p(z2_j) the top prior's own marginal."""
        z1, z2 = self.split(z)
        top = self.top.marginal_log_prob_dims(z2)
        if top is None:
            return None
        generator = torch.Generator(device=self._origin.device).manual_seed(0)
        mean, logvar = self.conditional(self.top.sample(MARGINAL_DRAWS, generator))  # (M, L1)
        log_weights = torch.full((MARGINAL_DRAWS, 1), -math.log(MARGINAL_DRAWS),
                                 dtype=mean.dtype, device=mean.device)
        return torch.cat([mixture_marginals(z1, log_weights, mean, logvar), top], dim=-1)

    def init_from_data(self, x, generator):
        self.top.init_from_data(x, generator)

    def extra_repr(self) -> str:
        return f"bottom_dim={self.bottom_dim}, top_dim={self.top.latent_dim}"


class HierarchicalVAENetwork(VAENetwork):
    """The two-layer VAE's module: ``encoder`` q(z2|x), ``bottom_encoder`` q(z1|x, z2)
    (the preset encoder with z2 joining as a conditioning y does), ``prior`` a
    :class:`HierarchicalPrior`, ``decoder`` p(x|z1, z2) on z = (z1, z2)."""

    def __init__(self, config: ArchitectureConfig, prior: Prior | None = None, *,
                 encoder=None, decoder=None):
        top_dim = config.top_latent_dim
        bottom_dim = config.latent_dim - top_dim
        top = build_prior(replace(config, latent_dim=top_dim, top_latent_dim=0)) \
            if prior is None else prior
        hidden = () if config.decoder == "linear" else config.hidden
        conditional = MLPEncoder(top_dim, hidden, bottom_dim, config.activation)
        super().__init__(config, HierarchicalPrior(top, conditional, bottom_dim),
                         encoder=build_encoder(config, top_dim), decoder=decoder)
        self.bottom_encoder = build_encoder(config, bottom_dim, extra_inputs=top_dim)

    def encode_top(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, d) -> mean, logvar (B, L2) of q(z2|x)."""
        mean, logvar = self.encoder(self.encoder_input(x))
        return mean, self._clamped(logvar)

    def encode_posterior(self, x: torch.Tensor):
        """(mean, logvar (B, L2) of q(z2|x), the encoder's input h (B, d')): what
        :meth:`posterior` needs to draw from q(z1|x, z2) at any z2."""
        h = self.encoder_input(x)
        mean, logvar = self.encoder(h)
        return mean, self._clamped(logvar), h

    def bottom(self, h: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, logvar of q(z1|x, z2), like z2's leading axes, from h (B, d')."""
        h = h.expand(*z2.shape[:-1], h.shape[-1])
        mean, logvar = self.bottom_encoder(torch.cat([h, z2], -1).reshape(-1, h.shape[-1]
                                                                        + z2.shape[-1]))
        shape = (*z2.shape[:-1], mean.shape[-1])
        return mean.reshape(shape), self._clamped(logvar).reshape(shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, d) -> mean, logvar (B, L): q(z1|x, z2) at z2 = the mean of q(z2|x), then
        q(z2|x)'s (the codes and spreads ``VAE.encode`` reports)."""
        mean2, logvar2, h = self.encode_posterior(x)
        mean1, logvar1 = self.bottom(h, mean2)
        return torch.cat([mean1, mean2], -1), torch.cat([logvar1, logvar2], -1)

    def posterior(self, x, n_samples, generator=None, *, encoding=None):
        """Draws z = (z1, z2) ~ q(z2|x) q(z1|x, z2), (n_samples, B, L) or (B, L); one
        eps (like z) per draw, z1's coordinates first."""
        mean2, logvar2, h = self.encode_posterior(x) if encoding is None else encoding
        l1 = self.prior.bottom_dim
        shape = (*(() if n_samples is None else (n_samples,)), mean2.shape[0],
                 l1 + mean2.shape[-1])
        eps = torch.randn(shape, generator=generator, device=mean2.device, dtype=mean2.dtype)
        z2 = mean2 + torch.exp(0.5 * logvar2) * eps[..., l1:]
        mean1, logvar1 = self.bottom(h, z2)
        z1 = mean1 + torch.exp(0.5 * logvar1) * eps[..., :l1]
        z = torch.cat([z1, z2], -1)
        prior_mean, prior_logvar = self.prior.conditional(z2)
        top = PosteriorSample(z2, z2, mean2, logvar2)
        return HierarchicalPosteriorSample(
            z, z, torch.cat([mean1, mean2.expand_as(z2)], -1),
            torch.cat([logvar1, logvar2.expand_as(z2)], -1),
            prior_mean=prior_mean, prior_logvar=prior_logvar, top=top)


def build_network(config: ArchitectureConfig, prior: Prior | None = None, **modules):
    """The VAE's module for ``config``: :class:`HierarchicalVAENetwork` when
    ``config.top_latent_dim`` > 0, else :class:`~elbokit.nn.model.VAENetwork`."""
    cls = HierarchicalVAENetwork if config.top_latent_dim else VAENetwork
    return cls(config, prior, **modules)


__all__ = ["HierarchicalVAENetwork", "HierarchicalPrior", "HierarchicalPosteriorSample",
           "build_network"]
