"""Figures of models of images: sample grids, reconstructions, latent traversals, the
2-D manifold (Kingma & Welling 2014, fig. 4), per-pixel uncertainty, completions of a
hidden region, latent arithmetic and the AE-vs-VAE page, each read through the model
protocol only (completions: the models with ``complete``)."""

from __future__ import annotations

import os

import numpy as np

from ..protocol import as_model, optional
from ._base import (_pyplot, _range, _save, _show, _show_rows, _tile, curves_figure,
                    decode_mean, encode_mean, grey_shape, image_grid)
from .latent import common_figures
from .tables import table_figures


def samples_figure(model, image_shape, path, *, n: int = 64, random_state: int = 0) -> list[str]:
    """Decoder means of draws from the prior (VAE) or draws from the model (linear);
    beside them, for a VAE with a fitted GMM sampler, the decoder means of draws from
    the Gaussian mixture over its training codes (``sample(sampler="gmm")``). Returns
    the panels' titles."""
    images = model.sample(n, random_state=random_state)
    if "gmm" not in as_model(model).samplers:
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
        _show_rows(axes, [("originals", X), ("reconstructions given the label", recon)],
                   shape, len(X), vmin, vmax)
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
    _show_rows(axes, [("originals", X), ("reconstructions", recon)], image_shape, n,
               *_range(X))
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
    center, scale = as_model(model).prior_moments()
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
    _show_rows(axes, [("originals", X), ("reconstructions", recon)], image_shape, n,
               *_range(X))
    image = _show(axes[2], _tile(std, grey_shape(image_shape), n),
                  title=f"per-pixel std over {n_samples} posterior samples", vmin=0.0,
                  vmax=max(float(std.max()), 1e-12), cmap="magma")
    fig.colorbar(image, ax=axes[2], fraction=0.02)
    _save(fig, path)


COMPLETION_REGION = "bottom"  # the report's hidden region (the lecture's completing an image)


def completions_figure(model, X, image_shape, path, *, n: int = 6, n_draws: int = 7,
                       region=COMPLETION_REGION, random_state: int = 0):
    """Per image (a row): the truth, what the model sees (the hidden region in red) and
    ``n_draws`` answers from p(x_mis | x_obs) (``model.complete``), each titled with its
    log p(x), the truth with log p(x) and log p(x_mis | x_obs); returns the
    :class:`~elbokit.nn._impute.Completions`."""
    plt = _pyplot()
    X = np.asarray(X[:n], dtype=np.float64)
    if as_model(model).binarize != "none":  # scored as binary pixels, as it was trained
        from ..data import binarize

        X = binarize(X, np.random.default_rng(random_state)).astype(np.float64)
    done = model.complete(X, region, n_draws, image_shape=grey_shape(image_shape),
                          random_state=random_state)
    vmin, vmax = _range(X)
    grey = len(image_shape) == 2
    seen = np.where(done.mask, np.nan if grey else vmax, X)
    cmap = plt.get_cmap("gray_r").with_extremes(bad="#d62728")
    fig, axes = plt.subplots(len(X), n_draws + 2, squeeze=False,
                             figsize=(0.95 * (n_draws + 2) + 0.5, 1.15 * len(X) + 0.4))
    for i, row in enumerate(axes):
        truth = "truth" if done.truth_log_likelihood is None else \
            f"truth {done.truth_log_likelihood[i]:.1f}\n" \
            f"hidden {done.conditional_log_likelihood[i]:.1f}"
        panels = [(X[i], truth), (seen[i], f"seen {done.observed_log_likelihood[i]:.1f}")]
        panels += [(done.images[k, i], f"{done.log_likelihood[k, i]:.1f}")
                   for k in range(n_draws)]
        for ax, (image, title) in zip(row, panels):
            _show(ax, _tile(image[None], image_shape, 1)[1:-1, 1:-1], vmin=vmin, vmax=vmax,
                  cmap=cmap if grey else "gray_r")
            ax.set_title(title, fontsize=6)
    _save(fig, path)
    return done


def all_figures(model, dataset, out_dir: str | os.PathLike, *, history=None) -> dict[str, str]:
    """Write every figure that applies to ``model`` on ``dataset`` into ``out_dir``;
    returns {name: path}. Data that are not images (``dataset.image_shape`` None) get
    the figures of :func:`table_figures` and no image grids."""
    from pathlib import Path

    from ..evaluate import active_units

    out_dir = Path(out_dir)
    if dataset.image_shape is None:
        figures = table_figures(model, dataset, out_dir, history=history)
        return {name: figure.path for name, figure in figures.items()}
    if as_model(model).conditional:
        if model.classes_ is None:  # covariates: no per-class grid
            return {}
        return conditional_figures(model, dataset, out_dir, history=history)
    X = dataset.test[:2000]
    channels = dataset.channels
    shape = dataset.image_shape if channels == 1 else (channels, *dataset.image_shape)
    figures = {
        "samples": lambda p: samples_figure(model, shape, p),
        "reconstructions": lambda p: reconstructions_figure(model, X, shape, p),
        "uncertainty": lambda p: uncertainty_figure(model, X, shape, p),
    }
    if optional(model, "complete") is not None:
        figures["completions"] = lambda p: completions_figure(model, X, shape, p)
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
            and arithmetic_pair(dataset.train_labels[:2000], labels) is not None \
            and encode_mean(model, X[:1]).shape[1]:
        path = out_dir / "latent_arithmetic.png"
        latent_arithmetic_figure(model, dataset.train[:2000], dataset.train_labels[:2000], X,
                                 labels, shape, path)
        written["latent_arithmetic"] = str(path)
    written.update(common_figures(model, X, labels, out_dir, history))
    return written


def arithmetic_pair(y_train, y_test) -> tuple | None:
    """The classes (a, b) of latent arithmetic: the two most frequent training classes
    where the second has test rows (they are shown), else b the next most frequent one
    with test rows; None when no class has test rows (a few images per class)."""
    classes, counts = np.unique(np.asarray(y_train), return_counts=True)
    order = list(classes[np.argsort(-counts, kind="stable")])
    shown = [c for c in order[1:] + order[:1] if np.any(np.asarray(y_test) == c)]
    if not shown or len(order) < 2:
        return None
    b = shown[0]
    return (order[0] if b != order[0] else order[1]), b


def latent_arithmetic_figure(model, X_train, y_train, X, y, image_shape, path, *,
                             a=None, b=None, n: int = 8) -> tuple:
    """Latent arithmetic: delta = (mean code of class ``a``) - (mean code of class ``b``)
    over the training rows; the first ``n`` test rows of class ``b`` are shown (top), as
    reconstructed (middle) and decoded from their code + delta (bottom). ``a``, ``b``:
    default :func:`arithmetic_pair`'s. Returns (a, b)."""
    from ..exceptions import DataError

    plt = _pyplot()
    y_train, y = np.asarray(y_train), np.asarray(y)
    if np.unique(y_train).size < 2:
        raise DataError("latent arithmetic needs at least two classes")
    pair = arithmetic_pair(y_train, y)
    if pair is None and (a is None or b is None):
        raise DataError("latent arithmetic: no class has both training and test rows beside "
                        "another class with training rows")
    a = pair[0] if a is None else a
    b = pair[1] if b is None else b
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
    training codes (``ae.sample(sampler="fitted")``), beside the VAE's prior samples. Uncertainty:
    test images, the AE's single reconstruction, the VAE's reconstruction and its
    per-pixel std of the decoder mean over ``n_samples`` posterior draws (the AE has one
    code per image, so it has no such spread)."""
    plt = _pyplot()
    X = np.asarray(X[:n])
    fitted = ae.sample(n, random_state=random_state, sampler="fitted") \
        if "fitted" in as_model(ae).samplers else ae.sample(n, random_state=random_state)
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
    _show_rows(axes, rows, image_shape, n, *_range(X))
    image = _show(axes[-1], _tile(std, image_shape, n),
                  title=f"VAE per-pixel std over {n_samples} posterior draws", vmin=0.0,
                  vmax=max(float(std.max()), 1e-12), cmap="magma")
    fig.colorbar(image, ax=axes[-1], fraction=0.02)
    _save(fig, path)
