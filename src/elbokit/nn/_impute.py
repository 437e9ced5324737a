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

``complete`` is the same for images with a region hidden (the bottom half, a square, any
mask): m answers drawn from p(x_mis | x_obs), each scored by its own log p(x), beside
the truth's log p(x) and log p(x_mis | x_obs) = log p(x) - log p(x_obs) (:class:`Completions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_data, check_int, check_memory
from ..exceptions import DataError, ParameterError
from ._math import logsumexp_accumulate
from .objectives import draw_posterior, encode_posterior, prior_log_prob

IMPUTE_SAMPLES = 1000  # S, the proposals per row of impute (and of complete's scores)
REGIONS = ("bottom", "top", "left", "right", "square")  # complete's named regions
COMPLETE_DRAWS = 8  # m, the answers per image of complete
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

    def complete(self, X, region="bottom", n_draws: int = COMPLETE_DRAWS, *,
                 image_shape=None, n_samples: int = IMPUTE_SAMPLES, random_state=0,
                 y=None) -> "Completions":
        """Complete images with a region hidden: ``n_draws`` = m answers per image drawn
        from p(x_mis | x_obs) (:meth:`impute` with ``n_draws``), each scored by log p(x)
        (importance sampling, ``n_samples`` draws), beside the truth's log p(x) and its
        log p(x_mis | x_obs) = log p(x) - log p(x_obs) when X holds the hidden pixels.

        ``region``: ``"bottom"``, ``"top"``, ``"left"``, ``"right"`` (that half of each
        image), ``"square"`` (the centred square of half the side), a boolean mask (d,)
        or (n, d) (True: hidden), or None (the NaN entries of X are the region); NaN
        entries of X are hidden in any case. ``image_shape`` (h, w): the model's own
        (``image_shape_``), else square images. Returns :class:`Completions`."""
        self._check_fitted()
        n_draws = check_int(n_draws, "n_draws", minimum=1)
        checked = self._check_X(X, "X", reset=False)
        values = check_data(X, "X", allow_nan=True)
        shape = image_shape if image_shape is not None else self.image_shape_
        mask = region_mask(region, values.shape, shape, self.architecture_.channels) \
            | np.isnan(checked)
        if not mask.any(axis=1).all():
            row = int(np.flatnonzero(~mask.any(axis=1))[0])
            raise DataError(f"row {row} of X has nothing hidden: the region leaves every "
                            "entry observed")
        hidden = np.where(mask, np.nan, values)
        draws = self.impute(hidden, n_draws=n_draws, n_samples=n_samples,
                            random_state=random_state, y=y)  # (m, n, d)
        options = dict(n_importance=n_samples, random_state=random_state)
        rows_y = None if y is None else np.tile(np.asarray(y), (n_draws,) + (1,) * (
            np.ndim(y) - 1))
        scores = self.log_likelihood_samples(draws.reshape(-1, values.shape[1]), y=rows_y,
                                             **options).reshape(n_draws, -1)
        observed = self.log_likelihood_samples(hidden, y=y, **options)
        truth = None if np.isnan(checked).any() else \
            self.log_likelihood_samples(values, y=y, **options)
        return Completions(draws, mask, np.asarray(scores, np.float64),
                           np.asarray(observed, np.float64),
                           None if truth is None else np.asarray(truth, np.float64))

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


@dataclass(frozen=True)
class Completions:
    """What :meth:`Imputation.complete` returns (nats; n images, m answers, d pixels).

    ``images`` (m, n, d): the answers, the observed pixels as given and the hidden ones
    drawn from p(x_mis | x_obs); ``mask`` (n, d): True where hidden; ``log_likelihood``
    (m, n): log p(x) of each answer; ``observed_log_likelihood`` (n,): log p(x_obs);
    ``truth_log_likelihood`` (n,): log p(x) of the given images (None when X had NaN:
    no truth to score); ``conditional_log_likelihood`` (n,): the truth's log p(x_mis |
    x_obs), how well the model predicts what was hidden."""

    images: np.ndarray
    mask: np.ndarray
    log_likelihood: np.ndarray
    observed_log_likelihood: np.ndarray
    truth_log_likelihood: np.ndarray | None

    @property
    def conditional_log_likelihood(self) -> np.ndarray | None:
        if self.truth_log_likelihood is None:
            return None
        return self.truth_log_likelihood - self.observed_log_likelihood


def region_mask(region, shape: tuple[int, int], image_shape=None,
                channels: int = 1) -> np.ndarray:
    """The hidden entries (n, d) of rows of ``shape`` = (n, d) for a named region of
    images of ``image_shape`` (h, w) with ``channels`` (every channel of a hidden pixel
    is hidden), a boolean mask (d,) or (n, d), or None (nothing beyond the NaN)."""
    n, d = shape
    if region is None:
        return np.zeros(shape, dtype=bool)
    if not isinstance(region, str):
        mask = np.asarray(region)
        if mask.dtype != bool or mask.shape not in ((d,), (n, d)):
            raise ParameterError(f"region: a mask must be boolean of shape ({d},) or "
                                 f"({n}, {d}); got {mask.dtype} {mask.shape}")
        return np.broadcast_to(mask, shape).copy()
    if region not in REGIONS:
        raise ParameterError(f"region must be one of {', '.join(REGIONS)} or a boolean "
                             f"mask; got {region!r}")
    h, w = _image_sides(image_shape, d, channels)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    half_h, half_w = max(1, h // 2), max(1, w // 2)
    hidden = {"bottom": rows >= h - half_h, "top": rows < half_h,
              "left": cols < half_w, "right": cols >= w - half_w,
              "square": (abs(rows - (h - 1) / 2) < half_h / 2)
              & (abs(cols - (w - 1) / 2) < half_w / 2)}[region]
    return np.broadcast_to(np.tile(hidden.ravel(), channels), shape).copy()


def _image_sides(image_shape, d: int, channels: int) -> tuple[int, int]:
    """(h, w) of the images: ``image_shape`` checked against d, else square ones."""
    if image_shape is None:
        side = math.isqrt(d // channels)
        if side * side * channels != d:
            raise ParameterError(f"rows of {d} values are not square images; pass "
                                 "image_shape=(height, width), or a boolean mask as region")
        return side, side
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ParameterError(f"image_shape must be (height, width); got {image_shape!r}") \
            from None
    if h < 1 or w < 1 or h * w * channels != d:
        raise ParameterError(f"image_shape {image_shape!r} does not match rows of {d} values"
                             + (f" ({channels} channels)" if channels != 1 else ""))
    return h, w


@torch.no_grad()
def importance_impute(model, x: torch.Tensor, n_samples: int, n_draws: int | None = None,
                      generator: torch.Generator | None = None,
                      max_elements: int = MAX_ELEMENTS) -> torch.Tensor:
    """For the rows x (n, d) (NaN: missing; a conditional model's y in the last
    columns): the self-normalized importance-sampling estimate of E[x|x_obs], (n, d)
    float64 in the data's units, from ``n_samples`` draws of the proposal per row
    (:func:`proposal_encoding`); or with ``n_draws=m``, m draws from p(x|x_obs) by
    resampling those z, (m, n, d)."""
    n, d = x.shape
    batch = max(1, min(n, max_elements // (d * min(n_samples, 256))))
    chunk = max(1, min(n_samples, max_elements // (d * batch)))
    parts = []
    for start in range(0, n, batch):
        xb = x[start:start + batch]
        encoding = proposal_encoding(model, xb, generator, chunk)
        if n_draws is None:
            parts.append(_conditional_mean(model, xb, n_samples, generator, encoding, chunk))
            continue
        kept = [(post.z, log_w) for post, _, log_w in
                _weighted(model, xb, n_samples, generator, encoding, chunk)]
        parts.append(_resampled(model, xb, kept, n_draws, generator))
    return torch.cat(parts, dim=0 if n_draws is None else 1)


PROPOSAL_ROUNDS, PROPOSAL_SAMPLES = 2, 100  # proposal_encoding's refinement


def proposal_encoding(model, xb: torch.Tensor, generator=None, chunk: int = PROPOSAL_SAMPLES):
    """The encoding of q that proposes z for importance sampling the rows xb (B, d)
    with NaN entries. A model fitted on NaN (``config.missing``) has an encoder that
    sees the mask: its own encoding. A model fitted on complete rows sees the missing
    entries at 0, which can say the wrong thing (a blank half of an image): instead,
    PROPOSAL_ROUNDS times, the missing entries are filled with their conditional mean
    under the current proposal (PROPOSAL_SAMPLES draws) and the filled rows encoded.
    Every estimate stays consistent, as the weights p(x_obs|z) p(z) / q(z) divide by
    the density of the proposal used; a better one makes them tighter (log p(x_obs))
    and the draws closer to the posterior."""
    encoding = encode_posterior(model, xb)
    config = getattr(model, "config", None)
    missing = torch.isnan(xb)
    if config is None or config.missing or not bool(missing.any()):
        return encoding
    y = model.split_condition(xb)[1]
    for _ in range(PROPOSAL_ROUNDS):
        mean = _conditional_mean(model, xb, PROPOSAL_SAMPLES, generator, encoding,
                                 min(chunk, PROPOSAL_SAMPLES)).to(xb.dtype)
        if y is not None:
            mean = torch.cat([mean, y], dim=-1)
        encoding = encode_posterior(model, torch.where(missing, mean, xb))
    return encoding


def _weighted(model, xb, n_samples: int, generator, encoding, chunk: int):
    """Chunks of (draws of the proposal, the decoder's output at them, log w (s, B))
    with w = p(x_obs|z) p(z) / q(z): the observed entries' likelihood only."""
    y = model.split_condition(xb)[1]
    for done in range(0, n_samples, chunk):
        post = draw_posterior(model, xb, min(chunk, n_samples - done), generator, encoding)
        params = model.decode(post.z, y)
        log_w = (model.log_likelihood(xb, post.z, params) + prior_log_prob(model, post.z)
                 - post.log_q()).double()
        yield post, params, log_w


def _conditional_mean(model, xb, n_samples: int, generator, encoding, chunk: int):
    """sum_s w_s E[x|z_s] / sum_s w_s, (B, d) float64, accumulated chunk by chunk."""
    log_total, weighted = None, 0.0
    for _, params, log_w in _weighted(model, xb, n_samples, generator, encoding, chunk):
        total = logsumexp_accumulate(log_total, log_w)  # (B,)
        share = torch.exp(log_w - total).unsqueeze(-1)  # (s, B, 1)
        means = model.row_mean(xb, params).double()  # E[x|z_s], (s, B, d)
        weighted = (share * means).sum(0) + (
            0.0 if log_total is None else weighted * torch.exp(log_total - total)[:, None])
        log_total = total
    return weighted


def _resampled(model, xb, kept, n_draws: int, generator) -> torch.Tensor:
    """m draws x ~ p(x|z), z resampled by the weights from the kept (z, log w) chunks:
    (m, B, d) float64."""
    z = torch.cat([z for z, _ in kept])  # (S, B, L)
    log_w = torch.cat([w for _, w in kept])  # (S, B)
    picks = torch.multinomial(torch.softmax(log_w, dim=0).T, n_draws, replacement=True,
                              generator=generator)  # (B, m)
    chosen = z[picks.T, torch.arange(z.shape[1], device=z.device)]  # (m, B, L)
    y = model.split_condition(xb)[1]
    return model.sample_rows(xb, model.decode(chosen, y), generator).double()
