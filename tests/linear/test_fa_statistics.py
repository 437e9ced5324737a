"""The factor solution, factor scores and fit statistics of elbokit.linear._interpret:
each against a closed form, a second computation, a reference implementation
(factor_analyzer) or a simulation where the truth is known."""

import warnings

import numpy as np
import pytest
from scipy import stats

from elbokit import FactorAnalysis
from elbokit.exceptions import DataError
from elbokit.linear._fit_statistics import bartlett_sphericity, fit_statistics, kmo
from elbokit.linear._interpret import factor_scores, factor_solution, hoffman_complexity

from conftest import sample_linear_gaussian

# 8 items on 2 factors with simple structure (plus two cross-loadings)
W_TRUE = np.array([[0.8, 0.0], [0.7, 0.1], [0.6, 0.0], [0.7, 0.0],
                   [0.0, 0.8], [0.1, 0.6], [0.0, 0.7], [0.0, 0.6]])
PSI_TRUE = 1.0 - np.sum(W_TRUE**2, axis=1)


def _ml_cov(X):
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc / X.shape[0]


def _fit(X, L):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FactorAnalysis(n_components=L).fit(X)


@pytest.fixture(scope="module")
def two_factor():
    X = sample_linear_gaussian(500, W_TRUE, PSI_TRUE, np.zeros(8), seed=3)
    return X, _fit(X, 2)


# ---------------------------------------------------------------- fit statistics
def test_chi_square_is_the_corrected_likelihood_ratio(two_factor):
    X, model = two_factor
    n, d = X.shape
    S, Sigma = _ml_cov(X), model.get_covariance()
    mean = X.mean(axis=0)
    ll_model = stats.multivariate_normal(mean, Sigma).logpdf(X).sum()
    ll_saturated = stats.multivariate_normal(mean, S).logpdf(X).sum()
    lr = 2.0 * (ll_saturated - ll_model)
    fit = fit_statistics(S, Sigma, n, 2)
    bartlett = (n - 1 - (2 * d + 5) / 6 - 2 * 2 / 3) / n
    assert fit.chi_square == pytest.approx(bartlett * lr, rel=1e-9)
    assert fit.dof == 13 and fit.null_dof == 28
    assert fit.p_value == pytest.approx(stats.chi2.sf(bartlett * lr, 13), rel=1e-9)
    assert fit.loglike == pytest.approx(ll_model, rel=1e-12)
    k = 8 * 2 + 8 - 1
    assert fit.aic == pytest.approx(-2 * ll_model + 2 * k, rel=1e-12)
    assert fit.bic == pytest.approx(-2 * ll_model + k * np.log(n), rel=1e-12)
    assert fit.psych_bic == pytest.approx(fit.chi_square - 13 * np.log(n))


def test_statistics_do_not_depend_on_the_units(two_factor):
    X, model = two_factor
    S, Sigma = _ml_cov(X), model.get_covariance()
    D = np.diag(np.linspace(0.1, 30.0, 8))
    a, b = fit_statistics(S, Sigma, 500, 2), fit_statistics(D @ S @ D, D @ Sigma @ D, 500, 2)
    for name in ("chi_square", "p_value", "rmsea", "tli", "null_chi_square"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9), name
    assert b.loglike == pytest.approx(a.loglike - 500 * np.log(np.diag(D)).sum(), rel=1e-10)


def test_chi_square_follows_its_null_distribution():
    """Data from a true 2-factor model: the chi-square has mean ~ dof (13) and its
    p-values are uniform (100 replications)."""
    chis, pvalues = [], []
    for seed in range(100):
        X = sample_linear_gaussian(500, W_TRUE, PSI_TRUE, np.zeros(8), seed=1000 + seed)
        fit = fit_statistics(_ml_cov(X), _fit(X, 2).get_covariance(), 500, 2)
        chis.append(fit.chi_square)
        pvalues.append(fit.p_value)
    # sd of chi2(13) is sqrt(26) = 5.1, so the mean of 100 has sd 0.51
    assert abs(np.mean(chis) - 13.0) < 1.6
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01


def test_rmsea_as_psych(two_factor):
    X, model = two_factor
    S = _ml_cov(X)
    good = fit_statistics(S, model.get_covariance(), 500, 2)
    F = good.objective
    expected = np.sqrt(max(F / 13 - 1 / 499, 0.0))
    assert good.rmsea == pytest.approx(expected, abs=1e-12)
    assert (good.rmsea == 0.0) == (499 * F <= 13)
    # a misfit (1 factor for 2): RMSEA > 0, its interval holds it and inverts the
    # noncentral chi-square at the corrected statistic
    bad = fit_statistics(S, _fit(X, 1).get_covariance(), 500, 1)
    lower, upper = bad.rmsea_ci
    assert bad.chi_square > bad.dof and 0 < lower < bad.rmsea < upper
    for bound, level in ((lower, 0.95), (upper, 0.05)):
        ncp = bound**2 * 499 * bad.dof
        assert stats.ncx2.cdf(bad.chi_square, bad.dof, ncp) == pytest.approx(level, abs=1e-8)


def test_rmsea_is_zero_for_an_exact_fit(two_factor):
    X, _ = two_factor
    S = _ml_cov(X)
    fit = fit_statistics(S, S, 500, 2)  # Sigma = S: F = 0 < dof
    assert fit.chi_square == 0.0 and fit.rmsea == 0.0 and fit.rmsea_ci == (0.0, 0.0)
    assert fit.p_value == 1.0 and fit.tli > 1.0


def test_tli_and_the_null_model(two_factor):
    X, model = two_factor
    n, d = X.shape
    S = _ml_cov(X)
    R = S / np.sqrt(np.outer(np.diag(S), np.diag(S)))
    fit = fit_statistics(S, model.get_covariance(), n, 2)
    # the null model's chi-square is Bartlett's sphericity statistic
    assert fit.null_chi_square == pytest.approx(bartlett_sphericity(R, n)[0], rel=1e-10)
    # psych's TLI in the chi-square form (chi0/df0 - chi/df) / (chi0/df0 - 1), both
    # statistics on the model's Bartlett multiplier
    m = n - 1 - (2 * d + 5) / 6 - 4 / 3
    chi0, chi = -np.linalg.slogdet(R)[1] * m, fit.objective * m
    assert fit.tli == pytest.approx((chi0 / 28 - chi / 13) / (chi0 / 28 - 1), rel=1e-10)
    assert 0.95 < fit.tli < 1.05  # the true model fits
    # the null (diagonal) model as the model: TLI = 0
    null = fit_statistics(S, np.diag(np.diag(S)), n, 0)
    assert null.tli == pytest.approx(0.0, abs=1e-12) and null.dof == 28


def test_no_dof_no_test(two_factor):
    X, _ = two_factor
    S = _ml_cov(X)
    fit = fit_statistics(S, S, 500, 5)  # 8 items, 5 factors: dof = -2
    assert fit.dof == -2 and np.isnan(fit.p_value) and np.isnan(fit.rmsea)
    assert "degrees of freedom" in fit.note


def test_bad_covariances_are_named():
    with pytest.raises(DataError, match="same shape"):
        fit_statistics(np.eye(3), np.eye(4), 100, 1)
    singular = np.ones((3, 3))
    with pytest.raises(DataError, match="S is not positive definite"):
        fit_statistics(singular, np.eye(3), 100, 1)


# ---------------------------------------------------------------- KMO, Bartlett
def test_kmo_and_bartlett_match_factor_analyzer(two_factor):
    from factor_analyzer.factor_analyzer import calculate_bartlett_sphericity, calculate_kmo

    X, _ = two_factor
    R = np.corrcoef(X, rowvar=False)
    overall, per_item = kmo(R)
    ref_items, ref_overall = calculate_kmo(X)
    assert overall == pytest.approx(ref_overall, abs=1e-10)
    np.testing.assert_allclose(per_item, ref_items, atol=1e-10)
    chi2, dof, p = bartlett_sphericity(R, X.shape[0])
    ref_chi2, ref_p = calculate_bartlett_sphericity(X)
    assert chi2 == pytest.approx(ref_chi2, abs=1e-10) and dof == 28
    assert p == pytest.approx(ref_p, abs=1e-10)


def test_kmo_of_two_items_is_half():
    """With two items the partial correlation is the correlation itself, so every
    KMO is exactly 1/2."""
    R = np.array([[1.0, 0.4], [0.4, 1.0]])
    overall, per_item = kmo(R)
    assert overall == pytest.approx(0.5) and np.allclose(per_item, 0.5)


# ---------------------------------------------------------------- factor scores
def test_regression_scores_are_the_fa_posterior_mean(two_factor):
    X, _ = two_factor
    X_std = (X - X.mean(axis=0)) / X.std(axis=0)
    model = _fit(X_std, 2)
    scores = factor_scores(X_std, model.components_.T, np.eye(2), model.noise_variance_)
    np.testing.assert_allclose(scores, model.transform(X_std), atol=1e-10)


def test_bartlett_scores_are_conditionally_unbiased():
    rng = np.random.default_rng(0)
    Phi = np.array([[1.0, 0.4], [0.4, 1.0]])
    f = rng.multivariate_normal(np.zeros(2), Phi, size=5)
    # without noise Bartlett returns the factors exactly (B' Lambda = I) ...
    exact = factor_scores(f @ W_TRUE.T, W_TRUE, Phi, PSI_TRUE, method="bartlett")
    np.testing.assert_allclose(exact, f, atol=1e-12)
    # ... and over noise E[F | f] = f (20,000 noisy copies of the same 5 rows)
    noise = rng.standard_normal((20000, 5, 8)) * np.sqrt(PSI_TRUE)
    noisy = factor_scores((f @ W_TRUE.T + noise).reshape(-1, 8), W_TRUE, Phi, PSI_TRUE,
                          method="bartlett").reshape(20000, 5, 2)
    np.testing.assert_allclose(noisy.mean(axis=0), f, atol=0.03)
    # it is the weighted least-squares solution of x = Lambda f + e, e ~ N(0, Psi)
    x = f[0] @ W_TRUE.T + noise[0, 0]
    w = 1 / np.sqrt(PSI_TRUE)
    gls = np.linalg.lstsq(W_TRUE * w[:, None], x * w, rcond=None)[0]
    np.testing.assert_allclose(factor_scores(x[None], W_TRUE, Phi, PSI_TRUE, "bartlett")[0],
                               gls, atol=1e-12)


@pytest.mark.parametrize("method", ["regression", "bartlett"])
def test_scores_follow_an_oblique_rotation(method):
    """Lambda = A inv(T)', Phi = T'T describes the same model with f = T' z, so the
    scores are the unrotated ones times T."""
    rng = np.random.default_rng(1)
    T = np.array([[0.9, 0.3], [0.2, 1.1]])
    T /= np.linalg.norm(T, axis=0)  # unit columns: diag(Phi) = 1
    X = rng.standard_normal((10, 8))
    plain = factor_scores(X, W_TRUE, np.eye(2), PSI_TRUE, method)
    rotated = factor_scores(X, W_TRUE @ np.linalg.inv(T).T, T.T @ T, PSI_TRUE, method)
    np.testing.assert_allclose(rotated, plain @ T, atol=1e-12)


def test_score_errors_are_named():
    with pytest.raises(DataError, match="Heywood"):
        factor_scores(np.zeros((2, 8)), W_TRUE, np.eye(2), np.r_[0.0, PSI_TRUE[1:]],
                      "bartlett")
    with pytest.raises(DataError, match=r"shape \(n_samples, 8\)"):
        factor_scores(np.zeros((2, 7)), W_TRUE, np.eye(2), PSI_TRUE)


# ---------------------------------------------------------------- the solution
def test_hoffman_complexity_closed_cases():
    np.testing.assert_allclose(hoffman_complexity(np.array([[0.7, 0.0, 0.0],
                                                            [0.5, -0.5, 0.0],
                                                            [0.3, 0.3, 0.3]])), [1, 2, 3])


def test_unrotated_solution_is_reflected_and_ordered():
    A = np.column_stack([-W_TRUE[:, 1], W_TRUE[:, 0] + 0.05])  # smaller factor first, flipped
    sol = factor_solution(A)
    np.testing.assert_allclose(sol.loadings, np.column_stack([A[:, 1], -A[:, 0]]))
    np.testing.assert_allclose(sol.communalities, np.sum(A**2, axis=1))
    np.testing.assert_allclose(sol.uniquenesses, 1 - np.sum(A**2, axis=1))
    np.testing.assert_allclose(sol.ss_loadings, np.sum(sol.loadings**2, axis=0))
    assert sol.ss_loadings[0] > sol.ss_loadings[1]
    assert sol.ss_loadings.sum() == pytest.approx(sol.communalities.sum())
    np.testing.assert_allclose(sol.cumulative_variance[-1], sol.communalities.sum() / 8)
    np.testing.assert_allclose(A @ sol.rotation_matrix, sol.loadings, atol=1e-12)


@pytest.mark.parametrize("rotation", ["varimax", "quartimax", "promax", "oblimin", "geomin"])
def test_rotated_solution_keeps_the_model(rotation):
    rng = np.random.default_rng(2)
    A = W_TRUE @ np.linalg.qr(rng.standard_normal((2, 2)))[0]  # an arbitrary orientation
    sol = factor_solution(A, rotation)
    Lam, Phi = sol.loadings, sol.factor_correlation
    np.testing.assert_allclose(Lam @ Phi @ Lam.T, A @ A.T, atol=1e-8)
    np.testing.assert_allclose(sol.structure, Lam @ Phi)
    np.testing.assert_allclose(sol.communalities, np.sum(A**2, axis=1), atol=1e-8)
    np.testing.assert_allclose(sol.ss_loadings, np.diag(Phi @ Lam.T @ Lam))
    assert np.all(np.diff(sol.ss_loadings) <= 1e-12) and np.all(Lam.sum(axis=0) > 0)
    np.testing.assert_allclose(np.diag(Phi), 1.0, atol=1e-10)
    assert sol.oblique == (rotation in ("promax", "oblimin", "geomin"))
    # the simple structure is found again: each item's main loading on its own factor
    assert np.array_equal(np.argmax(np.abs(Lam), axis=1), np.r_[[0] * 4, [1] * 4]) or \
        np.array_equal(np.argmax(np.abs(Lam), axis=1), np.r_[[1] * 4, [0] * 4])
    assert np.all(sol.complexity < 1.2)
