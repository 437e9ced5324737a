"""The ELBO estimators L_A and L_B on a linear-Gaussian model, where everything is
known in closed form (the lecture's slides "Computing the loss" and "A lower variance
estimator of the loss").

The model is a VAE with a linear decoder and Gaussian likelihood,
x = W z + b + noise, noise ~ N(0, diag psi), z ~ N(0, I), so log p(x) is
N(x | b, Psi + W W^T) (elbokit._math.LowRankGaussian) and, for q = N(m, diag s^2),

    ELBO = sum_d -1/2 [log(2 pi psi_d) + ((x_d - W_d m - b_d)^2 + sum_l W_dl^2 s_l^2) / psi_d]
           - 1/2 sum_l (s_l^2 + m_l^2 - 1 - log s_l^2).

Weights are set by hand in float64; W is rotated so that W^T Psi^-1 W is diagonal,
which makes the exact posterior N(G W^T Psi^-1 (x - b), G), G = (I + W^T Psi^-1 W)^-1,
a diagonal Gaussian the encoder can represent.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import (closed_form_elbo, exact_posterior, linear_vae_model,  # noqa: E402
                      rotated_problem)
from elbokit.nn import IWAE, AnalyticKLELBO, MonteCarloELBO  # noqa: E402

N_DRAWS = 40_000


def _draws(estimator, model, X, n_draws=N_DRAWS, seed=0):
    """n_draws independent one-sample estimates for each row of X: shape (n_draws, n)."""
    x = torch.tensor(X).repeat(n_draws, 1)  # row k * n + i is X[i]
    with torch.no_grad():
        values = estimator(model, x, 1, torch.Generator().manual_seed(seed))
    return values.numpy().reshape(n_draws, X.shape[0])


@pytest.fixture(scope="module")
def perturbed():
    """A q that is not the posterior: a wrong mean map and too wide a variance."""
    W, psi, b, X = rotated_problem()
    gaussian, G, A = exact_posterior(W, psi, b)
    rng = np.random.default_rng(1)
    A_q = A + 0.3 * rng.normal(size=A.shape)
    c_q = -A_q @ b + 0.5
    logvar_q = np.log(np.diag(G)) + 0.8
    model = linear_vae_model(W, psi, b, A_q, c_q, logvar_q)
    exact = closed_form_elbo(X, W, psi, b, A_q, c_q, logvar_q)
    log_px = gaussian.logpdf(X - b)
    return model, X, exact, log_px


@pytest.mark.parametrize("estimator", [MonteCarloELBO(), AnalyticKLELBO()], ids=["L_A", "L_B"])
def test_estimators_are_unbiased(perturbed, estimator):
    model, X, exact, log_px = perturbed
    assert np.all(log_px - exact > 0.5)  # a loose bound: bias would show
    draws = _draws(estimator, model, X)
    mean = draws.mean(0)
    standard_error = draws.std(0, ddof=1) / np.sqrt(N_DRAWS)
    assert np.all(np.abs(mean - exact) < 4 * standard_error), (mean, exact, standard_error)


def test_l_b_has_lower_variance_than_l_a(perturbed):
    """At a q away from the posterior (the regime of early training) the closed-form
    KL removes variance: Var(L_B) < Var(L_A) at every point. (At the exact posterior
    the order flips: L_A is then constant.)"""
    model, X, _, _ = perturbed
    var_a = _draws(MonteCarloELBO(), model, X).var(0)
    var_b = _draws(AnalyticKLELBO(), model, X).var(0)
    assert np.all(var_b < var_a), (var_a, var_b)
    # and the closed-form KL carries a real share of the variance away
    assert np.mean(var_b / var_a) < 0.9


def test_more_samples_per_point_divide_the_variance(perturbed):
    model, X, exact, _ = perturbed
    x = torch.tensor(X).repeat(4000, 1)
    with torch.no_grad():
        one = AnalyticKLELBO()(model, x, 1, torch.Generator().manual_seed(3)).numpy()
        eight = AnalyticKLELBO()(model, x, 8, torch.Generator().manual_seed(4)).numpy()
    ratio = one.reshape(4000, -1).var(0) / eight.reshape(4000, -1).var(0)
    assert np.all((ratio > 5) & (ratio < 12)), ratio  # ~8
    assert np.all(np.abs(eight.reshape(4000, -1).mean(0) - exact)
                  < 4 * np.sqrt(eight.reshape(4000, -1).var(0) / 4000))


def test_exact_posterior_makes_the_bound_tight():
    """q = p(z|x): ELBO = log p(x), the lecture's EM argument. L_A then has zero
    variance: every draw equals log p(x)."""
    W, psi, b, X = rotated_problem(seed=2)
    gaussian, G, A = exact_posterior(W, psi, b)
    np.testing.assert_allclose(G, np.diag(np.diag(G)), atol=1e-12)  # diagonal by construction
    model = linear_vae_model(W, psi, b, A, -A @ b, np.log(np.diag(G)))
    log_px = gaussian.logpdf(X - b)
    np.testing.assert_allclose(closed_form_elbo(X, W, psi, b, A, -A @ b, np.log(np.diag(G))),
                               log_px, rtol=1e-10)
    draws_a = _draws(MonteCarloELBO(), model, X, n_draws=200)
    np.testing.assert_allclose(draws_a, np.broadcast_to(log_px, draws_a.shape), rtol=1e-9)
    draws_b = _draws(AnalyticKLELBO(), model, X)
    standard_error = draws_b.std(0, ddof=1) / np.sqrt(N_DRAWS)
    assert np.all(np.abs(draws_b.mean(0) - log_px) < 4 * standard_error)
    # the importance-weighted bound is exact too, for any number of samples
    with torch.no_grad():
        iwae = IWAE()(model, torch.tensor(X), 5, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(iwae, log_px, rtol=1e-9)


def test_iwae_lies_between_elbo_and_log_likelihood(perturbed):
    model, X, exact, log_px = perturbed
    x = torch.tensor(X).repeat(2000, 1)
    with torch.no_grad():
        iwae = IWAE()(model, x, 50, torch.Generator().manual_seed(5)).numpy()
    iwae = iwae.reshape(2000, -1).mean(0)
    assert np.all(iwae > exact) and np.all(iwae < log_px + 1e-3)


def _gradient_variance(model, estimator, x, n_draws=100):
    """Total variance over draws of eps of the minibatch-loss gradient, for the
    encoder's and the decoder's parameters; and the decoder gradients themselves."""
    generator = torch.Generator().manual_seed(0)
    grads = {"encoder": [], "decoder": []}
    for _ in range(n_draws):
        model.zero_grad()
        (-estimator(model, x, 1, generator).mean()).backward()
        for part in grads:
            module = getattr(model, part)
            grads[part].append(torch.cat([p.grad.flatten() for p in module.parameters()]))
    stacked = {part: torch.stack(g) for part, g in grads.items()}
    return {part: float(g.var(0).sum()) for part, g in stacked.items()}, stacked["decoder"]


@pytest.mark.parametrize("epochs", [1, 5])
def test_l_b_gives_lower_variance_encoder_gradients_on_digits(epochs):
    """What the lower variance buys in training: the gradient for the encoder (the
    reparameterised path through mean and logvar) has lower variance under L_B, at
    the start and after training; the decoder's gradient is the same under both
    (same eps: KL, log p(z) and log q(z|x) do not depend on the decoder).

    The per-point *value* of L_B is not always the less variable one: as q nears the
    posterior, log p(x, z) - log q(z|x) tends to the constant log p(x) and L_A's
    variance to 0 (see ``test_exact_posterior_makes_the_bound_tight``)."""
    from elbokit.data import load
    from elbokit.nn import VAE

    digits = load("digits")
    vae = VAE(4, hidden=(64,), epochs=epochs, binarize="dynamic", progress=False)
    model = vae.fit(digits.train).model_
    x = torch.bernoulli(torch.as_tensor(digits.test[:64]),
                        generator=torch.Generator().manual_seed(1))
    var_a, dec_a = _gradient_variance(model, MonteCarloELBO(), x)
    var_b, dec_b = _gradient_variance(model, AnalyticKLELBO(), x)
    assert var_b["encoder"] < 0.8 * var_a["encoder"], (var_a, var_b)
    torch.testing.assert_close(dec_a, dec_b, rtol=1e-4, atol=1e-6)
