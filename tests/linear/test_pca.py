import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import PCA as SkPCA

from elbokit import PCA
from elbokit.exceptions import DataError, ParameterError


def test_covariance_is_sklearns_rescaled_to_divisor_n(digits):
    X = digits.train.astype(np.float64)
    n = X.shape[0]
    ours = PCA(10).fit(X)
    theirs = SkPCA(10, svd_solver="full").fit(X)
    # scikit-learn's eigenvalues and noise use N - 1; ours use N: the covariances
    # differ by exactly the factor (N - 1) / N.
    np.testing.assert_allclose(ours.get_covariance(), theirs.get_covariance() * (n - 1) / n,
                               atol=1e-10)
    np.testing.assert_allclose(np.abs(ours.components_), np.abs(theirs.components_), atol=1e-6)


def test_score_close_to_sklearn_within_the_divisor_difference(digits):
    X = digits.train.astype(np.float64)
    n, d = X.shape
    ours, theirs = PCA(10).fit(X), SkPCA(10, svd_solver="full").fit(X)
    # scaling a Gaussian's covariance by c = (N-1)/N changes log p(x) by -d/2 log c
    # plus a change of the quadratic term of relative size 1/N: both O(d/N).
    assert abs(ours.score(X) - theirs.score(X)) < d / n
    assert ours.score(X) >= theirs.score(X)  # the ML estimate fits the training data best


def test_score_samples_is_the_gaussian_logpdf(digits):
    model = PCA(5).fit(digits.train)
    expected = stats.multivariate_normal(model.mean_, model.get_covariance(),
                                         allow_singular=False).logpdf(digits.test)
    np.testing.assert_allclose(model.score_samples(digits.test), expected, rtol=1e-8)


def test_noise_variance_is_mean_of_discarded_eigenvalues(digits):
    X = digits.train.astype(np.float64)
    eig = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    model = PCA(7).fit(X)
    assert np.isclose(model.noise_variance_, eig[7:].mean())
    np.testing.assert_allclose(model.explained_variance_, eig[:7], rtol=1e-8)


def test_whitened_scores_have_identity_covariance_and_roundtrip_to_the_projection(digits):
    # at L = d any orthonormal basis round-trips; at L < d only the top-L eigenbasis
    # gives Cov(Z) = I on the training data and the orthogonal projection onto the
    # principal subspace on the way back
    X = digits.train.astype(np.float64)
    model = PCA(10, whiten=True).fit(X)
    Z = model.transform(X)
    np.testing.assert_allclose(np.cov(Z.T, bias=True), np.eye(10), atol=1e-8)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-8)
    V = SkPCA(10, svd_solver="full").fit(X).components_  # the reference subspace
    Xt = digits.test.astype(np.float64)
    projection = model.mean_ + (Xt - model.mean_) @ V.T @ V
    np.testing.assert_allclose(model.inverse_transform(model.transform(Xt)), projection,
                               atol=1e-6)
    unwhitened = PCA(10).fit(X)
    np.testing.assert_allclose(unwhitened.inverse_transform(unwhitened.transform(Xt)),
                               projection, atol=1e-6)


def test_rejects_bad_input(digits):
    with pytest.raises(ParameterError, match="n_components"):
        PCA(100).fit(digits.train)
    X = digits.train.copy()
    X[3, 5] = np.nan
    with pytest.raises(DataError, match=r"1 non-finite value\(s\).*row 3, column 5"):
        PCA(3).fit(X)


def test_n_components_as_a_fraction_of_the_variance_as_sklearn(digits):
    X = digits.train.astype(np.float64)
    for fraction in (0.5, 0.9, 0.99):
        ours = PCA(fraction).fit(X)
        assert ours.n_components_ == SkPCA(fraction, svd_solver="full").fit(X).n_components_
        assert ours.explained_variance_ratio_.sum() >= fraction
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ParameterError, match="n_components"):
            PCA(bad).fit(X)
