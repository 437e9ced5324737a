"""The model protocol (:mod:`elbokit.protocol`) for the linear-Gaussian models, as one
mixin: x = W z + mu + noise, z ~ N(0, I), so the posterior p(z|x) is an exact Gaussian,
the prior is N(0, I), log p(x) is closed form and every KL is closed form too.

The linear models (PCA, PPCA, FactorAnalysis, the linear autoencoder, VBPCA) inherit
this through ``LinearGaussianMixin`` (``linear/_gaussian.py``), which gives it
``_loadings()``, ``_noise_diag()``, ``_gaussian()``, ``_observed()``, ``_checked_rows()``
and ``posterior_covariance()``.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .. import _math
from ..exceptions import ParameterError
from .._validation import check_int
from ._interpret import factor_solution, standardized_loadings, top_features
from .rotations import ROTATIONS


class LinearProtocolMixin:
    """The protocol's members for x = W z + mu + noise (see :mod:`elbokit.protocol`)."""

    exact_log_likelihood = True  # log p(x) in closed form
    linear_gaussian = True  # loading_matrix(), noise_variances(), get_covariance()
    has_density = True
    conditional = False  # never fitted with labels or covariates
    fit_options: frozenset = frozenset()  # fit(X) takes no training-loop keywords
    binarize = "none"  # the rows are scored as given
    samplers = ("prior",)  # sample(): z ~ N(0, I), x = W z + mu + noise
    n_iter_ = None  # iterations run: None for a closed-form fit (the iterative ones set it)

    @property
    def accepts_missing(self) -> bool:
        """Whether fit takes NaN entries as missing values (with these settings)."""
        return self._allow_nan_now()

    @property
    def latent_dim_(self) -> int:
        """The number of latent dimensions of the fitted model (``n_components_``)."""
        check_is_fitted(self)
        return int(self.n_components_)

    # ---- the posterior
    def posterior_moments(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, L) and per-dimension variance (n, L) of the exact posterior p(z|x)
        (of the probabilistic reading: for PCA and the linear autoencoder this mean
        differs from ``transform``, which returns projections/codes); a row with NaN
        entries gets the posterior given its observed entries."""
        mean, cov = self._posterior(X)
        return mean, np.diagonal(cov, axis1=-2, axis2=-1) * np.ones_like(mean)

    def _posterior(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, L) and covariance of p(z|x): (L, L) shared by the rows, or (n, L, L)
        when some rows have missing entries (each given its observed ones)."""
        X, missing = self._checked_rows(X)
        X = np.asarray(X, dtype=np.float64)
        if missing.any():
            observed = self._observed(X, missing)
            return observed.mean, observed.cov()
        return self._gaussian().posterior_mean(X - self.mean_), self.posterior_covariance()

    def posterior_samples(self, X, n_samples: int, random_state=0) -> np.ndarray:
        """``n_samples`` draws of z from p(z|x) per row, shape (n, k, L)."""
        mean, _ = self.posterior_moments(X)
        chol = np.linalg.cholesky(self.posterior_covariance())
        eps = np.random.default_rng(random_state).standard_normal(
            (mean.shape[0], int(n_samples), mean.shape[1]))
        return mean[:, None, :] + eps @ chol.T

    # ---- the prior p(z) = N(0, I)
    def prior_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation of p(z): 0 and 1, (L,) each."""
        L = self._loadings().shape[1]
        return np.zeros(L), np.ones(L)

    def prior_log_prob(self, Z) -> np.ndarray:
        """log N(z | 0, I) of each row of Z (n, L), in nats, shape (n,)."""
        return _math.diag_gaussian_logpdf(np.asarray(Z, dtype=np.float64), 0.0, 1.0)

    def kl_to_prior(self, X, *, per_dimension: bool = False, n_samples: int = 256,
                    random_state: int = 0, y=None) -> np.ndarray:
        """KL(p(z|x) || N(0, I)) per row, (n,), in closed form:
        1/2 (tr G + m'm - L - log det G) for the posterior N(m, G); with
        ``per_dimension``, KL(p(z_j|x) || N(0, 1)) of each marginal, (n, L).
        ``n_samples`` and ``random_state`` (the Monte Carlo of other priors) do not
        apply; ``y`` is only for conditional models."""
        if y is not None:
            raise ParameterError(f"{type(self).__name__} is not conditional: y does not "
                                 "apply")
        mean, cov = self._posterior(X)
        if per_dimension:
            var = np.diagonal(cov, axis1=-2, axis2=-1) * np.ones_like(mean)
            return _math.kl_diag_gaussian_standard_dims(mean, var)
        _, logdet = np.linalg.slogdet(cov)  # () or (n,)
        trace = np.trace(cov, axis1=-2, axis2=-1)
        return 0.5 * (trace + np.sum(mean**2, axis=1) - mean.shape[1] - logdet)

    # ---- the decoder and the data
    def decode_mean(self, Z) -> np.ndarray:
        """Decoder mean E[x|z] = W z + mu of each row of Z (n, L), shape (n, d)."""
        check_is_fitted(self)
        return np.asarray(Z, dtype=np.float64) @ self._loadings().T + self.mean_

    def reconstruct(self, X) -> np.ndarray:
        """The model's own reconstruction, ``inverse_transform(transform(X))``, (n, d)."""
        return np.asarray(self.inverse_transform(self.transform(X)), dtype=np.float64)

    def log_likelihood_samples(self, X, *, n_importance: int = 5000, batch_size=None,
                               random_state: int = 0, progress=None) -> np.ndarray:
        """Exact log p(x) per row (nats): ``score_samples``; the sampling options of
        the protocol do not apply."""
        return np.asarray(self.score_samples(X), dtype=np.float64)

    def elbo_samples(self, X, *, n_samples: int = 1, random_state: int = 0) -> np.ndarray:
        """The ELBO per row: with the exact posterior as q it equals log p(x)."""
        return np.asarray(self.score_samples(X), dtype=np.float64)

    def check_fit(self, X, what: str = "test", *, reference=None) -> None:
        """Nothing to check: a closed-form or EM fit does not diverge silently."""

    def training_curve(self) -> list | None:
        """The mean log-likelihood per EM iteration (``loglike_``), None without EM."""
        curve = vars(self).get("loglike_")
        return list(curve) if curve is not None and len(curve) else None

    # ---- the linear-Gaussian reading (loadings, noise, factor solution)
    def loading_matrix(self) -> np.ndarray:
        """Loadings W (d, L) in the units of X, x = W z + mu + noise. FA, PPCA and
        VBPCA store W' as ``components_``; PCA and the linear autoencoder store
        orthonormal directions and the variance along them, read as PPCA:
        W = U (Lambda - sigma^2 I)^(1/2) (Tipping & Bishop 1999, eq. 7)."""
        check_is_fitted(self)
        return np.asarray(self._loadings(), dtype=np.float64)

    def noise_variances(self) -> np.ndarray:
        """Noise variance psi_j of each feature in the units of X, (d,) (isotropic
        models repeat one)."""
        check_is_fitted(self)
        d = np.shape(self.components_)[1]
        return np.broadcast_to(np.asarray(self._noise_diag(), dtype=np.float64), (d,)).copy()

    @property
    def fitted_rotation(self) -> str | None:
        """The rotation the model was fitted with (its ``rotation`` setting), or None."""
        rotation = self.get_params().get("rotation")
        return rotation if rotation in ROTATIONS else None

    @property
    def rotation_normalize(self) -> bool:
        """Kaiser's normalization setting of the fitted rotation (True without one)."""
        return bool(self.get_params().get("normalize", True))

    def factor_solution(self):
        """The fitted solution on the correlation scale
        (:class:`~elbokit.linear.FactorSolution`): here the unrotated loadings,
        reflected and ordered by variance explained (FactorAnalysis: its rotation)."""
        W, psi = self.loading_matrix(), self.noise_variances()
        return factor_solution(standardized_loadings(W, psi), None)

    def top_features(self, n: int = 10, *, rotation: str = "fitted",
                     normalize: bool = True) -> dict[str, list[tuple[str, float]]]:
        """The ``n`` features that load most on each factor, with sign:
        ``{"F1": [(name, loading), ...], ...}``, largest absolute loading first, on the
        correlation scale (the standardized pattern loadings of the report's table),
        the factors reflected and ordered by variance explained. ``rotation``: the
        model's own (``"fitted"``), ``"none"`` or any of
        :data:`~elbokit.linear.rotations.ROTATIONS` (``normalize``: Kaiser's). Names
        are ``feature_names_in_`` (x0, x1, ... without); ``pandas.DataFrame`` of
        ``{f: [name for name, _ in rows] for f, rows in top.items()}`` is the table of
        names, factor by column."""
        from .._factor_report import factor_solution_of  # the report's rotation rules

        check_int(n, "n", minimum=1)
        solution, _ = factor_solution_of(self, rotation, normalize=normalize)
        return top_features(solution.loadings, getattr(self, "feature_names_in_", None), n)

    def relevance(self) -> dict | None:
        """The ARD relevance of each component (VBPCA), None for the models without."""
        return None
