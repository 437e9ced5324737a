import warnings

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
    floor; both with default settings."""
    X = digits.train.astype(np.float64)
    X = X[:, X.var(axis=0) > 0]
    ours = FactorAnalysis(10).fit(X)
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
    X = sample_linear_gaussian(1000, *fa_problem)
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


@pytest.mark.parametrize("standardized", [False, True])
def test_defaults_reach_sklearn_on_breast_cancer_raw_and_standardized(standardized):
    """Raw breast cancer (variances 1e-5 .. 1e5): no feature is floored (22 of 30 were,
    at 16.5), and the fit reaches scikit-learn's log-likelihood, train and test (80/20)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X = load_breast_cancer().data
    if standardized:
        X = (X - X.mean(0)) / X.std(0)
    train, test = train_test_split(X, test_size=0.2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # raw: perimeter is a Heywood case
        warnings.filterwarnings("error", message=".*constant", category=UserWarning)
        ours = FactorAnalysis(4).fit(train)
    theirs = SkFactorAnalysis(4, random_state=0).fit(train)
    assert ours.constant_features_.size == 0
    assert ours.score(train) >= theirs.score(train) - 1e-3
    assert ours.score(test) >= theirs.score(test) - 1e-3


def test_heywood_cases_are_named():
    """Iris, 2 factors (negative degrees of freedom): the maxima put two features at
    the floor, at or above scikit-learn run to convergence; the default's two starts find
    sepal length and petal length, four starts a higher maximum with sepal width and petal
    length."""
    from sklearn.datasets import load_iris

    X = load_iris().data
    theirs = SkFactorAnalysis(2, tol=1e-10, max_iter=20000).fit(X)
    for n_init, expected in (("auto", [0, 2]), (4, [1, 2])):
        with pytest.warns(UserWarning, match=rf"Heywood.*indices {expected[0]}, {expected[1]}\)"):
            model = FactorAnalysis(2, n_init=n_init).fit(X)
        np.testing.assert_array_equal(model.heywood_features_, expected)
        assert np.all(model.noise_variance_[expected]
                      >= 1e-9 * X[:, expected].var(0) * (1 - 1e-9))
        assert model.convergence_["converged"]
        assert model.score(X) >= theirs.score(X)
    assert model.score(X) > FactorAnalysis(2).fit(X).score(X) + 1e-3


def test_tiny_floor_and_tol_never_raise_linalg_errors():
    """Standardized breast cancer, 10 factors, noise_floor and tol near zero (a raw
    numpy LinAlgError before): EM stays finite."""
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data
    X = (X - X.mean(0)) / X.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FactorAnalysis(10, noise_floor=1e-12, tol=1e-12, max_iter=300).fit(X)
    assert np.all(np.isfinite(model.loglike_)) and np.all(np.diff(model.loglike_) >= -1e-9)
    assert np.all(model.noise_variance_ > 0)


def test_data_near_the_float64_range_stays_finite_or_raises_an_elbokit_error(fa_problem):
    from elbokit import PPCA
    from elbokit.exceptions import ElbokitError

    W, psi, mu = fa_problem
    X = sample_linear_gaussian(200, W, psi, mu)
    for c in (1e20, 1e-20, 1e150):
        for model in (FactorAnalysis(3), PPCA(3, solver="em", random_state=0)):
            try:
                model.fit(X * c)
            except ElbokitError:
                continue
            assert np.isfinite(model.score(X * c))


def test_n_components_as_in_sklearn(fa_problem):
    W, psi, mu = fa_problem
    X = sample_linear_gaussian(300, W, psi, mu)
    assert FactorAnalysis().fit(X).n_components_ == 12  # None: n_features
    full = FactorAnalysis(12).fit(X)
    assert full.components_.shape == (12, 12) and np.isfinite(full.score(X))
    assert full.score(X) >= FactorAnalysis(3).fit(X).score(X) - 1e-6


def test_min_noise_variance_is_an_opt_in_floor_in_the_data_units(digits):
    X = digits.train.astype(np.float64)
    X = X[:, X.var(axis=0) > 0]  # constant pixels: floored relative to the mean variance
    floor = 1e-3 * X.var(axis=0).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        free = FactorAnalysis(5).fit(X)
        floored = FactorAnalysis(5, min_noise_variance=floor).fit(X)
        standardized = FactorAnalysis(5, min_noise_variance=floor, standardize=True).fit(X)
    assert free.noise_variance_.min() < floor <= floored.noise_variance_.min() * (1 + 1e-12)
    assert floored.score(X) < free.score(X)
    # standardize changes nothing: the floor is in the units of X
    np.testing.assert_allclose(standardized._noise_diag(), floored.noise_variance_, rtol=1e-4)
    assert standardized.score(X) == pytest.approx(floored.score(X), abs=1e-4)


def test_the_em_path_with_subspace_iteration_reaches_the_same_fit(fa_problem, monkeypatch):
    """Above 256 features the fit is EM from the profile start, which uses warm-started
    subspace iteration: forced on for 12 features it must reach the ML fit's maximum."""
    from elbokit.linear import factor_analysis

    W, psi, mu = fa_problem
    X = sample_linear_gaussian(2000, W, psi, mu, seed=3)
    exact = FactorAnalysis(3).fit(X)
    monkeypatch.setattr(factor_analysis, "EXACT_EIGH_FEATURES", 0)
    monkeypatch.setattr(factor_analysis, "EM_FEATURES", 0)
    em = FactorAnalysis(3).fit(X)
    assert em.convergence_["method"].startswith("EM")
    assert em.score(X) == pytest.approx(exact.score(X), abs=1e-6)
    assert em.score(X) <= exact.score(X) + 1e-9
    # EM stops on the likelihood change: its parameters are 2e-4 (relative) off here
    np.testing.assert_allclose(em.get_covariance(), exact.get_covariance(), rtol=1e-3)
    assert np.all(np.diff(em.loglike_) >= -1e-12) and em.loglike_[-1] == pytest.approx(em.score(X))
