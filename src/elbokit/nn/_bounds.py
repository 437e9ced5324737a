"""The VAE's numbers of x (:class:`Bounds`, a part of :class:`~elbokit.nn.VAE`): ELBO
estimates (L_A, L_B, IWAE and the rest of the registry, per row, nats), the score of
scikit-learn, bits per dimension, and the importance-sampled log p(x) (the IWAE bound
with k samples, batched over data and samples, :mod:`elbokit.nn.importance`)."""

from __future__ import annotations

import numpy as np
import torch

from .._math import bits_per_dim, observed_dims
from .._validation import check_int, check_seed
from ..exceptions import ParameterError
from .likelihoods import NOT_A_DENSITY, density_kind
from .objectives import get_estimator
from .train import EVAL_BATCH, evaluate_elbo


class Bounds:
    """``elbo``, ``score_samples``, ``score``, ``bits_per_dim``, ``density_kind``,
    ``log_likelihood_samples`` and ``elbo_samples``; a conditional model's are of
    p(x|y)."""

    def elbo(self, X, estimator: str = "b", n_samples: int = 1, random_state=0,
             y=None) -> np.ndarray:
        """Per-sample ELBO estimates (nats), shape (n,): ``"a"`` L_A, ``"b"`` L_B, or
        ``"iwae"`` (a tighter bound, tending to log p(x) as n_samples grows); a
        conditional model's bound on log p(x|y)."""
        return self._elbo(self._input(X, y), estimator, n_samples, random_state)

    def _elbo(self, x: torch.Tensor, estimator, n_samples, random_state) -> np.ndarray:
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ParameterError(f"n_samples must be a positive integer; got {n_samples!r}")
        seed = check_seed(random_state)
        self._check_draws(min(x.shape[0], EVAL_BATCH), int(n_samples),
                          self.latent_dim_ + self.n_features_in_, "n_samples")
        values = evaluate_elbo(self.model_, x, estimator=get_estimator(estimator),
                               n_samples=int(n_samples), seed=seed)
        return values.cpu().numpy().astype(np.float64)

    def score_samples(self, X, y=None) -> np.ndarray:
        """Per-sample ELBO (L_B, one sample, seeded), a lower bound on log p(x) (a
        conditional model's on log p(x|y)); of a row with missing values (NaN), on
        log p(x_obs), the observed entries' (:meth:`log_likelihood_samples`: the
        importance-sampled log p(x_obs))."""
        return self.elbo(X, "b", n_samples=1, random_state=0, y=y)

    def score(self, X, y=None) -> float:
        """Mean per-sample ELBO (nats); y is used by a conditional model only (and
        ignored otherwise, as scikit-learn's pipelines pass it)."""
        return float(np.mean(self.score_samples(X, y if self.conditional_ else None)))

    def bits_per_dim(self, X, y=None) -> float:
        """-ELBO / (d ln 2): the bound in bits per dimension, where the log p is a
        density of X (:func:`~elbokit.nn.likelihoods.density_kind`: of the 8-bit values
        under the logistic, of binary X under the Bernoulli, continuous under a
        Gaussian); a ParameterError for the Bernoulli of intensities, a cross-entropy."""
        if self.density_kind(X) is None:
            raise ParameterError(NOT_A_DENSITY)
        # with missing values (NaN): per observed entry, as the bound is of x_obs
        return bits_per_dim(self.score(X, y), observed_dims(self._check_X(X, "X", reset=False)))

    def density_kind(self, X) -> str | None:
        """What log p of the rows X is under the fitted likelihood: ``"discrete"`` (the
        probability of the data's values: 8-bit values under the logistic, binary X
        under the Bernoulli), ``"continuous"`` (a Gaussian's density) or None (the
        Bernoulli of intensities, a cross-entropy); see
        :func:`elbokit.nn.likelihoods.density_kind`."""
        self._check_fitted()
        return density_kind(self.architecture_.likelihood,
                            self._check_X(X, "X", reset=False))

    def log_likelihood_samples(self, X, *, n_importance: int = 5000, batch_size=None,
                               random_state: int = 0, progress=None, y=None) -> np.ndarray:
        """Importance-sampled log p(x) per row: log 1/k sum_i p(x, z_i)/q(z_i|x),
        z_i ~ q(z|x) (the IWAE bound with k = ``n_importance``), batched over data and
        samples so memory is bounded for any k; ``progress(rows_done)`` if given. A
        conditional model's log p(x|y), with q(z|x, y) and p(x|z, y)."""
        from ..evaluate import check_importance
        from .importance import importance_log_likelihood

        n_importance = check_importance(n_importance, "n_importance")
        batch_size = check_int(batch_size, "batch_size", minimum=1, allow_none=True)
        x = self._input(X, y)
        generator = self._generator(random_state)
        values = importance_log_likelihood(self.model_, x, n_importance,
                                           batch_size=batch_size, generator=generator,
                                           progress=progress)
        return values.cpu().numpy()

    def elbo_samples(self, X, *, n_samples: int = 1, random_state: int = 0,
                     y=None) -> np.ndarray:
        """The ELBO L_B per row (nats): :meth:`elbo` with estimator ``"b"``."""
        return self.elbo(X, "b", n_samples=n_samples, random_state=random_state, y=y)
