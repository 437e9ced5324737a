"""The VAE as a torch module, built from an :class:`ArchitectureConfig` alone.

Encoder q(z|x) = N(mean(x), diag exp(logvar(x))), prior p(z) = N(0, I), decoder
p(x|z) given by the likelihood. No training code here (see ``train.py``) and no
estimator of the ELBO (see ``objectives.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ArchitectureConfig
from .likelihoods import build_likelihood
from .networks import build_decoder, build_encoder


class VAEModel(nn.Module):
    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        self.config = config
        self.likelihood = build_likelihood(config.likelihood, min_variance=config.min_variance,
                                           sigma=config.sigma)
        self.encoder = build_encoder(config)
        self.decoder = build_decoder(config, self.likelihood.n_heads)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, d) -> mean, logvar of q(z|x), (B, L) each."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z (..., L) -> the likelihood's per-pixel parameters, (..., d) each."""
        return self.decoder(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) for x (B, d) and z (S, B, L) or (B, L): shape (S, B) or (B,)."""
        return self.likelihood.log_prob(x, self.decode(z))

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z], (..., d)."""
        return self.likelihood.mean(self.decode(z))
