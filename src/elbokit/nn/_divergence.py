"""Whether a fitted VAE diverged (:class:`DivergenceCheck`, a part of
:class:`~elbokit.nn.VAE`): a non-finite ELBO, or for a Gaussian likelihood an ELBO far
below a diagonal Gaussian fitted to the same rows (a model the VAE contains: a decoder
that ignores z), and what to change then."""

from __future__ import annotations

import math

import numpy as np

from .._math import diag_gaussian_logpdf
from ..exceptions import TrainingError
from ._estimator import moments
from ._rows import dense_block
from .config import COUNT_LIKELIHOODS

# a fitted Gaussian VAE whose ELBO lies more than this many nats per feature below a
# diagonal Gaussian fitted to the same rows (a model the VAE contains) has diverged
DIVERGENCE_NATS_PER_FEATURE = 10.0
DIVERGENCE_ROWS = 4096  # rows (a seeded subset) on which a fit is checked
SCALE_SPREAD = 1e3  # max/min feature std beyond which unstandardized fits are fragile
# log p a log-probability of the data's values, at most 0: values in [0, 1], or counts
DISCRETE = ("bernoulli", "logistic", *COUNT_LIKELIHOODS)


class DivergenceCheck:
    """:meth:`check_fit` and the end of a divergence message."""

    def check_fit(self, X, what: str = "test", *, reference=None, y=None) -> None:
        """Raise :class:`TrainingError` if the fitted model's ELBO on (a seeded subset of
        up to 4096) rows of X is not finite or, for a Gaussian likelihood, lies more
        than 10 nats per feature below the log-likelihood of a diagonal Gaussian fitted
        to ``reference`` (the training rows; default X itself), a model the VAE
        contains (a decoder that ignores z): such an ELBO means the fit diverged.
        ``what`` names the rows in the message. ``fit`` calls it on the validation
        rows (else the training rows). ``y``: a conditional model's y of X."""
        X = self._check_X(X, "X", reset=False)
        reference = X if reference is None else self._check_X(reference, "reference",
                                                              reset=False)
        XY = self._with_condition(X, y)
        if X.shape[0] > DIVERGENCE_ROWS:
            rows = np.random.default_rng(0).choice(X.shape[0], DIVERGENCE_ROWS, replace=False)
            X, XY = X[rows], XY[rows]
        elbo = float(np.mean(self._elbo(self._tensor(XY), "b", 1, 0)))
        if not math.isfinite(elbo):
            raise TrainingError(f"the fitted VAE's ELBO on the {what} rows is {elbo}: the fit "
                                f"diverged{self._likely_cause(X)}")
        if self.model_.config.likelihood in DISCRETE:  # log p <= 0: only finiteness
            return
        baseline = self._diagonal_gaussian_log_likelihood(X, reference)
        if elbo < baseline - DIVERGENCE_NATS_PER_FEATURE * X.shape[1]:
            raise TrainingError(
                f"the fitted VAE's ELBO on the {what} rows, {elbo:.4g} nats per sample, is far "
                f"below the {baseline:.4g} of a diagonal Gaussian fitted to the data: the fit "
                f"diverged{self._likely_cause(X)}")

    def _validated_finite(self, patience: int) -> bool:
        """Whether the fit's own validation ELBO of the weights the model keeps (the
        best epoch's with ``patience``, else the last) is on record and finite: all
        that :meth:`check_fit` asks of a Bernoulli model, so it need not be computed
        again (a Gaussian model's is also compared with a baseline: checked anew)."""
        scores = [record.get("val_elbo") for record in self.history_]
        if self.model_.config.likelihood not in DISCRETE or not scores or None in scores:
            return False
        finite = [score for score in scores if math.isfinite(score)]
        return math.isfinite(max(finite) if patience and finite else scores[-1])

    def _diagonal_gaussian_log_likelihood(self, X, reference) -> float:
        """Mean log-density of X under N(mean, diag var) of the reference rows, var
        floored (and, for likelihood "gaussian-fixed", fixed) as the decoder's is; of
        each row's observed entries where X has missing values (NaN), as the ELBO."""
        mean, var = moments(reference)
        X64 = np.asarray(dense_block(X), dtype=np.float64)  # at most DIVERGENCE_ROWS rows
        scale = self.scale_ if self.standardize_ else np.ones(X64.shape[1])
        config = self.model_.config
        if config.likelihood == "gaussian-fixed":
            var = np.full(X64.shape[1], config.sigma**2) * scale**2
        else:
            var = np.maximum(var, config.min_variance * scale**2)
        missing = np.isnan(X64)
        log_density = diag_gaussian_logpdf(np.where(missing, mean, X64), mean, var)
        # a missing entry at the mean added -1/2 log(2 pi var_j): taken out again
        return float(np.mean(log_density + 0.5 * missing @ np.log(2 * np.pi * var)))

    def _likely_cause(self, X) -> str:
        """The end of a divergence message: what to change."""
        std = np.sqrt(moments(X)[1])
        std = std[std > 0]
        spread = float(std.max() / std.min()) if std.size else 1.0
        config = getattr(getattr(self, "model_", None), "config", None)
        standardized = bool(config and config.standardize)
        far_from_one = std.size and (std.max() > SCALE_SPREAD or std.max() < 1 / SCALE_SPREAD)
        likelihood = config.likelihood if config else self.likelihood
        if not standardized and likelihood not in DISCRETE + ("auto",) and std.size and (
                spread > SCALE_SPREAD or far_from_one):
            return (f"; likely cause: feature scales differ by orders of magnitude or are far "
                    f"from 1 (std from {std.min():.3g} to {std.max():.3g}, max/min std = "
                    f"{spread:.3g}); use standardize=True / --standardize")
        return f"; lower the learning rate (lr={self.lr}) or check the data"
