"""Figures (matplotlib, Agg backend, PNG written atomically).

Each function takes any fitted model that implements the model protocol
(:class:`elbokit.protocol.LatentVariableModel`: a VAE, a linear-Gaussian model, or a
new kind), read through its latent posterior and decoder mean only, and writes one PNG:
sample grids, reconstructions, latent traversals, the 2-D manifold (Kingma & Welling
2014, fig. 4), latent scatter plots, training curves, per-pixel uncertainty, and bar
charts of per-dimension quantities.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from ._factor_plots import parallel_scree_figure  # noqa: F401  (a figure of this module)
from ._factor_report import REPORT_ROTATIONS as ROTATIONS  # noqa: F401  (report's choices)
from .linear._interpret import (communalities, complete_rows, noise_edge,  # noqa: F401
                                standardized_loadings, whitened_eigenvalues)
from .persistence import atomic_write_with
from .protocol import as_model


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def encode_mean(model, X) -> np.ndarray:
    """Posterior mean of z given each row of X, shape (n, L) (given the observed
    entries of rows with NaN, for the models that accept them)."""
    return as_model(model).posterior_moments(X)[0]


def decode_mean(model, Z) -> np.ndarray:
    """Decoder mean E[x|z] for each row of Z, shape (n, d)."""
    return as_model(model).decode_mean(Z)


def _tile(images: np.ndarray, image_shape, cols: int) -> np.ndarray:
    """Arrange rows of flattened images in a grid with 1-pixel white gaps.
    ``image_shape``: (h, w) for grey rows, (C, h, w) for colour ones (channel first),
    whose canvas is (rows, cols, C)."""
    n = images.shape[0]
    rows = int(np.ceil(n / cols))
    *channels, h, w = image_shape
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, *channels), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        image = images[i].reshape(image_shape)
        if channels:
            image = image.transpose(1, 2, 0)  # (h, w, C)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = \
            image
    return canvas


def grey_shape(image_shape) -> tuple[int, int]:
    """(h, w) of an image shape with or without its channels."""
    return tuple(image_shape[-2:])


def _show(ax, canvas, *, title=None, vmin=0.0, vmax=1.0, cmap="gray_r"):
    if canvas.ndim == 3:  # colour: RGB scaled to [0, 1] from (vmin, vmax), gaps white
        canvas = np.clip((canvas - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
        canvas = np.where(np.isnan(canvas), 1.0, canvas)
        cmap = None
    image = ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return image


def _range(images):
    lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
    return (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)


def image_grid(images: np.ndarray, image_shape, path, *, title: str | None = None) -> None:
    """A square grid of images (n, h*w)."""
    plt = _pyplot()
    cols = int(np.ceil(np.sqrt(images.shape[0])))
    canvas = _tile(images, image_shape, cols)
    fig, ax = plt.subplots(figsize=(min(10, 0.5 * cols + 1.5), min(10, 0.5 * cols + 1.5)))
    vmin, vmax = _range(images)
    _show(ax, canvas, title=title, vmin=vmin, vmax=vmax)
    _save(fig, path)


def samples_figure(model, image_shape, path, *, n: int = 64, random_state: int = 0) -> list[str]:
    """Decoder means of draws from the prior (VAE) or draws from the model (linear);
    beside them, for a VAE with a fitted GMM sampler, the decoder means of draws from
    the Gaussian mixture over its training codes (``sample(sampler="gmm")``). Returns
    the panels' titles."""
    images = model.sample(n, random_state=random_state)
    if not getattr(model, "has_gmm_sampler_", False):
        title = f"{n} samples from the prior"
        image_grid(images, image_shape, path, title=title)
        return [title]
    panels = {f"{n} samples from the prior": images,
              f"{n} samples from the GMM over training codes":
                  model.sample(n, random_state=random_state, sampler="gmm")}
    plt = _pyplot()
    cols = int(np.ceil(np.sqrt(n)))
    side = min(10, 0.5 * cols + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side, side))
    vmin, vmax = _range(np.concatenate(list(panels.values())))
    for ax, (title, grid) in zip(axes, panels.items()):
        _show(ax, _tile(grid, image_shape, cols), title=title, vmin=vmin, vmax=vmax)
    _save(fig, path)
    return list(panels)


MAX_CLASSES_SHOWN = 20  # rows of the per-class sample grid


def class_samples_figure(model, image_shape, path, *, per_class: int = 10,
                         random_state: int = 0, label_names=None, **options) -> None:
    """A conditional VAE's samples, one row per class: decoder means of the same
    draws z (``options``: ``sample``'s, e.g. ``sampler``) decoded with each class's
    label (rows: classes, up to 20)."""
    plt = _pyplot()
    classes = list(model.classes_)[:MAX_CLASSES_SHOWN]
    images = np.vstack([model.sample(per_class, random_state=random_state, y=c, **options)
                        for c in classes])
    names = [str(label_names[c]) if label_names is not None and isinstance(c, (int, np.integer))
             and 0 <= c < len(label_names) else str(c) for c in classes]
    fig, ax = plt.subplots(figsize=(min(10, 0.5 * per_class + 2.5),
                                    min(12, 0.5 * len(classes) + 1)))
    vmin, vmax = _range(images)
    _show(ax, _tile(images, image_shape, per_class),
          title="samples per class (same z in each column)", vmin=vmin, vmax=vmax)
    ax.set_axis_on()
    h = image_shape[0] + 1
    ax.set_yticks([1 + h * i + image_shape[0] / 2 for i in range(len(classes))], names)
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    _save(fig, path)


def conditional_figures(model, dataset, out_dir, *, history=None) -> dict[str, str]:
    """The figures of a VAE conditioned on class labels: the per-class sample grid,
    the test images' reconstructions given their labels, and the training curve."""
    shape = dataset.image_shape
    written = {}
    class_samples_figure(model, shape, out_dir / "samples_by_class.png",
                         label_names=dataset.target_names)
    written["samples_by_class"] = str(out_dir / "samples_by_class.png")
    if dataset.test_labels is not None:
        plt = _pyplot()
        X, y = np.asarray(dataset.test[:16]), dataset.test_labels[:16]
        recon = model.reconstruct(X, y=y)
        fig, axes = plt.subplots(2, 1, figsize=(min(12, 0.6 * len(X) + 1), 2.6))
        vmin, vmax = _range(X)
        _show(axes[0], _tile(X, shape, len(X)), title="originals", vmin=vmin, vmax=vmax)
        _show(axes[1], _tile(recon, shape, len(X)), title="reconstructions given the label",
              vmin=vmin, vmax=vmax)
        _save(fig, out_dir / "reconstructions.png")
        written["reconstructions"] = str(out_dir / "reconstructions.png")
    if history:
        curves_figure(history, out_dir / "curves.png")
        written["curves"] = str(out_dir / "curves.png")
    return written


def reconstructions_figure(model, X, image_shape, path, *, n: int = 16) -> None:
    """Originals (top) beside reconstructions E[x | E[z|x]] (bottom)."""
    plt = _pyplot()
    X = np.asarray(X[:n])
    recon = decode_mean(model, encode_mean(model, X))
    fig, axes = plt.subplots(2, 1, figsize=(min(12, 0.6 * n + 1), 2.6))
    vmin, vmax = _range(X)
    _show(axes[0], _tile(X, image_shape, n), title="originals", vmin=vmin, vmax=vmax)
    _show(axes[1], _tile(recon, image_shape, n), title="reconstructions", vmin=vmin, vmax=vmax)
    _save(fig, path)


def traversals_figure(model, X, image_shape, path, *, dims=None, steps: int = 9,
                      span: float = 2.5) -> None:
    """One row per latent dimension: decode the mean code with z_j swept over
    [-span, span] prior standard deviations about the prior's mean (for a VAE whose
    prior is not N(0, I), its per-dimension mean and std, ``prior_moments``)."""
    plt = _pyplot()
    base = encode_mean(model, X).mean(axis=0)
    L = base.size
    dims = list(range(min(L, 10))) if dims is None else list(dims)[:16]
    if not dims:
        dims = [0]
    center, scale = model.prior_moments() if hasattr(model, "prior_moments") \
        else (np.zeros(L), np.ones(L))
    values = np.linspace(-span, span, steps)
    rows = []
    for j in dims:
        Z = np.repeat(base[None], steps, axis=0)
        Z[:, j] = center[j] + scale[j] * values
        rows.append(decode_mean(model, Z))
    images = np.concatenate(rows)
    fig, ax = plt.subplots(figsize=(min(12, 0.6 * steps + 1.5), 0.6 * len(dims) + 1))
    vmin, vmax = _range(images)
    _show(ax, _tile(images, image_shape, steps),
          title=f"latent traversals, z_j in [-{span}, {span}] (rows: dims {dims})",
          vmin=vmin, vmax=vmax)
    _save(fig, path)


def manifold_figure(model, image_shape, path, *, steps: int = 15) -> None:
    """Kingma & Welling (2014) fig. 4: decoder means on a grid of the 2-D latent
    space, spaced by the inverse CDF of the Gaussian prior."""
    from scipy.stats import norm

    plt = _pyplot()
    grid = norm.ppf(np.linspace(0.05, 0.95, steps))
    Z = np.array([[a, b] for b in grid[::-1] for a in grid])
    images = decode_mean(model, Z)
    fig, ax = plt.subplots(figsize=(8, 8))
    vmin, vmax = _range(images)
    _show(ax, _tile(images, image_shape, steps), title="learned 2-D manifold", vmin=vmin,
          vmax=vmax)
    _save(fig, path)


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


def curves_figure(history: list[dict], path, *, title: str = "ELBO per epoch") -> None:
    """Training and validation ELBO (nats/sample) per epoch, or log-likelihood per
    iteration for EM (a list of floats)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if history and isinstance(history[0], dict):
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        for key, label in (("train_elbo", "train"), ("val_elbo", "validation")):
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("ELBO (nats/sample)")
        ax.legend()
    else:
        ax.plot(np.arange(1, len(history) + 1), history)
        ax.set_xlabel("iteration")
        ax.set_ylabel("log-likelihood (nats/sample)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def uncertainty_figure(model, X, image_shape, path, *, n: int = 8, n_samples: int = 32,
                       random_state: int = 0) -> None:
    """Per-pixel uncertainty: the std of decoder means over posterior samples of z,
    beside the original and the reconstruction (the lecture's "estimate the
    uncertainty" by taking several samples of the latent variables)."""
    plt = _pyplot()
    X = np.asarray(X[:n])
    samples = as_model(model).posterior_samples(X, n_samples, random_state=random_state)
    decoded = decode_mean(model, samples.reshape(-1, samples.shape[-1]))
    decoded = decoded.reshape(X.shape[0], n_samples, -1)
    recon = decode_mean(model, encode_mean(model, X))
    std = decoded.std(axis=1)
    if len(image_shape) == 3:  # colour: the std averaged over the channels, per pixel
        std = std.reshape(X.shape[0], image_shape[0], -1).mean(axis=1)
    fig, axes = plt.subplots(3, 1, figsize=(min(12, 0.8 * n + 1), 3.8))
    vmin, vmax = _range(X)
    _show(axes[0], _tile(X, image_shape, n), title="originals", vmin=vmin, vmax=vmax)
    _show(axes[1], _tile(recon, image_shape, n), title="reconstructions", vmin=vmin, vmax=vmax)
    image = _show(axes[2], _tile(std, grey_shape(image_shape), n),
                  title=f"per-pixel std over {n_samples} posterior samples", vmin=0.0,
                  vmax=max(float(std.max()), 1e-12), cmap="magma")
    fig.colorbar(image, ax=axes[2], fraction=0.02)
    _save(fig, path)


def bar_figure(values, path, *, title: str, ylabel: str, log: bool = False,
               threshold: float | None = None) -> None:
    """A bar per latent dimension (KL per dimension, activity, ARD precisions)."""
    plt = _pyplot()
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(4, 0.3 * values.size + 2), 3.5))
    ax.bar(np.arange(1, values.size + 1), values, color="C0")
    if threshold is not None:
        ax.axhline(threshold, color="C3", linestyle="--", label=f"threshold {threshold:g}")
        ax.legend()
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _save(fig, path)


def all_figures(model, dataset, out_dir: str | os.PathLike, *, history=None) -> dict[str, str]:
    """Write every figure that applies to ``model`` on ``dataset`` into ``out_dir``;
    returns {name: path}. Data that are not images (``dataset.image_shape`` None) get
    the figures of :func:`table_figures` and no image grids."""
    from pathlib import Path

    from .evaluate import active_units

    out_dir = Path(out_dir)
    if dataset.image_shape is None:
        figures = table_figures(model, dataset, out_dir, history=history)
        return {name: figure.path for name, figure in figures.items()}
    if getattr(getattr(model, "architecture_", None), "conditional", False):
        if getattr(model, "classes_", None) is None:  # covariates: no per-class grid
            return {}
        return conditional_figures(model, dataset, out_dir, history=history)
    X = dataset.test[:2000]
    channels = getattr(dataset, "channels", 1)
    shape = dataset.image_shape if channels == 1 else (channels, *dataset.image_shape)
    figures = {
        "samples": lambda p: samples_figure(model, shape, p),
        "reconstructions": lambda p: reconstructions_figure(model, X, shape, p),
        "uncertainty": lambda p: uncertainty_figure(model, X, shape, p),
    }
    count, activity = active_units(model, X)
    active = [int(j) for j in np.argsort(activity)[::-1] if activity[j] > 0.01][:10]
    figures["traversals"] = lambda p: traversals_figure(model, X, shape, p,
                                                        dims=active or [0])
    if encode_mean(model, X[:1]).shape[1] == 2:
        figures["manifold"] = lambda p: manifold_figure(model, shape, p)
    written = {}
    for name, draw in figures.items():
        draw(out_dir / f"{name}.png")
        written[name] = str(out_dir / f"{name}.png")
    labels = dataset.test_labels[:2000] if dataset.test_labels is not None else None
    if labels is not None and dataset.train_labels is not None \
            and np.unique(dataset.train_labels).size > 1 and encode_mean(model, X[:1]).shape[1]:
        path = out_dir / "latent_arithmetic.png"
        latent_arithmetic_figure(model, dataset.train[:2000], dataset.train_labels[:2000], X,
                                 labels, shape, path)
        written["latent_arithmetic"] = str(path)
    written.update(_common_figures(model, X, labels, out_dir, history))
    return written


def _common_figures(model, X, labels, out_dir, history, *, label_names=None,
                    kl: bool = True) -> dict:
    """The latent scatter, the KL per latent dimension (``kl``) and the training curve."""
    from .evaluate import kl_per_dimension

    written = {}
    n_latent = encode_mean(model, X[:1]).shape[1]  # 0 when VBPCA switched off every one
    if n_latent:
        latent_scatter_figure(model, X, labels, out_dir / "latent.png",
                              label_names=label_names)
        written["latent"] = str(out_dir / "latent.png")
    observed = X if not np.isnan(X).any() else complete_rows(X)  # rows with NaN: left out
    # no KL for point codes (the Autoencoder: q(z|x) has no spread, has_density False)
    if kl and n_latent and observed.shape[0] and getattr(model, "has_density", True):
        bar_figure(kl_per_dimension(model, observed), out_dir / "kl_per_dim.png",
                   title="KL(q(z_j|x) || p(z_j)) per dimension", ylabel="nats")
        written["kl_per_dim"] = str(out_dir / "kl_per_dim.png")
    if history:
        curves_figure(history, out_dir / "curves.png",
                      title="ELBO per epoch" if isinstance(history[0], dict)
                      else "log-likelihood per EM iteration")
        written["curves"] = str(out_dir / "curves.png")
    return written


# --------------------------------------------------------------------------- tables
#
# Data that are not images (measurements in their own units, one column per feature):
# the loadings as a heatmap labelled with the feature names, noise variance and
# communality per feature, the eigenvalue plot that shows how many factors the data
# support, and the reconstruction error per feature. Every quantity is read through
# public attributes: components_ (L, d), noise_variance_ (scalar or (d,)),
# explained_variance_ (PCA-like models), transform / inverse_transform.

MAX_FEATURES_SHOWN = 50  # features drawn one per row; beyond, the best-explained ones


def feature_labels(names, n_features: int) -> list[str]:
    """``names`` as strings when there is one per feature, else x0, x1, ..."""
    if names is not None and len(names) == n_features:
        return [str(name) for name in names]
    return [f"x{j}" for j in range(n_features)]


def loadings_of(model) -> np.ndarray:
    """Loadings W (d, L) of a fitted linear-Gaussian model, x = W z + mu + noise.

    FA, PPCA and VBPCA store W' as ``components_``; PCA and the linear autoencoder
    store orthonormal directions U' and the variance Lambda along them, read as PPCA:
    W = U (Lambda - sigma^2 I)^(1/2) (Tipping & Bishop 1999, eq. 7)."""
    W = np.asarray(model.components_, dtype=np.float64).T
    if hasattr(model, "explained_variance_"):
        excess = np.asarray(model.explained_variance_, dtype=np.float64) - model.noise_variance_
        W = W * np.sqrt(np.maximum(excess, 0.0))
    scale = getattr(model, "feature_scale_", None)  # standardize=True: back to X's units
    return W if scale is None else W * np.asarray(scale)[:, None]


def noise_variances_of(model) -> np.ndarray:
    """Noise variance psi_j of each feature, shape (d,) (isotropic models repeat one)."""
    d = np.shape(model.components_)[1]
    psi = np.broadcast_to(np.asarray(model.noise_variance_, dtype=np.float64), (d,)).copy()
    scale = getattr(model, "feature_scale_", None)  # standardize=True: back to X's units
    return psi if scale is None else psi * np.asarray(scale) ** 2






def reconstruct(model, X) -> np.ndarray:
    """The model's own reconstruction of X: decoder mean at the posterior mean for a VAE,
    inverse_transform(transform(X)) for the linear models."""
    return np.asarray(as_model(model).reconstruct(X), dtype=np.float64)


def per_feature_errors(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared reconstruction error of each feature (its squared units) and the
    feature's variance, over the observed (non-NaN) entries of X."""
    X = np.asarray(X, dtype=np.float64)
    squared = (X - reconstruct(model, X)) ** 2
    observed = ~np.isnan(X)
    count = np.maximum(observed.sum(axis=0), 1)
    mse = np.where(observed, squared, 0.0).sum(axis=0) / count
    return mse, np.nanvar(X, axis=0)


def _shown_features(share: np.ndarray, limit: int = MAX_FEATURES_SHOWN) -> np.ndarray:
    """Indices of the features to draw: all of them, or the ``limit`` best explained."""
    if share.size <= limit:
        return np.arange(share.size)
    return np.sort(np.argsort(-share, kind="stable")[:limit])


def _tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


def loadings_figure(W: np.ndarray, psi: np.ndarray, feature_names, path, *,
                    title: str = "loadings", values: np.ndarray | None = None) -> dict:
    """Heatmap of the standardized loadings (features x factors, in [-1, 1]):
    ``standardized_loadings(W, psi)``, or ``values`` (d, L) when given (a rotated
    pattern on the correlation scale).

    Returns what was drawn: ``features`` and ``factors`` (the tick labels read back
    from the axes) and ``values`` (the standardized loadings shown)."""
    plt = _pyplot()
    d, L = W.shape
    names = feature_labels(feature_names, d)
    values = standardized_loadings(W, psi) if values is None else np.asarray(values)
    shown = _shown_features(communalities(W, psi)[1])
    values = values[shown]
    fig, ax = plt.subplots(figsize=(min(12, 2.5 + 0.7 * L), 1.5 + 0.28 * shown.size))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    ax.set_yticks(np.arange(shown.size), [names[j] for j in shown], fontsize=8)
    ax.set_xticks(np.arange(L), [f"factor {k + 1}" for k in range(L)], fontsize=8,
                  rotation=45 if L > 6 else 0)
    if values.size <= 150:  # numbers in the cells while they stay legible (and quick)
        for (j, k), v in np.ndenumerate(values):
            ax.text(k, j, f"{0.0 if abs(v) < 0.005 else v:.2f}", ha="center", va="center",
                    fontsize=6, color="white" if abs(v) > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.05, label="correlation of feature and factor")
    ax.set_title(title, fontsize=10)
    drawn = {"features": _tick_texts(ax.get_yticklabels()),
             "factors": _tick_texts(ax.get_xticklabels()), "values": values}
    _save(fig, path)
    return drawn


def communality_figure(W: np.ndarray, psi: np.ndarray, feature_names, path) -> dict:
    """Per feature: the share of its variance the factors explain (communality
    h^2 / (h^2 + psi)) beside the noise share, and h^2 and psi in the feature's units."""
    plt = _pyplot()
    d = W.shape[0]
    names = feature_labels(feature_names, d)
    h2, share = communalities(W, psi)
    shown = _shown_features(share)
    rows = np.arange(shown.size)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 1.5 + 0.28 * shown.size),
                                      sharey=True)
    left.barh(rows, share[shown], color="C0", label="communality h²/(h²+ψ)")
    left.barh(rows, 1.0 - share[shown], left=share[shown], color="0.8",
              label="noise ψ/(h²+ψ)")
    left.set_xlim(0, 1)
    left.set_yticks(rows, [names[j] for j in shown], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("share of the model variance of the feature")
    left.legend(fontsize=7, loc="lower right")
    positive = np.concatenate([h2[shown], psi[shown]])
    positive = positive[positive > 0]
    floor = float(positive.min()) / 10 if positive.size else 1e-12
    right.barh(rows - 0.2, np.maximum(h2[shown], floor), height=0.4, color="C0",
               label="communality h²")
    right.barh(rows + 0.2, np.maximum(psi[shown], floor), height=0.4, color="C3",
               label="noise variance ψ")
    right.set_xscale("log")
    right.set_xlabel("variance (the feature's units squared)")
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle("noise variance and communality per feature", fontsize=10)
    drawn = {"features": _tick_texts(left.get_yticklabels()), "share": share[shown],
             "communality": h2[shown], "noise_variance": psi[shown]}
    _save(fig, path)
    return drawn


def scree_figure(eigenvalues: np.ndarray, path, *, noise_level: float, edge: float,
                 n_components: int, model_eigenvalues: np.ndarray | None = None,
                 ylabel: str = "eigenvalue", title: str | None = None) -> dict:
    """Eigenvalues (decreasing, log scale) with the noise level and the sampling-noise
    edge marked. Returns ``supported``: how many eigenvalues exceed the edge."""
    plt = _pyplot()
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    index = np.arange(1, eigenvalues.size + 1)
    supported = int(np.sum(eigenvalues > edge))
    positive = eigenvalues[eigenvalues > 0]
    low = float(positive.min()) if positive.size else 1.0
    fig, ax = plt.subplots(figsize=(max(5.0, min(12.0, 0.2 * eigenvalues.size + 3)), 4))
    ax.plot(index, np.maximum(eigenvalues, low), "o-", color="C0", markersize=4,
            label="data (training covariance)")
    if model_eigenvalues is not None:
        ax.plot(index, np.maximum(model_eigenvalues[:eigenvalues.size], low), "x--",
                color="C1", markersize=5, label="fitted model")
    ax.axhline(noise_level, color="0.4", linestyle=":", label=f"noise level {noise_level:.3g}")
    ax.axhline(edge, color="C3", linestyle="--", label=f"noise edge {edge:.3g}")
    ax.axvline(n_components + 0.5, color="0.7", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("index")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{supported} eigenvalue(s) above the noise edge "
                          f"({n_components} fitted)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)
    return {"supported": supported, "eigenvalues": eigenvalues}


def reconstruction_error_figure(mse: np.ndarray, variance: np.ndarray, feature_names,
                                path) -> dict:
    """Per feature: the reconstruction error relative to the feature's variance (1 - R²,
    unit-free) and its root mean square in the feature's units."""
    plt = _pyplot()
    names = feature_labels(feature_names, mse.size)
    relative = np.divide(mse, variance, out=np.zeros_like(mse), where=variance > 0)
    shown = _shown_features(relative)  # the worst reconstructed when there are many
    rows = np.arange(shown.size)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 1.5 + 0.28 * shown.size),
                                      sharey=True)
    left.barh(rows, relative[shown], color="C2")
    left.axvline(1.0, color="0.5", linestyle=":", linewidth=1)
    left.set_yticks(rows, [names[j] for j in shown], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("MSE / variance of the feature (1 - R²)")
    rmse = np.sqrt(mse[shown])
    floor = float(rmse[rmse > 0].min()) / 10 if np.any(rmse > 0) else 1e-12
    right.barh(rows, np.maximum(rmse, floor), color="C2")
    right.set_xscale("log")
    right.set_xlabel("RMSE (the feature's units)")
    fig.suptitle("reconstruction error per feature (test data)", fontsize=10)
    drawn = {"features": _tick_texts(left.get_yticklabels()), "relative": relative[shown],
             "rmse": rmse}
    _save(fig, path)
    return drawn


def rotate_loadings(W: np.ndarray, psi: np.ndarray, rotation: str = "fitted", *,
                    normalize: bool = True) -> np.ndarray:
    """The loadings as fitted (``"fitted"``, ``"none"``), or rotated by an orthogonal
    rotation of :data:`elbokit.linear.rotations.ORTHOGONAL` (varimax, quartimax) on the
    standardized loadings, with Kaiser's normalization by sqrt(h_j^2) when
    ``normalize`` (Kaiser 1958), and scaled back to the data's units. W W', the
    communalities and the likelihood are unchanged, and so is the rotation when a
    feature's unit changes. Oblique rotations have no W of this kind (their pattern
    comes with factor correlations): see :func:`elbokit._factor_report.factor_solution_of`."""
    from ._validation import check_choice
    from .linear.rotations import ORTHOGONAL, rotate

    check_choice(rotation, "rotation", ("fitted", "none") + ORTHOGONAL)
    if rotation in ("fitted", "none") or W.shape[1] < 2:
        return W
    scale = np.sqrt(np.sum(W**2, axis=1) + psi)[:, None]
    return rotate(standardized_loadings(W, psi), rotation, normalize=normalize).loadings * scale


MAX_PARALLEL_FEATURES = 500  # wider tables get no parallel analysis in the report


def _parallel_scree(train, path, n_fitted: int) -> Figure | None:
    """The parallel-analysis scree of the complete training rows
    (:func:`elbokit.linear.suggest_n_factors`, method "parallel", seed 0): the count of
    factors the data support, whatever the number fitted. None where it cannot be
    computed (too few rows, a constant or collinear column, a very wide table)."""
    from .exceptions import ElbokitError
    from .linear import suggest_n_factors

    n, d = train.shape
    if n < 3 or not 2 <= d <= MAX_PARALLEL_FEATURES:
        return None
    try:
        result = suggest_n_factors(train, "parallel", random_state=0)
    except (ElbokitError, np.linalg.LinAlgError):
        return None
    if not np.all(np.isfinite(result.table["observed"])):
        return None
    parallel_scree_figure(result, path)
    return Figure(str(path), (
        f"parallel analysis (Horn 1965, as psych::fa.parallel with SMCs) of the {n} complete "
        f"training rows: {result.n_factors} eigenvalue(s) of the reduced correlation matrix "
        f"above those of random data of the same shape ({n_fitted} factors fitted)"))


def _count(shown: int, d: int) -> str:
    return f"{d} features" if shown == d else \
        f"the {shown} best-explained of {d} features"


class Figure(NamedTuple):
    """A written figure: its PNG, a caption, and a text alternative that also lists
    what is drawn (the features, in order)."""

    path: str
    caption: str
    alt: str | None = None


def _linear_figures(model, dataset, out_dir, names, rotation,
                    normalize: bool = True) -> dict[str, Figure]:
    """Loadings heatmap, communalities, the parallel-analysis scree (and VBPCA's
    relevance)."""
    from ._factor_report import factor_solution_of

    figures = {}
    W, psi = loadings_of(model), noise_variances_of(model)
    L = W.shape[1]
    if L > 0:
        solution, how = factor_solution_of(model, rotation, normalize=normalize)
        path = out_dir / "loadings.png"
        drawn = loadings_figure(W, psi, names, path, title=f"standardized loadings ({how})",
                                values=solution.loadings)
        caption = (f"pattern loadings ({how}) of {_count(len(drawn['features']), W.shape[0])} "
                   f"on {L} factors, standardized (W_jk / sqrt(h_j² + psi_j) before "
                   "rotation): for orthogonal factors the correlation of feature and factor; "
                   "reflected and ordered by variance explained")
        figures["loadings"] = Figure(str(path), caption,
                                     caption + "; features: " + ", ".join(drawn["features"]))
        path = out_dir / "communality.png"
        drawn = communality_figure(W, psi, names, path)
        caption = ("communality h_j² = sum_k W_jk² and noise variance psi_j of "
                   f"{_count(len(drawn['features']), W.shape[0])}; left: their shares "
                   "h²/(h²+psi) and psi/(h²+psi) of the model variance")
        figures["communality"] = Figure(str(path), caption,
                                        caption + "; features: " + ", ".join(drawn["features"]))
    train = complete_rows(dataset.train)
    scree = _parallel_scree(train, out_dir / "scree.png", L)
    if scree is not None:
        figures["scree"] = scree
    if hasattr(model, "alpha_") and hasattr(model, "alpha_threshold_"):
        from .vi.plots import plot_relevance

        path = out_dir / "relevance.png"
        plot_relevance(model, path)
        figures["relevance"] = Figure(str(path), (
            "VBPCA's ARD relevance: E[alpha_i] per component (small: relevant); "
            f"{int(model.n_components_)} active"))
    return figures


def table_figures(model, dataset, out_dir: str | os.PathLike, *, feature_names=None,
                  label_names=None, rotation: str = "fitted", normalize: bool = True,
                  history=None) -> dict[str, Figure]:
    """Every figure for ``model`` on data that are not images: for the linear models
    the loadings heatmap, communalities and the parallel-analysis scree; for every
    model the latent scatter, the per-feature reconstruction error and the training
    curve; the KL per dimension for the models that are not linear-Gaussian (VAEs).
    No image grids. Returns {name: Figure}.

    ``feature_names`` default to ``dataset.feature_names`` (else x0, x1, ...),
    ``label_names`` to ``dataset.target_names``; ``rotation`` (``"fitted"``: the
    model's own rotation setting, ``"none"``, or one of
    :data:`elbokit.linear.rotations.ROTATIONS`) and ``normalize`` (Kaiser's) shape the
    loadings (see :func:`elbokit._factor_report.factor_solution_of`)."""
    from pathlib import Path

    out_dir = Path(out_dir)
    if feature_names is None:
        feature_names = getattr(dataset, "feature_names", None)
    if label_names is None:
        label_names = getattr(dataset, "target_names", None)
    names = feature_labels(feature_names, dataset.n_features)
    linear = as_model(model).linear_gaussian
    figures = _linear_figures(model, dataset, out_dir, names, rotation, normalize) \
        if linear else {}
    X = dataset.test[:2000]
    path = out_dir / "reconstruction_error.png"
    drawn = reconstruction_error_figure(*per_feature_errors(model, X), names, path)
    caption = ("reconstruction error per feature on test data: MSE relative to the "
               "feature's variance (1 - R²), and the RMSE in the feature's units")
    figures["reconstruction_error"] = Figure(
        str(path), caption, caption + "; features: " + ", ".join(drawn["features"]))
    labels = dataset.test_labels[:2000] if dataset.test_labels is not None else None
    if labels is not None and label_names is None and np.all(np.mod(labels, 1) == 0) \
            and np.unique(labels).size <= 20:  # a few classes: a legend, not a colour bar
        label_names = [str(value) for value in range(int(np.max(labels)) + 1)]
    captions = {
        "latent": "posterior means of test points" + (", coloured by label"
                                                       if labels is not None else ""),
        "kl_per_dim": "KL per latent dimension (nats)",
        "curves": "training curve",
    }
    # no KL per dimension for a linear-Gaussian model: its exact posterior is not the
    # VAE's q(z|x), whose KL to the prior is a term of the bound
    common = _common_figures(model, X, labels, out_dir, history, label_names=label_names,
                             kl=not linear)
    figures.update({name: Figure(path, captions[name]) for name, path in common.items()})
    return figures


# --------------------------------------------------------------------------- the codes
#
# "Interpreting the latent space" and the lecture's AE-vs-VAE contrast: read through
# the model protocol (posterior_moments, decode_mean, posterior_samples, sample).

def latent_arithmetic_figure(model, X_train, y_train, X, y, image_shape, path, *,
                             a=None, b=None, n: int = 8) -> tuple:
    """Latent arithmetic: delta = (mean code of class ``a``) - (mean code of class ``b``)
    over the training rows; the first ``n`` test rows of class ``b`` are shown (top), as
    reconstructed (middle) and decoded from their code + delta (bottom). ``a``, ``b``:
    default the two most frequent training classes. Returns (a, b)."""
    from .exceptions import DataError

    plt = _pyplot()
    y_train, y = np.asarray(y_train), np.asarray(y)
    classes, counts = np.unique(y_train, return_counts=True)
    if classes.size < 2:
        raise DataError("latent arithmetic needs at least two classes")
    order = classes[np.argsort(-counts, kind="stable")]
    a = order[0] if a is None else a
    b = order[1] if b is None else b
    train_codes = encode_mean(model, X_train)
    if not (np.any(y_train == a) and np.any(y_train == b) and np.any(y == b)):
        raise DataError(f"latent arithmetic: class {a!r} or {b!r} has no rows")
    delta = train_codes[y_train == a].mean(0) - train_codes[y_train == b].mean(0)  # (L,)
    rows = np.asarray(X)[y == b][:n]
    codes = encode_mean(model, rows)
    recon, moved = decode_mean(model, codes), decode_mean(model, codes + delta)
    fig, axes = plt.subplots(3, 1, figsize=(min(12, 0.8 * len(rows) + 1), 3.8))
    vmin, vmax = _range(rows)
    cols = len(rows)
    _show(axes[0], _tile(rows, image_shape, cols), title=f"test images of class {b}",
          vmin=vmin, vmax=vmax)
    _show(axes[1], _tile(recon, image_shape, cols), title="decoded from their codes z",
          vmin=vmin, vmax=vmax)
    _show(axes[2], _tile(moved, image_shape, cols),
          title=f"decoded from z + (mean z of {a} - mean z of {b})", vmin=vmin, vmax=vmax)
    _save(fig, path)
    return a, b


def ae_vae_figure(ae, vae, X_train, X, image_shape, path, *, n: int = 8,
                  n_samples: int = 32, random_state: int = 0) -> None:
    """The lecture's two advantages of the VAE over the AE, on one page.

    Generation: the AE's decoder fed codes from N(0, I) and from a Gaussian fitted to its
    training codes (``ae.sample(source=...)``), beside the VAE's prior samples. Uncertainty:
    test images, the AE's single reconstruction, the VAE's reconstruction and its
    per-pixel std of the decoder mean over ``n_samples`` posterior draws (the AE has one
    code per image, so it has no such spread)."""
    plt = _pyplot()
    X = np.asarray(X[:n])
    fitted = ae.sample(n, random_state=random_state, source="fitted") \
        if "source" in _parameters(ae.sample) else ae.sample(n, random_state=random_state)
    rows = [("AE decoder, z ~ N(0, I)", ae.sample(n, random_state=random_state)),
            ("AE decoder, z ~ Gaussian fitted to its codes", fitted),
            ("VAE decoder, z ~ N(0, I) (its prior)", vae.sample(n, random_state=random_state)),
            ("test images", X),
            ("AE reconstruction (one per image)", decode_mean(ae, encode_mean(ae, X))),
            ("VAE reconstruction", decode_mean(vae, encode_mean(vae, X)))]
    draws = as_model(vae).posterior_samples(X, n_samples, random_state=random_state)
    spread = decode_mean(vae, draws.reshape(-1, draws.shape[-1])).reshape(len(X), n_samples, -1)
    std = spread.std(axis=1)
    fig, axes = plt.subplots(len(rows) + 1, 1,
                             figsize=(min(12, 0.8 * n + 1), 1.25 * (len(rows) + 1)))
    vmin, vmax = _range(X)
    for ax, (title, images) in zip(axes, rows):
        _show(ax, _tile(images, image_shape, n), title=title, vmin=vmin, vmax=vmax)
    image = _show(axes[-1], _tile(std, image_shape, n),
                  title=f"VAE per-pixel std over {n_samples} posterior draws", vmin=0.0,
                  vmax=max(float(std.max()), 1e-12), cmap="magma")
    fig.colorbar(image, ax=axes[-1], fraction=0.02)
    _save(fig, path)


def _parameters(fn) -> set:
    import inspect

    return set(inspect.signature(fn).parameters)
