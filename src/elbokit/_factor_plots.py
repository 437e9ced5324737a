"""The figure of "how many factors?": the scree of Horn's (1965) parallel analysis, the
observed eigenvalues of the reduced correlation matrix beside those of random tables of
the same shape (:func:`elbokit.linear.suggest_n_factors`, method "parallel"), drawn as
psych's ``fa.parallel`` draws it. Re-exported by :mod:`elbokit.plots`."""

from __future__ import annotations

import numpy as np

MAX_SHOWN = 50  # eigenvalues drawn at most (the leading ones)


def parallel_scree_figure(result, path, *, title: str | None = None) -> dict:
    """Draw the parallel-analysis scree of ``result`` (an
    :class:`~elbokit.linear.NFactorsResult` of method "parallel") and write it to
    ``path`` (PNG, atomically).

    The observed eigenvalues (dots), the mean of the random ones (dashed) and their
    upper quantile (dotted) against the factor index, the suggested count marked.
    Returns what was drawn: ``n_factors``, ``index``, ``observed``, ``reference`` (the
    random mean) and ``above`` (the indices whose observed eigenvalue exceeds it)."""
    from .exceptions import ParameterError
    from .plots import _pyplot, _save

    if result.method != "parallel":
        raise ParameterError(f"the scree needs a parallel-analysis result; got method "
                             f"{result.method!r}")
    table = result.table
    shown = min(len(table["factor"]), MAX_SHOWN)
    index = np.asarray(table["factor"])[:shown]
    observed = np.asarray(table["observed"], dtype=np.float64)[:shown]
    mean = np.asarray(table["random_mean"], dtype=np.float64)[:shown]
    quantile_name = next(name for name in table if name.startswith("random_q"))
    upper = np.asarray(table[quantile_name], dtype=np.float64)[:shown]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, min(12.0, 0.25 * shown + 3)), 4))
    ax.plot(index, observed, "o-", color="C0", markersize=4, label="data")
    ax.plot(index, mean, "--", color="C3", label="random data (mean)")
    ax.plot(index, upper, ":", color="C3",
            label=f"random data ({quantile_name.removeprefix('random_q')}% quantile)")
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    if result.n_factors:
        ax.axvline(result.n_factors + 0.5, color="0.5", linewidth=1)
    ax.set_xlabel("factor")
    ax.set_ylabel("eigenvalue of the reduced correlation matrix")
    ax.set_title(title or f"parallel analysis: {result.n_factors} factor(s) "
                          f"({result.criterion})", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)
    return {"n_factors": result.n_factors, "index": index, "observed": observed,
            "reference": mean, "above": index[observed > mean]}
