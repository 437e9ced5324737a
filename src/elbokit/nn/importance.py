"""Importance-sampled log-likelihood of a VAE (the IWAE bound with k samples).

log p(x) ~= log 1/k sum_i p(x, z_i) / q(z_i|x),  z_i ~ q(z|x)   (Burda et al. 2016)

(log q includes the flow's log-determinant for ``posterior="iaf"``), computed with a
running log-sum-exp over chunks of samples and batches of data, so memory stays
bounded (about ``max_elements`` decoder outputs at a time) whatever k is. Its
expectation is a lower bound on log p(x) that rises to it as k grows, and is
never below the ELBO's. Rows with NaN entries are scored on their observed ones, log
p(x_obs), with the proposal of :func:`elbokit.nn._impute.proposal_encoding` (a model
fitted on complete rows: the encoder at the missing entries filled by their conditional
mean, not at 0).
"""

from __future__ import annotations

import math

import torch

from ._math import logsumexp_accumulate
from ._impute import proposal_encoding
from .objectives import ELBOEstimator, draw_posterior


@torch.no_grad()
def importance_log_likelihood(model, x: torch.Tensor, n_importance: int, *,
                              batch_size: int | None = None, max_elements: int | None = None,
                              generator: torch.Generator | None = None,
                              progress=None) -> torch.Tensor:
    """Per-sample IS estimates of log p(x) for x (n, d), shape (n,), float64.

    ``max_elements`` bounds batch x samples x features held at once (default: 2^20
    on a CPU, 2^25 on a GPU); ``progress``
    is an optional callable given the number of data points finished."""
    n, d = x.shape
    if max_elements is None:
        # on a CPU, chunks whose decoder output stays in cache (4 MB) run twice as fast
        # as large ones (benchmarks/evaluate_speed.py); a GPU wants large chunks
        max_elements = (1 << 25) if x.device.type == "cuda" else (1 << 20)
    if batch_size is None:
        batch_size = max(1, min(n, max_elements // (d * min(n_importance, 256))))
    chunk = max(1, min(n_importance, max_elements // (d * batch_size)))
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        encoding = proposal_encoding(model, xb, generator, chunk)  # mean, logvar; context
        total = None  # running log sum_i w_i, (B,)
        for done in range(0, n_importance, chunk):
            s = min(chunk, n_importance - done)
            post = draw_posterior(model, xb, s, generator, encoding)  # z: (s, B, L)
            log_w = ELBOEstimator.posterior_log_weights(model, xb, post).double()  # (s, B)
            total = logsumexp_accumulate(total, log_w)
        out[start:start + xb.shape[0]] = total - math.log(n_importance)
        if progress is not None:
            progress(xb.shape[0])
    return out
