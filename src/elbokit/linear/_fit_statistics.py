"""Fit statistics of a factor model as R's ``factanal`` and ``psych::fa`` report them:
the likelihood-ratio chi-square with Bartlett's correction, RMSEA with its 90%
interval, the Tucker-Lewis index, AIC/BIC, and the two tests run before factoring
(Kaiser-Meyer-Olkin sampling adequacy, Bartlett's sphericity). numpy/scipy only;
exported by ``elbokit.linear``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .._validation import check_int
from ..exceptions import DataError, ParameterError

#: psych::fa's alpha: the RMSEA interval is the 1 - 0.1 = 90% one
RMSEA_ALPHA = 0.1


def factor_dof(n_features: int, n_factors: int) -> float:
    """Degrees of freedom of the L-factor model against the saturated one,
    ((d - L)^2 - (d + L)) / 2 = d(d-1)/2 - dL + L(L-1)/2 (factanal, psych)."""
    d, L = n_features, n_factors
    return ((d - L) ** 2 - (d + L)) / 2.0


def n_free_parameters(n_features: int, n_factors: int) -> int:
    """Free parameters of the L-factor covariance model, d L + d - L (L - 1) / 2
    (loadings and uniquenesses, less the rotation's L(L-1)/2); the mean's d
    parameters are *not* counted (they are the same for every L)."""
    d, L = n_features, n_factors
    return d * L + d - L * (L - 1) // 2


def _logdet(M: np.ndarray, name: str) -> float:
    sign, logdet = np.linalg.slogdet(M)
    if sign <= 0 or not np.isfinite(logdet):
        raise DataError(f"{name} is not positive definite (singular or indefinite); the fit "
                        "statistics need n_samples > n_features and no collinear columns")
    return float(logdet)


def ml_discrepancy(S: np.ndarray, Sigma: np.ndarray) -> float:
    """The ML discrepancy F = log det Sigma - log det S + tr(Sigma^-1 S) - d, which
    ``factanal`` minimizes (its ``criteria["objective"]``); n F is the likelihood-ratio
    statistic 2 (log L_saturated - log L_model) with the ML covariance S (divisor n)."""
    d = S.shape[0]
    trace = float(np.trace(np.linalg.solve(Sigma, S)))
    return _logdet(Sigma, "Sigma") - _logdet(S, "S") + trace - d


def gaussian_loglike(S: np.ndarray, Sigma: np.ndarray, n_samples: int) -> float:
    """Total log-likelihood (nats) of n rows with ML covariance S (divisor n) under
    N(xbar, Sigma): -n/2 (d log 2 pi + log det Sigma + tr(Sigma^-1 S))."""
    d = S.shape[0]
    trace = float(np.trace(np.linalg.solve(Sigma, S)))
    return -0.5 * n_samples * (d * np.log(2 * np.pi) + _logdet(Sigma, "Sigma") + trace)


def rmsea_interval(chi_square: float, dof: float, n_samples: int,
                   alpha: float = RMSEA_ALPHA) -> tuple[float, float]:
    """psych's RMSEA interval (fa.stats, after Hao Wu): the noncentrality lambda with
    P(chi2_dof(lambda) <= chi_square) = alpha/2 (upper) or 1 - alpha/2 (lower), each 0
    when even lambda = 0 is below that, and RMSEA_bound = sqrt(lambda / ((n - 1) dof))."""
    tail = alpha / 2.0
    top = max(n_samples, chi_square) + 2.0 * n_samples  # psych's search interval [0, top]

    def bound(level: float) -> float:
        if stats.chi2.cdf(chi_square, dof) <= level:
            return 0.0
        def gap(ncp: float) -> float:
            return float(stats.ncx2.cdf(chi_square, dof, ncp)) - level

        if gap(top) > 0:
            return np.nan  # psych: "could not find the RMSEA bound"
        return float(np.sqrt(optimize.brentq(gap, 0.0, top, xtol=1e-12)
                             / ((n_samples - 1) * dof)))

    return bound(1.0 - tail), bound(tail)


@dataclass(frozen=True)
class FitStatistics:
    """Goodness of fit of an L-factor model (see :func:`fit_statistics`).

    ``aic`` and ``bic`` are likelihood-based, -2 log L + 2k and -2 log L + k log n with
    k = dL + d - L(L-1)/2 (the mean's d parameters not counted), so that differences
    between models agree with scikit-learn's convention up to that constant d.
    psych's "BIC" is ``chi_square - dof log n``: the likelihood BIC of the model minus
    that of the saturated model (k_saturated - k = dof), with the Bartlett-corrected
    chi-square in place of the likelihood ratio; it is :attr:`psych_bic`.
    """

    chi_square: float
    dof: float
    p_value: float
    rmsea: float
    rmsea_ci: tuple[float, float]
    tli: float
    null_chi_square: float
    null_dof: float
    loglike: float
    aic: float
    bic: float
    n_samples: int
    n_factors: int
    objective: float
    note: str = ""

    @property
    def psych_bic(self) -> float:
        """psych::fa's BIC, chi_square - dof log n (nan when dof <= 0)."""
        if self.dof <= 0:
            return float("nan")
        return self.chi_square - self.dof * np.log(self.n_samples)


def _check_pair(S, Sigma) -> tuple[np.ndarray, np.ndarray]:
    S, Sigma = np.asarray(S, dtype=np.float64), np.asarray(Sigma, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape != Sigma.shape:
        raise DataError(f"S and Sigma must be square matrices of the same shape; got {S.shape} "
                        f"and {Sigma.shape}")
    if not (np.all(np.isfinite(S)) and np.all(np.isfinite(Sigma))):
        raise DataError("S and Sigma must be finite (no NaN or inf)")
    return S, Sigma


def fit_statistics(S, Sigma, n_samples: int, n_factors: int) -> FitStatistics:
    """Fit statistics of the model covariance ``Sigma`` for the sample covariance ``S``.

    Parameters
    ----------
    S : (d, d) sample covariance (divisor n) or correlation matrix.
    Sigma : (d, d) model covariance on the same scale, W W' + Psi (or Lambda Phi
        Lambda' + diag(u2) on the correlation scale). Every statistic but ``loglike``,
        ``aic`` and ``bic`` is unchanged by rescaling the features.
    n_samples : int, the rows the fit saw.
    n_factors : int, L.

    Notes
    -----
    - chi-square as ``factanal``: (n - 1 - (2d + 5)/6 - 2L/3) F with F the ML
      discrepancy (:func:`ml_discrepancy`), floored at 0 (Bartlett 1950); dof =
      ((d - L)^2 - (d + L))/2; p-value from chi2(dof). For dof <= 0 the p-value, RMSEA
      and TLI are nan and ``note`` says why.
    - RMSEA as ``psych::fa`` (fa.stats): sqrt(max(F/dof - 1/(n - 1), 0)), i.e. from the
      *uncorrected* (n - 1) F, so it is 0 exactly when (n - 1) F <= dof; its 90%
      interval inverts the noncentral chi-square at the *corrected* chi-square
      (:func:`rmsea_interval`); a bound that falls on the wrong side of the estimate is
      nan, as psych reports NA.
    - TLI as psych: (M0 - Mm)/(M0 - 1/m), M0 = F0/(d(d-1)/2) with F0 the discrepancy of
      the null (diagonal) model, Mm = F/dof, m the Bartlett multiplier above; the null
      chi-square is F0 (n - 1 - (2d + 5)/6), on d(d-1)/2 dof.
    - psych evaluates F with the model's diagonal replaced by S's; at an ML solution
      they agree (diag Sigma = diag S), elsewhere this function uses Sigma as given.
    """
    S, Sigma = _check_pair(S, Sigma)
    n = check_int(n_samples, "n_samples", minimum=2)
    d = S.shape[0]
    L = check_int(n_factors, "n_factors", minimum=0)
    if L > d:
        raise ParameterError(f"n_factors={L} exceeds the {d} features")
    F = ml_discrepancy(S, Sigma)
    dof = factor_dof(d, L)
    multiplier = n - 1 - (2 * d + 5) / 6.0 - 2.0 * L / 3.0
    chi_square = max(F * multiplier, 0.0)
    F0 = _logdet(np.diag(np.diag(S)), "diag(S)") - _logdet(S, "S")  # the null model's F
    null_dof = d * (d - 1) / 2.0
    loglike = gaussian_loglike(S, Sigma, n)
    k = n_free_parameters(d, L)
    note, nan = "", float("nan")
    if dof > 0:
        p_value = float(stats.chi2.sf(chi_square, dof))
        rmsea = float(np.sqrt(max(F / dof - 1.0 / (n - 1), 0.0)))
        lower, upper = rmsea_interval(chi_square, dof, n)
        lower = nan if lower > rmsea else lower
        upper = nan if upper < rmsea else upper
        tli = ((F0 / null_dof - F / dof) / (F0 / null_dof - 1.0 / multiplier)
               if null_dof > 0 else nan)
    else:
        p_value, rmsea, lower, upper, tli = nan, nan, nan, nan, nan
        note = (f"{L} factors for {d} features leave {dof:g} degrees of freedom: the model "
                "is saturated or not identified, so no test of fit")
    return FitStatistics(
        chi_square=float(chi_square), dof=float(dof), p_value=p_value, rmsea=rmsea,
        rmsea_ci=(lower, upper), tli=float(tli),
        null_chi_square=float(F0 * (n - 1 - (2 * d + 5) / 6.0)), null_dof=null_dof,
        loglike=loglike, aic=-2.0 * loglike + 2.0 * k, bic=-2.0 * loglike + k * np.log(n),
        n_samples=n, n_factors=L, objective=float(F), note=note)


def _check_correlation(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2:
        raise DataError(f"R must be a square correlation matrix with at least 2 rows; got "
                        f"shape {R.shape}")
    if not np.all(np.isfinite(R)):
        raise DataError("R must be finite (no NaN or inf)")
    return R


def kmo(R) -> tuple[float, np.ndarray]:
    """Kaiser-Meyer-Olkin sampling adequacy (Kaiser 1970; Kaiser & Rice 1974).

    With the partial correlations P_ij = -Q_ij / sqrt(Q_ii Q_jj), Q = R^-1:
    KMO_j = sum_{i != j} r_ij^2 / (sum_{i != j} r_ij^2 + sum_{i != j} p_ij^2), and the
    overall KMO the same ratio summed over every off-diagonal pair. Returns
    ``(overall, per_item)``; below 0.6 is conventionally called inadequate.
    """
    R = _check_correlation(R)
    _logdet(R, "R")
    Q = np.linalg.inv(R)
    root = np.sqrt(np.diag(Q))
    P = -Q / np.outer(root, root)
    off = ~np.eye(R.shape[0], dtype=bool)
    r2 = np.where(off, R**2, 0.0)
    p2 = np.where(off, P**2, 0.0)
    per_item = r2.sum(axis=0) / (r2.sum(axis=0) + p2.sum(axis=0))
    overall = float(r2.sum() / (r2.sum() + p2.sum()))
    return overall, per_item


def bartlett_sphericity(R, n_samples: int) -> tuple[float, float, float]:
    """Bartlett's (1951) test that the population correlation matrix is I:
    chi2 = -(n - 1 - (2d + 5)/6) log det R on d(d - 1)/2 degrees of freedom.
    Returns ``(chi_square, dof, p_value)``."""
    R = _check_correlation(R)
    n = check_int(n_samples, "n_samples", minimum=2)
    d = R.shape[0]
    chi_square = -(n - 1 - (2 * d + 5) / 6.0) * _logdet(R, "R")
    dof = d * (d - 1) / 2.0
    return float(chi_square), dof, float(stats.chi2.sf(chi_square, dof))
