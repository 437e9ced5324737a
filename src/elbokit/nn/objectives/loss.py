"""What the training loop minimises (:func:`training_loss`): -ELBO, or with ``beta``
/ ``kl_warmup`` / ``free_bits`` a reweighted KL term (objectives "a" and "b", whose
estimators have a separate KL term); the ELBO itself is returned alongside,
unweighted."""

from __future__ import annotations

import torch

from .base import draw_posterior, sample_mean


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
    log_lik = sample_mean(model.log_likelihood(x, post.z), post.z)  # (B,)
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
