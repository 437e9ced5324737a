"""The shared numerics (elbokit._math) against references: scipy.stats / scipy.special
and direct dense computations."""

import numpy as np
import pytest
from scipy import integrate, special, stats

from elbokit import _math
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


def test_logsumexp_matches_scipy_along_an_axis():
    a = np.random.default_rng(3).normal(scale=50.0, size=(4, 6))
    np.testing.assert_allclose(logsumexp(a, axis=1), special.logsumexp(a, axis=1), rtol=1e-14)
    assert logsumexp(a, axis=0, keepdims=True).shape == (1, 6)


def test_diag_gaussian_logpdf_matches_scipy():
    rng = np.random.default_rng(4)
    X, mean, var = rng.normal(size=(5, 3)), rng.normal(size=3), rng.uniform(0.1, 3.0, 3)
    expected = stats.norm(mean, np.sqrt(var)).logpdf(X).sum(axis=1)
    np.testing.assert_allclose(_math.diag_gaussian_logpdf(X, mean, var), expected, rtol=1e-12)


def test_diagonal_kl_is_cross_entropy_minus_entropy():
    rng = np.random.default_rng(5)
    mean, var = rng.normal(size=6), rng.uniform(0.05, 4.0, 6)
    q = stats.norm(mean, np.sqrt(var))
    cross = 0.5 * (np.log(2 * np.pi) + var + mean**2)  # -E_q[log N(z | 0, 1)]
    np.testing.assert_allclose(_math.kl_diag_gaussian_standard_dims(mean, var),
                               cross - q.entropy(), rtol=1e-12)
    # the same as the full-covariance KL with a diagonal covariance
    assert np.isclose(_math.kl_diag_gaussian_standard_dims(mean, var).sum(),
                      gaussian_kl_to_standard(mean, np.diag(var)))
    assert np.isfinite(_math.kl_diag_gaussian_standard_dims(np.zeros(1), np.zeros(1))).all()


def test_gaussian_entropy_matches_scipy():
    rng = np.random.default_rng(6)
    A = rng.normal(size=(4, 4))
    cov = A @ A.T + 0.5 * np.eye(4)
    logdet = np.linalg.slogdet(cov)[1]
    expected = stats.multivariate_normal(np.zeros(4), cov).entropy()
    assert np.isclose(_math.gaussian_entropy(logdet, 4), expected, rtol=1e-12)


def test_spd_inverses_match_numpy_and_are_symmetric():
    rng = np.random.default_rng(7)
    A = rng.normal(size=(3, 5, 5))
    stack = A @ np.swapaxes(A, 1, 2) + np.eye(5)
    np.testing.assert_allclose(_math.spd_inverse(stack[0]), np.linalg.inv(stack[0]), atol=1e-12)
    inverse = _math.batched_spd_inverse(stack)
    np.testing.assert_allclose(inverse, np.linalg.inv(stack), atol=1e-12)
    np.testing.assert_array_equal(inverse, np.swapaxes(inverse, 1, 2))
    np.testing.assert_array_equal(_math.spd_inverse(stack[1]), _math.spd_inverse(stack[1]).T)


@pytest.mark.parametrize("shape, rate", [(0.7, 2.0), (3.0, 0.5), (25.0, 10.0)])
def test_gamma_helpers_match_scipy(shape, rate):
    q = stats.gamma(shape, scale=1.0 / rate)
    assert np.isclose(_math.gamma_entropy(shape, rate), q.entropy(), rtol=1e-12)
    # E[log x] by numerical integration of log x against the density
    e_log, _ = integrate.quad(lambda x: np.log(x) * q.pdf(x), 0, np.inf)
    assert np.isclose(_math.gamma_expected_log(shape, rate), e_log, rtol=1e-6, atol=1e-8)
    prior = stats.gamma(1.5, scale=1.0 / 0.3)
    e_log_prior, _ = integrate.quad(lambda x: prior.logpdf(x) * q.pdf(x), 0, np.inf)
    assert np.isclose(_math.gamma_expected_log_prior(shape, rate, 1.5, 0.3), e_log_prior,
                      rtol=1e-6, atol=1e-8)


def test_bits_per_dim_reads_a_density_in_bits():
    # a density of 2^-3 per dimension over d = 4 dimensions is 3 bits per dimension
    assert np.isclose(_math.bits_per_dim(4 * np.log(2.0**-3), 4), 3.0)
    # and agrees with the base-2 log of the same density
    log_px = stats.norm(0, 0.2).logpdf(np.array([0.1, -0.3, 0.05])).sum()
    assert np.isclose(_math.bits_per_dim(log_px, 3), -log_px * np.log2(np.e) / 3)


@pytest.mark.parametrize("shared_noise", [True, False], ids=["ppca", "fa"])
def test_observed_logpdf_is_the_marginal_over_observed_entries(shared_noise):
    rng = np.random.default_rng(11)
    W, mu, X = rng.standard_normal((5, 2)), rng.standard_normal(5), rng.standard_normal((3, 5))
    psi = 0.4 if shared_noise else rng.uniform(0.2, 1.0, 5)
    mask = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], dtype=np.float64)
    cov = W @ W.T + np.diag(np.broadcast_to(psi, (5,)))
    got = _math.observed_logpdf(np.where(mask > 0, X - mu, 0.0), mask, W, psi)
    for i, row in enumerate(mask.astype(bool)):
        expected = stats.multivariate_normal(mu[row], cov[np.ix_(row, row)]).logpdf(X[i, row])
        assert np.isclose(got[i], expected, rtol=1e-12)
