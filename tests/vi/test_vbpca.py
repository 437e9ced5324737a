"""Variational Bayesian PCA: the bound, each mean-field update, ARD pruning, digits."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
from scipy import linalg, optimize, stats

from elbokit.exceptions import ConvergenceWarning, ParameterError
from elbokit.vi import VBPCA
from elbokit.vi import _mean_field as mf

from conftest import sample_linear_gaussian


# --------------------------------------------------------------------------- a small problem

@pytest.fixture(scope="module", params=["complete", "missing"])
def small(request):
    """N=10 rows, d=4, L=2, and a posterior two sweeps from the start (not converged,
    so every update has work to do); in the "missing" variant 8 of the 40 entries
    are NaN (one row entirely), so each row of Z and W has its own covariance."""
    rng = np.random.RandomState(3)
    W = rng.standard_normal((4, 2)) * [2.0, 1.0]
    X = sample_linear_gaussian(10, W, np.full(4, 0.3), rng.standard_normal(4), seed=3)
    if request.param == "missing":
        X[[0, 2, 5, 7], [1, 3, 0, 2]] = np.nan
        X[9] = np.nan
    priors = mf.Priors(alpha_shape=0.5, alpha_rate=0.2, tau_shape=0.7, tau_rate=0.3,
                       mean_precision=0.4)  # not the defaults, to exercise every term
    post = mf.initial_posterior(X, 2, priors, np.random.RandomState(0))
    for _ in range(2):
        post = mf.sweep(X, post, priors)
    return X, post, priors


def _random_posterior(X, L, rng):
    """A q with every factor random (per-row covariances for Z and W)."""
    n, d = X.shape

    def covs(count):
        A = rng.standard_normal((count, L, L)) * 0.5
        return A @ A.transpose(0, 2, 1) + 0.3 * np.eye(L)

    return mf.Posterior(
        z_mean=rng.standard_normal((n, L)), z_cov=covs(n),
        w_mean=rng.standard_normal((d, L)), w_cov=covs(d),
        mu_mean=rng.standard_normal(d), mu_var=rng.uniform(0.1, 0.5, d),
        alpha_shape=rng.uniform(1, 3, L), alpha_rate=rng.uniform(0.5, 2, L),
        tau_shape=2.5, tau_rate=1.5)


def _log_joint_and_log_q(X, post, priors, rng, n_draws):
    """Monte-Carlo draws of log p(X, Z, W, mu, alpha, tau) - log q(...) under q."""
    n, d = X.shape
    L = post.w_mean.shape[1]
    out = np.empty(n_draws)
    for s in range(n_draws):
        Z = np.array([rng.multivariate_normal(m, c) for m, c in zip(post.z_mean, post.z_cov)])
        W = np.array([rng.multivariate_normal(m, c) for m, c in zip(post.w_mean, post.w_cov)])
        mu = post.mu_mean + np.sqrt(post.mu_var) * rng.standard_normal(d)
        alpha = rng.gamma(post.alpha_shape, 1.0 / post.alpha_rate)
        tau = rng.gamma(post.tau_shape, 1.0 / post.tau_rate)
        log_p = (np.nansum(stats.norm.logpdf(X, Z @ W.T + mu, 1 / np.sqrt(tau)))
                 + stats.norm.logpdf(Z).sum()
                 + stats.norm.logpdf(W, 0, 1 / np.sqrt(alpha)).sum()
                 + stats.gamma.logpdf(alpha, priors.alpha_shape, scale=1 / priors.alpha_rate).sum()
                 + stats.gamma.logpdf(tau, priors.tau_shape, scale=1 / priors.tau_rate)
                 + stats.norm.logpdf(mu, 0, 1 / np.sqrt(priors.mean_precision)).sum())
        log_q = (sum(stats.multivariate_normal.logpdf(z, m, c)
                     for z, m, c in zip(Z, post.z_mean, post.z_cov))
                 + sum(stats.multivariate_normal.logpdf(w, m, c)
                       for w, m, c in zip(W, post.w_mean, post.w_cov))
                 + stats.norm.logpdf(mu, post.mu_mean, np.sqrt(post.mu_var)).sum()
                 + stats.gamma.logpdf(alpha, post.alpha_shape, scale=1 / post.alpha_rate).sum()
                 + stats.gamma.logpdf(tau, post.tau_shape, scale=1 / post.tau_rate))
        out[s] = log_p - log_q
    assert L == Z.shape[1]
    return out


def test_elbo_formula_matches_monte_carlo(small):
    """The closed-form bound equals E_q[log p(X, theta) - log q(theta)] estimated by
    sampling q, for a random q with per-row covariances (so the updates are not
    checked against a wrong objective)."""
    X, _, priors = small
    rng = np.random.RandomState(11)
    post = _random_posterior(X, 2, rng)
    draws = _log_joint_and_log_q(X, post, priors, rng, 1500)
    standard_error = draws.std() / np.sqrt(draws.size)
    assert abs(draws.mean() - mf.elbo(X, post, priors)) < 4 * standard_error
    assert standard_error < 0.02 * abs(draws.mean())  # the check has teeth


# --------------------------------------------------------------------------- each update

def _tril_to_cov(params, L):
    """Map unconstrained numbers to a covariance via a Cholesky factor (log diagonal)."""
    chol = np.zeros((L, L))
    chol[np.tril_indices(L)] = params
    chol[np.diag_indices(L)] = np.exp(np.diag(chol))
    return chol @ chol.T


def _gaussian_rows_factor(mean_name, cov_name, count, L):
    """(pack, unpack) for a factor of ``count`` Gaussian rows, each with its own
    full covariance (wider than the closed form's shared covariance)."""
    n_tri = L * (L + 1) // 2

    def unpack(theta, post):
        means = theta[: count * L].reshape(count, L)
        tris = theta[count * L:].reshape(count, n_tri)
        covs = np.array([_tril_to_cov(t, L) for t in tris])
        return replace(post, **{mean_name: means, cov_name: covs})

    def pack(post):
        cov = getattr(post, cov_name)
        covs = np.broadcast_to(cov, (count, L, L)) if cov.ndim == 2 else cov
        tris = []
        for c in covs:
            chol = np.linalg.cholesky(c)
            chol[np.diag_indices(L)] = np.log(np.diag(chol))
            tris.append(chol[np.tril_indices(L)])
        return np.concatenate([getattr(post, mean_name).ravel(), np.ravel(tris)])

    return pack, unpack


def _factor(name, X, L):
    n, d = X.shape
    if name == "z":
        return _gaussian_rows_factor("z_mean", "z_cov", n, L)
    if name == "w":
        return _gaussian_rows_factor("w_mean", "w_cov", d, L)
    if name == "mu":
        return (lambda p: np.concatenate([p.mu_mean, np.log(p.mu_var)]),
                lambda t, p: replace(p, mu_mean=t[:d], mu_var=np.exp(t[d:])))
    if name == "alpha":
        return (lambda p: np.log(np.concatenate([p.alpha_shape, p.alpha_rate])),
                lambda t, p: replace(p, alpha_shape=np.exp(t[:L]), alpha_rate=np.exp(t[L:])))
    if name == "tau":
        return (lambda p: np.log([p.tau_shape, p.tau_rate]),
                lambda t, p: replace(p, tau_shape=float(np.exp(t[0])),
                                     tau_rate=float(np.exp(t[1]))))
    raise AssertionError(name)


UPDATES = {"z": mf.update_z, "mu": mf.update_mu, "w": mf.update_w,
           "alpha": mf.update_alpha, "tau": mf.update_tau}


@pytest.mark.parametrize("name", list(UPDATES))
def test_update_is_the_numerical_argmax_of_the_elbo_in_its_factor(small, name):
    """Maximise the ELBO numerically in one factor (others frozen), from a random start
    and over a family at least as wide as the closed form's: the optimum must be the
    closed-form update, in value and in parameters, and no random perturbation of the
    update may raise the bound."""
    X, post, priors = small
    L = post.w_mean.shape[1]
    pack, unpack = _factor(name, X, L)
    rng = np.random.RandomState(5)
    post = unpack(pack(post) + 0.3 * rng.standard_normal(pack(post).size), post)  # move q_j
    updated = UPDATES[name](X, post, priors)
    best = mf.elbo(X, updated, priors)
    assert best > mf.elbo(X, post, priors)  # the update did something

    def negative_elbo(theta):
        return -mf.elbo(X, unpack(theta, post), priors)

    start = pack(post) + 0.3 * rng.standard_normal(pack(post).size)
    result = optimize.minimize(negative_elbo, start, method="BFGS",
                               options={"gtol": 1e-9, "maxiter": 20000})
    assert -result.fun <= best + 1e-7 * abs(best)  # nothing in the family beats the update
    assert -result.fun == pytest.approx(best, abs=1e-6 * abs(best))
    np.testing.assert_allclose(result.x, pack(updated), atol=2e-3)

    theta = pack(updated)
    for _ in range(20):
        perturbed = theta + 1e-3 * rng.standard_normal(theta.size)
        assert -negative_elbo(perturbed) < best


def test_missing_entries_give_each_row_its_own_covariance(small):
    X, post, priors = small
    post = mf.sweep(X, post, priors)
    if np.isnan(X).any():
        assert post.z_cov.shape == (10, 2, 2) and post.w_cov.shape == (4, 2, 2)
        np.testing.assert_allclose(post.z_cov[9], np.eye(2))  # nothing observed: the prior
        assert not np.allclose(post.z_cov[0], post.z_cov[1])
    else:
        assert post.z_cov.shape == (2, 2) and post.w_cov.shape == (2, 2)


def test_each_coordinate_step_never_lowers_the_elbo(small):
    X, post, priors = small
    post = replace(post, z_mean=np.zeros_like(post.z_mean))
    values = [mf.elbo(X, post, priors)]
    for _ in range(30):
        for update in mf.UPDATES:
            post = update(X, post, priors)
            values.append(mf.elbo(X, post, priors))
    assert np.all(np.diff(values) >= -1e-10 * np.abs(values[1:]))


# --------------------------------------------------------------------------- the estimator

@pytest.fixture(scope="module")
def five_factors():
    """500 samples of a 5-factor model in 30 dimensions with unit noise."""
    rng = np.random.RandomState(1)
    W = rng.standard_normal((30, 5)) * [3.0, 2.5, 2.0, 1.5, 1.0]
    X = sample_linear_gaussian(500, W, np.ones(30), rng.standard_normal(30), seed=1)
    return X, W


def test_elbo_never_decreases_over_a_fit(five_factors):
    X, _ = five_factors
    model = VBPCA(15, tol=1e-9, max_iter=400).fit(X)
    tiny = 1e-10 * np.abs(model.elbo_[1:])
    assert model.n_iter_ > 20
    assert np.all(np.diff(model.elbo_) >= -tiny)


def test_ard_recovers_five_factors_from_fifteen(five_factors):
    X, W = five_factors
    model = VBPCA(15, random_state=0).fit(X)
    assert model.n_components_ == 5
    assert list(model.active_components_) == [0, 1, 2, 3, 4]  # sorted by E[alpha]
    angles = linalg.subspace_angles(W, model.components_.T)
    assert np.max(angles) < 0.1  # radians
    # the five are far below the E[alpha] threshold, the others above it
    ratio = model.alpha_ / model.alpha_threshold_
    assert np.all(ratio[:5] < 0.2) and np.all(ratio[5:] > 1.0)
    # ARD itself drove at least 9 of the 10 others to zero (mean-field VB may keep one
    # noise-edge direction with a tiny loading, which the threshold does not count)
    norms = np.linalg.norm(model.loadings_[:, 5:], axis=0)
    assert np.sum(norms < 0.01 * np.sqrt(model.noise_variance_)) >= 9
    assert model.noise_variance_ == pytest.approx(1.0, rel=0.1)


def test_digits_heldout_loglike_matches_ppca_at_the_selected_dimension(digits):
    """With --max-latent 40 VBPCA keeps every component on digits (isotropic noise
    and 1437 samples: the evidence wants them all, as Minka's PPCA evidence does);
    its plug-in predictive log-likelihood is then within 1 nat/sample of PPCA's."""
    from elbokit.linear import PPCA

    model = VBPCA(40).fit(digits.train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PPCA's warning about the constant pixels
        ppca = PPCA(model.n_components_).fit(digits.train)
    vb, ref = model.score(digits.test), ppca.score(digits.test)
    assert abs(vb - ref) < 1.0
    assert model.n_components_ > 20  # not a trivially small model


def test_digits_full_start_prunes_the_constant_pixel_directions(digits):
    """Started from every dimension, ARD switches off the directions with no variance
    (digits has 3 always-zero pixels) and still predicts held-out data no worse than
    PPCA with as many components."""
    from elbokit.linear import PPCA

    constant = int(np.sum(digits.train.var(axis=0) == 0))
    model = VBPCA(max_iter=2000).fit(digits.train)
    assert model.n_components_ <= 64 - constant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PPCA's warning about the constant pixels
        ppca = PPCA(model.n_components_).fit(digits.train)
    assert model.score(digits.test) > ppca.score(digits.test) - 1.0


def test_fit_does_not_depend_on_the_units(five_factors):
    X, _ = five_factors
    a = VBPCA(15, random_state=0).fit(X)
    b = VBPCA(15, random_state=0).fit(1000.0 * X)
    assert a.n_components_ == b.n_components_
    np.testing.assert_allclose(1000.0 * a.components_, b.components_, rtol=1e-6, atol=1e-6)
    assert b.score(1000.0 * X) == pytest.approx(a.score(X) - 30 * np.log(1000.0), rel=1e-8)
    np.testing.assert_allclose(b.elbo_, a.elbo_ - X.size * np.log(1000.0), rtol=1e-8)


def test_missing_values_still_recover_five_factors(five_factors):
    """Ilin & Raiko's (2010) treatment: 20% of the entries missing at random."""
    X, W = five_factors
    X = X.copy()
    X[np.random.RandomState(0).uniform(size=X.shape) < 0.2] = np.nan
    model = VBPCA(15, tol=1e-7, random_state=0).fit(X)
    assert np.all(np.diff(model.elbo_) >= -1e-10 * np.abs(model.elbo_[1:]))
    assert model.n_components_ == 5
    assert np.max(linalg.subspace_angles(W, model.components_.T)) < 0.15
    assert model.noise_variance_ == pytest.approx(1.0, rel=0.15)


def test_score_and_transform_with_nan_marginalise_the_missing_entries(five_factors):
    X, _ = five_factors
    model = VBPCA(15, random_state=0).fit(X)
    rows = X[:3].copy()
    rows[0, [1, 4, 7]] = np.nan
    rows[2, :10] = np.nan
    cov = model.get_covariance()
    expected = []
    for row in rows:
        seen = ~np.isnan(row)
        expected.append(stats.multivariate_normal.logpdf(
            row[seen], model.mean_[seen], cov[np.ix_(seen, seen)]))
    np.testing.assert_allclose(model.score_samples(rows), expected, rtol=1e-10)
    np.testing.assert_allclose(model.transform(rows)[1], model.transform(X[1:2])[0])
    filled = model.impute(rows)
    assert not np.isnan(filled).any() and np.array_equal(filled[1], X[1])


def test_rejects_a_feature_with_no_observed_value(five_factors):
    from elbokit.exceptions import DataError

    X, _ = five_factors
    X = X.copy()
    X[:, 3] = np.nan
    with pytest.raises(DataError, match="no observed value"):
        VBPCA(5).fit(X)


def test_active_set_is_the_documented_rule(five_factors):
    """E[alpha_i] < alpha_threshold_[i]  <=>  ||E[w_i]||^2 > t (1/E[tau] + tr Cov(w_i))."""
    X, _ = five_factors
    for t in (0.1, 1.0, 10.0):
        model = VBPCA(15, active_threshold=t, random_state=0).fit(X)
        spread = 30 * np.diag(model.loadings_cov_)
        rule = np.sum(model.loadings_**2, axis=0) > t * (model.noise_variance_ + spread)
        np.testing.assert_array_equal(np.flatnonzero(rule), model.active_components_)


def test_pure_noise_keeps_no_component():
    X = 2.0 * np.random.RandomState(0).standard_normal((300, 10)) + 1.0
    model = VBPCA(random_state=0).fit(X)
    assert model.n_components_ == 0 and model.transform(X).shape == (300, 0)
    expected = stats.multivariate_normal(model.mean_, model.noise_variance_ * np.eye(10))
    assert model.score(X) == pytest.approx(np.mean(expected.logpdf(X)), rel=1e-12)
    assert model.noise_variance_ == pytest.approx(4.0, rel=0.1)


def test_warns_at_max_iter(five_factors):
    X, _ = five_factors
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        model = VBPCA(15, max_iter=3).fit(X)
    assert model.n_iter_ == 3


@pytest.mark.parametrize("params", [{"n_components": 0}, {"n_components": 31},
                                    {"max_iter": 0}, {"tol": -1.0}, {"alpha_rate": 0.0},
                                    {"tau_shape": -1.0}, {"mean_precision": float("nan")},
                                    {"active_threshold": -0.5}])
def test_bad_parameters_are_rejected_at_fit(five_factors, params):
    X, _ = five_factors
    model = VBPCA(**params)  # __init__ only stores
    with pytest.raises(ParameterError):
        model.fit(X)


def test_save_and_load_round_trip(five_factors, tmp_path):
    from elbokit.persistence import load_estimator, save_estimator

    X, _ = five_factors
    model = VBPCA(15, random_state=0).fit(X)
    save_estimator(model, tmp_path / "m", kind="vbpca")
    loaded = load_estimator(tmp_path / "m", {"vbpca": VBPCA})
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.active_components_, model.active_components_)
    np.testing.assert_array_equal(loaded.elbo_, model.elbo_)


def test_sample_and_transform_shapes(five_factors):
    X, _ = five_factors
    model = VBPCA(15, random_state=0).fit(X)
    assert model.transform(X).shape == (500, 5)
    draws = model.sample(20000, random_state=0)
    cov = model.get_covariance()
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.max(np.diag(cov)))


# --------------------------------------------------------------------------- command line

def test_cli_fit_vbpca_reports_the_chosen_dimension(five_factors, tmp_path, capsys):
    import json

    from elbokit.cli import main
    from elbokit.models import load_model

    X, _ = five_factors
    np.save(tmp_path / "five.npy", X)
    out = tmp_path / "run"
    code = main(["fit", "vbpca", "--data", str(tmp_path / "five.npy"), "--max-latent", "15",
                 "--out", str(out)])
    assert code == 0
    assert "chosen dimension: 5 of 15" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chosen_dimension"] == 5 and metrics["max_latent"] == 15
    for key in ("train_loglike", "test_loglike", "train_bits_per_dim", "test_bits_per_dim",
                "fit_seconds", "iterations"):
        assert np.isfinite(metrics[key])
    assert (out / "alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_model(out)
    assert isinstance(model, VBPCA) and model.n_components_ == 5
    from elbokit import data

    test_rows = data.load(str(tmp_path / "five.npy"), seed=0).test
    assert metrics["test_loglike"] == pytest.approx(model.score(test_rows), rel=1e-10)


def test_cli_fit_vbpca_accepts_missing_values(five_factors, tmp_path, capsys):
    import json

    from elbokit.cli import main

    X, _ = five_factors
    X = X.copy()
    X[np.random.RandomState(1).uniform(size=X.shape) < 0.1] = np.nan
    np.save(tmp_path / "holes.npy", X)
    code = main(["fit", "vbpca", "--data", str(tmp_path / "holes.npy"), "--max-latent", "10",
                 "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["chosen_dimension"] == 5 and np.isfinite(metrics["test_loglike"])


def test_cli_fit_vbpca_rejects_a_bad_max_latent(tmp_path, capsys):
    from elbokit.cli import main

    code = main(["fit", "vbpca", "--max-latent", "0", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "--max-latent must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r" / "model.json").exists()


def test_cli_default_max_latent_fits_a_table_with_few_features(tmp_path, capsys):
    """`fit vbpca` on iris (4 features) with no --max-latent starts from 4, not 40."""
    from elbokit.cli import main

    assert main(["fit", "vbpca", "--data", "iris", "--out", str(tmp_path / "vb")]) == 0
    assert "of 4" in capsys.readouterr().out
    assert main(["fit", "vbpca", "--data", "iris", "--max-latent", "9",
                 "--out", str(tmp_path / "vb9")]) == 2
