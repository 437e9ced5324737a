"""The report for tables (data that are not images): loadings heatmap labelled with the
feature names, communalities, the eigenvalue plot, per-feature reconstruction error,
latent scatter by label, and no image grids; checked in headless Chromium."""

import json
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder, data, evaluate, plots, report
from elbokit.linear import _interpret as interpret
from elbokit.cli import main
from elbokit.vi import VBPCA
from test_report import CHROMIUM, render
from test_runs import set_run_field

from conftest import sample_linear_gaussian

IMAGE_FIGURES = ("samples", "reconstructions", "uncertainty", "traversals", "manifold")


def _write_csv(path, X, names):
    lines = [",".join(names)] + [",".join(repr(float(v)) for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def wine():
    return load_wine()


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory, wine):
    """Wine as a user has it: unscaled measurements, a header row."""
    return _write_csv(tmp_path_factory.mktemp("wine") / "wine.csv", wine.data,
                      wine.feature_names)


@pytest.fixture(scope="module")
def fa_run(tmp_path_factory, wine_csv):
    out = tmp_path_factory.mktemp("runs") / "fa"
    assert main(["fit", "fa", "--data", str(wine_csv), "--latent", "3", "--out",
                 str(out)]) == 0
    assert main(["report", str(out), "--rotation", "varimax", "--data", str(wine_csv)]) == 0
    return out


def _figure_alts(page):
    return dict(re.findall(r'<figure id="figure-([\w-]+)" class="wide"><img alt="([^"]*)"',
                           page))


def test_fa_report_on_a_csv_has_the_table_figures_and_no_image_grids(fa_run, wine):
    page = (fa_run / "report.html").read_text()
    alts = _figure_alts(page)
    assert {"loadings", "communality", "scree", "reconstruction_error", "latent",
            "curves"} <= set(alts)
    # no VAE-only figures or numbers on a linear model's page
    assert "kl_per_dim" not in alts and "I(x; z)" not in page
    assert "varimax-rotated (Kaiser-normalized)" in alts["loadings"]
    assert "parallel analysis" in page and "noise edge" not in page
    # the heatmap is labelled with the CSV header, every feature once, grouped by factor
    listed = alts["loadings"].split("features: ")[1].split(", ")
    assert sorted(listed) == sorted(wine.feature_names) and len(listed) == 13
    assert not any((fa_run / "figures" / f"{name}.png").exists() for name in IMAGE_FIGURES)
    assert "reconstructions E[x" not in page and "per-pixel" not in page
    # the per-feature table: one row per feature with its communality share
    assert page.count("<tr><td>") >= len(wine.feature_names)
    assert "communality share" in page and "proline" in page


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                    "(apt-get install chromium); the browser check is skipped")
def test_table_report_renders_in_chromium(fa_run):
    page = (fa_run / "report.html").read_text()
    n_figures = len(_figure_alts(page))
    n_images, n_broken, console = render(fa_run / "report.html")
    # every figure of the page is an image that decodes (six on a linear model's table page)
    assert n_figures >= 6 and n_images >= n_figures
    assert n_broken == 0 and console == []


def test_square_table_is_not_drawn_as_images(tmp_path):
    """64 columns of a .npy table: run.json records image_shape null, so no 8x8 grids
    (the square guess of image_shape_of would be wrong here)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4)) @ rng.standard_normal((4, 64)) \
        + 0.3 * rng.standard_normal((120, 64))
    np.save(tmp_path / "table.npy", X)
    out = tmp_path / "pca"
    assert main(["fit", "pca", "--data", str(tmp_path / "table.npy"), "--latent", "4",
                 "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["image_shape"] is None
    assert main(["report", str(out), "--data", str(tmp_path / "table.npy")]) == 0
    alts = _figure_alts((out / "report.html").read_text())
    # one row per feature up to 50, then those loading most on each factor (x0, x1, ...)
    assert "the 50 of 64 features that load most on each factor" in alts["loadings"]
    assert len(alts["loadings"].split("features: ")[1].split(", ")) == 50
    assert not any((out / "figures" / f"{name}.png").exists() for name in IMAGE_FIGURES)


def test_bad_rotation_is_a_one_line_error(fa_run, wine_csv, capsys):
    assert main(["report", str(fa_run), "--rotation", "equamax", "--data", str(wine_csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert "rotation" in err and "varimax" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("field, value", [
    ("image_shape", "abc"), ("image_shape", [100000, 100000]), ("image_shape", [-3, 5]),
    ("feature_names", 5), ("feature_names", [1, 2]), ("target_names", {"a": 1}),
    ("key", {"test_fraction": "x"}),
])
def test_a_tampered_run_json_is_a_one_line_error_in_report(fa_run, wine_csv, tmp_path, capsys,
                                                           field, value):
    """report reads run.json through its schema check: a field of the wrong type or range
    is exit 2 with one line naming it (feature_names = 5 was a TypeError traceback)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fa_run, run)
    set_run_field(run, field, value)
    capsys.readouterr()
    assert main(["report", str(run), "--data", str(wine_csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert field in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_report_scores_the_split_the_run_was_fitted_on(wine_csv, tmp_path, monkeypatch):
    """A run fitted with --test-fraction 0.5 is drawn on its own held-out rows (the report
    split the data 80/20 whatever the fit had used)."""
    out = tmp_path / "fa"
    assert main(["fit", "fa", "--data", str(wine_csv), "--latent", "2", "--test-fraction",
                 "0.5", "--out", str(out)]) == 0
    calls = []
    real_load = data.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("test_fraction"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(data, "load", spy)
    assert main(["report", str(out), "--data", str(wine_csv)]) == 0
    assert calls == [0.5]


# ---------------------------------------------------------------- the quantities drawn

@pytest.fixture(scope="module")
def fa_data():
    rng = np.random.default_rng(3)
    W, psi = rng.standard_normal((12, 3)), rng.uniform(0.1, 0.5, 12)  # 3 factors, 12 features
    return sample_linear_gaussian(4000, W, psi, np.zeros(12), seed=4), W, psi


@pytest.mark.parametrize("make", [lambda: PCA(3), lambda: PPCA(3), lambda: FactorAnalysis(3),
                                  lambda: LinearAutoencoder(3, random_state=0),
                                  lambda: VBPCA(5, random_state=0)])
def test_public_loadings_reproduce_the_model_covariance(make, fa_data):
    X = fa_data[0][:500]
    model = make().fit(X)
    W, psi = model.loading_matrix(), model.noise_variances()
    np.testing.assert_allclose(W @ W.T + np.diag(psi), model.get_covariance(),
                               rtol=1e-7, atol=1e-9)
    h2, share = interpret.communalities(W, psi)
    np.testing.assert_allclose(h2 + psi, np.diag(model.get_covariance()), rtol=1e-9)
    assert np.all((0 <= share) & (share <= 1))
    # standardized loadings: squares of a row sum to its communality share
    np.testing.assert_allclose(np.sum(interpret.standardized_loadings(W, psi)**2, axis=1),
                               share, rtol=1e-9)


def test_eigenvalue_plot_counts_the_true_factors(fa_data, tmp_path):
    X, W, psi = fa_data
    eigenvalues = interpret.whitened_eigenvalues(X, psi)
    drawn = plots.scree_figure(eigenvalues, tmp_path / "scree.png", noise_level=1.0,
                               edge=interpret.noise_edge(*X.shape), n_components=3)
    assert drawn["supported"] == 3
    # scale-free: features in other units (and psi with them) give the same eigenvalues
    s = np.logspace(-3, 4, X.shape[1])
    np.testing.assert_allclose(interpret.whitened_eigenvalues(X * s, psi * s**2), eigenvalues,
                               rtol=1e-8)
    # pure noise stays below the edge
    noise = np.random.default_rng(5).standard_normal((4000, 12)) * np.sqrt(psi)
    assert interpret.whitened_eigenvalues(noise, psi)[0] < interpret.noise_edge(4000, 12)


def test_varimax_is_an_orthogonal_rotation_that_ignores_units(fa_data):
    X, _, _ = fa_data
    model = FactorAnalysis(3).fit(X[:800])
    W, psi = model.loading_matrix(), model.noise_variances()
    rotated = interpret.rotate_loadings(W, psi, "varimax")
    np.testing.assert_allclose(rotated @ rotated.T, W @ W.T, atol=1e-9)

    def varimax_criterion(V):
        V2 = V**2
        return float(np.sum(np.var(V2, axis=0)))

    standardized = interpret.standardized_loadings
    assert varimax_criterion(standardized(rotated, psi)) \
        > varimax_criterion(standardized(W, psi)) - 1e-12
    # Kaiser normalisation: rescaled features give the same standardized rotation
    s = np.logspace(-2, 3, W.shape[0])
    scaled = interpret.rotate_loadings(W * s[:, None], psi * s**2, "varimax")
    np.testing.assert_allclose(np.abs(standardized(scaled, psi * s**2)),
                               np.abs(standardized(rotated, psi)), atol=1e-6)
    assert interpret.rotate_loadings(W, psi, "fitted") is W


def test_loadings_heatmap_is_labelled_with_the_feature_names(wine, tmp_path):
    X = (wine.data - wine.data.mean(0)) / wine.data.std(0)
    model = FactorAnalysis(3).fit(X)
    W, psi = model.loading_matrix(), model.noise_variances()
    drawn = plots.loadings_figure(W, psi, wine.feature_names, tmp_path / "loadings.png")
    from elbokit.linear._interpret import sorted_items, standardized_loadings

    order = sorted_items(standardized_loadings(W, psi))  # grouped by factor
    assert drawn["features"] == [wine.feature_names[j] for j in order]
    assert drawn["factors"] == ["factor 1", "factor 2", "factor 3"]
    assert np.all(np.abs(drawn["values"]) <= 1 + 1e-12)
    # names that do not match the features fall back to x0, x1, ...
    drawn = plots.loadings_figure(W, psi, ["a", "b"], tmp_path / "fallback.png")
    assert sorted(drawn["features"]) == sorted(f"x{j}" for j in range(W.shape[0]))


def test_per_feature_errors_add_up_to_the_reconstruction_error(fa_data):
    from elbokit.evaluate import reconstruction_error

    X = fa_data[0][:400]
    model = PCA(3).fit(X)
    mse, variance = evaluate.per_feature_errors(model, X)
    assert mse.sum() == pytest.approx(reconstruction_error(model, X), rel=1e-10)
    np.testing.assert_allclose(variance, X.var(axis=0), rtol=1e-10)
    full = PCA(X.shape[1]).fit(X)
    assert np.max(evaluate.per_feature_errors(full, X)[0]) < 1e-12
    # missing entries are left out of their feature's mean
    X_missing = X.copy()
    X_missing[:200, 0] = np.nan
    model = PPCA(3, solver="em").fit(X_missing)
    residual = (X_missing - model.reconstruct(X_missing))[200:, 0]
    assert evaluate.per_feature_errors(model, X_missing)[0][0] == pytest.approx(
        np.mean(residual**2), rel=1e-10)


def test_latent_scatter_names_the_classes(wine, tmp_path):
    X = (wine.data - wine.data.mean(0)) / wine.data.std(0)
    model = PPCA(2).fit(X)
    legend = plots.latent_scatter_figure(model, X, wine.target, tmp_path / "latent.png",
                                         label_names=list(wine.target_names))
    assert legend == list(wine.target_names)
    # a measured target (not classes): a colour bar, no legend
    assert plots.latent_scatter_figure(model, X, X[:, 0], tmp_path / "target.png",
                                       label_names=["a"]) == []


def test_vae_on_a_table_gets_no_loadings_and_no_grids(wine, tmp_path):
    from elbokit import VAE

    X = ((wine.data - wine.data.mean(0)) / wine.data.std(0)).astype(np.float32)
    dataset = data.Dataset(train=X[:140], test=X[140:], train_labels=wine.target[:140],
                           test_labels=wine.target[140:], name="wine",
                           feature_names=list(wine.feature_names),
                           target_names=list(wine.target_names))
    model = VAE(2, likelihood="gaussian", hidden=(16,), epochs=2, seed=0, progress=False).fit(
        dataset.train)
    figures = plots.table_figures(model, dataset, tmp_path, history=model.history_)
    assert set(figures) == {"latent", "reconstruction_error", "kl_per_dim", "curves"}
    assert all((tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG" for name in figures)


def test_vbpca_with_missing_values_gets_its_relevance_plot(tmp_path, wine):
    X = (wine.data - wine.data.mean(0)) / wine.data.std(0)
    X[np.random.default_rng(0).random(X.shape) < 0.05] = np.nan
    csv = _write_csv(tmp_path / "wine_missing.csv", X, wine.feature_names)
    out = tmp_path / "vbpca"
    assert main(["fit", "vbpca", "--data", str(csv), "--max-latent", "6", "--out",
                 str(out)]) == 0
    assert main(["report", str(out), "--data", str(csv)]) == 0
    alts = _figure_alts((out / "report.html").read_text())
    assert {"relevance", "scree", "loadings", "reconstruction_error"} <= set(alts)


def test_names_come_from_run_json_first(tmp_path):
    digits = load_digits()
    dataset = data.Dataset(train=digits.data[:10], test=digits.data[10:20],
                           feature_names=[f"pixel{j}" for j in range(64)])
    assert report._names({"feature_names": ["a"] * 64}, dataset, "feature_names") == ["a"] * 64
    assert report._names({}, dataset, "feature_names")[0] == "pixel0"
    assert report._names({}, dataset, "target_names") is None


def test_vbpca_that_switched_off_every_component_still_gets_a_report(tmp_path):
    X = np.random.default_rng(0).standard_normal((100, 5))
    model = VBPCA(3, random_state=0).fit(X[:80])
    assert model.n_components_ == 0
    dataset = data.Dataset(train=X[:80], test=X[80:])
    figures = plots.table_figures(model, dataset, tmp_path)
    assert {"scree", "relevance", "reconstruction_error"} <= set(figures)
    assert "loadings" not in figures and "latent" not in figures
