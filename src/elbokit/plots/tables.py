"""Figures of linear-Gaussian models on tables (measurements in their own units, one
column per feature): the loadings as a heatmap labelled with the feature names, noise
variance and communality per feature, the eigenvalue plot that shows how many factors
the data support, VBPCA's relevance, and the reconstruction error per feature. Every
quantity comes from the model protocol (:class:`elbokit.protocol.LinearGaussianModel`:
``loading_matrix()``, ``noise_variances()``, ``factor_solution()``, ``relevance()``)
and the algebra of :mod:`elbokit.linear._interpret`; this module only draws."""

from __future__ import annotations

import os

import numpy as np

from ..evaluate import per_feature_errors
from ..linear._interpret import (communalities, complete_rows, features_by_factor,
                                 standardized_loadings)
from ..protocol import as_model
from ._base import MAX_FEATURES_SHOWN, Figure, _finish_chart, _pyplot, _save, \
    _shown_features, _tick_texts, feature_labels
from .factors import parallel_scree_figure, relevance_figure
from .latent import common_figures


def loadings_figure(W: np.ndarray, psi: np.ndarray, feature_names, path, *,
                    title: str = "loadings", values: np.ndarray | None = None) -> dict:
    """Heatmap of the standardized loadings (features x factors, in [-1, 1]):
    ``standardized_loadings(W, psi)``, or ``values`` (d, L) when given (a rotated
    pattern on the correlation scale). The features are grouped by the factor they
    load most on, largest loading first (the order of the report's loadings table);
    beyond ``MAX_FEATURES_SHOWN`` of them, those that load most on each factor.

    Returns what was drawn: ``features`` and ``factors`` (the tick labels read back
    from the axes) and ``values`` (the standardized loadings shown)."""
    plt = _pyplot()
    d, L = W.shape
    names = feature_labels(feature_names, d)
    values = standardized_loadings(W, psi) if values is None else np.asarray(values)
    shown = features_by_factor(values, MAX_FEATURES_SHOWN)
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
    _finish_chart(fig, ax, path)
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


MAX_PARALLEL_FEATURES = 500  # wider tables get no parallel analysis in the report


def parallel_scree_omitted(n: int, d: int) -> str | None:
    """Why the report draws no parallel-analysis scree of ``n`` complete training rows
    of ``d`` features, as the sentence the page says; None where it draws one."""
    why = None
    if n < 3:
        why = f"{n} complete training row(s), fewer than the 3 it needs"
    elif d < 2:
        why = "a single feature has no correlations to analyse"
    elif d > MAX_PARALLEL_FEATURES:
        why = (f"the {d} features are more than the {MAX_PARALLEL_FEATURES} the report "
               f"analyses (each random data set takes the eigenvalues of a {d} x {d} matrix)")
    elif n <= d:
        why = (f"the {n} complete training rows are no more than the {d} features, so the "
               "correlation matrix is singular and its squared multiple correlations "
               "undefined")
    return None if why is None else f"No parallel-analysis scree: {why}."


def _parallel_scree(train, path, n_fitted: int) -> Figure | None:
    """The parallel-analysis scree of the complete training rows
    (:func:`elbokit.linear.suggest_n_factors`, method "parallel", seed 0): the count of
    factors the data support, whatever the number fitted. None where it cannot be
    computed (:func:`parallel_scree_omitted` says why, or a constant or collinear
    column)."""
    from ..exceptions import ElbokitError
    from ..linear import suggest_n_factors

    n, d = train.shape
    if parallel_scree_omitted(n, d) is not None:
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


def _linear_figures(model, dataset, out_dir, names, rotation,
                    normalize: bool = True) -> dict[str, Figure]:
    """Loadings heatmap, communalities, the parallel-analysis scree (and VBPCA's
    relevance)."""
    from .._factor_report import factor_solution_of

    figures = {}
    W, psi = model.loading_matrix(), model.noise_variances()
    L = W.shape[1]
    if L > 0:
        solution, how = factor_solution_of(model, rotation, normalize=normalize)
        path = out_dir / "loadings.png"
        drawn = loadings_figure(W, psi, names, path, title=f"standardized loadings ({how})",
                                values=solution.loadings)
        shown, d = len(drawn["features"]), W.shape[0]
        which = f"{d} features" if shown == d else \
            f"the {shown} of {d} features that load most on each factor"
        caption = (f"pattern loadings ({how}) of {which} on {L} factors (grouped by the "
                   "factor each loads most on, largest first), standardized (W_jk / sqrt(h_j² + psi_j) before "
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
    relevance = model.relevance()
    if relevance is not None:
        path = out_dir / "relevance.png"
        relevance_figure(relevance, path)
        figures["relevance"] = Figure(str(path), (
            "VBPCA's ARD relevance: E[alpha_i] per component (small: relevant); "
            f"{len(relevance['active'])} active"))
    return figures


def _error_figure(model, X, y, names, out_dir) -> Figure:
    path = out_dir / "reconstruction_error.png"
    drawn = reconstruction_error_figure(*per_feature_errors(model, X, y), names, path)
    caption = ("reconstruction error per feature on test data: MSE relative to the "
               "feature's variance (1 - R²), and the RMSE in the feature's units"
               + ("" if y is None else ", each row reconstructed given its label"))
    return Figure(str(path), caption, caption + "; features: " + ", ".join(drawn["features"]))


def _conditional_figures(model, X, labels, names, out_dir, history) -> dict[str, Figure]:
    """A VAE conditioned on labels, on a table: the reconstruction error given the test
    rows' labels (when the data have them; none for covariates) and the training curve."""
    from ._base import curves_figure

    figures = {}
    if labels is not None and model.classes_ is not None:
        figures["reconstruction_error"] = _error_figure(model, X, labels, names, out_dir)
    if history:
        curves_figure(history, out_dir / "curves.png")
        figures["curves"] = Figure(str(out_dir / "curves.png"), "training curve")
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
        feature_names = dataset.feature_names
    if label_names is None:
        label_names = dataset.target_names
    names = feature_labels(feature_names, dataset.n_features)
    linear = as_model(model).linear_gaussian
    figures = _linear_figures(model, dataset, out_dir, names, rotation, normalize) \
        if linear else {}
    X = dataset.test[:2000]
    labels = dataset.test_labels[:2000] if dataset.test_labels is not None else None
    if as_model(model).conditional:  # its codes and reconstructions need the labels
        return _conditional_figures(model, X, labels, names, out_dir, history)
    figures["reconstruction_error"] = _error_figure(model, X, None, names, out_dir)
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
    common = common_figures(model, X, labels, out_dir, history, label_names=label_names,
                             kl=not linear)
    figures.update({name: Figure(path, captions[name]) for name, path in common.items()})
    return figures
