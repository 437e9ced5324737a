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
