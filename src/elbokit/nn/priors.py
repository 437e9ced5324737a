"""Priors p(z) of the VAE as objects of their own: a log-density, a sampler and their
parameters (an ``nn.Module``, so they are trained, checkpointed and saved with the
model's weights).

* :class:`StandardNormal`: p(z) = N(0, I), the lecture's prior (``prior="standard"``).
* :class:`MixtureOfGaussians`: p(z) = sum_k pi_k N(z | mu_k, diag exp(s_k)), K learned
  means, log-variances and mixing logits (``prior="mog"``).
* :class:`VampPrior`: p(z) = 1/K sum_k q(z | u_k), the encoder's posterior at K learned
  pseudo-inputs u_k in the data's space (Tomczak & Welling 2018, eq. 9;
  ``prior="vamp"``). With ``posterior="iaf"`` the components are the Gaussian part
  N(mean(u_k), diag exp(logvar(u_k))) of q(z|u_k), whose density is closed-form.

Every estimator reads the prior through ``model.prior.log_prob`` (see
``objectives.prior_log_prob``). A user's prior is a subclass of :class:`Prior` passed
as ``VAE(prior=MyPrior(L))``; its weights are saved with the model and ``VAE.load``
needs the object again (``VAE.load(dir, prior=MyPrior(L))``): no class is ever imported
by a name read from a file.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._math import (
    diag_gaussian_log_prob,
    gaussian_log_prob,
    kl_diag_gaussians_dims,
    kl_diag_gaussian_standard_dims,
    log_mean_exp,
    reparameterize,
    standard_normal_log_prob,
    standard_normal_log_prob_dims,
)


class Prior(nn.Module):
    """Base class of a prior p(z) over R^L.

    Subclasses implement :meth:`log_prob` (z (..., L) -> (...)) and :meth:`sample`
    (n -> (n, L)); they may implement :meth:`kl_dims` (a closed-form KL from a diagonal
    Gaussian, per dimension) and :meth:`log_prob_dims` (per-dimension terms when p
    factorizes over dimensions). ``name`` is what ``model.json`` records: "custom" for
    a user's prior."""

    name = "custom"

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = int(latent_dim)
        # where samples are drawn (moves with .to(); not part of the saved weights)
        self.register_buffer("_origin", torch.zeros(self.latent_dim), persistent=False)

    def attach(self, network) -> None:
        """Called by the VAE's network that holds this prior (the VampPrior keeps it, to
        encode its pseudo-inputs); a no-op by default."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z (..., L), shape (...)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws z ~ p(z), shape (n, L)."""
        raise NotImplementedError

    def log_prob_dims(self, z: torch.Tensor) -> torch.Tensor | None:
        """log p(z_i) per dimension, like z, when p factorizes; None otherwise."""
        return None

    def marginal_log_prob_dims(self, z: torch.Tensor) -> torch.Tensor | None:
        """log p_j(z_j), like z: each dimension's marginal density (the per-dimension
        terms when p factorizes; a 1-D mixture for the mixtures), or None when unknown
        (a custom prior that does not factorize)."""
        return self.log_prob_dims(z)

    def kl_dims(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(N(mean, diag exp(logvar)) || p) per dimension (B, L) in closed form, or
        None when it has none (the estimators then use Monte Carlo)."""
        return None

    def reference_gaussian(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, logvar (L,) of a diagonal Gaussian near p, held constant (no gradient):
        the reference of L_B's Monte-Carlo KL when :meth:`kl_dims` has no closed form
        (any choice leaves it unbiased; a closer one lowers its variance). Default
        N(0, I); the mixtures return their moment-matched Gaussian."""
        zeros = torch.zeros_like(self._origin)
        return zeros, zeros

    def init_from_data(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """Initialise from training rows x (n, d) before fitting; a no-op by default."""

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"


class StandardNormal(Prior):
    """p(z) = N(0, I): the lecture's prior; the KL from a Gaussian q is closed-form
    (Kingma & Welling 2014, appendix B)."""

    name = "standard"

    def log_prob(self, z):
        return standard_normal_log_prob(z)

    def log_prob_dims(self, z):
        return standard_normal_log_prob_dims(z)

    def kl_dims(self, mean, logvar):
        return kl_diag_gaussian_standard_dims(mean, logvar)

    def sample(self, n, generator=None):
        return torch.randn((int(n), self.latent_dim), generator=generator,
                           device=self._origin.device, dtype=self._origin.dtype)


class MixtureOfGaussians(Prior):
    """p(z) = sum_k pi_k N(z | mu_k, diag exp(s_k)), pi = softmax(logits), all learned.

    log p(z) = logsumexp_k [log pi_k + log N(z | mu_k, diag exp(s_k))]. Initialised with
    mu_k ~ N(0, I) (seeded by the model's seed), s_k = 0 and equal weights; with K = 1
    and ``mu = 0`` it is N(0, I) exactly, and its KL from a Gaussian q is closed-form."""

    name = "mog"

    def __init__(self, latent_dim: int, n_components: int = 10):
        super().__init__(latent_dim)
        self.n_components = int(n_components)
        means = torch.randn(self.n_components, self.latent_dim) if self.n_components > 1 \
            else torch.zeros(1, self.latent_dim)
        self.means = nn.Parameter(means)  # (K, L)
        self.logvars = nn.Parameter(torch.zeros(self.n_components, self.latent_dim))
        self.logits = nn.Parameter(torch.zeros(self.n_components))

    def component_log_probs(self, z):
        """log pi_k + log N(z | mu_k, diag exp(s_k)), shape (..., K)."""
        log_weights = torch.log_softmax(self.logits, dim=0)  # (K,)
        return log_weights + diag_gaussian_log_prob(z.unsqueeze(-2), self.means, self.logvars)

    def log_prob(self, z):
        return torch.logsumexp(self.component_log_probs(z), dim=-1)

    def log_prob_dims(self, z):
        if self.n_components > 1:
            return None
        return gaussian_log_prob(z, self.means[0], self.logvars[0])

    def marginal_log_prob_dims(self, z):
        log_weights = torch.log_softmax(self.logits, dim=0)[:, None]  # (K, 1)
        return mixture_marginals(z, log_weights, self.means, self.logvars)

    def kl_dims(self, mean, logvar):
        if self.n_components > 1:
            return None
        return kl_diag_gaussians_dims(mean, logvar, self.means[0], self.logvars[0])

    def reference_gaussian(self):
        with torch.no_grad():
            weights = torch.softmax(self.logits, dim=0)
            return moment_matched(weights, self.means, self.logvars)

    def sample(self, n, generator=None):
        probs = torch.softmax(self.logits.detach(), dim=0)
        k = torch.multinomial(probs, int(n), replacement=True, generator=generator)  # (n,)
        return reparameterize(self.means.detach()[k], self.logvars.detach()[k], None,
                              generator)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, n_components={self.n_components}"


class VampPrior(Prior):
    """The variational mixture of posteriors (Tomczak & Welling 2018, eq. 9):
    p(z) = 1/K sum_k q(z | u_k), u_k (K, d) learned pseudo-inputs in the data's units.

    log p(z) = log 1/K sum_k N(z | mean(u_k), diag exp(logvar(u_k))), the encoder's
    Gaussian at each u_k (the flow of ``posterior="iaf"`` is not part of it). The
    pseudo-inputs start as K distinct training rows chosen with the model's seed
    (:meth:`init_from_data`), the data-based start of the paper's section 3.2."""

    name = "vamp"

    def __init__(self, latent_dim: int, n_features: int, n_components: int = 10):
        super().__init__(latent_dim)
        self.n_components, self.n_features = int(n_components), int(n_features)
        self.pseudo_inputs = nn.Parameter(torch.full((self.n_components, self.n_features),
                                                     0.5))
        self._network = None

    def attach(self, network) -> None:
        # a plain attribute, not a submodule: the encoder's weights are the network's
        # (saved once, under encoder.*); a deep copy of the network maps it to the copy
        object.__setattr__(self, "_network", network)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, logvar (K, L) of q(z | u_k)."""
        if self._network is None:
            from ..exceptions import ParameterError

            raise ParameterError("a VampPrior needs the VAE's encoder: pass it to the VAE "
                                 "(prior='vamp' or VAE(prior=VampPrior(...)))")
        return self._network.encode(self.pseudo_inputs)

    def log_prob(self, z):
        mean, logvar = self.components()
        return log_mean_exp(diag_gaussian_log_prob(z.unsqueeze(-2), mean, logvar), dim=-1)

    def marginal_log_prob_dims(self, z):
        mean, logvar = self.components()
        log_weights = torch.full((self.n_components, 1), -math.log(self.n_components),
                                 device=mean.device, dtype=mean.dtype)
        return mixture_marginals(z, log_weights, mean, logvar)

    def reference_gaussian(self):
        with torch.no_grad():
            mean, logvar = self.components()
            weights = torch.full((self.n_components,), 1.0 / self.n_components,
                                 device=mean.device, dtype=mean.dtype)
            return moment_matched(weights, mean, logvar)

    def sample(self, n, generator=None):
        with torch.no_grad():
            mean, logvar = self.components()
        k = torch.randint(self.n_components, (int(n),), generator=generator,
                          device=mean.device)
        return reparameterize(mean[k], logvar[k], None, generator)

    @torch.no_grad()
    def init_from_data(self, x, generator):
        n = x.shape[0]
        rows = torch.randperm(n, generator=generator)[:self.n_components]
        if n < self.n_components:  # fewer rows than components: repeat them
            rows = rows[torch.arange(self.n_components) % n]
        self.pseudo_inputs.copy_(x[rows].to(self.pseudo_inputs))

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, n_features={self.n_features}, "
                f"n_components={self.n_components}")


def mixture_marginals(z, log_weights, means, logvars) -> torch.Tensor:
    """log sum_k w_k N(z_j | means_kj, exp(logvars_kj)) for each dimension j, like z
    (..., L): the marginals of a mixture of diagonal Gaussians (log_weights (K, 1))."""
    per_component = gaussian_log_prob(z.unsqueeze(-2), means, logvars)  # (..., K, L)
    return torch.logsumexp(log_weights + per_component, dim=-2)


def moment_matched(weights, means, logvars) -> tuple[torch.Tensor, torch.Tensor]:
    """mean, logvar (L,) of the diagonal Gaussian with the first two moments of the
    mixture sum_k w_k N(means_k, diag exp(logvars_k)): m = sum_k w_k mu_k,
    v = sum_k w_k (exp(s_k) + mu_k^2) - m^2 (computed about m, so without cancellation)."""
    w = weights.unsqueeze(-1)  # (K, 1)
    mean = (w * means).sum(0)
    var = (w * (torch.exp(logvars) + (means - mean).square())).sum(0)
    return mean, torch.log(var)


PRIOR_NAMES = ("standard", "mog", "vamp")


def build_prior(config) -> Prior:
    """The prior named by an :class:`~elbokit.nn.config.ArchitectureConfig`."""
    if config.prior == "standard":
        return StandardNormal(config.latent_dim)
    if config.prior == "mog":
        return MixtureOfGaussians(config.latent_dim, config.prior_components)
    if config.prior == "vamp":
        return VampPrior(config.latent_dim, config.n_features, config.prior_components)
    from ..exceptions import ParameterError

    raise ParameterError("prior='custom' is a Prior object of the caller's: pass it as "
                         "VAE(prior=...) or VAE.load(directory, prior=...)")


__all__ = ["Prior", "StandardNormal", "MixtureOfGaussians", "VampPrior", "build_prior"]
