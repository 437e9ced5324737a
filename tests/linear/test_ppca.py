import numpy as np
import pytest

from elbokit import PPCA
from elbokit.exceptions import ConvergenceWarning, DataError
from elbokit._math import observed_logpdf
from elbokit.linear.ppca import ppca_em_step, ppca_em_step_missing

from conftest import sample_linear_gaussian


def test_closed_form_matches_tipping_bishop(digits):
    X = digits.train.astype(np.float64)
    S = np.cov(X.T, bias=True)
    eig, vec = np.linalg.eigh(S)
    eig, vec = eig[::-1], vec[:, ::-1]
    L = 8
    model = PPCA(L).fit(X)
    sigma2 = eig[L:].mean()
    assert np.isclose(model.noise_variance_, sigma2)
    W = model.components_.T
    # W W' = U (Lambda - sigma^2) U', whatever the rotation
    expected = vec[:, :L] @ np.diag(eig[:L] - sigma2) @ vec[:, :L].T
    np.testing.assert_allclose(W @ W.T, expected, atol=1e-10)


def test_closed_form_is_a_maximum(digits):
    X = digits.train.astype(np.float64)
    model = PPCA(6).fit(X)
    best = model.score(X)
    rng = np.random.default_rng(0)
    W0, s0 = model.components_.copy(), model.noise_variance_
    for _ in range(10):
        model.components_ = W0 + 1e-3 * rng.standard_normal(W0.shape)
        model.noise_variance_ = s0 * (1 + 1e-3 * rng.standard_normal())
        assert model.score(X) < best
    model.components_, model.noise_variance_ = W0, s0


def test_em_converges_to_closed_form_and_never_decreases(digits):
    X = digits.train.astype(np.float64)
    closed = PPCA(8).fit(X)
    em = PPCA(8, solver="em", random_state=0, tol=1e-10, max_iter=5000).fit(X)
    assert np.all(np.diff(em.loglike_) >= -1e-10)
    assert abs(em.score(X) - closed.score(X)) < 1e-4
    np.testing.assert_allclose(em.get_covariance(), closed.get_covariance(), atol=1e-3)


def test_missing_data_em_step_equals_complete_data_step_without_missing():
    rng = np.random.default_rng(1)
    W0, psi, mu = rng.standard_normal((6, 2)), np.full(6, 0.3), rng.standard_normal(6)
    X = sample_linear_gaussian(200, W0, psi, mu)
    mean = X.mean(axis=0)
    S = np.cov(X.T, bias=True)
    W, s2 = rng.standard_normal((6, 2)), 0.7
    W1, s21, ll1 = ppca_em_step(S, W, s2, 1e-12)
    W2, mu2, s22, ll2 = ppca_em_step_missing(X, np.ones_like(X), W, mean, s2, 1e-12)
    # with the mean fixed at the sample mean both are the same exact EM step...
    assert np.isclose(ll1, ll2)
    # ...except that the missing-data step re-estimates mu jointly with W, which can only
    # raise the likelihood further
    g = lambda W_, mu_, s_: observed_logpdf(X - mu_, np.ones_like(X), W_, s_).mean()
    assert g(W2, mu2, s22) >= g(W1, mean, s21) - 1e-9


def test_missing_values_em_is_monotone_and_imputes_better_than_the_mean():
    rng = np.random.default_rng(7)
    W, psi, mu = rng.standard_normal((20, 3)) * 2, np.full(20, 0.05), rng.standard_normal(20)
    X = sample_linear_gaussian(400, W, psi, mu)
    missing = rng.random(X.shape) < 0.2
    X_missing = np.where(missing, np.nan, X)
    model = PPCA(3, solver="em", random_state=0, tol=1e-6).fit(X_missing)
    assert np.all(np.diff(model.loglike_) >= -1e-9)
    imputed = model.impute(X_missing)
    assert not np.isnan(imputed).any()
    err_model = np.mean((imputed[missing] - X[missing]) ** 2)
    col_means = np.nanmean(X_missing, axis=0)
    err_mean = np.mean((np.broadcast_to(col_means, X.shape)[missing] - X[missing]) ** 2)
    assert err_model < 0.1 * err_mean
    assert np.isfinite(model.score_samples(X_missing)).all()


def test_closed_solver_rejects_nan_and_em_names_fully_missing_features(digits):
    X = digits.train.astype(np.float64).copy()
    X[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        PPCA(3).fit(X)
    X[:, 5] = np.nan
    with pytest.raises(DataError, match=r"feature\(s\) \[5\]"):
        PPCA(3, solver="em").fit(X)


def test_em_warns_when_max_iter_is_hit(digits):
    with pytest.warns(ConvergenceWarning):
        PPCA(4, solver="em", max_iter=2, random_state=0).fit(digits.train)


def test_sample_has_model_covariance():
    rng = np.random.default_rng(0)
    X = sample_linear_gaussian(3000, rng.standard_normal((5, 2)), np.full(5, 0.2), np.zeros(5))
    model = PPCA(2).fit(X)
    draws = model.sample(40000, random_state=1)
    np.testing.assert_allclose(np.cov(draws.T), model.get_covariance(), atol=0.1)
