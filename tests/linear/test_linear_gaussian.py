"""elbokit.linear._gaussian: the shared algebra and data statistics of the classical
models, against numpy references (np.cov, np.nanmean / np.nanvar, StandardScaler)."""

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from elbokit.exceptions import DataError
from elbokit.linear._gaussian import (check_observed_columns, constant_features, nan_moments,
                                      noise_guard, sample_covariance, standardization,
                                      subspace_loadings, variance_scale)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_sample_covariance_is_the_divisor_n_covariance_over_any_chunking(dtype, rtol):
    X = (np.random.default_rng(0).normal(size=(103, 7)) * [1, 2, 3, 4, 5, 6, 7] + 50)
    X = X.astype(dtype)
    reference = np.cov(X.astype(np.float64).T, bias=True)
    for chunk_rows in (10, 103, 4096):  # several chunks, one exact chunk, one big chunk
        mean, S = sample_covariance(X, chunk_rows=chunk_rows)
        np.testing.assert_allclose(mean, X.astype(np.float64).mean(0), rtol=rtol)
        np.testing.assert_allclose(S, reference, rtol=rtol, atol=rtol * np.abs(reference).max())
        np.testing.assert_array_equal(S, S.T)


def test_nan_moments_are_numpys_over_the_observed_entries():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    X[rng.random(X.shape) < 0.3] = np.nan
    mean, variances = nan_moments(X)
    np.testing.assert_allclose(mean, np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(variances, np.nanvar(X, axis=0), rtol=1e-12)


def test_every_feature_needs_an_observed_entry():
    mask = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    with pytest.raises(DataError, match=r"feature\(s\) \[1\] are missing .* PPCA"):
        check_observed_columns(mask, "PPCA")
    check_observed_columns(np.ones((2, 3)), "PPCA")  # nothing missing: no error


def test_standardization_is_standard_scalers_scale_and_constants_are_found():
    X = np.random.default_rng(2).normal(size=(30, 4)) * [1.0, 3.0, 0.5, 2.0]
    X[:, 2] = 7.0  # exactly constant
    mean, variances = X.mean(0), X.var(0)
    np.testing.assert_array_equal(constant_features(mean, variances), [2])
    np.testing.assert_allclose(standardization(mean, variances), StandardScaler().fit(X).scale_,
                               rtol=1e-12)


def test_relative_guards_scale_with_the_data():
    mean, variances = np.array([1.0, -2.0]), np.array([4.0, 2.0])
    assert variance_scale(mean, variances) == 3.0
    assert np.isclose(noise_guard(100 * mean, 1e4 * variances), 1e4 * noise_guard(mean, variances))
    assert variance_scale(mean, np.zeros(2)) == 2.5  # all constant: the mean squared mean
    assert variance_scale(np.zeros(2), np.zeros(2)) == 1.0  # all zero


def test_subspace_loadings_reproduce_the_ppca_covariance():
    # W = U (Lambda - sigma^2)^(1/2): W W' + sigma^2 I has eigenvalues Lambda on the
    # subspace and sigma^2 off it (Tipping & Bishop 1999, eq. 7)
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    lam, sigma2 = np.array([5.0, 2.0]), 0.5
    W = subspace_loadings(U.T, lam, sigma2)
    eig = np.sort(np.linalg.eigvalsh(W @ W.T + sigma2 * np.eye(6)))[::-1]
    np.testing.assert_allclose(eig, [5.0, 2.0] + [sigma2] * 4, atol=1e-12)
    assert np.all(subspace_loadings(U.T, np.array([0.2, 0.1]), sigma2) == 0.0)  # floored at 0


def test_the_two_independent_baselines_agree_on_the_training_rows():
    """The warning's closed form from variances alone equals the mean per-row baseline
    of compare's table when the rows scored are the rows fitted (wine, its own units)."""
    from sklearn.datasets import load_wine

    from elbokit.linear._gaussian import independent_log_likelihood, independent_loglike

    X = load_wine().data
    per_row = independent_log_likelihood(X, X)
    assert per_row.shape == (X.shape[0],)
    assert np.isclose(per_row.mean(), independent_loglike(X.var(axis=0)), rtol=1e-12)
    # scipy's density, an independent computation of the per-row figure
    from scipy.stats import norm
    expected = norm.logpdf(X, X.mean(0), X.std(0)).sum(1)
    assert np.allclose(per_row, expected, rtol=1e-10)
