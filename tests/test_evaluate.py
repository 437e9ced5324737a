"""elbokit.evaluate: exact log-likelihoods for the linear models, importance sampling
for VAEs (checked on a linear-Gaussian model whose log p(x) is known exactly)."""

import math

import numpy as np
import pytest
import torch

from elbokit import PCA, PPCA, FactorAnalysis, evaluate
from elbokit.nn.importance import importance_log_likelihood

from conftest import (closed_form_elbo, exact_posterior, linear_gaussian_vae, linear_vae_model,
                      rotated_problem)


def _model(exact_posterior: bool, seed=0, **kw):
    return linear_gaussian_vae(exact_posterior, seed, **kw)


def _is(model, x, k, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return importance_log_likelihood(model, x, k, generator=g, **kw).numpy()


def test_with_the_exact_posterior_every_weight_is_p_of_x():
    model, x = _model(exact_posterior=True)
    exact = model.exact_log_px(x)
    np.testing.assert_allclose(_is(model, x, 3), exact, atol=1e-9)
    np.testing.assert_allclose(model.exact_elbo(x), exact, atol=1e-9)  # the bound is tight


def test_converges_to_log_px_from_below_and_beats_the_elbo():
    model, x = _model(exact_posterior=False)
    exact, bound = model.exact_log_px(x), model.exact_elbo(x)
    assert np.all(bound < exact)
    gaps = []
    for k in (1, 10, 100, 2000):
        estimate = _is(model, x, k, seed=k)
        gaps.append(float(np.mean(exact - estimate)))
        se = float(np.std(exact - estimate, ddof=1) / math.sqrt(len(exact)))
        assert np.mean(estimate) <= np.mean(exact) + 4 * se  # never above in expectation
        assert np.mean(estimate) >= np.mean(bound) - 4 * se  # >= the ELBO
    # k = 1 is L_A: unbiased for the ELBO
    k1 = _is(model, x, 1, seed=123)
    se = np.std(k1 - bound, ddof=1) / math.sqrt(len(bound))
    assert abs(np.mean(k1 - bound)) < 4 * se
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] >= -0.01 and gaps[3] < 0.02


def test_memory_bound_does_not_change_the_estimate_much():
    model, x = _model(exact_posterior=False, seed=3)
    a = _is(model, x, 4000, seed=1)
    b = _is(model, x, 4000, seed=2, batch_size=7, max_elements=500)
    assert abs(a.mean() - b.mean()) < 0.01


@pytest.mark.parametrize("cls", [PPCA, FactorAnalysis])
def test_linear_models_are_exact_and_their_elbo_is_tight(digits, cls):
    model = cls(5).fit(digits.train)
    ll = evaluate.log_likelihood(model, digits.test)
    assert ll.exact and ll.n_importance is None
    np.testing.assert_allclose(ll.values, model.score_samples(digits.test))
    np.testing.assert_allclose(evaluate.elbo(model, digits.test), ll.values)
    assert ll.stderr == pytest.approx(np.std(ll.values, ddof=1) / np.sqrt(len(ll.values)))


def test_active_units_and_kl_per_dimension_on_a_known_model():
    rng = np.random.default_rng(0)
    W = np.zeros((8, 3))
    W[:, 0] = 3.0  # one strong factor; the other two carry nothing
    X = rng.standard_normal((3000, 3)) @ W.T + 0.3 * rng.standard_normal((3000, 8))
    model = PPCA(3).fit(X)
    # set the true parameters: units 2 and 3 have zero loadings, so their posterior is
    # the prior whatever x is (inactive, KL 0); unit 1 carries the signal
    model.components_, model.noise_variance_, model.mean_ = W.T, 0.09, np.zeros(8)
    count, activity = evaluate.active_units(model, X)
    assert count == 1 and activity.max() > 0.9
    kl = evaluate.kl_per_dimension(model, X)
    assert kl.max() > 1.0 and np.sort(kl)[:2].max() < 1e-12


def test_bits_per_dim_and_dequantization():
    log_px = np.array([-100.0, -120.0])
    assert evaluate.bits_per_dim(log_px, 10) == pytest.approx(110 / (10 * math.log(2)))
    assert evaluate.bits_per_dim(log_px, 10, levels=256) == pytest.approx(
        (110 + 10 * math.log(256)) / (10 * math.log(2)))
    X = np.array([[0.0, 1.0, 0.5]], dtype=np.float32)
    deq = evaluate.dequantize(X, levels=256)
    assert np.all(deq >= np.rint(X * 255) / 256) and np.all(deq < (np.rint(X * 255) + 1) / 256)


def test_reconstruction_error_is_the_linear_projection_error(digits):
    X = digits.train.astype(np.float64)
    eig = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    for L in (2, 10, 40):
        # PCA: the orthogonal projection error on the training data is the sum of the
        # discarded eigenvalues of the (divisor-N) covariance
        assert np.isclose(evaluate.reconstruction_error(PCA(L).fit(X), X), eig[L:].sum(),
                          rtol=1e-8)
        # PPCA decodes the posterior mean, W M^-1 W' = U diag(1 - sigma^2 / lambda) U':
        # each kept direction also loses a share sigma^4 / lambda_j of its variance
        model = PPCA(L).fit(X)
        sigma2 = model.noise_variance_
        expected = eig[L:].sum() + sigma2**2 * np.sum(1.0 / eig[:L])
        assert np.isclose(evaluate.reconstruction_error(model, X), expected, rtol=1e-8)


def test_log_likelihood_of_a_real_linear_gaussian_vae():
    """The same properties through the public API: an elbokit.VAE whose linear
    decoder and encoder are set by hand, so that log p(x) and the ELBO are known."""
    from elbokit import VAE
    W, psi, b, _ = rotated_problem()
    gaussian, G, A = exact_posterior(W, psi, b)
    rng = np.random.default_rng(5)
    X = b + rng.normal(size=(300, W.shape[1])) @ W.T + rng.normal(size=(300, len(psi))) \
        * np.sqrt(psi)
    A_q, c_q = 0.8 * A, -0.8 * A @ b + 0.2  # an imperfect encoder
    logvar_q = np.log(np.diag(G)) + 0.5
    vae = VAE(W.shape[1], likelihood="gaussian", decoder="linear", encoder="linear")
    vae.model_ = linear_vae_model(W, psi, b, A_q, c_q, logvar_q).float().eval()
    vae.architecture_ = vae.model_.config
    vae.n_features_in_ = len(psi)
    exact = gaussian.logpdf(X - b)
    bound = closed_form_elbo(X, W, psi, b, A_q, c_q, logvar_q)
    assert np.mean(exact - bound) > 0.1  # the bound is loose: something to close
    gaps = []
    for k in (1, 30, 3000):
        ll = evaluate.log_likelihood(vae, X, n_importance=k, random_state=k)
        assert not ll.exact and ll.n_importance == k
        diff = exact - ll.values
        se = np.std(diff, ddof=1) / np.sqrt(len(diff))
        assert np.mean(diff) > -4 * se - 1e-4  # never above log p(x) in expectation
        assert np.mean(ll.values - bound) > -4 * se - 1e-4  # and >= the ELBO
        gaps.append(np.mean(diff))
    assert gaps[0] > gaps[1] > gaps[2] and abs(gaps[2]) < 0.01
