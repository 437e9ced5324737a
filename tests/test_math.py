"""The shared numerics against direct dense computations."""

import numpy as np
from scipy import stats

from elbokit._math import (LowRankGaussian, gaussian_kl_to_standard, gaussian_logpdf_dense,
                           logsumexp)


def _problem(seed=0, d=7, L=3, n=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, L)), rng.uniform(0.2, 2.0, d), rng.standard_normal((n, d))


def test_lowrank_logpdf_matches_scipy():
    W, psi, X = _problem()
    cov = W @ W.T + np.diag(psi)
    expected = stats.multivariate_normal(np.zeros(len(psi)), cov).logpdf(X)
    np.testing.assert_allclose(LowRankGaussian(W, psi).logpdf(X), expected, rtol=1e-10)
    np.testing.assert_allclose(gaussian_logpdf_dense(X, cov), expected, rtol=1e-10)


def test_lowrank_precision_logdet_and_posterior():
    W, psi, X = _problem(1)
    g = LowRankGaussian(W, psi)
    cov = W @ W.T + np.diag(psi)
    np.testing.assert_allclose(g.precision(), np.linalg.inv(cov), atol=1e-10)
    np.testing.assert_allclose(g.logdet(), np.linalg.slogdet(cov)[1], rtol=1e-12)
    # posterior of z given x by the joint Gaussian: E[z|x] = W' C^-1 x, Cov = I - W' C^-1 W
    np.testing.assert_allclose(g.posterior_mean(X), X @ np.linalg.solve(cov, W), atol=1e-10)
    np.testing.assert_allclose(g.posterior_cov(), np.eye(3) - W.T @ np.linalg.solve(cov, W),
                               atol=1e-10)


def test_mean_logpdf_from_covariance_equals_mean_of_logpdf():
    W, psi, X = _problem(2, n=50)
    S = X.T @ X / X.shape[0]
    g = LowRankGaussian(W, psi)
    np.testing.assert_allclose(g.mean_logpdf_from_cov(S), g.logpdf(X).mean(), rtol=1e-12)


def test_logsumexp_is_stable():
    a = np.array([1000.0, 1000.0])
    assert np.isclose(logsumexp(a), 1000.0 + np.log(2.0))
    assert np.isfinite(logsumexp(np.array([-1e4, -1e4 - 1])))


def test_kl_to_standard_normal_matches_monte_carlo_free_formula():
    mean = np.array([0.3, -1.0])
    cov = np.array([[1.5, 0.2], [0.2, 0.5]])
    # KL(N(m, S) || N(0, I)) for 2-D by the definition -E_q[log p] - H[q]
    entropy = stats.multivariate_normal(mean, cov).entropy()
    cross = 0.5 * (2 * np.log(2 * np.pi) + np.trace(cov) + mean @ mean)
    assert np.isclose(gaussian_kl_to_standard(mean, cov), cross - entropy)
