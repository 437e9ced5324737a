"""What every figure shares: matplotlib on the Agg backend, PNGs written atomically,
image tiling, the protocol's encoder and decoder means, bar and curve charts."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..persistence import atomic_write_with
from ..protocol import as_model


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, *, dpi: int = 90) -> None:
    """Lay out ``fig``, write it to ``path`` as a PNG (atomically) and close it."""
    plt = _pyplot()
    try:
        fig.tight_layout()
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    finally:
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


def _show_rows(axes, panels, image_shape, cols: int, vmin: float, vmax: float) -> None:
    """One titled row of ``cols`` tiled images per axis: ``panels`` is [(title, images)]."""
    for ax, (title, images) in zip(axes, panels):
        _show(ax, _tile(images, image_shape, cols), title=title, vmin=vmin, vmax=vmax)


def _finish_chart(fig, ax, path) -> None:
    """A small legend and a light grid, then save ``fig`` to ``path``."""
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


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


def curves_figure(history: list[dict], path, *, title: str = "ELBO per epoch") -> None:
    """Training and validation ELBO (nats/sample) per epoch, the best validation epoch
    marked (the weights early stopping keeps), or log-likelihood per iteration for EM (a
    list of floats)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if history and isinstance(history[0], dict):
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        for key, label in (("train_elbo", "train"), ("val_elbo", "validation")):
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], label=label)
        _mark_best(ax, epochs, [h.get("val_elbo") for h in history])
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


def _mark_best(ax, epochs: list, values: list) -> None:
    """A dot and a dotted line at the epoch of the best validation ELBO."""
    finite = [(v, e) for v, e in zip(values, epochs) if v is not None and np.isfinite(v)]
    if not finite:
        return
    value, epoch = max(finite)
    ax.axvline(epoch, color="C1", linestyle=":", linewidth=1)
    ax.plot([epoch], [value], "o", color="C1", label=f"best validation (epoch {epoch})")


def bar_figure(values, path, *, title: str, ylabel: str, log: bool = False,
               threshold: float | None = None, layers=None) -> None:
    """A bar per latent dimension (KL per dimension, activity, ARD precisions);
    ``layers`` (the sizes of several stochastic layers, z1 first): a colour per layer."""
    plt = _pyplot()
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(4, 0.3 * values.size + 2), 3.5))
    if layers is not None and len(layers) > 1 and sum(layers) == values.size:
        start = 0
        for i, size in enumerate(layers):
            ax.bar(np.arange(start + 1, start + size + 1), values[start:start + size],
                   color=f"C{i}", label=f"z{i + 1}")
            start += size
        ax.legend(fontsize=8)
    else:
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


MAX_FEATURES_SHOWN = 50  # features drawn one per row; beyond, the best-explained ones


def feature_labels(names, n_features: int) -> list[str]:
    """``names`` as strings when there is one per feature, else x0, x1, ..."""
    if names is not None and len(names) == n_features:
        return [str(name) for name in names]
    return [f"x{j}" for j in range(n_features)]


def _shown_features(share: np.ndarray, limit: int = MAX_FEATURES_SHOWN) -> np.ndarray:
    """Indices of the features to draw: all of them, or the ``limit`` best explained."""
    if share.size <= limit:
        return np.arange(share.size)
    return np.sort(np.argsort(-share, kind="stable")[:limit])


def _tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


class Figure(NamedTuple):
    """A written figure: its PNG, a caption, and a text alternative that also lists
    what is drawn (the features, in order)."""

    path: str
    caption: str
    alt: str | None = None
