"""Figures of the latent space shared by every kind of data: the scatter of posterior
means, the KL per latent dimension and the training curve."""

from __future__ import annotations

import numpy as np

from ..linear._interpret import complete_rows
from ..protocol import as_model, optional
from ._base import _pyplot, _save, _tick_texts, bar_figure, curves_figure, encode_mean


def latent_scatter_figure(model, X, labels, path, *, label_names=None) -> list[str]:
    """Posterior means coloured by label (first two principal directions if L > 2).

    With ``label_names`` (class names of integer labels) each class gets a legend
    entry; labels that are not integers (a measured target) get a continuous colour
    scale. Returns the legend's entries (none without class names)."""
    plt = _pyplot()
    Z = encode_mean(model, X)
    axis_names = ("z1", "z2")
    if Z.shape[1] > 2:
        Zc = Z - Z.mean(axis=0)
        _, _, vt = np.linalg.svd(Zc, full_matrices=False)
        Z = Zc @ vt[:2].T
        axis_names = ("PC1 of E[z|x]", "PC2 of E[z|x]")
    elif Z.shape[1] == 1:
        Z = np.column_stack([Z[:, 0], np.zeros(len(Z))])
    fig, ax = plt.subplots(figsize=(6, 5))
    continuous = labels is not None and not np.all(np.mod(np.asarray(labels), 1) == 0)
    if labels is not None and label_names is not None and not continuous:
        _scatter_classes(ax, Z, np.asarray(labels).astype(int), list(label_names))
    else:
        if labels is None:
            ax.scatter(Z[:, 0], Z[:, 1], color="C0", s=6, alpha=0.8)
        else:
            scatter = ax.scatter(Z[:, 0], Z[:, 1], c=labels, s=6, alpha=0.8,
                                 cmap="viridis" if continuous else "tab10")
            fig.colorbar(scatter, ax=ax, label="target" if continuous else "label")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title("posterior means")
    legend = ax.get_legend()
    entries = [] if legend is None else _tick_texts(legend.get_texts())
    _save(fig, path)
    return entries


def _scatter_classes(ax, Z, labels, names) -> None:
    """One colour and legend entry per class."""
    for i, value in enumerate(np.unique(labels)):
        name = names[value] if 0 <= value < len(names) else str(value)
        rows = labels == value
        ax.scatter(Z[rows, 0], Z[rows, 1], s=8, alpha=0.8, color=f"C{i % 10}", label=name)
    ax.legend(fontsize=8, markerscale=2)


def common_figures(model, X, labels, out_dir, history, *, label_names=None,
                    kl: bool = True) -> dict:
    """The latent scatter, the KL per latent dimension (``kl``) and the training curve."""
    from ..evaluate import kl_per_dimension

    written = {}
    n_latent = encode_mean(model, X[:1]).shape[1]  # 0 when VBPCA switched off every one
    if n_latent:
        latent_scatter_figure(model, X, labels, out_dir / "latent.png",
                              label_names=label_names)
        written["latent"] = str(out_dir / "latent.png")
    observed = X if not np.isnan(X).any() else complete_rows(X)  # rows with NaN: left out
    # no KL for point codes (the Autoencoder: q(z|x) has no spread, has_density False)
    if kl and n_latent and observed.shape[0] and as_model(model).has_density:
        bar_figure(kl_per_dimension(model, observed), out_dir / "kl_per_dim.png",
                   title="KL(q(z_j|x) || p(z_j)) per dimension", ylabel="nats",
                   layers=optional(model, "latent_layers_"))
        written["kl_per_dim"] = str(out_dir / "kl_per_dim.png")
    if history:
        curves_figure(history, out_dir / "curves.png",
                      title="ELBO per epoch" if isinstance(history[0], dict)
                      else "log-likelihood per EM iteration")
        written["curves"] = str(out_dir / "curves.png")
    return written
