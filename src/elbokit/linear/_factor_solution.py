"""What :class:`~elbokit.linear.FactorAnalysis` reports besides its density: the
rotated solution on the correlation scale (psych's and factanal's loadings, factor
correlations, h2, u2), factor scores, fit statistics and bootstrap standard errors.

The density is that of z ~ N(0, I): the estimator keeps ``components_`` (L, d) in
that basis, diag(s) Lambda C with Lambda the standardized pattern, s the model's sd
of each feature and C the Cholesky factor of the factor correlations Phi (C = I for
unrotated and orthogonal solutions). Since (Lambda C)(Lambda C)' = Lambda Phi Lambda'
= A A', a rotation never changes a density; ``transform`` returns the rotated
(possibly correlated) factors f = C z.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.utils.validation import check_is_fitted

from .._warn import warn
from .._validation import check_choice
from ..exceptions import DataError, ModelFileError, ParameterError
from ._bootstrap import bootstrap_solutions
from ._fit_statistics import FitStatistics, factor_dof, fit_statistics, n_free_parameters
from ._interpret import (FactorSolution, describe_solution, factor_scores, factor_solution,
                         standardized_loadings)
from .rotations import ROTATIONS


class FactorSolutionMixin:
    """Rotation and interpretation for FactorAnalysis (see the module docstring).

    Uses the estimator's ``rotation`` (None or one of
    :data:`~elbokit.linear.rotations.ROTATIONS`) and ``normalize`` (Kaiser's)."""

    def _check_rotation(self, n_factors: int, n_features: int) -> None:
        """Refuse a rotation the fit cannot do (before any work); warn, as R's factanal
        would refuse it, when L factors leave negative degrees of freedom."""
        d = n_features
        if self.n_components is not None and factor_dof(d, n_factors) < 0:
            most = max(L for L in range(d + 1) if factor_dof(d, L) >= 0)
            warn(f"FactorAnalysis: {n_factors} factors for {d} features leave "
                 f"{factor_dof(d, n_factors):g} degrees of freedom: more free parameters "
                 f"than the covariance has entries (R's factanal refuses more than "
                 f"{most} factors here); the likelihood is still exact", UserWarning)
        if self.rotation is None:
            return
        check_choice(self.rotation, "rotation", set(ROTATIONS))
        if n_factors < 2:
            raise ParameterError(f"rotation={self.rotation!r} needs at least 2 factors; got "
                                 f"{n_factors} (use rotation=None)")

    def _rotate(self, W: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """Rotate and align the fitted loadings W (d, L; the model's units), store
        ``factor_correlation_`` and ``rotation_matrix_`` and return the loadings in
        the z ~ N(0, I) basis, diag(s) Lambda C (W W' unchanged)."""
        scale = np.sqrt(np.sum(W**2, axis=1) + psi)  # the model's sd of each feature
        solution = factor_solution(standardized_loadings(W, psi), self.rotation,
                                   normalize=self.normalize)
        self.factor_correlation_ = solution.factor_correlation
        self.rotation_matrix_ = solution.rotation_matrix
        return scale[:, None] * solution.loadings @ self._factor_cholesky()

    def _check_loaded(self) -> None:
        """Called by :func:`elbokit.persistence.load_estimator`: Phi must be an L x L
        correlation matrix (symmetric, unit diagonal, positive definite) and T L x L."""
        L = self.n_components_
        phi = np.asarray(self.factor_correlation_)
        ok = (phi.shape == (L, L) and np.shape(self.rotation_matrix_) == (L, L)
              and np.allclose(phi, phi.T) and np.allclose(np.diag(phi), 1.0))
        if ok:
            try:
                linalg.cholesky(phi, lower=True)
            except linalg.LinAlgError:
                ok = False
        if not ok:
            raise ModelFileError(f"the saved factor_correlation_ (shape {phi.shape}) is not a "
                                 f"{L} x {L} correlation matrix, or rotation_matrix_ is not "
                                 f"{L} x {L}; the model files were modified")

    def _factor_cholesky(self) -> np.ndarray:
        """C with C C' = Phi, lower triangular (the identity for orthogonal factors)."""
        return linalg.cholesky(self.factor_correlation_, lower=True)

    def factor_solution(self) -> FactorSolution:
        """The fitted solution on the correlation scale as psych::fa prints it: pattern
        loadings, factor correlations, structure, h2, u2, complexity, SS loadings."""
        check_is_fitted(self)
        W_z = standardized_loadings(self.components_.T, self.noise_variance_)  # Lambda C
        # Lambda = (Lambda C) C^-1, i.e. Lambda' = C^-T (Lambda C)'
        pattern = linalg.solve_triangular(self._factor_cholesky(), W_z.T, lower=True,
                                          trans="T").T
        return describe_solution(pattern, self.factor_correlation_, self.rotation_matrix_,
                                 rotation=self.rotation)

    @property
    def loadings_(self) -> np.ndarray:
        """(d, L) standardized pattern loadings Lambda of the rotated factors (the
        correlation scale; reflected to positive column sums, ordered by variance)."""
        return self.factor_solution().loadings

    @property
    def structure_(self) -> np.ndarray:
        """(d, L) structure matrix Lambda Phi: the correlations of items and factors."""
        return self.factor_solution().structure

    @property
    def communalities_(self) -> np.ndarray:
        """(d,) h2 = diag(Lambda Phi Lambda'), the share of each item's variance that
        the factors explain (0-1 scale)."""
        return self.factor_solution().communalities

    @property
    def uniquenesses_(self) -> np.ndarray:
        """(d,) u2 = 1 - h2 (factanal's "Uniquenesses")."""
        return self.factor_solution().uniquenesses

    @property
    def variance_explained_(self) -> dict:
        """SS loadings, proportion and cumulative proportion of the variance per factor
        (psych's convention: diag(Phi Lambda' Lambda), so oblique factors overlap)."""
        solution = self.factor_solution()
        return {"ss_loadings": solution.ss_loadings,
                "proportion": solution.proportion_variance,
                "cumulative": solution.cumulative_variance}

    # ---- scores
    # transform (regression factor scores) and inverse_transform speak of the rotated
    # factors f = C z, f ~ N(0, Phi): for orthogonal factors f = z
    def _scores_from_latent(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self._factor_cholesky().T  # rows f = C z

    def _latent_from_scores(self, F: np.ndarray) -> np.ndarray:
        return linalg.solve_triangular(self._factor_cholesky(), F.T, lower=True).T  # z

    def factor_scores(self, X, method: str = "regression") -> np.ndarray:
        """Factor scores (n, L) of the rotated factors: ``"regression"`` (Thurstone
        1935; the posterior mean, as ``transform``) or ``"bartlett"`` (Bartlett
        1937; weighted least squares, conditionally unbiased). See
        :func:`elbokit.linear.factor_scores`."""
        check_choice(method, "method", ("regression", "bartlett"))
        if method == "regression":
            return self.transform(X)
        X = self._complete(X, "Bartlett factor scores")
        solution = self.factor_solution()
        sd = np.sqrt(np.diag(self.get_covariance()))  # the model's sd, units of X
        return factor_scores((X - self.mean_) / sd, solution.loadings,
                             solution.factor_correlation, solution.uniquenesses, "bartlett")

    # ---- fit statistics
    def fit_statistics(self, X) -> FitStatistics:
        """Goodness of fit on the rows ``X`` (the training data: the likelihood-ratio
        chi-square with factanal's correction, dof, p-value, RMSEA and its 90%
        interval, TLI, log-likelihood, AIC, BIC); see
        :func:`elbokit.linear.fit_statistics`."""
        X = self._complete(X, "fit statistics")
        Xc = X - X.mean(axis=0)
        S = Xc.T @ Xc / X.shape[0]
        return fit_statistics(S, self.get_covariance(), X.shape[0], self.n_components_)

    def aic(self, X) -> float:
        """Akaike's criterion -2 log L + 2k on ``X`` (lower is better), k = dL + d -
        L(L-1)/2 (the mean's d parameters not counted: the same for every L)."""
        return self._criterion(X, 2.0)

    def bic(self, X) -> float:
        """Schwarz's criterion -2 log L + k log n on ``X`` (lower is better); k as
        :meth:`aic`. psych's "BIC" (chi2 - dof log n) differs by a constant in L."""
        return self._criterion(X, np.log(len(self._complete(X, "BIC"))))

    def _criterion(self, X, penalty: float) -> float:
        k = n_free_parameters(self.n_features_in_, self.n_components_)
        n = len(self._complete(X, "the criterion"))
        return float(-2.0 * self.score(X) * n + penalty * k)

    def _complete(self, X, what: str) -> np.ndarray:
        check_is_fitted(self)
        X = np.asarray(self._validate(X, reset=False), dtype=np.float64)
        if np.isnan(X).any():
            raise DataError(f"{what} need complete rows; X has missing values (NaN): drop "
                            "those rows first")
        return X

    # ---- standard errors
    def standard_errors(self, X, *, n_boot: int = 200, random_state=0) -> dict:
        """Bootstrap standard errors (Efron & Tibshirani 1993) of ``loadings_`` (d, L),
        ``factor_correlation_`` (L, L) and ``uniquenesses_`` (d,): ``n_boot`` refits on
        rows of ``X`` drawn with replacement, each rotated as this fit and its factors
        matched to this fit's by congruence; the standard deviation over replicates."""
        X = self._complete(X, "bootstrap standard errors")
        replicates = bootstrap_solutions(self, X, n_boot, random_state)
        return {name: values.std(axis=0, ddof=1) for name, values in replicates.items()}
