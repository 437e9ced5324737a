"""The ARD figure of a fitted :class:`~elbokit.vi.VBPCA` (matplotlib, Agg, atomic)."""

from __future__ import annotations

import os

import numpy as np

from ..persistence import atomic_write_with


def plot_relevance(model, path: str | os.PathLike, *, title: str | None = None) -> None:
    """Save a PNG of E[alpha_i] per component (log scale), active components in
    colour, with each component's activity threshold ``alpha_threshold_`` marked.

    Small E[alpha_i] means a relevant direction: the prior lets w_i be large."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alpha = np.asarray(model.alpha_)
    index = np.arange(1, alpha.size + 1)
    active = np.zeros(alpha.size, dtype=bool)
    active[np.asarray(model.active_components_, dtype=int)] = True
    fig, ax = plt.subplots(figsize=(max(4.0, 0.18 * alpha.size + 2.0), 3.2))
    ax.bar(index[active], alpha[active], color="tab:blue",
           label=f"active ({int(active.sum())})")
    ax.bar(index[~active], alpha[~active], color="lightgrey",
           label=f"switched off ({int((~active).sum())})")
    ax.plot(index, model.alpha_threshold_, "k_", markersize=8, label="threshold")
    ax.set_yscale("log")
    ax.set_xlabel("component (sorted by E[alpha])")
    ax.set_ylabel("E[alpha_i]  (ARD precision)")
    ax.set_title(title or f"VBPCA relevance: {int(active.sum())} of {alpha.size} components")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
