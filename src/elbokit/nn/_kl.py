"""The VAE's prior members of the protocol (:class:`PriorMembers`: ``prior_log_prob``,
``kl_to_prior``, ``prior_moments``), and KL(q(z|x) || p(z)) against the model's own
prior p(z), per row and per latent dimension.

Per row: closed form where it exists (a Gaussian q and a prior with a closed-form
``kl_dims``: N(0, I), a one-component mixture), else Monte Carlo over draws z ~ q(z|x):
KL = E_q[log q(z|x) - log p(z)], with the entropy of a Gaussian q in closed form
(-E_q log q = 1/2 sum_j (log 2 pi e + logvar_j)) and only E_q log p(z) sampled.

Per dimension j: KL(q(z_j|x) || p(z_j)) against the prior's marginal p(z_j)
(:meth:`~elbokit.nn.priors.Prior.marginal_log_prob_dims`), closed form for N(0, I),
Monte Carlo for the mixtures (whose marginal is a 1-D Gaussian mixture). q(z_j|x) is
Gaussian: exact for the Gaussian posterior, moment-matched for the IAF.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_int
from ..exceptions import ParameterError
from ._math import LOG_2PI, reparameterize

KL_BATCH_NUMBERS = 1 << 22  # rows per batch: draws * rows * components * L below this


class PriorMembers:
    """What the protocol asks of the VAE's prior p(z) (``model_.prior``)."""

    @torch.no_grad()
    def prior_log_prob(self, Z) -> np.ndarray:
        """log p(z) (nats) of each row of Z (n, L) under the model's own prior (N(0, I),
        the mixture, the VampPrior or the caller's), shape (n,)."""
        z = self._latent(Z)
        return self._batched(self.model_.prior.log_prob, z).cpu().numpy().astype(np.float64)

    def kl_to_prior(self, X, *, per_dimension: bool = False, n_samples: int = 256,
                    random_state=0, y=None) -> np.ndarray:
        """KL(q(z|x) || p(z)) (nats) against the model's own prior, per row (n,); with
        ``per_dimension=True`` KL(q(z_j|x) || p(z_j)) against the prior's marginal on
        each dimension j, (n, L). Closed form for a Gaussian q and the N(0, I) prior,
        else Monte Carlo over ``n_samples`` seeded draws from q (per dimension, an IAF's
        q(z_j|x) is moment-matched)."""
        x = self._input(X, y)
        k = check_int(n_samples, "n_samples", minimum=1)
        generator, prior = self._generator(random_state), self.model_.prior
        batch = rows_per_batch(prior, k)
        if not per_dimension:
            parts = [kl_rows(self.model_, x[i:i + batch], k, generator)
                     for i in range(0, x.shape[0], batch)]
            return torch.cat(parts).cpu().numpy().astype(np.float64)
        mean, var = self.posterior_moments(X, y=y)  # (n, L) each
        mean = self._tensor(mean)
        logvar = torch.log(self._tensor(var).clamp_min(torch.finfo(torch.float32).tiny))
        parts = [kl_dims(prior, mean[i:i + batch], logvar[i:i + batch], k, generator)
                 for i in range(0, mean.shape[0], batch)]
        return torch.cat(parts).cpu().numpy().astype(np.float64)


    def prior_moments(self, n_draws: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std of p(z), (L,) each: 0 and 1 for N(0, I), else
        estimated from ``n_draws`` seeded prior draws (traversals sweep these)."""
        self._check_fitted()
        n_draws = check_int(n_draws, "n_draws", minimum=2)
        latent = self.latent_dim_
        if self.model_.config.prior == "standard" and not self.model_.config.top_latent_dim:
            return np.zeros(latent), np.ones(latent)
        with torch.no_grad():
            z = self.model_.prior.sample(n_draws, self._generator(0)).double()
        return z.mean(0).cpu().numpy(), z.std(0).cpu().numpy()



def rows_per_batch(prior, n_samples: int) -> int:
    """Rows whose draws (n_samples, rows, K, L) against a mixture's K components stay
    under KL_BATCH_NUMBERS numbers."""
    components = getattr(prior, "n_components", 1)
    return max(1, KL_BATCH_NUMBERS // (n_samples * components * prior.latent_dim))


def gaussian_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """H(N(mean, diag exp(logvar))) summed over the last axis: 1/2 sum (log 2 pi e + logvar)."""
    return 0.5 * (LOG_2PI + 1.0 + logvar).sum(-1)


@torch.no_grad()
def kl_rows(network, x: torch.Tensor, n_samples: int,
            generator: torch.Generator | None) -> torch.Tensor:
    """KL(q(z|x) || p(z)) for each row of x (B,) (closed form or Monte Carlo, see the
    module docstring)."""
    prior = network.prior
    encoding = network.encode_posterior(x)
    mean, logvar, _ = encoding
    if network.flow is None:
        closed = prior.kl_dims(mean, logvar)
        if closed is not None:
            return closed.sum(-1)
    post = network.posterior(x, n_samples, generator, encoding=encoding)  # z (S, B, L)
    log_p = prior.log_prob(post.z).mean(0)  # (B,)
    if post.gaussian:
        return -gaussian_entropy(logvar) - log_p
    return post.log_q().mean(0) - log_p


@torch.no_grad()
def kl_dims(prior, mean: torch.Tensor, logvar: torch.Tensor, n_samples: int,
            generator: torch.Generator | None) -> torch.Tensor:
    """KL(N(mean_j, exp(logvar_j)) || p(z_j)) per dimension (B, L), p(z_j) the prior's
    marginal: closed form where ``prior.kl_dims`` has one, else Monte Carlo over
    n_samples draws from each q(z_j|x)."""
    closed = prior.kl_dims(mean, logvar)
    if closed is not None:
        return closed
    z = reparameterize(mean, logvar, n_samples, generator)  # (S, B, L)
    log_p = prior.marginal_log_prob_dims(z)
    if log_p is None:
        raise ParameterError(f"the prior {type(prior).__name__} gives no per-dimension "
                             "marginals: implement marginal_log_prob_dims(z), or use "
                             "per_dimension=False")
    entropy = 0.5 * (LOG_2PI + 1.0 + logvar)  # (B, L): H(q(z_j|x)), closed form
    return -entropy - log_p.mean(0)


__all__ = ["PriorMembers", "kl_rows", "kl_dims", "gaussian_entropy", "rows_per_batch"]
