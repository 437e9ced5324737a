"""Units must not matter where the model says they do not: factor analysis under
per-feature rescaling, every classical model under a global rescaling, and
``standardize=True`` equal to standardizing by hand plus the Jacobian."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from elbokit import PCA, PPCA, VBPCA, FactorAnalysis, LinearAutoencoder
from conftest import quiet as _quiet


@pytest.fixture(scope="module")
def wine():
    return load_wine().data  # 178 x 13, variances from 0.01 to 1e5, no constant column


def test_fa_is_equivariant_under_per_feature_scales(wine):
    X = wine[:, :10]
    s = 10.0 ** np.random.default_rng(0).uniform(-3, 4, X.shape[1])
    plain = _quiet(lambda: FactorAnalysis(3).fit(X))
    scaled = _quiet(lambda: FactorAnalysis(3).fit(X * s))
    expected = plain.score(X) - np.sum(np.log(s))
    assert scaled.score(X * s) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(scaled.noise_variance_, plain.noise_variance_ * s**2, rtol=1e-5)
    np.testing.assert_allclose(scaled.components_, plain.components_ * s, rtol=1e-4,
                               atol=1e-6 * np.abs(plain.components_ * s).max())
    np.testing.assert_allclose(scaled.transform(X * s), plain.transform(X), atol=1e-6)


MODELS = {
    "pca": lambda: PCA(3),
    "ppca": lambda: PPCA(3),
    "ppca-em": lambda: PPCA(3, solver="em", random_state=0, tol=1e-10),
    "fa": lambda: FactorAnalysis(3),
    "vbpca": lambda: VBPCA(3, random_state=0),
    "linear-ae": lambda: LinearAutoencoder(3, random_state=0, max_iter=3000),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("c", [1e-10, 1e10])
def test_every_model_is_equivariant_under_a_global_scale(wine, kind, c):
    X = (wine - wine.mean(0)) / wine.std(0) + 1.0
    plain = _quiet(lambda: MODELS[kind]().fit(X))
    scaled = _quiet(lambda: MODELS[kind]().fit(X * c))
    d = X.shape[1]
    assert scaled.score(X * c) == pytest.approx(plain.score(X) - d * np.log(c), rel=1e-6)
    np.testing.assert_allclose(scaled.get_covariance(), plain.get_covariance() * c**2,
                               rtol=1e-5, atol=1e-8 * c**2)


def test_pca_noise_variance_is_the_ml_value_in_any_units():
    """No floor above the degenerate: raw breast cancer with 20 components (the mean
    discarded eigenvalue, 0.0023, was floored at 0.0165), and all values x 1e-7."""
    from sklearn.decomposition import PCA as SkPCA

    X = load_breast_cancer().data
    for data in (X, X * 1e-7):
        model = _quiet(lambda: PCA(20).fit(data))
        eigenvalues = np.linalg.eigvalsh(np.cov(data.T, bias=True))[::-1]
        # rel 1e-5: the reference's own rounding, eps x the largest eigenvalue (4.4e5) over
        # the discarded mean (2.4e-5), is ~2e-6 (1.2e-6 apart with numpy 2.x's LAPACK)
        assert model.noise_variance_ == pytest.approx(eigenvalues[20:].mean(), rel=1e-5)
        ppca = _quiet(lambda: PPCA(20).fit(data))
        assert ppca.noise_variance_ == pytest.approx(model.noise_variance_, rel=1e-5)
        sk = SkPCA(20).fit(data)  # divisor N - 1: compare log-likelihoods loosely
        assert model.score(data) == pytest.approx(sk.score(data), abs=0.05)


def test_pca_ppca_vbpca_warn_on_mixed_units_and_suggest_standardize(wine):
    for make in (lambda: PCA(3), lambda: PPCA(3), lambda: VBPCA(3, random_state=0)):
        with pytest.warns(UserWarning, match="standardize=True"):
            make().fit(wine)
        model = make().set_params(standardize=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            model.fit(wine)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_standardize_equals_manual_standardization_plus_jacobian(wine, kind):
    m, s = wine.mean(axis=0), wine.std(axis=0)
    X_std = (wine - m) / s
    manual = _quiet(lambda: MODELS[kind]().fit(X_std))
    model = _quiet(lambda: MODELS[kind]().set_params(standardize=True).fit(wine))
    np.testing.assert_allclose(model.feature_scale_, s)
    np.testing.assert_allclose(model.score_samples(wine),
                               manual.score_samples(X_std) - np.sum(np.log(s)), rtol=1e-8)
    Z = model.transform(wine)
    np.testing.assert_allclose(Z, manual.transform(X_std), atol=1e-8)
    np.testing.assert_allclose(model.inverse_transform(Z),
                               manual.inverse_transform(Z) * s + m, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.sample(5, random_state=1),
                               manual.sample(5, random_state=1) * s + m, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.get_covariance(),
                               manual.get_covariance() * np.outer(s, s), rtol=1e-8,
                               atol=1e-10 * s.max() ** 2)


@pytest.mark.parametrize("make", [lambda: FactorAnalysis(3, standardize=True),
                                  lambda: PPCA(3, solver="em", random_state=0,
                                               standardize=True),
                                  lambda: VBPCA(3, random_state=0, standardize=True)])
def test_standardize_with_missing_values_works_in_the_users_units(wine, make):
    holes = np.random.default_rng(0).random(wine.shape) < 0.1
    X = np.where(holes, np.nan, wine)
    model = _quiet(lambda: make().fit(X))
    filled = model.impute(X)
    assert np.all(np.isfinite(filled)) and np.array_equal(filled[~holes], wine[~holes])
    error = np.sqrt(np.mean(((filled - wine) / wine.std(0))[holes] ** 2))
    assert error < 0.9  # in standard deviations; column means give ~1
    assert np.all(np.isfinite(model.score_samples(X)))


@pytest.mark.parametrize("kind", ["pca", "ppca", "fa", "linear-ae", "vbpca"])
def test_cli_standardize_is_saved_and_reported_in_the_data_units(tmp_path, kind, wine):
    import json

    from elbokit.cli import main
    from elbokit.persistence import load_estimator
    from elbokit.linear import PCA as P, PPCA as Q, FactorAnalysis as F, LinearAutoencoder as A

    path = tmp_path / "wine.npy"
    np.save(path, wine)
    out = tmp_path / kind
    latent = ["--max-latent", "3"] if kind == "vbpca" else ["--latent", "3"]
    args = ["fit", kind, "--data", str(path), *latent, "--standardize", "--out", str(out)]
    assert _quiet(lambda: main(args)) == 0
    model = load_estimator(out, {"pca": P, "ppca": Q, "fa": F, "linear-ae": A, "vbpca": VBPCA})
    assert model.standardize and model.feature_scale_.shape == (13,)
    metrics = json.loads((out / "metrics.json").read_text())
    # reported for wine in its own units: sum_j log s_j = 4.1 nats below the
    # standardized data's log-likelihood; the held-out rows only add noise
    assert metrics["test_loglike"] == pytest.approx(model.score(wine), abs=1.5)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_the_report_reads_a_standardized_model_in_the_data_units(wine, kind):
    """loading_matrix() / noise_variances() (the table report's loadings, communalities
    and noise variances) give the model of x as given: W W' + Psi = get_covariance()."""
    model = _quiet(lambda: MODELS[kind]().set_params(standardize=True).fit(wine))
    W, psi = model.loading_matrix(), model.noise_variances()
    np.testing.assert_allclose(W @ W.T + np.diag(psi), model.get_covariance(), rtol=1e-6,
                               atol=1e-9 * wine.var(0).max())
