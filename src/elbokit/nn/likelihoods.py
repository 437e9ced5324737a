"""Decoder likelihoods p(x|z): each turns the decoder's per-pixel outputs into a
log-probability (summed over pixels) and a mean.

The decoder emits ``n_heads`` tensors of shape (..., d): the Bernoulli's logits;
the learned-variance Gaussian's mean mu_d(z) and variance pre-activation s_d(z) (the
lecture's slide); the fixed Gaussian's mean; the discretized logistic's mean mu_d(z)
(in the data's units) and log-scale pre-activation r_d(z); the count likelihoods'
logits h_d(z) of each feature's share of the row's total count (the ZINB's also its
zero-inflation logits).

``discrete``: whether log p is the log of a probability mass of the data's values
(the logistic's of 8-bit levels; the Bernoulli's only of binary data, see
:func:`density_kind`), so that -log p / (d ln 2) is a bits/dim comparable with
published figures; a Gaussian's log p is a density of continuous values.

:func:`resolve` chooses the likelihood of ``likelihood="auto"`` from the data, and
:func:`check_data` refuses data a likelihood cannot score.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import numpy as np

from ..exceptions import DataError
from .config import COUNT_LIKELIHOODS as COUNTS  # of raw counts (CountLikelihood)
from ._math import (LOG_SCALE_MAX, bernoulli_log_prob, bernoulli_log_prob_sum,
                    clipped_logistic_mean, discretized_logistic_log_prob,
                    discretized_logistic_log_prob_sum, gaussian_log_prob, inverse_softplus,
                    nb_log_prob, poisson_log_prob, zinb_log_prob)

LEVELS = 256  # the logistic's levels: 8-bit values k / 255
GRID_TOLERANCE = 1e-4  # |255 x - k| below which x reads as the level k (float32 of k/255: 1e-5)
CHECK_ROWS = 4096  # rows of X checked per chunk (no copy of X as large as X)
LIBRARY_FLOOR = 1e-6  # a row of zeros' library: its log-rates stay finite, log p(0) ~ 0
LOG_THETA_RANGE = (-12.0, 18.0)  # the NB's log inverse dispersion is read within this


class Likelihood:
    """What every likelihood offers: ``n_heads`` (the decoder's tensors), ``discrete``
    (log p is a log-probability of the data's values), ``log_prob(x, params, mask)``
    summed over the pixels (the observed ones), ``mean(params)``, E[x|z], and
    ``sample``, a draw of x ~ p(x|z). A subclass gives the per-pixel terms
    (``log_prob_terms``), and may give their sum a faster path (``log_prob_sum``).

    Missing entries (Mattei & Frellsen 2019): ``mask`` (B, d), True where x is
    observed, keeps the observed entries' terms only, log p(x_obs|z) (x is finite
    everywhere: the caller fills the missing entries, with 0)."""

    n_heads = 1
    discrete = False

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., d) as the encoder sees it: itself (the counts' log1p)."""
        return x

    def log_prob(self, x: torch.Tensor, params: tuple[torch.Tensor, ...],
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) (..., B) of x (B, d) summed over the pixels, the observed ones
        (``mask``) only when given."""
        if mask is None:
            return self.log_prob_sum(x, params)
        return (self.log_prob_terms(x, params, mask) * mask).sum(-1)

    def log_prob_sum(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.log_prob_terms(x, params, None).sum(-1)

    def row_mean(self, x: torch.Tensor, params: tuple[torch.Tensor, ...],
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """E[x|z] of each pixel of the rows x (B, d): ``mean`` (the counts' at each
        row's own library)."""
        return self.mean(params)

    @staticmethod
    def _normal(like: torch.Tensor, generator) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, device=like.device,
                           dtype=like.dtype)


class Bernoulli(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d | sigmoid(l_d(z))), for x in [0, 1]."""

    discrete = True  # of binary x only: density_kind

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        return bernoulli_log_prob(x, params[0])  # (..., B, d)

    def log_prob_sum(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (logits,) = params  # (..., B, d)
        return bernoulli_log_prob_sum(x, logits)  # (..., B)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.sigmoid(params[0])

    def sample(self, x, params, mask, generator) -> torch.Tensor:
        return torch.bernoulli(self.mean(params), generator=generator)


class Gaussian(Likelihood):
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

    def initial_raw(self, X: torch.Tensor) -> torch.Tensor:
        """The pre-activation (d,) whose variance is each pixel's (at least the floor)."""
        excess = (X.var(0) - self.min_variance).clamp_min(1e-2 * self.min_variance)
        return inverse_softplus(excess)

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        mean, raw = params  # (..., B, d) each
        return gaussian_log_prob(x, mean, torch.log(self.variance(raw)))

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return params[0]

    def sample(self, x, params, mask, generator) -> torch.Tensor:
        mean, raw = params
        return mean + self.variance(raw).sqrt() * self._normal(mean, generator)


class FixedGaussian(Likelihood):
    """p(x|z) = prod_d N(x_d | mu_d(z), sigma^2) with sigma given."""

    def __init__(self, sigma: float):
        self.sigma = sigma
        self.logvar = 2.0 * math.log(sigma)

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        (mean,) = params
        return gaussian_log_prob(x, mean, torch.full_like(mean, self.logvar))

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return params[0]

    def sample(self, x, params, mask, generator) -> torch.Tensor:
        return params[0] + self.sigma * self._normal(params[0], generator)


class DiscretizedLogistic(Likelihood):
    """p(x|z) = prod_d P(x_d | mu_d(z), s_d(z)), the logistic distribution of mean mu_d
    and scale s_d discretized to the 256 levels k/255 of 8-bit data in [0, 1], its
    outer bins open to -inf and +inf (Salimans et al. 2017, PixelCNN++, one mixture
    component): log p is the log-probability of the 8-bit values themselves, <= 0.

    The scale is s = exp(log_s), log_s = LOG_SCALE_MIN + softplus(r - LOG_SCALE_MIN):
    a smooth floor at e^-8 (a tenth of a level), r unconstrained and equal to log_s
    for r well above -8; capped at e^LOG_SCALE_MAX, beyond which the bin's width
    in units of s would underflow. mu is not squashed: a mean outside [0, 1] puts its
    mass on level 0 or 255."""

    n_heads = 2
    discrete = True
    LOG_SCALE_MIN = -8.0

    def log_scale(self, raw: torch.Tensor) -> torch.Tensor:
        floor = self.LOG_SCALE_MIN
        return floor + F.softplus(raw - floor)  # read as at most LOG_SCALE_MAX

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        mean, raw = params  # (..., B, d) each
        return discretized_logistic_log_prob(x, mean, self.log_scale(raw), LEVELS)

    def log_prob_sum(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mean, raw = params  # (..., B, d) each
        return discretized_logistic_log_prob_sum(x, mean, self.log_scale(raw), LEVELS)

    def sample(self, x, params, mask, generator) -> torch.Tensor:
        """The level k/255 nearest a logistic draw mean + s log(u / (1 - u)), clipped
        to [0, 1] (the open outer bins)."""
        mean, raw = params
        scale = torch.exp(self.log_scale(raw).clamp(max=LOG_SCALE_MAX))
        u = torch.rand(mean.shape, generator=generator, device=mean.device,
                       dtype=mean.dtype).clamp(1e-7, 1 - 1e-7)
        draw = mean + scale * (torch.log(u) - torch.log1p(-u))
        return torch.round(draw.clamp(0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """E[x|z] of the logistic clipped to [0, 1] (within half a level of the
        discretized mean)."""
        mean, raw = params
        return clipped_logistic_mean(mean, torch.exp(self.log_scale(raw).clamp(max=LOG_SCALE_MAX)))

    def initial_raw(self, X: torch.Tensor) -> torch.Tensor:
        """The pre-activation (d,) whose logistic has each pixel's variance
        (var = s^2 pi^2 / 3), at least the floor."""
        scale = (3.0 * X.var(0)).sqrt() / math.pi
        log_s = torch.log(scale).clamp(min=self.LOG_SCALE_MIN + 1e-3)
        return self.LOG_SCALE_MIN + inverse_softplus(log_s - self.LOG_SCALE_MIN)


class CountLikelihood(Likelihood, nn.Module):
    """What the count likelihoods share: the rate of feature d in row x is
    mu_d = l rho_d(z), rho(z) = softmax(h(z)) the decoder's shares of the row's total and
    l = sum_d x_d the row's observed library size (a scale factor given with x, as
    scVI's ``use_observed_lib_size``): log p(x | z, l) in nats, a log-probability of the
    counts (<= 0). The encoder sees log(1 + x). ``library_size`` (a buffer, set from the
    training rows' median total, as scanpy's ``normalize_total``): the l of
    :meth:`mean`, E[x|z] of a typical row, where no row is given (decode, sample)."""

    discrete = True

    def __init__(self, n_features: int = 1):
        nn.Module.__init__(self)
        self.register_buffer("library_size", torch.ones(()))

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x.clamp_min(0.0))  # (a VampPrior's pseudo-inputs may go below)

    @torch.no_grad()
    def init_from_data(self, X: torch.Tensor) -> None:
        """Set ``library_size`` to the median total count of the rows X (n, d)."""
        totals = X.sum(-1, dtype=torch.float64).cpu().numpy()
        self.library_size.fill_(max(float(np.median(totals)), 1.0))

    def initial_logits(self, X: torch.Tensor) -> torch.Tensor:
        """The logits (d,) of the features' mean shares of the counts X (n, d)."""
        share = X.sum(0) / X.sum().clamp_min(1.0)
        return torch.log(share.clamp_min(1e-8))

    @staticmethod
    def log_mean(x: torch.Tensor, logits: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """log mu = log softmax(h) + log l, l = x's row totals (..., B, d). With missing
        entries (``mask``, x 0 there) l is the observed total and the shares are those of
        the observed features, mu_d = l rho_d / sum_{j observed} rho_j: the observed
        rates add up to the observed total, the missing ones follow at the same scale."""
        library = x.sum(-1, keepdim=True).clamp_min(LIBRARY_FLOOR)  # (B, 1)
        log_mean = F.log_softmax(logits, dim=-1) + torch.log(library)
        if mask is None:
            return log_mean
        observed_share = torch.logsumexp(logits.masked_fill(~mask, -math.inf), -1, True) \
            - torch.logsumexp(logits, -1, True)  # log sum_{j observed} rho_j, (..., B, 1)
        return log_mean - observed_share

    def shares(self, params) -> torch.Tensor:
        return torch.softmax(params[0], dim=-1)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """E[x|z] at the training rows' median library size: l rho(z)."""
        return self.library_size * self.shares(params)

    def row_mean(self, x, params, mask=None) -> torch.Tensor:
        """E[x|z] at the row's own library, mu (the ZINB's (1 - pi) mu)."""
        return torch.exp(self.log_mean(x, params[0], mask))

    def sample(self, x, params, mask, generator) -> torch.Tensor:
        return torch.poisson(self.row_mean(x, params, mask), generator=generator)


class Poisson(CountLikelihood):
    """p(x | z, l) = prod_d Poisson(x_d | l rho_d(z))."""

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        (logits,) = params  # (..., B, d)
        return poisson_log_prob(x, self.log_mean(x, logits, mask))


class NegativeBinomial(CountLikelihood):
    """p(x | z, l) = prod_d NB(x_d | l rho_d(z), theta_d): the gamma-Poisson of variance
    mu + mu^2 / theta_d, theta_d > 0 a learned inverse dispersion per feature (gene-wise,
    scVI's ``dispersion="gene"``), parameter ``log_theta`` (d,) read within
    LOG_THETA_RANGE; starts at theta = 1."""

    def __init__(self, n_features: int = 1):
        super().__init__(n_features)
        self.log_theta = nn.Parameter(torch.zeros(n_features))

    def theta_log(self) -> torch.Tensor:
        return self.log_theta.clamp(*LOG_THETA_RANGE)

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        logits = params[0]  # (..., B, d)
        return nb_log_prob(x, self.log_mean(x, logits, mask), self.theta_log())

    def sample(self, x, params, mask, generator) -> torch.Tensor:
        """The gamma-Poisson: x ~ Poisson(lambda), lambda ~ Gamma(theta, theta / mu)
        (torch's gamma draws from the global stream: seeded from ``generator`` here)."""
        mean = torch.exp(self.log_mean(x, params[0], mask))
        theta = torch.exp(self.theta_log()).expand_as(mean)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=mean.device))
        with torch.random.fork_rng(devices=[] if mean.device.type == "cpu" else [mean.device]):
            torch.manual_seed(seed)
            rate = torch.distributions.Gamma(theta, theta / mean).sample()
        rate = rate * self._kept(params, generator)
        return torch.poisson(rate, generator=generator)

    def _kept(self, params, generator):
        return 1.0


class ZeroInflatedNB(NegativeBinomial):
    """p(x | z, l) = prod_d [pi_d(z) 1{x_d = 0} + (1 - pi_d(z)) NB(x_d | l rho_d(z), theta_d)],
    pi_d = sigmoid(g_d(z)) the second head's zero-inflation (dropout) probability."""

    n_heads = 2
    INITIAL_DROPOUT_LOGIT = -3.0  # pi = 0.047 (a linear decoder's per-feature start)

    def log_prob_terms(self, x, params, mask=None) -> torch.Tensor:
        logits, dropout = params  # (..., B, d) each
        return zinb_log_prob(x, self.log_mean(x, logits, mask), self.theta_log(), dropout)

    def mean(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """E[x|z] = (1 - pi(z)) l rho(z) at the training rows' median library size."""
        return super().mean(params) * torch.sigmoid(-params[1])

    def row_mean(self, x, params, mask=None) -> torch.Tensor:
        return super().row_mean(x, params, mask) * torch.sigmoid(-params[1])

    def _kept(self, params, generator):
        """1 where the NB's draw is kept, 0 where it dropped out (probability pi)."""
        return torch.bernoulli(torch.sigmoid(-params[1]), generator=generator)

    def initial_raw(self, X: torch.Tensor) -> torch.Tensor:
        """A linear decoder's per-feature dropout logits (d,) at the start."""
        return torch.full((X.shape[1],), self.INITIAL_DROPOUT_LOGIT)


def build_likelihood(name: str, *, min_variance: float = 1e-3, sigma: float = 1.0,
                     n_features: int = 1):
    """The likelihood ``name``; ``n_features``: d, the NB's dispersions' count."""
    counts = {"poisson": Poisson, "nb": NegativeBinomial, "zinb": ZeroInflatedNB}
    if name in counts:
        return counts[name](n_features)
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(min_variance)
    if name == "logistic":
        return DiscretizedLogistic()
    return FixedGaussian(sigma)


# --------------------------------------------------------------------------- the data

def _chunks(X: np.ndarray):
    """Blocks of CHECK_ROWS rows of X; of a scipy sparse X, dense blocks of about 2^20
    values (its rows densified a block at a time)."""
    sparse = hasattr(X, "toarray")
    step = max(1, (1 << 20) // max(X.shape[1], 1)) if sparse else CHECK_ROWS
    for start in range(0, X.shape[0], step):
        chunk = X[start:start + step]
        yield chunk.toarray() if sparse else chunk


def _all_observed(chunk: np.ndarray, passes: np.ndarray) -> bool:
    """Whether ``passes`` (a test of each entry of ``chunk``) holds at every observed
    entry: missing ones (NaN) are looked for only where the test failed somewhere."""
    return bool(np.all(passes)) or bool(np.all(passes | np.isnan(chunk)))


def is_binary(X: np.ndarray) -> bool:
    """Whether every (observed) value of X is 0 or 1."""
    return all(_all_observed(chunk, (chunk == 0) | (chunk == 1)) for chunk in _chunks(X))


def on_8bit_grid(X: np.ndarray) -> bool:
    """Whether every (observed) value of X lies in [0, 1] on the grid k/255 (8-bit
    images, 0-255 arrays divided by 255), to GRID_TOLERANCE of a level."""
    for chunk in _chunks(X):
        counts = chunk.astype(np.float64) * (LEVELS - 1)
        if not _all_observed(chunk, (np.abs(counts - np.rint(counts)) <= GRID_TOLERANCE)
                             & (chunk >= 0) & (chunk <= 1)):
            return False
    return True


def are_counts(X: np.ndarray) -> bool:
    """Whether every (observed) value of X is a non-negative integer (finite)."""
    return all(_all_observed(chunk, (chunk >= 0) & (chunk == np.rint(chunk))
                             & np.isfinite(chunk)) for chunk in _chunks(X))


def looks_like_counts(X: np.ndarray) -> bool:
    """Whether X reads as a count table (what "auto" fits with the NB): non-negative
    integers with zeros among them, not all 0/1, and not a bounded scale, whose largest
    value, its ceiling, most columns reach (raw digits' 0-16 pixels: 43 of 64 columns,
    questionnaire answers 0-4): a count table's largest value is in at most half of its
    columns, or in one. Likert answers 1-5 have no zeros."""
    if X.size == 0 or not are_counts(X):
        return False
    column_max = np.nanmax(np.stack([np.nanmax(chunk, 0, initial=-1.0) for chunk in _chunks(X)]),
                           axis=0)  # -1: a column missing in a chunk
    has_zeros = any(bool(np.any(chunk == 0)) for chunk in _chunks(X))
    top = float(column_max.max())
    at_ceiling = int(np.sum(column_max == top))
    return has_zeros and top > 1 and (at_ceiling == 1 or at_ceiling <= 0.5 * X.shape[1])


def resolve(name: str, X: np.ndarray, binarize: str = "none") -> str:
    """The likelihood of ``name``: itself, or for ``"auto"`` the one the data X call
    for: "bernoulli" when the pixels are binarized (``binarize`` other than "none") or
    X is all 0/1; "logistic" when every value lies on the 8-bit grid k/255 of [0, 1];
    "nb" (the negative binomial, gene-wise dispersion) for a table of counts
    (:func:`looks_like_counts`; the NB, not the ZINB, as droplet data need no zero
    inflation, Svensson 2020); "bernoulli" for other values in [0, 1] (intensities read
    as probabilities); "gaussian" for any other table (values in their own units: wine's
    measurements, a bounded scale such as questionnaire answers or digits' 0-16 pixels),
    which the default ``standardize="auto"`` then fits per feature, as factor analysis
    does."""
    if name != "auto":
        return name
    if binarize != "none" or is_binary(X):
        return "bernoulli"
    if on_8bit_grid(X):
        return "logistic"
    if looks_like_counts(X):
        return "nb"
    low, high = value_range(X)
    return "bernoulli" if low >= 0 and high <= 1 else "gaussian"


def value_range(X: np.ndarray) -> tuple[float, float]:
    """(min, max) of X's observed values (NaN: not observed), a block at a time; (inf,
    -inf) when none is observed."""
    lows, highs = zip(*((float(np.nanmin(chunk, initial=np.inf)),
                         float(np.nanmax(chunk, initial=-np.inf))) for chunk in _chunks(X))) \
        if X.shape[0] else ((np.inf,), (-np.inf,))
    return min(lows), max(highs)


def check_data(name: str, X: np.ndarray, what: str = "X", low=None, high=None) -> None:
    """Refuse data the likelihood ``name`` cannot score (one DataError line): values
    outside [0, 1] under "bernoulli" or "logistic", values off the 8-bit grid under
    "logistic", values that are not non-negative integers under a count likelihood.
    ``low``, ``high``: X's range when the caller has it."""
    if name in COUNTS and X.size and not are_counts(X):
        raise DataError(f"{what} has values that are not non-negative integers; the {name} "
                        "likelihood is of raw counts: pass the counts (not log-normalized "
                        "values) or use likelihood='gaussian'")
    if name not in ("bernoulli", "logistic") or X.size == 0:
        return
    if low is None or high is None:
        low, high = value_range(X)
    if low < 0 or high > 1:
        raise DataError(f"{what} has values outside [0, 1] (min {low:.3g}, max {high:.3g}); "
                        f"the {name} likelihood needs values in [0, 1]: rescale the data or "
                        "use likelihood='gaussian'")
    if name == "logistic" and not on_8bit_grid(X):
        raise DataError(f"{what} has values off the 8-bit grid k/255; the logistic likelihood "
                        "is of 8-bit values (images, 0-255 arrays divided by 255): use "
                        "likelihood='bernoulli' or 'gaussian' for other data")


def density_kind(name: str, X: np.ndarray) -> str | None:
    """What log p of the rows X under likelihood ``name`` is: ``"discrete"``, the
    log-probability of the data's values (the logistic's of 8-bit values; the
    Bernoulli's of binary X), which bits/dim compares with published figures;
    ``"continuous"``, a density of continuous values (the Gaussians'); or None, no
    density of X at all (the Bernoulli's of intensities that are not all 0/1: a
    cross-entropy)."""
    if not build_likelihood(name).discrete:
        return "continuous"
    if name == "bernoulli" and not is_binary(X):
        return None
    return "discrete"


NOT_A_DENSITY = ("the Bernoulli likelihood of intensities that are not all 0/1 is a "
                 "cross-entropy, not a density of the data: no bits/dim (fit 8-bit data with "
                 "likelihood 'logistic', the default for them, or binarize the pixels)")
