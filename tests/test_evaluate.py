"""elbokit.evaluate: exact log-likelihoods for the linear models, importance sampling
for VAEs (checked on a linear-Gaussian model whose log p(x) is known exactly)."""

import math

import numpy as np
import pytest
import torch

from elbokit import PPCA, FactorAnalysis, evaluate
from elbokit._math import LowRankGaussian
from elbokit.nn.importance import importance_log_likelihood


class LinearGaussianVAE(torch.nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I), q(z|x) = N(A x + c, diag(v)):
    the interface importance_log_likelihood needs (encode, log_likelihood)."""

    def __init__(self, W, b, s2, A, c, v):
        super().__init__()
        t = lambda a: torch.as_tensor(a, dtype=torch.float64)
        self.W, self.b, self.s2, self.A, self.c, self.v = t(W), t(b), s2, t(A), t(c), t(v)

    def encode(self, x):
        mean = x @ self.A.T + self.c
        return mean, torch.log(self.v).expand_as(mean)

    def log_likelihood(self, x, z):
        mean = z @ self.W.T + self.b
        return (-0.5 * (math.log(2 * math.pi * self.s2)
                        + (x - mean) ** 2 / self.s2)).sum(-1)

    def exact_log_px(self, x):
        g = LowRankGaussian(self.W.numpy(), np.full(self.W.shape[0], self.s2))
        return g.logpdf(x.numpy() - self.b.numpy())

    def exact_elbo(self, x):
        m, logv = self.encode(x)
        v = torch.exp(logv)
        resid = x - m @ self.W.T - self.b
        d = x.shape[1]
        expected = -0.5 * (d * math.log(2 * math.pi * self.s2)
                           + ((resid ** 2).sum(-1) + (v * (self.W ** 2).sum(0)).sum(-1))
                           / self.s2)
        kl = 0.5 * (v + m ** 2 - 1 - logv).sum(-1)
        return (expected - kl).numpy()


def _model(exact_posterior: bool, seed=0, d=6, L=2, s2=0.5):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, L)))
    W = Q * np.array([2.0, 1.0])  # orthogonal columns: the exact posterior is diagonal
    b = rng.standard_normal(d)
    G = np.linalg.inv(np.eye(L) + W.T @ W / s2)  # posterior covariance (diagonal)
    A_exact = G @ W.T / s2
    if exact_posterior:
        A, c, v = A_exact, -A_exact @ b, np.diag(G)
    else:  # a deliberately imperfect encoder
        A, c, v = 0.7 * A_exact, -0.7 * A_exact @ b + 0.1, 1.5 * np.diag(G)
    model = LinearGaussianVAE(W, b, s2, A, c, v)
    x = torch.as_tensor(rng.standard_normal((200, L)) @ W.T + b
                        + rng.standard_normal((200, d)) * math.sqrt(s2))
    return model, x


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
    model = PPCA(64 - 1).fit(digits.train)
    small = PPCA(2).fit(digits.train)
    assert evaluate.reconstruction_error(model, digits.test) < \
        evaluate.reconstruction_error(small, digits.test)


def test_log_likelihood_of_a_real_linear_gaussian_vae():
    """The same properties through the public API: an elbokit.VAE whose linear
    decoder and encoder are set by hand, so that log p(x) and the ELBO are known."""
    from elbokit import VAE
    from test_vae_estimators import (_closed_form_elbo, _exact_posterior, _model,
                                     _problem)

    W, psi, b, _ = _problem()
    gaussian, G, A = _exact_posterior(W, psi, b)
    rng = np.random.default_rng(5)
    X = b + rng.normal(size=(300, W.shape[1])) @ W.T + rng.normal(size=(300, len(psi))) \
        * np.sqrt(psi)
    A_q, c_q = 0.8 * A, -0.8 * A @ b + 0.2  # an imperfect encoder
    logvar_q = np.log(np.diag(G)) + 0.5
    vae = VAE(W.shape[1], likelihood="gaussian", decoder="linear", encoder="linear")
    vae.model_ = _model(W, psi, b, A_q, c_q, logvar_q).float().eval()
    vae.architecture_ = vae.model_.config
    vae.n_features_in_ = len(psi)
    exact = gaussian.logpdf(X - b)
    bound = _closed_form_elbo(X, W, psi, b, A_q, c_q, logvar_q)
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
