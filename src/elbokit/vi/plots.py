"""The ARD figure of a fitted :class:`~elbokit.vi.VBPCA` (drawn by
:func:`elbokit.plots.relevance_figure`)."""

from __future__ import annotations

import os


def plot_relevance(model, path: str | os.PathLike, *, title: str | None = None) -> None:
    """Save a PNG of E[alpha_i] per component (log scale), active components in
    colour, with each component's activity threshold ``alpha_threshold_`` marked
    (the model's ``relevance()``).

    Small E[alpha_i] means a relevant direction: the prior lets w_i be large."""
    from ..plots import relevance_figure

    relevance_figure(model.relevance(), path, title=title)
