"""Figures of "how many factors?" and "which components matter?": the scree of Horn's
(1965) parallel analysis, drawn as psych's ``fa.parallel`` draws it, and VBPCA's ARD
relevance per component."""

from __future__ import annotations

import os

import numpy as np

from ._base import _finish_chart, _pyplot, _save

MAX_SHOWN = 50  # eigenvalues drawn at most (the leading ones)


def parallel_scree_figure(result, path, *, title: str | None = None) -> dict:
    """Draw the parallel-analysis scree of ``result`` (an
    :class:`~elbokit.linear.NFactorsResult` of method "parallel") and write it to
    ``path`` (PNG, atomically).

    The observed eigenvalues (dots), the mean of the random ones (dashed) and their
    upper quantile (dotted) against the factor index, the suggested count marked.
    Returns what was drawn: ``n_factors``, ``index``, ``observed``, ``reference`` (the
    random mean) and ``above`` (the indices whose observed eigenvalue exceeds it)."""
    from ..exceptions import ParameterError

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
    _finish_chart(fig, ax, path)
    return {"n_factors": result.n_factors, "index": index, "observed": observed,
            "reference": mean, "above": index[observed > mean]}


def relevance_figure(relevance: dict, path: str | os.PathLike, *,
                     title: str | None = None) -> None:
    """Save a PNG of E[alpha_i] per component (log scale), active components in
    colour, with each component's activity threshold marked. ``relevance``: a
    model's ``relevance()`` (``alpha``, ``threshold``, ``active``).

    Small E[alpha_i] means a relevant direction: the prior lets w_i be large."""
    plt = _pyplot()
    alpha = np.asarray(relevance["alpha"])
    index = np.arange(1, alpha.size + 1)
    active = np.zeros(alpha.size, dtype=bool)
    active[np.asarray(relevance["active"], dtype=int)] = True
    fig, ax = plt.subplots(figsize=(max(4.0, 0.18 * alpha.size + 2.0), 3.2))
    ax.bar(index[active], alpha[active], color="tab:blue",
           label=f"active ({int(active.sum())})")
    ax.bar(index[~active], alpha[~active], color="lightgrey",
           label=f"switched off ({int((~active).sum())})")
    ax.plot(index, relevance["threshold"], "k_", markersize=8, label="threshold")
    ax.set_yscale("log")
    ax.set_xlabel("component (sorted by E[alpha])")
    ax.set_ylabel("E[alpha_i]  (ARD precision)")
    ax.set_title(title or f"VBPCA relevance: {int(active.sum())} of {alpha.size} components")
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path, dpi=100)
