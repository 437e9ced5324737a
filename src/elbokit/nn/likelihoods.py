"""Decoder likelihoods p(x|z): each turns the decoder's per-pixel outputs into a
log-probability (summed over pixels) and a mean.

The decoder emits ``n_heads`` tensors of shape (..., d): the Bernoulli's logits;
the learned-variance Gaussian's mean mu_d(z) and variance pre-activation s_d(z) (the
lecture's slide); the fixed Gaussian's mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._math import bernoulli_log_prob_sum, gaussian_log_prob


class Bernoulli:
    """p(x|z) = prod_d Bernoulli(x_d | sigmoid(l_d(z))), for x in [0, 1]."""

    n_heads = 1

    def log_prob(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (logits,) = params  # (..., B, d)
        return bernoulli_log_prob_sum(x, logits)  # (..., B)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.sigmoid(params[0])


class Gaussian:
    """p(x|z) = prod_d N(x_d | mu_d(z), v_d(z)) with v_d = min_variance + softplus(s_d(z)).

    The floor ``min_variance`` keeps the log-density bounded by
    ``-1/2 log(2 pi min_variance)`` per pixel: without it, a constant pixel (the
    border of the digits) drives its variance to zero and the likelihood to infinity.
    """

    n_heads = 2

    def __init__(self, min_variance: float):
        self.min_variance = min_variance

    def variance(self, raw: torch.Tensor) -> torch.Tensor:
        return self.min_variance + F.softplus(raw)

    def log_prob(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mean, raw = params  # (..., B, d) each
        return gaussian_log_prob(x, mean, torch.log(self.variance(raw))).sum(-1)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return params[0]


class FixedGaussian:
    """p(x|z) = prod_d N(x_d | mu_d(z), sigma^2) with sigma given."""

    n_heads = 1

    def __init__(self, sigma: float):
        self.sigma = sigma
        self.logvar = 2.0 * math.log(sigma)

    def log_prob(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (mean,) = params
        logvar = torch.full_like(mean, self.logvar)
        return gaussian_log_prob(x, mean, logvar).sum(-1)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return params[0]


def build_likelihood(name: str, *, min_variance: float, sigma: float):
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(min_variance)
    return FixedGaussian(sigma)
