"""FactorAnalysis as the field reads it: rotated loadings on the correlation scale, factor
correlations, scores, fit statistics and standard errors, against R's published
factanal output, closed forms and independent computations."""

import warnings

import numpy as np
import pytest

from elbokit import FactorAnalysis, load_model, save_model
from elbokit.exceptions import ParameterError
from elbokit.linear import factor_solution
from elbokit.linear._bootstrap import match_factors
from elbokit.linear.rotations import ROTATIONS

from conftest import ABILITY_COV, data_with_covariance

# factanal(factors = 2, covmat = ability.cov) as printed in R's documentation (varimax,
# the default rotation)
R_VARIMAX_2 = np.array([[0.499, 0.543], [0.156, 0.622], [0.206, 0.860], [0.109, 0.468],
                        [0.956, 0.182], [0.785, 0.225]])
R_SS_LOADINGS_2 = np.array([1.858, 1.724])


@pytest.fixture(scope="module")
def ability():
    return data_with_covariance(ABILITY_COV, 112, shift=10.0)


@pytest.fixture(scope="module")
def oblique_data():
    """12 items, 3 correlated factors, simple structure (the guide's questionnaire)."""
    rng = np.random.default_rng(3)
    phi = np.array([[1.0, 0.4, 0.3], [0.4, 1.0, 0.2], [0.3, 0.2, 1.0]])
    pattern = np.zeros((12, 3))
    for k in range(3):
        pattern[4 * k:4 * k + 4, k] = [0.8, 0.7, 0.6, 0.5]
    f = rng.multivariate_normal(np.zeros(3), phi, size=3000)
    noise = rng.standard_normal((3000, 12)) * np.sqrt(1 - np.sum(pattern**2, axis=1))
    scale = rng.uniform(0.5, 20.0, 12)  # items in their own units
    return (f @ pattern.T + noise) * scale, pattern, phi


def test_varimax_equals_factanal_on_ability_cov(ability):
    model = FactorAnalysis(2, rotation="varimax").fit(ability)
    np.testing.assert_allclose(model.loadings_, R_VARIMAX_2, atol=1.5e-3)
    np.testing.assert_allclose(model.variance_explained_["ss_loadings"], R_SS_LOADINGS_2,
                               atol=2e-3)
    np.testing.assert_allclose(model.uniquenesses_,
                               [0.455, 0.589, 0.218, 0.769, 0.052, 0.334], atol=1.5e-3)
    np.testing.assert_allclose(model.factor_correlation_, np.eye(2))


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_every_rotation_keeps_the_likelihood_and_reconstruction(rotation, oblique_data):
    X = oblique_data[0][:600]
    plain = FactorAnalysis(3).fit(X)
    rotated = FactorAnalysis(3, rotation=rotation).fit(X)
    np.testing.assert_allclose(rotated.score_samples(X), plain.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(rotated.get_covariance(), plain.get_covariance(), rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(rotated.inverse_transform(rotated.transform(X)),
                               plain.inverse_transform(plain.transform(X)), rtol=1e-8,
                               atol=1e-8)
    # the pattern is what rotations.rotate gives for the unrotated standardized solution
    expected = factor_solution(plain.loadings_, rotation)
    np.testing.assert_allclose(rotated.loadings_, expected.loadings, atol=1e-6)
    np.testing.assert_allclose(rotated.factor_correlation_, expected.factor_correlation,
                               atol=1e-6)
    Lam, Phi = rotated.loadings_, rotated.factor_correlation_
    np.testing.assert_allclose(np.diag(Lam @ Phi @ Lam.T), rotated.communalities_, atol=1e-12)
    np.testing.assert_allclose(rotated.communalities_ + rotated.uniquenesses_, 1.0)


def test_oblimin_recovers_the_pattern_and_the_factor_correlations(oblique_data):
    X, pattern, phi = oblique_data
    model = FactorAnalysis(3, rotation="oblimin").fit(X)
    # factors are defined up to order: match by the largest loading of each true factor
    order = [int(np.argmax(np.abs(model.loadings_[4 * k]))) for k in range(3)]
    np.testing.assert_allclose(model.loadings_[:, order], pattern, atol=0.06)
    np.testing.assert_allclose(model.factor_correlation_[np.ix_(order, order)], phi,
                               atol=0.06)
    assert np.all(model.loadings_.sum(axis=0) > 0)  # reflected
    ss = model.variance_explained_["ss_loadings"]
    assert np.all(np.diff(ss) <= 1e-12)  # ordered by variance explained


def test_rotated_loadings_ignore_the_units(oblique_data):
    X = oblique_data[0][:800]
    s = np.random.default_rng(1).uniform(0.01, 100.0, X.shape[1])
    a = FactorAnalysis(3, rotation="promax").fit(X)
    b = FactorAnalysis(3, rotation="promax").fit(X * s)
    np.testing.assert_allclose(b.loadings_, a.loadings_, atol=1e-6)
    np.testing.assert_allclose(b.factor_correlation_, a.factor_correlation_, atol=1e-6)
    np.testing.assert_allclose(b.transform(X * s), a.transform(X), atol=1e-6)


def test_regression_scores_are_the_posterior_mean_of_the_rotated_factors(oblique_data):
    X = oblique_data[0][:800]
    model = FactorAnalysis(3, rotation="geomin").fit(X)
    Lam, Phi = model.loadings_, model.factor_correlation_
    sd = np.sqrt(np.diag(model.get_covariance()))
    Xs = (X - model.mean_) / sd
    Sigma = Lam @ Phi @ Lam.T + np.diag(model.uniquenesses_)
    # Thurstone: F = X Sigma^-1 Lambda Phi (written out here, independently)
    np.testing.assert_allclose(model.transform(X), Xs @ np.linalg.solve(Sigma, Lam @ Phi),
                               atol=1e-8)
    bartlett = model.factor_scores(X, method="bartlett")
    Psi_inv = np.diag(1 / model.uniquenesses_)
    expected = Xs @ Psi_inv @ Lam @ np.linalg.inv(Lam.T @ Psi_inv @ Lam)
    np.testing.assert_allclose(bartlett, expected, atol=1e-8)


def test_statistics_and_criteria_agree(ability):
    model = FactorAnalysis(2).fit(ability)
    stats = model.fit_statistics(ability)
    assert stats.chi_square == pytest.approx(6.11, abs=0.01)  # R: 6.11 on 4 dof
    assert stats.dof == 4
    assert stats.p_value == pytest.approx(0.191, abs=1e-3)  # R: p-value 0.191
    assert model.bic(ability) == pytest.approx(stats.bic, rel=1e-9)
    assert model.aic(ability) == pytest.approx(stats.aic, rel=1e-9)
    assert model.aic(ability) < FactorAnalysis(1).fit(ability).aic(ability)


def test_saved_and_loaded_solution_is_the_same(tmp_path, oblique_data):
    X = oblique_data[0][:500]
    model = FactorAnalysis(3, rotation="promax").fit(X)
    save_model(model, tmp_path / "fa")
    loaded = load_model(tmp_path / "fa")
    np.testing.assert_array_equal(loaded.loadings_, model.loadings_)
    np.testing.assert_array_equal(loaded.factor_correlation_, model.factor_correlation_)
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))


def test_one_factor_cannot_be_rotated():
    X = np.random.default_rng(0).standard_normal((50, 5))
    with pytest.raises(ParameterError, match="needs at least 2 factors"):
        FactorAnalysis(1, rotation="varimax").fit(X)
    with pytest.raises(ParameterError, match="rotation must be one of"):
        FactorAnalysis(2, rotation="equamax").fit(X)


def test_bootstrap_standard_errors_match_the_sampling_spread():
    """The bootstrap SE from one sample is close to the standard deviation of the
    estimates over fresh samples from the same (known) model."""
    rng = np.random.default_rng(11)
    pattern = np.array([[0.8, 0], [0.7, 0], [0.6, 0], [0, 0.8], [0, 0.7], [0, 0.6]])
    u = np.sqrt(1 - np.sum(pattern**2, axis=1))

    def sample(n=300):
        return rng.standard_normal((n, 2)) @ pattern.T + rng.standard_normal((n, 6)) * u

    def aligned(loadings):
        order, signs = match_factors(loadings, pattern)
        return loadings[:, order] * signs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spread = np.std([aligned(FactorAnalysis(2, rotation="varimax").fit(sample()).loadings_)
                         for _ in range(100)], axis=0, ddof=1)
        X = sample()
        model = FactorAnalysis(2, rotation="varimax").fit(X)
        se = model.standard_errors(X, n_boot=100, random_state=0)
    order, _ = match_factors(model.loadings_, pattern)
    ratio = se["loadings"][:, order] / spread
    assert 0.75 < np.median(ratio) < 1.33, ratio
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    assert se["uniquenesses"].shape == (6,) and np.all(se["uniquenesses"] > 0)
    assert np.allclose(np.diag(se["factor_correlation"]), 0.0)  # orthogonal: Phi = I


def test_a_tampered_factor_correlation_is_refused(tmp_path, oblique_data):
    import json

    from elbokit.exceptions import ModelFileError
    from elbokit.persistence import load_arrays, save_arrays

    model = FactorAnalysis(3, rotation="oblimin").fit(oblique_data[0][:400])
    directory = save_model(model, tmp_path / "fa")
    arrays = load_arrays(directory / "weights.safetensors")
    arrays["factor_correlation_"] = arrays["factor_correlation_"] * 3.0  # diagonal 3
    save_arrays(directory / "weights.safetensors", arrays)
    meta = json.loads((directory / "model.json").read_text())
    from elbokit.persistence import DESCRIPTION_KEY, description_digest, sha256_file
    from elbokit.persistence.model_file import DESCRIBED
    meta["sha256"]["weights.safetensors"] = sha256_file(directory / "weights.safetensors")
    meta["sha256"][DESCRIPTION_KEY] = description_digest(meta, DESCRIBED)
    (directory / "model.json").write_text(json.dumps(meta))
    from conftest import rehash_manifest  # the save's manifest.json, as an attacker would

    rehash_manifest(directory / "weights.safetensors")
    rehash_manifest(directory / "model.json")
    with pytest.raises(ModelFileError, match="not a 3 x 3 correlation matrix"):
        load_model(directory)


def test_more_factors_than_the_degrees_of_freedom_allow_are_named():
    X = np.random.default_rng(0).standard_normal((100, 6))
    with pytest.warns(UserWarning, match=r"4 factors for 6 features leave -3 degrees of "
                                         r"freedom.*more than 3 factors"):
        FactorAnalysis(4).fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FactorAnalysis(3).fit(X)  # dof 0: allowed
    assert not any("degrees of freedom" in str(w.message) for w in caught)
