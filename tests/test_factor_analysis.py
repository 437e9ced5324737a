import numpy as np
import pytest
from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis

from elbokit import FactorAnalysis
from elbokit.exceptions import ConvergenceWarning
from elbokit.linear.factor_analysis import fa_em_step

from conftest import sample_linear_gaussian


def test_em_step_from_statistics_equals_the_lectures_per_sample_formulas(fa_problem):
    W_true, psi_true, mu = fa_problem
    X = sample_linear_gaussian(300, W_true, psi_true, np.zeros(12))
    Xc = X - X.mean(axis=0)
    rng = np.random.default_rng(5)
    W, psi = rng.standard_normal((12, 3)), rng.uniform(0.5, 1.5, 12)
    # the slides, literally: G = (I + W' Psi^-1 W)^-1, E[z_i] = G W' Psi^-1 x_i,
    # E[z_i z_i'] = G + E[z_i] E[z_i]', W = (sum x E[z]')(sum E[zz'])^-1,
    # Psi = diag(1/N sum x x' - W 1/N sum E[z] x')
    G = np.linalg.inv(np.eye(3) + W.T @ np.diag(1 / psi) @ W)
    Ez = Xc @ np.diag(1 / psi) @ W @ G  # rows E[z_i]
    sum_Ezz = len(Xc) * G + Ez.T @ Ez
    W_new = (Xc.T @ Ez) @ np.linalg.inv(sum_Ezz)
    psi_new = np.diag(Xc.T @ Xc / len(Xc) - W_new @ (Ez.T @ Xc) / len(Xc))
    S = Xc.T @ Xc / len(Xc)
    W_got, psi_got, _ = fa_em_step(S, W, psi, floor=1e-12)
    np.testing.assert_allclose(W_got, W_new, rtol=1e-9)
    np.testing.assert_allclose(psi_got, psi_new, rtol=1e-9)


def test_loglikelihood_never_decreases(fa_problem):
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(500, W, psi, mu)
    model = FactorAnalysis(3, tol=1e-10).fit(X)
    assert len(model.loglike_) > 5
    assert np.all(np.diff(model.loglike_) >= -1e-12)
    assert np.isclose(model.loglike_[-1], model.score(X))


def test_recovers_the_generating_model(fa_problem):
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(20000, W, psi, mu, seed=1)
    model = FactorAnalysis(3).fit(X)
    W_hat = model.components_.T
    # W is identified up to rotation: compare W W' and Psi
    np.testing.assert_allclose(W_hat @ W_hat.T, W @ W.T, atol=0.15)
    np.testing.assert_allclose(model.noise_variance_, psi, atol=0.05)
    np.testing.assert_allclose(model.mean_, mu, atol=0.05)


def test_at_least_sklearns_loglikelihood_on_digits(digits):
    """Protocol: digits train set with its constant (all-zero) pixels removed, since
    scikit-learn floors their variance at 1e-12 (+13 nats each) and we at a relative
    floor; our floor set as low as scikit-learn's effective one (1e-6 relative)."""
    X = digits.train.astype(np.float64)
    X = X[:, X.var(axis=0) > 0]
    ours = FactorAnalysis(10, noise_floor=1e-6).fit(X)
    theirs = SkFactorAnalysis(10, random_state=0).fit(X)
    assert ours.score(X) >= theirs.score(X) - 1e-3


def test_constant_features_are_floored_and_named(digits):
    with pytest.warns(UserWarning, match=r"indices 0, .*32, .*39"):
        model = FactorAnalysis(5).fit(digits.train)
    variances = np.var(digits.train.astype(np.float64), axis=0)
    constant = np.flatnonzero(variances == 0)
    np.testing.assert_array_equal(model.constant_features_, constant)
    # the constant pixels (only they) get noise_floor x the mean pixel variance
    np.testing.assert_allclose(model.noise_variance_[constant], 1e-3 * variances.mean(),
                               rtol=1e-5)  # float32 data
    others = np.setdiff1d(np.arange(64), constant)
    assert np.all(model.noise_variance_[others] >= 1e-9 * variances[others])
    # near-constant pixels are not floored at that value (the old mean-relative floor)
    assert np.any(model.noise_variance_[others] < 0.1 * 1e-3 * variances.mean())
    assert np.max(np.abs(model.get_precision())) < 1e6  # no 1e12 precisions
    assert np.isfinite(model.score_samples(digits.test)).all()


def test_varimax_keeps_the_likelihood(fa_problem):
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(1000, W, psi, mu)
    plain = FactorAnalysis(3).fit(X)
    rotated = FactorAnalysis(3, rotation="varimax").fit(X)
    assert np.isclose(plain.score(X), rotated.score(X))
    np.testing.assert_allclose(plain.get_covariance(), rotated.get_covariance(), atol=1e-10)
    assert not np.allclose(plain.components_, rotated.components_)


def test_warns_at_max_iter(fa_problem):
    W, psi, mu = fa_problem
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        FactorAnalysis(3, max_iter=2).fit(sample_linear_gaussian(100, W, psi, mu))


def test_transform_is_posterior_mean(fa_problem):
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(400, W, psi, mu)
    model = FactorAnalysis(3).fit(X)
    Wh, ph = model.components_.T, model.noise_variance_
    G = np.linalg.inv(np.eye(3) + Wh.T @ (Wh / ph[:, None]))
    expected = (X - model.mean_) @ (Wh / ph[:, None]) @ G
    np.testing.assert_allclose(model.transform(X), expected, atol=1e-10)
