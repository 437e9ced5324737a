"""The report's pages for linear-Gaussian models on tables: the factor solution as
``psych``'s ``print(fa, cut=0.3, sort=TRUE)`` shows it (a numeric loadings table,
sorted by factor, small loadings blanked, h2, u2 and complexity per item; SS loadings
and variance explained per factor), the factor correlations of an oblique rotation,
and the fit statistics (chi-square, dof, p, RMSEA with its 90% interval, TLI, BIC).

Everything is read through the model protocol
(:class:`elbokit.protocol.LinearGaussianModel`: ``loading_matrix()`` and
``noise_variances()``, W and Psi in the data's units, ``factor_solution()``,
``fitted_rotation``), put on the correlation scale by
:func:`elbokit.linear._interpret.standardized_loadings` and rotated by
:func:`elbokit.linear._interpret.factor_solution`.
"""

from __future__ import annotations

import html
import math

import numpy as np

from .linear._interpret import sorted_items
from .linear.rotations import ROTATIONS

REPORT_ROTATIONS = ("fitted", "none") + ROTATIONS
DEFAULT_CUT = 0.3  # psych's print(fa, cut=0.3): smaller loadings are left blank
TOP_FEATURES = 10  # the report's table of the features that load most on each factor


def factor_solution_of(model, rotation: str = "fitted", *, normalize: bool = True):
    """``(solution, how)``: the model's factor solution on the correlation scale
    (:class:`~elbokit.linear.FactorSolution`) and a phrase saying how it was rotated.

    ``rotation``: ``"fitted"`` (the model's own ``factor_solution()``: its rotation
    setting, else unrotated), ``"none"``, or one of
    :data:`elbokit.linear.rotations.ROTATIONS`; with one factor there is nothing to
    rotate and the solution is unrotated. ``normalize``: Kaiser's row normalization
    (for ``"fitted"``, the model's own setting). Factors are reflected (positive column
    sums) and ordered by variance explained in every case."""
    from .linear._interpret import factor_solution, standardized_loadings

    if rotation == "fitted":
        solution = model.factor_solution()
        return solution, _how(solution.rotation, model.rotation_normalize)
    W, psi = model.loading_matrix(), model.noise_variances()
    method = None if rotation == "none" or W.shape[1] < 2 else rotation
    solution = factor_solution(standardized_loadings(W, psi), method, normalize=normalize)
    if method is None and model.fitted_rotation is not None:
        return solution, f"not rotated further: the {model.fitted_rotation} basis of the fit"
    return solution, _how(method, normalize)


def _how(method: str | None, normalize: bool) -> str:
    if method is None:
        return "unrotated"
    return f"{method}-rotated{' (Kaiser-normalized)' if normalize else ''}"


def _number(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def loadings_table(solution, names, *, cut: float = DEFAULT_CUT) -> str:
    """The pattern loadings as an HTML table: items sorted by factor
    (:func:`sorted_items`), loadings with ``|l| < cut`` blank, then h2, u2 and
    Hoffman's complexity per item, and the SS loadings, proportion and cumulative
    variance per factor below."""
    L = solution.loadings.shape[1]
    head = "".join(f"<th>F{k + 1}</th>" for k in range(L))
    rows = []
    for j in sorted_items(solution.loadings):
        cells = "".join(
            f"<td>{_number(v) if abs(v) >= cut else ''}</td>" for v in solution.loadings[j])
        rows.append(f"<tr><td>{html.escape(str(names[j]))}</td>{cells}"
                    f"<td>{_number(solution.communalities[j])}</td>"
                    f"<td>{_number(solution.uniquenesses[j])}</td>"
                    f"<td>{_number(solution.complexity[j], 1)}</td></tr>")
    for label, values in (("SS loadings", solution.ss_loadings),
                          ("Proportion Var", solution.proportion_variance),
                          ("Cumulative Var", solution.cumulative_variance)):
        cells = "".join(f"<td>{_number(v)}</td>" for v in values)
        rows.append(f"<tr><th>{label}</th>{cells}<td></td><td></td><td></td></tr>")
    return (f'<table class="loadings"><tr><th>item</th>{head}<th>h2</th><th>u2</th>'
            f"<th>com</th></tr>{''.join(rows)}</table>")


def top_features_table(solution, names, n: int = TOP_FEATURES) -> str:
    """The ``n`` features of largest absolute loading on each factor, with sign, a
    column per factor (:func:`elbokit.linear._interpret.top_features`: what
    ``top_features(n)`` returns in Python)."""
    from .linear._interpret import top_features

    top = top_features(solution.loadings, names, n)
    head = "".join(f"<th>{factor}</th>" for factor in top)
    rows = "".join(
        f"<tr><td>{rank + 1}</td>" + "".join(
            f"<td>{html.escape(rows[rank][0])} ({rows[rank][1]:+.2f})</td>"
            for rows in top.values()) + "</tr>"
        for rank in range(min(n, solution.loadings.shape[0])))
    return f'<table class="top-features"><tr><th></th>{head}</tr>{rows}</table>'


def correlations_table(solution) -> str:
    """The factor correlation matrix Phi as an HTML table (empty for orthogonal or
    unrotated solutions, whose Phi is the identity)."""
    if not solution.oblique:
        return ""
    L = solution.factor_correlation.shape[0]
    head = "".join(f"<th>F{k + 1}</th>" for k in range(L))
    rows = "".join(f"<tr><th>F{i + 1}</th>"
                   + "".join(f"<td>{_number(v)}</td>" for v in solution.factor_correlation[i])
                   + "</tr>" for i in range(L))
    return f'<table class="factor-correlations"><tr><th></th>{head}</tr>{rows}</table>'


def fit_statistics_of(model, X):
    """``(FitStatistics or None, note)``: the fit of a factor-analysis model (a noise
    variance per feature) to the rows ``X`` it was fitted on: the model's own
    :func:`elbokit.linear.fit_statistics` of the rows' covariance (divisor n, as
    ``FactorAnalysis.fit_statistics``; pairwise over the observed entries when some are
    missing, as psych's default "pairwise") and the model covariance
    ``get_covariance()``."""
    from .exceptions import ElbokitError
    from .linear import fit_statistics

    if np.ndim(model.noise_variance_) != 1:
        return None, ""  # isotropic noise (PCA, PPCA, ...): not the factor model tested
    X = np.asarray(X, dtype=np.float64)
    L = int(np.shape(model.components_)[0])
    note = ""
    try:
        if np.isnan(X).any():
            import pandas

            S = pandas.DataFrame(X).cov(ddof=0).to_numpy()
            note = ("the fit statistics use the covariance of the training rows pairwise "
                    "over their observed entries (some are missing)")
        else:  # as FactorAnalysis.fit_statistics
            Xc = X - X.mean(axis=0)
            S = Xc.T @ Xc / X.shape[0]
        stats = fit_statistics(S, np.asarray(model.get_covariance(), dtype=np.float64),
                               X.shape[0], L)
    except (ElbokitError, np.linalg.LinAlgError, ValueError) as exc:
        return None, f"no fit statistics: {str(exc).splitlines()[0] if str(exc) else exc}"
    return stats, "; ".join(part for part in (note, stats.note) if part)


def fit_statistics_table(stats) -> str:
    """The fit statistics as a one-row HTML table."""
    lo, hi = stats.rmsea_ci
    cells = {"n": str(stats.n_samples), "chi-square": _number(stats.chi_square),
             "dof": f"{stats.dof:g}", "p": _p_value(stats.p_value),
             "RMSEA": _number(stats.rmsea, 3),
             "RMSEA 90% CI": f"{_number(lo, 3)} - {_number(hi, 3)}",
             "TLI": _number(stats.tli, 3), "BIC": _number(stats.bic, 1),
             "AIC": _number(stats.aic, 1), "log-likelihood": _number(stats.loglike, 1)}
    head = "".join(f"<th>{html.escape(k)}</th>" for k in cells)
    body = "".join(f"<td>{html.escape(v)}</td>" for v in cells.values())
    return f'<table class="fit-statistics"><tr>{head}</tr><tr>{body}</tr></table>'


def _p_value(p: float) -> str:
    if math.isnan(p):
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def factor_section(model, X_train, names, *, rotation: str = "fitted",
                   normalize: bool = True, cut: float = DEFAULT_CUT) -> str:
    """The HTML of the factor solution, its correlations and its fit statistics for a
    linear-Gaussian model fitted on the rows ``X_train``; empty for a model without
    factors (a VBPCA that switched every component off)."""
    if np.shape(model.components_)[0] == 0:
        return ""
    solution, how = factor_solution_of(model, rotation, normalize=normalize)
    parts = [f"<h3>factor solution ({html.escape(how)})</h3>",
             f"<p>standardized pattern loadings (the correlation scale); |loading| &lt; "
             f"{cut:g} left blank; items sorted by the factor they load most on; h2: "
             "communality, u2 = 1 - h2: uniqueness, com: Hoffman's complexity</p>",
             loadings_table(solution, names, cut=cut)]
    if solution.loadings.shape[0] > TOP_FEATURES:
        parts += [f"<h3>top {TOP_FEATURES} features per factor</h3>",
                  "<p>largest absolute loading first, with its sign (the table above, "
                  "by factor; <code>top_features(n)</code> in Python)</p>",
                  top_features_table(solution, names)]
    if not solution.converged:
        parts.append("<p><b>warning:</b> the rotation did not converge</p>")
    if solution.oblique:
        parts += ["<h3>factor correlations</h3>", correlations_table(solution)]
    stats, note = fit_statistics_of(model, X_train)
    if stats is not None:
        parts += ["<h3>fit statistics</h3>", fit_statistics_table(stats)]
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    return "".join(parts)
