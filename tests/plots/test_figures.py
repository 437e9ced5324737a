import numpy as np
import pytest

from elbokit import PPCA, FactorAnalysis, plots


@pytest.fixture(scope="module")
def fitted(digits):
    return FactorAnalysis(5).fit(digits.train)


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_all_figures_for_a_linear_model(fitted, digits, tmp_path):
    written = plots.all_figures(fitted, digits, tmp_path, history=fitted.loglike_)
    assert set(written) == {"samples", "reconstructions", "uncertainty", "traversals",
                            "latent", "kl_per_dim", "curves", "latent_arithmetic"}
    assert all(_is_png(tmp_path / f"{name}.png") for name in written)


def test_manifold_only_for_two_latent_dimensions(digits, tmp_path):
    model = PPCA(2).fit(digits.train)
    assert "manifold" in plots.all_figures(model, digits, tmp_path)


def test_decode_of_encode_is_the_linear_reconstruction(fitted, digits):
    Z = plots.encode_mean(fitted, digits.test[:5])
    np.testing.assert_allclose(plots.decode_mean(fitted, Z),
                               fitted.inverse_transform(fitted.transform(digits.test[:5])),
                               atol=1e-10)


def test_all_figures_of_a_table_are_the_table_figures(tmp_path):
    from elbokit import VBPCA, data

    wine = data.load("wine")
    model = VBPCA(4, random_state=0, standardize=True).fit(wine.train)
    written = plots.all_figures(model, wine, tmp_path)
    assert {"loadings", "communality", "relevance", "reconstruction_error",
            "latent"} <= set(written)
    assert all(_is_png(tmp_path / f"{name}.png") for name in written)


def test_the_relevance_figure_draws_the_models_relevance(tmp_path):
    from elbokit import VBPCA, data
    from elbokit.vi.plots import plot_relevance

    X = data.load("wine").train
    X = (X - X.mean(0)) / X.std(0)
    model = VBPCA(5, random_state=0).fit(X)
    relevance = model.relevance()
    assert relevance["alpha"].shape == relevance["threshold"].shape == (5,)
    np.testing.assert_array_equal(relevance["active"], model.active_components_)
    plot_relevance(model, tmp_path / "relevance.png")
    assert _is_png(tmp_path / "relevance.png")


def test_a_vae_of_images_draws_completions(digits, tmp_path):
    """The completions figure: answers from p(x_mis | x_obs) of the bottom half, the
    truth's log p(x) minus log p(x_obs) its hidden half's conditional."""
    from elbokit.nn import VAE

    vae = VAE(4, hidden=(32,), epochs=3, binarize="dynamic", progress=False,
              validation_fraction=0).fit(digits.train[:300])
    X = (digits.test[:3] > 0.5).astype(float)
    done = plots.completions_figure(vae, X, (8, 8), tmp_path / "c.png", n=3, n_draws=2)
    assert _is_png(tmp_path / "c.png") and done.images.shape == (2, 3, 64)
    assert done.mask.reshape(3, 8, 8)[:, 4:].all() and not done.mask.reshape(3, 8, 8)[:, :4].any()
    np.testing.assert_allclose(done.conditional_log_likelihood,
                               done.truth_log_likelihood - done.observed_log_likelihood)
    assert np.all(done.conditional_log_likelihood < 0) and np.isin(done.images, (0, 1)).all()
    assert "completions" in plots.all_figures(vae, digits, tmp_path / "all")
