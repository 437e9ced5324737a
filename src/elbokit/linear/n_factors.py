"""How many factors? Horn's parallel analysis, the BIC of maximum-likelihood fits, and
cross-validated log-likelihood, each returning the suggested number and the table
behind it (:func:`suggest_n_factors`). numpy/scipy/scikit-learn only."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold

from .._validation import (check_choice, check_covariance_memory, check_data, check_float,
                           check_int)
from ..exceptions import DataError, ParameterError
from ._fit_statistics import factor_dof, fit_statistics
from .factor_analysis import FactorAnalysis
from ._gaussian import nan_moments
from ._wide import check_wide_covariance

METHODS = ("parallel", "bic", "heldout")


@dataclass(frozen=True)
class NFactorsResult:
    """The suggested number of factors and the table behind it.

    Attributes
    ----------
    n_factors : int, the suggestion.
    method : "parallel", "bic" or "heldout".
    table : dict of equal-length columns (np.ndarray), one row per eigenvalue index
        (parallel) or per candidate number of factors (bic, heldout).
    criterion : the column the choice is read from.
    notes : warnings raised by the fits behind the table (Heywood cases, ...), counted.
    """

    n_factors: int
    method: str
    table: dict
    criterion: str
    notes: tuple = field(default_factory=tuple)

    def to_text(self) -> str:
        """The table as aligned text, the suggestion on the last line."""
        names = list(self.table)
        columns = [np.asarray(self.table[name]) for name in names]
        cells = [[_cell(column, i) for column in columns] for i in range(len(columns[0]))]
        widths = [max(len(name), *(len(row[j]) for row in cells)) for j, name in
                  enumerate(names)]
        lines = ["  ".join(name.rjust(w) for name, w in zip(names, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
        lines += [f"note: {note}" for note in self.notes]
        lines.append(f"suggested number of factors ({self.method}, by {self.criterion}): "
                     f"{self.n_factors}")
        return "\n".join(lines)


def _cell(column: np.ndarray, i: int) -> str:
    """Integer columns as integers, the rest with 4 decimals (or 6 significant digits
    when large); p-values below 1e-4 in scientific notation."""
    value = column[i]
    if column.dtype.kind in "iu":
        return str(int(value))
    if 0 < abs(value) < 1e-4:
        return f"{value:.1e}"
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.6g}"


def _as_matrix(X) -> tuple[np.ndarray, list | None]:
    """A float (n, d) array (NaN kept) and the column names of a DataFrame."""
    names = None
    if hasattr(X, "columns") and hasattr(X, "dtypes"):  # a pandas DataFrame
        names = [str(c) for c in X.columns]
        bad = [str(c) for c, t in zip(X.columns, X.dtypes) if t.kind not in "biuf"]
        if bad:
            raise DataError(f"column(s) {bad[:10]} are not numeric; select the numeric item "
                            "columns before counting factors")
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    X = check_data(X, "X", min_samples=3, allow_nan=True)
    if X.shape[1] < 2:
        raise DataError(f"X has {X.shape[1]} column(s); counting factors needs at least 2")
    _, variances = nan_moments(X)
    constant = np.flatnonzero(~(variances > 0))
    if constant.size:
        which = [names[j] for j in constant] if names else constant.tolist()
        raise DataError(f"constant (or entirely missing) column(s) {which[:10]}: they carry no "
                        "correlation; drop them before counting factors")
    return X, names


def _correlation(X: np.ndarray) -> np.ndarray:
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc
    root = np.sqrt(np.diag(S))
    return S / np.outer(root, root)


def reduced_correlation_eigenvalues(R: np.ndarray) -> np.ndarray:
    """Eigenvalues (decreasing) of R with its diagonal replaced by the squared multiple
    correlations SMC_j = 1 - 1 / (R^-1)_jj, the principal-axis "reduced" correlation
    matrix of psych::fa.parallel(SMC=TRUE)."""
    sign, _ = np.linalg.slogdet(R)
    if sign <= 0:
        raise DataError("the correlation matrix is singular (collinear columns, or no more "
                        "rows than columns): the squared multiple correlations are undefined")
    reduced = R.copy()
    np.fill_diagonal(reduced, 1.0 - 1.0 / np.diag(np.linalg.inv(R)))
    return np.sort(np.linalg.eigvalsh(reduced))[::-1]


def _parallel(X, *, n_iter, quantile, random_state, max_factors) -> NFactorsResult:
    """Horn (1965) parallel analysis on the reduced correlation matrix."""
    n, d = X.shape
    observed = reduced_correlation_eigenvalues(_correlation(X))
    rng = np.random.default_rng(random_state)
    simulated = np.array([reduced_correlation_eigenvalues(
        _correlation(rng.standard_normal((n, d)))) for _ in range(n_iter)])  # (n_iter, d)
    mean = simulated.mean(axis=0)
    q = 0.95 if quantile is None else quantile
    upper = np.quantile(simulated, q, axis=0)
    reference = mean if quantile is None else upper
    below = np.flatnonzero(~(observed > reference))
    count = int(below[0]) if below.size else d
    if max_factors is not None:
        count = min(count, max_factors)
    q_name = f"random_q{100 * q:g}"
    table = {"factor": np.arange(1, d + 1), "observed": observed, "random_mean": mean,
             q_name: upper}
    criterion = "observed > random_mean" if quantile is None else f"observed > {q_name}"
    return NFactorsResult(count, "parallel", table, criterion)


def _dof_limit(d: int) -> int:
    """The largest L with positive degrees of freedom (and L < d)."""
    return max(L for L in range(d) if factor_dof(d, L) > 0 or L == 0)


def _candidates(d: int, max_factors) -> range:
    limit = _dof_limit(d)
    if max_factors is None:
        return range(limit + 1)
    if max_factors > limit:
        raise ParameterError(f"max_factors={max_factors} is too many for {d} features: at "
                             f"most {limit} leave positive degrees of freedom")
    return range(max_factors + 1)


def _fit(X: np.ndarray, L: int):
    """The L-factor ML fit (elbokit.FactorAnalysis); None for L = 0."""
    if L == 0:
        return None
    return FactorAnalysis(n_components=L).fit(X)


def _diagonal_loglike(train: np.ndarray, test: np.ndarray) -> float:
    """Mean per-row log-likelihood of ``test``'s observed entries under the independent
    (0-factor) Gaussian fitted to ``train``'s observed entries."""
    mean, var = nan_moments(train)
    terms = -0.5 * (np.log(2 * np.pi * var) + (test - mean) ** 2 / var)
    return float(np.mean(np.nansum(terms, axis=1)))


def _bic(X, *, max_factors) -> NFactorsResult:
    n, d = X.shape
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / n
    rows = []
    for L in _candidates(d, max_factors):
        model = _fit(X, L)
        Sigma = np.diag(np.diag(S)) if model is None else model.get_covariance()
        stat = fit_statistics(S, Sigma, n, L)
        rows.append((L, stat.dof, stat.loglike, stat.aic, stat.bic, stat.chi_square,
                     stat.p_value, stat.rmsea))
    names = ("n_factors", "dof", "loglike", "aic", "bic", "chi_square", "p_value", "rmsea")
    table = {name: np.array(col) for name, col in zip(names, zip(*rows))}
    table["dof"] = table["dof"].astype(int)
    return NFactorsResult(int(table["n_factors"][np.argmin(table["bic"])]), "bic", table,
                          "min bic")


def _heldout(X, *, max_factors, n_folds, random_state) -> NFactorsResult:
    n, d = X.shape
    if n_folds > n:
        raise ParameterError(f"n_folds={n_folds} exceeds the {n} rows")
    folds = list(KFold(n_folds, shuffle=True, random_state=random_state).split(X))
    candidates = _candidates(d, max_factors)
    scores = np.empty((len(candidates), n_folds))
    for i, L in enumerate(candidates):
        for k, (train, test) in enumerate(folds):
            model = _fit(X[train], L)
            scores[i, k] = (_diagonal_loglike(X[train], X[test]) if model is None
                            else model.score(X[test]))
    table = {"n_factors": np.array(list(candidates)),
             "heldout_loglike": scores.mean(axis=1),
             "heldout_se": scores.std(axis=1, ddof=1) / np.sqrt(n_folds)}
    best = int(table["n_factors"][np.argmax(table["heldout_loglike"])])
    return NFactorsResult(best, "heldout", table, "max heldout_loglike")


def suggest_n_factors(X, method: str = "parallel", *, max_factors: int | None = None,
                      n_iter: int = 20, quantile: float | None = None, random_state=0,
                      n_folds: int = 5) -> NFactorsResult:
    """Suggest the number of common factors of the table ``X`` (n_samples, n_features),
    a numpy array or a pandas DataFrame of numeric columns.

    Parameters
    ----------
    method : {"parallel", "bic", "heldout"}
        - ``"parallel"``: Horn's (1965) parallel analysis as ``psych::fa.parallel
          (fa="fa", SMC=TRUE)``: the eigenvalues of the reduced correlation matrix (squared
          multiple correlations on the diagonal) against those of ``n_iter`` standard
          normal tables of the same shape; the count is the number of leading observed
          eigenvalues above the reference (psych's ``which(!(obs > ref))[1] - 1``). As
          psych, the reference is the *mean* of the simulated eigenvalues unless
          ``quantile`` is given (psych's ``quant``). Where elbokit differs: psych's
          default (SMC=FALSE) puts a one-factor minres fit's communalities on the
          diagonal; SMCs are the classical principal-axis choice and need no fit.
        - ``"bic"``: ML fits (:class:`elbokit.FactorAnalysis`) for L = 0 (the diagonal
          model, in closed form) up to ``max_factors`` (default: the largest L with
          positive degrees of freedom); the minimum of the likelihood BIC
          -2 log L + k log n, k = dL + d - L(L-1)/2 (see
          :class:`elbokit.linear._fit_statistics.FitStatistics`). The table also gives
          AIC, the chi-square test, its p-value and RMSEA.
        - ``"heldout"``: ``n_folds``-fold cross-validated mean log-likelihood per row
          (nats) for the same candidates, the maximum chosen. The only method that
          accepts NaN (missing at random): each held-out row is scored on its observed
          entries, as FactorAnalysis fits them.
        ``"parallel"`` and ``"bic"`` refuse NaN (a one-line DataError).
    max_factors : int or None
        Cap the suggestion (parallel) or the candidates (bic, heldout).
    n_iter : int, random tables for parallel analysis (psych's default 20).
    quantile : float in (0, 1) or None, see "parallel".
    random_state : seed of the random tables and of the folds (reproducible).
    n_folds : int, folds for "heldout".

    Returns
    -------
    NFactorsResult, with ``to_text()`` for the table.
    """
    check_choice(method, "method", METHODS)
    check_int(n_iter, "n_iter", minimum=1)
    check_int(n_folds, "n_folds", minimum=2)
    check_int(max_factors, "max_factors", minimum=0, allow_none=True)
    if quantile is not None:
        check_float(quantile, "quantile", low=0.0, high=1.0, low_inclusive=False)
    X, _ = _as_matrix(X)
    _check_size(*X.shape, method)
    if method != "heldout" and np.isnan(X).any():
        raise DataError(f"X has {int(np.isnan(X).sum())} missing (NaN) value(s); method="
                        f"'{method}' needs complete rows: use method='heldout', or drop or "
                        "impute them")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if method == "parallel":
            result = _parallel(X, n_iter=n_iter, quantile=quantile,
                               random_state=random_state, max_factors=max_factors)
        elif method == "bic":
            result = _bic(X, max_factors=max_factors)
        else:
            result = _heldout(X, max_factors=max_factors, n_folds=n_folds,
                              random_state=random_state)
    return _with_notes(result, caught)


def _check_size(n: int, d: int, method: str) -> None:
    """Refuse, before any d x d matrix is formed, what cannot work or fit: parallel
    analysis on n <= d (its correlation matrix is singular), a wide table whose
    covariance factor analysis would refuse, a covariance larger than memory."""
    if method == "parallel" and n <= d:
        raise DataError(f"parallel analysis needs more rows than columns: the correlation "
                        f"matrix of {n} rows x {d} columns is singular (its squared multiple "
                        "correlations are undefined); use fewer columns")
    check_wide_covariance(n, d, "counting factors")
    check_covariance_memory(d)


def _with_notes(result: NFactorsResult, caught) -> NFactorsResult:
    """Fold the fits' warnings into ``notes`` (one line per kind, with its count)."""
    counts: dict[str, int] = {}
    for w in caught:
        key = f"{w.category.__name__}: {str(w.message).split(':')[0]}"
        counts[key] = counts.get(key, 0) + 1
    notes = tuple(f"{key} (x{count})" for key, count in counts.items())
    return NFactorsResult(result.n_factors, result.method, result.table, result.criterion,
                          notes)
