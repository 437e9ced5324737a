"""Bootstrap standard errors of a factor solution (Efron & Tibshirani 1993, ch. 6;
for factor analysis, Ichikawa & Konishi 1995): refit on rows drawn with replacement,
rotate each refit the same way, match its factors to the full-sample solution (a
factor's sign and position are arbitrary) and take the standard deviation over the
replicates. Honest where the asymptotic formulas are not (non-normal items, Heywood
cases, oblique rotations), at the price of ``n_boot`` refits."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone

from .._validation import check_int


def match_factors(loadings: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column permutation and signs that best match ``loadings`` (d, L) to
    ``target`` (d, L) by Tucker's congruence (the assignment maximizing the total
    absolute congruence); returns ``(order, signs)`` with ``loadings[:, order] * signs``
    aligned to ``target``."""
    norms = np.linalg.norm(loadings, axis=0) * np.linalg.norm(target, axis=0)[:, None]
    congruence = (target.T @ loadings) / np.where(norms > 0, norms, 1.0)  # (L, L)
    _, order = linear_sum_assignment(-np.abs(congruence))
    signs = np.sign(congruence[np.arange(target.shape[1]), order])
    return order, np.where(signs == 0, 1.0, signs)


def bootstrap_solutions(model, X: np.ndarray, n_boot: int, random_state) -> dict:
    """Refit a clone of the fitted ``model`` on ``n_boot`` bootstrap samples of the
    rows of ``X``; return the aligned replicates of its ``loadings_`` (n_boot, d, L),
    ``factor_correlation_`` (n_boot, L, L) and ``uniquenesses_`` (n_boot, d)."""
    n_boot = check_int(n_boot, "n_boot", minimum=2)
    rng = np.random.default_rng(random_state)
    target = model.loadings_
    loadings, phis, uniquenesses = [], [], []
    for _ in range(n_boot):
        rows = rng.integers(0, X.shape[0], X.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Heywood cases of a replicate are expected
            refit = clone(model).set_params(verbose=False).fit(X[rows])
        order, signs = match_factors(refit.loadings_, target)
        loadings.append(refit.loadings_[:, order] * signs)
        phi = refit.factor_correlation_[np.ix_(order, order)]
        phis.append(phi * np.outer(signs, signs))
        uniquenesses.append(refit.uniquenesses_)
    return {"loadings": np.array(loadings), "factor_correlation": np.array(phis),
            "uniquenesses": np.array(uniquenesses)}
