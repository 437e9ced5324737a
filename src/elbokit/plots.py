"""Figures (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

import os

import numpy as np

from .io import atomic_write_with


def image_grid(images: np.ndarray, image_shape: tuple[int, int], path: str | os.PathLike,
               *, title: str | None = None) -> None:
    """Save rows of ``images`` (n, h*w) as a square grid of grey images in a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = image_shape
    canvas = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1))
    lo, hi = float(np.min(images)), float(np.max(images))
    scaled = (images - lo) / (hi - lo) if hi > lo else np.zeros_like(images)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = \
            scaled[i].reshape(h, w)
    fig, ax = plt.subplots(figsize=(min(12, 0.6 * cols + 1), min(12, 0.6 * rows + 1)))
    ax.imshow(canvas, cmap="gray_r" if lo >= 0 else "gray", interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
