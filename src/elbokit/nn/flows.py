"""Inverse autoregressive flow (Kingma et al. 2016) on top of the Gaussian encoder.

z_0 ~ N(mean(x), diag exp(logvar(x))), then T steps

    z_t = m_t(z_{t-1}, h) + exp(s_t(z_{t-1}, h)) * z_{t-1}

where (m_t, s_t) come from a MADE network (Germain et al. 2015): masked linear layers
such that output i depends on z_{<i} only (in the step's order), plus a context
vector h(x) from the encoder. The Jacobian dz_t/dz_{t-1} is then triangular with
diagonal exp(s_t), so

    log q(z_T | x) = log N(z_0 | mean, diag exp(logvar)) - sum_t sum_i s_{t,i}.

Successive steps alternate the variable order (natural, reversed, ...) inside the
masks, so no permutation of z is needed and a flow whose output layers are zero is
exactly the identity. The output layers start at zero: a fresh IAF model is the
diagonal Gaussian model plus a flow that training moves away from the identity.
``s`` is soft-clamped to (-S_MAX, S_MAX) by ``S_MAX * tanh(s / S_MAX)`` (the identity
near 0), so one step can neither explode nor collapse a coordinate.
"""

from __future__ import annotations

import torch
from torch import nn

S_MAX = 5.0


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in)."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.to(torch.get_default_dtype()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def made_degrees(latent_dim: int, hidden: tuple[int, ...], reverse: bool):
    """MADE degrees: inputs 1..L (in the step's order), hidden units cycling 0..L-1.

    A hidden unit of degree k sees inputs of degree <= k (degree 0: the context only);
    output i (degree i) sees hidden units of degree < i, so it depends on z_{<i}."""
    inputs = torch.arange(1, latent_dim + 1)
    if reverse:
        inputs = inputs.flip(0)
    layers = [torch.arange(h) % latent_dim for h in hidden]
    return inputs, layers


class MADE(nn.Module):
    """(z (..., L), context (B, C)) -> (m, s), each (..., L), autoregressive in z."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], context_dim: int,
                 reverse: bool):
        super().__init__()
        inputs, layers = made_degrees(latent_dim, hidden, reverse)
        degrees = [inputs, *layers]
        self.hidden = nn.ModuleList(
            MaskedLinear(len(d_in), len(d_out), (d_out[:, None] >= d_in[None, :]))
            for d_in, d_out in zip(degrees[:-1], degrees[1:]))
        # the first hidden degrees are >= 0 and inputs >= 1: ">=" masks keep degree-0
        # units free of z; they see the context, added to the first hidden layer
        self.context = nn.Linear(context_dim, hidden[0]) if context_dim else None
        out_mask = inputs[:, None] > degrees[-1][None, :]  # (L, H_last)
        self.m = MaskedLinear(len(degrees[-1]), latent_dim, out_mask)
        self.s = MaskedLinear(len(degrees[-1]), latent_dim, out_mask)
        for layer in (self.m, self.s):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.activation = nn.ELU()

    def forward(self, z: torch.Tensor, context: torch.Tensor | None):
        h = self.hidden[0](z)  # (..., H)
        if self.context is not None:
            h = h + self.context(context)  # (B, H) broadcast over the sample axis
        h = self.activation(h)
        for layer in self.hidden[1:]:
            h = self.activation(layer(h))
        return self.m(h), self.s(h)


class IAF(nn.Module):
    """``steps`` IAF steps; ``forward(z0, context) -> (z_T, log_det)`` where log_det
    (..., L) is each coordinate's share of log |det dz_T/dz_0| (the sum over steps of
    s_{t,i}); its sum over the last axis is the log-determinant."""

    def __init__(self, latent_dim: int, steps: int, hidden: tuple[int, ...], context_dim: int):
        super().__init__()
        self.steps = nn.ModuleList(MADE(latent_dim, hidden, context_dim, reverse=bool(t % 2))
                                   for t in range(steps))

    def forward(self, z: torch.Tensor, context: torch.Tensor | None):
        log_det = torch.zeros_like(z)
        for made in self.steps:
            m, s = made(z, context)
            s = S_MAX * torch.tanh(s / S_MAX)
            z = m + torch.exp(s) * z
            log_det = log_det + s
        return z, log_det
