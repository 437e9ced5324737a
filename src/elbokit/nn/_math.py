"""Torch numerics of the VAE: log-densities, the closed-form KL and the
reparameterised sample, each in the form that stays finite for extreme inputs.

* Gaussians are parameterised by the log-variance and evaluated as
  ``-1/2 (log 2 pi + logvar + (x - mean)^2 exp(-logvar))``: no division, no log of
  a variance that underflowed. Finite values and gradients for ``|logvar| <= 30``.
* Bernoulli log-probabilities come from logits through the softplus form
  ``x * l - softplus(l)`` (PyTorch's binary cross-entropy with logits), so pixels
  at exactly 0 or 1 and saturated logits give finite values and gradients.
* The discretized logistic's bin masses are differences of sigmoids, taken in the log
  domain as log sigmoid(a) + log sigmoid(-b) + log(1 - e^-(a - b)), with the bin's width
  a - b computed directly: no difference of two probabilities near 1 (or 0) that cancels.
* Count log-probabilities (Poisson, negative binomial, zero-inflated NB) take the log of
  the mean, log mu, and of the NB's inverse dispersion, log theta: the ratios
  theta / (theta + mu) are differences of log-sum-exps, and lgamma(x + theta) - lgamma(theta)
  is taken in float64 (in float32 it is a difference of two numbers near theta log theta,
  which loses every digit for theta above ~1e5, where the NB is nearly a Poisson).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)
LOG_SCALE_MAX = 20.0  # the discretized logistic's log-scale is read as at most this


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x | mean, exp(logvar)) elementwise (no sum)."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).square() * torch.exp(-logvar))


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z | 0, I) summed over the last axis."""
    return -0.5 * (LOG_2PI + z.square()).sum(-1)


def standard_normal_log_prob_dims(z: torch.Tensor) -> torch.Tensor:
    """log N(z_i | 0, 1) elementwise (no sum)."""
    return -0.5 * (LOG_2PI + z.square())


def diag_gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor,
                           logvar: torch.Tensor) -> torch.Tensor:
    """log N(z | mean, diag exp(logvar)) summed over the last axis."""
    return gaussian_log_prob(z, mean, logvar).sum(-1)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x | sigmoid(logits)) elementwise, = x l - softplus(l)."""
    x = x.expand_as(logits)  # x (B, d) against logits (S, B, d): a view, no copy
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


class _BernoulliLogProbSum(torch.autograd.Function):
    """sum_d [x_d l_d - softplus(l_d)] over the last axis, with the gradient
    x - sigmoid(l) written out: three kernels forward and three backward where the
    composite of binary cross-entropy with logits takes about twice as many (the
    likelihood is ~10% of an MLP VAE's training step on the CPU)."""

    @staticmethod
    def forward(ctx, x, logits):
        ctx.save_for_backward(x, logits)
        return (x * logits).sum(-1) - F.softplus(logits).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        x, logits = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        grad_logits = grad * (x - torch.sigmoid(logits)) if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad * logits
            while grad_x.dim() > x.dim():  # x (B, d) was broadcast against (S, B, d)
                grad_x = grad_x.sum(0)
        return grad_x, grad_logits


def bernoulli_log_prob_sum(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log prod_d Bernoulli(x_d | sigmoid(l_d)) = sum_d [x_d l_d - softplus(l_d)], summed
    over the last axis; x (B, d) broadcasts against logits (..., B, d). Exact for x in
    [0, 1] and finite for saturated logits (softplus is linear above 20)."""
    if not (x.requires_grad or logits.requires_grad):
        return (x * logits).sum(-1) - F.softplus(logits).sum(-1)
    return _BernoulliLogProbSum.apply(x, logits)


def _logistic_terms(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                    levels: int):
    """The pieces of the discretized logistic: a = (x - mean + h) / s, b = (x - mean - h) / s,
    the bin's width w = a - b = 2 h / s, 1 / s, and the masks of the terms each level has
    (all three inside; level 0 only log sigmoid(a), level K - 1 only log sigmoid(-b))."""
    half = 0.5 / (levels - 1)
    # above e^20 the bin's width in units of s, 2 h / s, would underflow to 0
    inv_scale = torch.exp(-log_scale.clamp(max=LOG_SCALE_MAX))
    centred = x - mean
    upper = (centred + half) * inv_scale  # (c_k + h - mean) / s
    lower = (centred - half) * inv_scale
    width = (2.0 * half) * inv_scale
    has_upper = (x < 1.0 - half).to(mean.dtype)  # not the last level: F(c + h) < 1
    has_lower = (x >= half).to(mean.dtype)  # not the first level: F(c - h) > 0
    return upper, lower, width, inv_scale, has_upper, has_lower, has_upper * has_lower


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  levels: int = 256) -> torch.Tensor:
    """log P(x) elementwise (no sum) of the logistic(mean, s = exp(log_scale))
    discretized to the ``levels`` = K values k / (K - 1) of [0, 1] (8-bit data: K = 256):
    P(k) = F(c_k + h) - F(c_k - h), h = 1 / (2 (K - 1)) half a bin, F the logistic CDF,
    with the first bin open to -inf and the last to +inf (Salimans et al. 2017,
    PixelCNN++, eq. 2), so the K masses sum to 1 for any mean and scale. x (B, d)
    broadcasts against mean and log_scale (..., B, d); x is read as the level nearest
    it. As sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b - a)), log P =
    [not last] log sigmoid(a) + [not first] log sigmoid(-b) + [inside] log(1 - e^-w):
    finite for any finite a, b, also where both sigmoids round to 1 (or to 0)."""
    upper, lower, width, _, has_upper, has_lower, inside = _logistic_terms(
        x, mean, log_scale, levels)
    return (has_upper * F.logsigmoid(upper) + has_lower * F.logsigmoid(-lower)
            + inside * torch.log(-torch.expm1(-width)))


class _LogisticLogProbSum(torch.autograd.Function):
    """:func:`discretized_logistic_log_prob` summed over the last axis, with its gradient
    written out (d/da log sigmoid(a) = sigmoid(-a), d/dw log(1 - e^-w) = 1 / expm1(w)):
    a fifth of the kernels autograd's composite takes (the likelihood was ~9x the
    Bernoulli's time in a training step)."""

    @staticmethod
    def forward(ctx, x, mean, log_scale, levels):
        upper, lower, width, inv_scale, has_upper, has_lower, inside = _logistic_terms(
            x, mean, log_scale, levels)
        not_in_bin = torch.expm1(-width)  # e^-w - 1, in (-1, 0)
        ctx.save_for_backward(upper, lower, width, not_in_bin, inv_scale, has_upper,
                              has_lower, inside)
        return (has_upper * F.logsigmoid(upper) + has_lower * F.logsigmoid(-lower)
                + inside * torch.log(-not_in_bin)).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        upper, lower, width, not_in_bin, inv_scale, has_upper, has_lower, inside = \
            ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        d_upper = has_upper * torch.sigmoid(-upper)  # df/da
        d_lower = has_lower * torch.sigmoid(lower)  # -df/db
        # a, b = (x - mean +- h) / s, w = 2 h / s: da/dmean = db/dmean = -1/s and
        # d(a, b, w)/dlog_s = -(a, b, w)
        d_mean = -inv_scale * (d_upper - d_lower) * grad
        # w / expm1(w) = w e^-w / (1 - e^-w), from the forward's expm1(-w)
        d_log_scale = -(upper * d_upper - lower * d_lower
                        + inside * width * (1.0 + not_in_bin) / -not_in_bin) * grad
        return None, d_mean, d_log_scale, None


def discretized_logistic_log_prob_sum(x: torch.Tensor, mean: torch.Tensor,
                                      log_scale: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """:func:`discretized_logistic_log_prob` summed over the last axis; x (B, d) the data
    (no gradient), mean and log_scale (..., B, d) of one shape."""
    if x.requires_grad or mean.shape != log_scale.shape:
        return discretized_logistic_log_prob(x, mean, log_scale, levels).sum(-1)
    return _LogisticLogProbSum.apply(x, mean, log_scale, levels)


def poisson_log_prob(x: torch.Tensor, log_rate: torch.Tensor) -> torch.Tensor:
    """log Poisson(x | mu = exp(log_rate)) = x log mu - mu - lgamma(x + 1), elementwise;
    x (B, d) broadcasts against log_rate (..., B, d)."""
    return x * log_rate - torch.exp(log_rate) - torch.lgamma(x + 1.0)


def _lgamma_ratio(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """lgamma(x + theta) - lgamma(theta) - lgamma(x + 1), in float64, back in theta's type;
    of x (B, d) and theta (d,) alone: no sample axis, however many z there are."""
    x64, theta64 = x.double(), theta.double()
    out = torch.lgamma(x64 + theta64) - torch.lgamma(theta64) - torch.lgamma(x64 + 1.0)
    return out.to(theta.dtype)


def _nb_terms(log_mean: torch.Tensor, log_theta: torch.Tensor):
    """(log NB(0) = theta log(theta / (theta + mu)), log(mu / (theta + mu))), like log_mean."""
    # theta log(theta / (theta + mu)) = -theta log(1 + mu / theta): -> -mu for theta >> mu
    zero = -torch.exp(log_theta) * F.softplus(log_mean - log_theta)
    return zero, log_mean - torch.logaddexp(log_theta, log_mean)


def nb_log_prob(x: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """log NB(x | mean mu, inverse dispersion theta) elementwise, the gamma-Poisson of
    variance mu + mu^2 / theta (scVI's parameterisation; scipy's nbinom(n = theta,
    p = theta / (theta + mu))): lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
    + theta log(theta / (theta + mu)) + x log(mu / (theta + mu)). x (B, d) and log_theta
    (d,) broadcast against log_mean (..., B, d); tends to the Poisson of mean mu as
    theta -> inf."""
    zero, log_share = _nb_terms(log_mean, log_theta)
    return _lgamma_ratio(x, torch.exp(log_theta)) + zero + x * log_share


def zinb_log_prob(x: torch.Tensor, log_mean: torch.Tensor, log_theta: torch.Tensor,
                  dropout_logits: torch.Tensor) -> torch.Tensor:
    """log ZINB(x) elementwise: with probability pi = sigmoid(dropout_logits) a zero,
    else NB(mu, theta): log(pi + (1 - pi) NB(0)) at x = 0, log(1 - pi) + log NB(x)
    above; log pi = -softplus(-l), log(1 - pi) = -softplus(l)."""
    zero, log_share = _nb_terms(log_mean, log_theta)
    log_keep = -F.softplus(dropout_logits)  # log(1 - pi)
    nonzero = log_keep + _lgamma_ratio(x, torch.exp(log_theta)) + zero + x * log_share
    at_zero = torch.logaddexp(log_keep + dropout_logits, log_keep + zero)  # log pi = that + l
    return torch.where(x > 0, nonzero, at_zero)


def clipped_logistic_mean(mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """E[clip(X, 0, 1)] for X ~ logistic(mean, scale), elementwise: the integral of
    1 - F over [0, 1], s (softplus(mean / s) - softplus((mean - 1) / s)). The mean of
    the discretized logistic differs from it by less than half a level."""
    return scale * (F.softplus(mean / scale) - F.softplus((mean - 1.0) / scale))


def kl_diag_gaussian_standard(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mean, diag exp(logvar)) || N(0, I) ) summed over the last axis:
    1/2 sum(exp(logvar) + mean^2 - 1 - logvar) (Kingma & Welling 2014, appendix B)."""
    return kl_diag_gaussian_standard_dims(mean, logvar).sum(-1)


def kl_diag_gaussian_standard_dims(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The same KL per dimension (no sum): 1/2 (exp(logvar) + mean^2 - 1 - logvar)."""
    return 0.5 * (torch.exp(logvar) + mean.square() - 1.0 - logvar)


def kl_diag_gaussians_dims(mean: torch.Tensor, logvar: torch.Tensor, prior_mean: torch.Tensor,
                           prior_logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mean, exp(logvar)) || N(prior_mean, exp(prior_logvar)) ) per dimension:
    1/2 (exp(logvar - p) + (mean - m)^2 exp(-p) - 1 - logvar + p), for p, m the prior's
    log-variance and mean (equal to :func:`kl_diag_gaussian_standard_dims`, to the
    last bit, for m = 0, p = 0)."""
    return 0.5 * (torch.exp(logvar - prior_logvar)
                  + (mean - prior_mean).square() * torch.exp(-prior_logvar)
                  - 1.0 - logvar + prior_logvar)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, n_samples: int | None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I): shape (n_samples, B, L), or
    (B, L) for ``n_samples=None`` (one sample, the same draw as n_samples=1).

    The lecture's reparameterisation: the randomness lives in eps, so gradients
    flow to the encoder through mean and logvar."""
    shape = tuple(mean.shape) if n_samples is None else (n_samples,) + tuple(mean.shape)
    eps = torch.randn(shape, generator=generator,
                      device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """The x with softplus(x) = log(1 + e^x) = y, for y > 0: y + log(1 - e^-y), finite
    where the textbook log(e^y - 1) overflows (y above ~88 in float32)."""
    return y + torch.log(-torch.expm1(-y))


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(a))) along ``dim`` without overflow."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def logsumexp_accumulate(total: torch.Tensor | None, log_w: torch.Tensor,
                         dim: int = 0) -> torch.Tensor:
    """log(exp(total) + sum(exp(log_w)) along ``dim``): a running log-sum-exp over chunks
    (``total=None`` starts it), so a sum over many samples never holds them all."""
    part = torch.logsumexp(log_w, dim=dim)
    return part if total is None else torch.logaddexp(total, part)
