"""Missing values in a VAE (:class:`Imputation`, a part of :class:`~elbokit.nn.VAE`):
the conditional mean of the missing entries and draws from p(x_mis | x_obs), by
importance sampling with the encoder as proposal (Mattei & Frellsen 2019, MIWAE,
section 4).

With z_s ~ q(z|x_obs), s = 1..S, and the weights w_s = p(x_obs|z_s) p(z_s) / q(z_s|x_obs)
(the observed entries' likelihood only; their mean estimates p(x_obs)):

* E[x_mis | x_obs] ~ sum_s w_s E[x_mis | z_s] / sum_s w_s (self-normalized importance
  sampling; consistent as S grows, for any proposal that covers the posterior);
* a draw from p(x_mis | x_obs): z picked among the z_s with probabilities w_s / sum w
  (sampling-importance-resampling), then x_mis ~ p(x | z).

A model fitted on complete rows imputes too: its encoder sees the missing entries at 0
(the training mean, when it standardizes) and the weights correct the proposal; one
fitted on rows with NaN (``architecture_.missing``) has an encoder that sees the mask.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_data, check_int, check_memory
from ._math import logsumexp_accumulate
from .objectives import draw_posterior, encode_posterior, prior_log_prob

IMPUTE_SAMPLES = 1000  # S, the proposals per row of impute
MAX_ELEMENTS = 1 << 21  # samples x rows x features held at once (decoder outputs)


class Imputation:
    """``impute``: the VAE's missing values, filled or drawn."""

    def impute(self, X, n_draws: int | None = None, *, n_samples: int = IMPUTE_SAMPLES,
               random_state=0, y=None):
        """X (n, d) with each missing entry (NaN) replaced by its conditional mean
        E[x_mis | x_obs] under the model, by self-normalized importance sampling over
        ``n_samples`` = S draws of z ~ q(z|x_obs) per row (see :mod:`elbokit.nn._impute`);
        the observed entries are returned as given (float64).

        ``n_draws=m``: m draws from p(x_mis | x_obs) instead (multiple imputation, by
        sampling-importance-resampling), shape (m, n, d): ``draws[k]`` is one completed
        table. A DataFrame comes back as a DataFrame (its index and columns) when
        ``set_output(transform="pandas")`` says so, as ``transform``'s output does.
        ``y``: a conditional model's labels or covariates of X."""
        self._check_fitted()
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        n_draws = check_int(n_draws, "n_draws", minimum=1, allow_none=True)
        checked = self._check_X(X, "X", reset=False)  # float32, NaN where missing
        values = check_data(X, "X", allow_nan=True)  # the caller's values, float64
        rows = np.flatnonzero(np.isnan(checked).any(axis=1))
        copies = 1 if n_draws is None else n_draws
        check_memory(8.0 * copies * values.size, f"impute of {copies} x {values.shape}",
                     "impute fewer rows at a time, or draw fewer")
        out = np.array(values) if n_draws is None else np.repeat(values[None], n_draws, 0)
        if rows.size:
            x = self._tensor(self._with_condition(checked[rows], self._rows_of(y, rows)))
            filled = importance_impute(self.model_, x, n_samples, n_draws,
                                       self._generator(random_state)).cpu().numpy()
            missing = np.isnan(values[rows])
            if n_draws is None:
                out[rows] = np.where(missing, filled, values[rows])
            else:
                out[:, rows] = np.where(missing, filled, values[rows])
        return self._as_frame(out, X) if n_draws is None else out

    @staticmethod
    def _rows_of(y, rows):
        return None if y is None else np.asarray(y)[rows]

    def _as_frame(self, out: np.ndarray, X):
        """``out`` as a DataFrame like X where ``set_output`` asks for pandas."""
        from sklearn.utils._set_output import _get_output_config

        if not hasattr(X, "columns") or \
                _get_output_config("transform", self)["dense"] != "pandas":
            return out
        import pandas as pd

        return pd.DataFrame(out, index=X.index, columns=X.columns)


@torch.no_grad()
def importance_impute(model, x: torch.Tensor, n_samples: int, n_draws: int | None = None,
                      generator: torch.Generator | None = None,
                      max_elements: int = MAX_ELEMENTS) -> torch.Tensor:
    """For the rows x (n, d) (NaN: missing; a conditional model's y in the last
    columns): the self-normalized importance-sampling estimate of E[x|x_obs], (n, d)
    float64 in the data's units, from ``n_samples`` draws of q(z|x) per row; or with
    ``n_draws=m``, m draws from p(x|x_obs) by resampling those z, (m, n, d)."""
    n, d = x.shape
    batch = max(1, min(n, max_elements // (d * min(n_samples, 256))))
    chunk = max(1, min(n_samples, max_elements // (d * batch)))
    parts = []
    for start in range(0, n, batch):
        xb = x[start:start + batch]
        y = model.split_condition(xb)[1]
        encoding = encode_posterior(model, xb)  # mean, logvar (B, L); flow context
        log_total, weighted, kept = None, 0.0, []
        for done in range(0, n_samples, chunk):
            post = draw_posterior(model, xb, min(chunk, n_samples - done), generator, encoding)
            params = model.decode(post.z, y)
            log_w = (model.log_likelihood(xb, post.z, params) + prior_log_prob(model, post.z)
                     - post.log_q()).double()  # (s, B): observed entries only
            if n_draws is not None:
                kept.append((post.z, log_w))
                continue
            total = logsumexp_accumulate(log_total, log_w)  # (B,)
            share = torch.exp(log_w - total).unsqueeze(-1)  # (s, B, 1)
            means = model.row_mean(xb, params).double()  # E[x|z_s], (s, B, d)
            weighted = (share * means).sum(0) + (
                0.0 if log_total is None else weighted * torch.exp(log_total - total)[:, None])
            log_total = total
        parts.append(weighted if n_draws is None else
                     _resampled(model, xb, y, kept, n_draws, generator))
    return torch.cat(parts, dim=0 if n_draws is None else 1)


def _resampled(model, xb, y, kept, n_draws: int, generator) -> torch.Tensor:
    """m draws x ~ p(x|z), z resampled by the weights from the kept (z, log w) chunks:
    (m, B, d) float64."""
    z = torch.cat([z for z, _ in kept])  # (S, B, L)
    log_w = torch.cat([w for _, w in kept])  # (S, B)
    picks = torch.multinomial(torch.softmax(log_w, dim=0).T, n_draws, replacement=True,
                              generator=generator)  # (B, m)
    chosen = z[picks.T, torch.arange(z.shape[1], device=z.device)]  # (m, B, L)
    return model.sample_rows(xb, model.decode(chosen, y), generator).double()
