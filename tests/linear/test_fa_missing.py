"""Factor analysis with missing values (NaN, missing at random): exact EM on the
observed entries, imputation, and densities of the observed entries."""


import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_wine

from elbokit import FactorAnalysis
from elbokit._math import augmented_m_step, ObservedPosteriors, observed_logpdf
from elbokit.exceptions import DataError

from conftest import quiet, sample_linear_gaussian


@pytest.fixture(scope="module")
def wine_holes():
    X = load_wine().data
    X = (X - X.mean(0)) / X.std(0)
    holes = np.random.default_rng(0).random(X.shape) < 0.2
    return X, holes, np.where(holes, np.nan, X)


@pytest.fixture(scope="module")
def wine_fits(wine_holes):
    X, _, X_missing = wine_holes
    return quiet(lambda: (FactorAnalysis(3, tol=1e-6).fit(X_missing), FactorAnalysis(3).fit(X)))


def test_observed_loglike_never_decreases(wine_fits):
    model, _ = wine_fits
    assert len(model.loglike_) > 3
    assert np.all(np.diff(model.loglike_) >= -1e-10)


def test_squarem_cycles_reach_the_plain_em_fixed_point(wine_holes):
    """The accelerated fit ends where plain EM ends (run here to 1e-9 nats)."""
    from elbokit._math import ObservedPosteriors, augmented_m_step

    _, holes, X_missing = wine_holes
    model = quiet(lambda: FactorAnalysis(2, tol=1e-10).fit(X_missing))
    mask = (~holes).astype(float)
    X0 = np.where(holes, 0.0, X_missing)
    W, mu, psi = model.components_.T, model.mean_, model.noise_variance_
    post = ObservedPosteriors(X0 - mu, mask, W, psi)
    W2, mu2, residual, counts = augmented_m_step(X0, mask, post)  # one more plain EM step
    np.testing.assert_allclose(W2 @ W2.T, W @ W.T, atol=1e-4)
    np.testing.assert_allclose(residual / counts, psi, atol=1e-4)
    np.testing.assert_allclose(mu2, mu, atol=1e-4)


def test_imputation_beats_column_means_and_approaches_the_complete_fit(wine_holes, wine_fits):
    """20% of the entries of standardized wine removed at random: RMSE on the holes of
    the column means ~1.04, of FA fitted to the incomplete data 0.80, of FA fitted to
    the complete data (imputing the same holes) 0.75."""
    X, holes, X_missing = wine_holes
    model, complete = wine_fits
    rmse = lambda A: float(np.sqrt(np.mean((A[holes] - X[holes]) ** 2)))
    ours, best = rmse(model.impute(X_missing)), rmse(complete.impute(X_missing))
    means = rmse(np.where(holes, np.nanmean(X_missing, axis=0), X))
    assert ours < 0.8 * means
    assert ours < 1.1 * best
    # and the fit explains the observed entries better than the complete-data fit
    assert model.score(X_missing) >= complete.score(X_missing)


def test_score_samples_is_the_marginal_of_the_observed_entries(wine_holes, wine_fits):
    _, holes, X_missing = wine_holes
    model, _ = wine_fits
    row = int(np.flatnonzero(holes.any(axis=1))[0])
    o = ~holes[row]
    cov = model.get_covariance()[np.ix_(o, o)]
    expected = stats.multivariate_normal(model.mean_[o], cov).logpdf(X_missing[row, o])
    assert model.score_samples(X_missing[row:row + 1])[0] == pytest.approx(expected, rel=1e-10)
    # transform conditions on the observed entries: E[z|x_o] = W_o' C_oo^-1 (x_o - mu_o)
    W = model.components_.T
    Ez = W[o].T @ np.linalg.solve(cov, X_missing[row, o] - model.mean_[o])
    np.testing.assert_allclose(model.transform(X_missing[row:row + 1])[0], Ez, atol=1e-10)


def test_without_missing_entries_the_m_step_is_the_complete_data_step(fa_problem):
    """augmented_m_step with every entry observed: W and mu of the complete-data EM
    with the mean estimated jointly, and psi = mean residual."""
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(200, W, psi, mu)
    mask = np.ones_like(X)
    post = ObservedPosteriors(X - mu, mask, W, psi)
    assert np.allclose(post.logpdf(), observed_logpdf(X - mu, mask, W, psi))
    W_new, mu_new, residual, counts = augmented_m_step(X, mask, post)
    # direct: regress x on [E z, 1] with E[z z'] = Cov + E z E z'
    Ez = post.mean
    n, L = Ez.shape
    Ezt = np.hstack([Ez, np.ones((n, 1))])
    A = Ezt.T @ Ezt
    A[:L, :L] += n * np.linalg.inv(np.eye(L) + W.T @ (W / psi[:, None]))
    coef = np.linalg.solve(A, Ezt.T @ X).T
    np.testing.assert_allclose(W_new, coef[:, :L], rtol=1e-8)
    np.testing.assert_allclose(mu_new, coef[:, L], rtol=1e-8)
    assert np.all(counts == n) and np.all(residual > 0)


def test_nan_only_where_possible(fa_problem, tmp_path):
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(100, W, psi, mu)
    X[3, 2] = np.nan
    path = tmp_path / "x.npy"
    np.save(path, X)
    with pytest.raises(DataError, match="NaN"):
        FactorAnalysis(3).fit(str(path))  # out of core: complete data only
    X[:, 5] = np.nan
    with pytest.raises(DataError, match=r"\[5\] are missing \(NaN\) in every sample"):
        FactorAnalysis(3).fit(X)
    X[0, 0] = np.inf
    with pytest.raises(DataError, match="inf"):
        FactorAnalysis(3).fit(X)
