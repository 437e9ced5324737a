"""Figures (matplotlib, Agg backend, PNG written atomically).

Each function takes any fitted elbokit model (a VAE or a linear-Gaussian model, read
through its latent posterior and decoder mean) and writes one PNG:
sample grids, reconstructions, latent traversals, the 2-D manifold (Kingma & Welling
2014, fig. 4), latent scatter plots, training curves, per-pixel uncertainty, and bar
charts of per-dimension quantities.
"""

from __future__ import annotations

import os

import numpy as np

from .io import atomic_write_with


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


def _is_vae(model) -> bool:
    return type(model).__name__ == "VAE"


def encode_mean(model, X) -> np.ndarray:
    """Posterior mean of z given each row of X, shape (n, L)."""
    from .evaluate import posterior_moments

    return posterior_moments(model, X)[0]


def decode_mean(model, Z) -> np.ndarray:
    """Decoder mean E[x|z] for each row of Z, shape (n, d)."""
    if _is_vae(model):
        return model.decode(np.asarray(Z, dtype=np.float32))
    return np.asarray(Z, dtype=np.float64) @ model._loadings().T + model.mean_


def _tile(images: np.ndarray, image_shape, cols: int) -> np.ndarray:
    """Arrange rows of flattened images in a grid with 1-pixel white gaps."""
    n = images.shape[0]
    rows = int(np.ceil(n / cols))
    h, w = image_shape
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = \
            images[i].reshape(h, w)
    return canvas


def _show(ax, canvas, *, title=None, vmin=0.0, vmax=1.0, cmap="gray_r"):
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


def samples_figure(model, image_shape, path, *, n: int = 64, random_state: int = 0) -> None:
    """Decoder means of draws from the prior (VAE) or draws from the model (linear)."""
    images = model.sample(n, random_state=random_state)
    image_grid(images, image_shape, path, title=f"{n} samples from the prior")


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
    [-span, span] (prior standard deviations)."""
    plt = _pyplot()
    base = encode_mean(model, X).mean(axis=0)
    L = base.size
    dims = list(range(min(L, 10))) if dims is None else list(dims)[:16]
    if not dims:
        dims = [0]
    values = np.linspace(-span, span, steps)
    rows = []
    for j in dims:
        Z = np.repeat(base[None], steps, axis=0)
        Z[:, j] = values
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


def latent_scatter_figure(model, X, labels, path) -> None:
    """Posterior means coloured by label (first two principal directions if L > 2)."""
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
    scatter = ax.scatter(Z[:, 0], Z[:, 1], c=labels if labels is not None else "C0", s=6,
                         cmap="tab10", alpha=0.8)
    if labels is not None:
        fig.colorbar(scatter, ax=ax, label="label")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title("posterior means")
    _save(fig, path)


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
    if _is_vae(model):
        samples, _ = model.encode(X, n_samples=n_samples, random_state=random_state)
    else:
        from .evaluate import posterior_moments

        mean, _ = posterior_moments(model, X)
        chol = np.linalg.cholesky(model.posterior_covariance())
        eps = np.random.default_rng(random_state).standard_normal(
            (mean.shape[0], n_samples, mean.shape[1]))
        samples = mean[:, None, :] + eps @ chol.T
    decoded = decode_mean(model, samples.reshape(-1, samples.shape[-1]))
    decoded = decoded.reshape(X.shape[0], n_samples, -1)
    recon = decode_mean(model, encode_mean(model, X))
    std = decoded.std(axis=1)
    fig, axes = plt.subplots(3, 1, figsize=(min(12, 0.8 * n + 1), 3.8))
    vmin, vmax = _range(X)
    _show(axes[0], _tile(X, image_shape, n), title="originals", vmin=vmin, vmax=vmax)
    _show(axes[1], _tile(recon, image_shape, n), title="reconstructions", vmin=vmin, vmax=vmax)
    image = _show(axes[2], _tile(std, image_shape, n),
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
    returns {name: path}."""
    from pathlib import Path

    from .evaluate import active_units, kl_per_dimension

    out_dir = Path(out_dir)
    X = dataset.test[:2000]
    written = {}
    if dataset.image_shape is not None:
        shape = dataset.image_shape
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
        for name, draw in figures.items():
            draw(out_dir / f"{name}.png")
            written[name] = str(out_dir / f"{name}.png")
    labels = dataset.test_labels[:2000] if dataset.test_labels is not None else None
    latent_scatter_figure(model, X, labels, out_dir / "latent.png")
    written["latent"] = str(out_dir / "latent.png")
    bar_figure(kl_per_dimension(model, X), out_dir / "kl_per_dim.png",
               title="KL(q(z_j|x) || p(z_j)) per dimension", ylabel="nats")
    written["kl_per_dim"] = str(out_dir / "kl_per_dim.png")
    if history:
        curves_figure(history, out_dir / "curves.png",
                      title="ELBO per epoch" if isinstance(history[0], dict)
                      else "log-likelihood per EM iteration")
        written["curves"] = str(out_dir / "curves.png")
    return written
