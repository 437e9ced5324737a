"""The IAF posterior: its log-determinant, its autoregressive structure, the identity
flow reproducing the diagonal model in every estimator, and saving."""


import numpy as np
import pytest
import torch

from elbokit.evaluate import active_units, log_likelihood
from elbokit.nn import VAE
from elbokit.nn.config import ArchitectureConfig
from elbokit.nn.flows import IAF
from elbokit.nn.importance import importance_log_likelihood
from elbokit.nn.model import VAENetwork
from elbokit.nn.objectives import IWAE, AnalyticKLELBO, MonteCarloELBO



def _random_flow(L=4, steps=3, hidden=(12, 10), context=3, seed=0):
    torch.manual_seed(seed)
    flow = IAF(L, steps, hidden, context).double()
    with torch.no_grad():  # move the zero-initialised output layers off the identity
        for made in flow.steps:
            for layer in (made.m, made.s):
                layer.weight.normal_(0, 0.5)
                layer.bias.normal_(0, 0.5)
    return flow


def test_log_determinant_matches_the_autograd_jacobian():
    flow = _random_flow()
    context = torch.randn(1, 3, dtype=torch.float64)
    for seed in range(3):
        z0 = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        jac = torch.autograd.functional.jacobian(lambda z: flow(z[None], context)[0][0], z0)
        with torch.no_grad():
            _, log_det = flow(z0[None], context)
        sign, expected = torch.linalg.slogdet(jac)
        assert sign > 0
        assert float(log_det.sum()) == pytest.approx(float(expected), abs=1e-10)
        assert not torch.allclose(jac, torch.eye(4, dtype=torch.float64))  # a real test


def test_each_step_is_autoregressive_in_alternating_orders():
    flow = _random_flow(L=5, steps=2)
    context = torch.randn(1, 3, dtype=torch.float64)
    z0 = torch.randn(5, dtype=torch.float64)
    for t, made in enumerate(flow.steps):
        jac_m = torch.autograd.functional.jacobian(
            lambda z, made=made: made(z[None], context)[0][0], z0)
        jac_s = torch.autograd.functional.jacobian(
            lambda z, made=made: made(z[None], context)[1][0], z0)
        # step 0: output i depends on z_{<i} (strictly lower triangular); step 1 reversed
        mask = torch.tril(torch.ones(5, 5), -1) if t == 0 else torch.triu(torch.ones(5, 5), 1)
        for jac in (jac_m, jac_s):
            assert torch.all(jac[mask == 0] == 0)
            assert torch.any(jac[mask == 1] != 0)


def _twin_models(L=3, d=10, seed=0):
    """A diagonal model and an IAF model (flow at its identity initialisation) with
    the same encoder and decoder weights."""
    diag_cfg = ArchitectureConfig(n_features=d, latent_dim=L, hidden=(16,))
    iaf_cfg = ArchitectureConfig(n_features=d, latent_dim=L, hidden=(16,), posterior="iaf",
                                 flow_steps=2, flow_hidden=(8,), flow_context=4)
    torch.manual_seed(seed)
    diag, iaf = VAENetwork(diag_cfg).double(), VAENetwork(iaf_cfg).double()
    iaf.decoder.load_state_dict(diag.decoder.state_dict())
    src, dst = diag.encoder.net, iaf.encoder.net
    with torch.no_grad():
        for a, b in zip(src[:-1], dst[:-1]):
            for pa, pb in zip(a.parameters(), b.parameters()):
                pb.copy_(pa)
        half = L + 2  # the encoder's last layer: [mean (L), context (2), logvar (L), context (2)]
        for name in ("weight", "bias"):
            w_src, w_dst = getattr(src[-1], name), getattr(dst[-1], name)
            w_dst[:L] = w_src[:L]
            w_dst[half:half + L] = w_src[L:]
    return diag, iaf


def test_identity_flow_gives_the_diagonal_models_estimates():
    diag, iaf = _twin_models()
    x = torch.bernoulli(torch.full((7, 10), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    for estimator, n in [(MonteCarloELBO(), 1), (MonteCarloELBO(), 5), (IWAE(), 1), (IWAE(), 6)]:
        values = [estimator(m, x, n, torch.Generator().manual_seed(3)) for m in (diag, iaf)]
        torch.testing.assert_close(values[0], values[1])
    is_values = [importance_log_likelihood(m, x, 50, generator=torch.Generator().manual_seed(4))
                 for m in (diag, iaf)]
    torch.testing.assert_close(is_values[0], is_values[1])
    z, log_q = iaf.sample_posterior(x, 4, torch.Generator().manual_seed(5))
    assert z.shape == (4, 7, 3) and log_q.shape == (4, 7)


def _perturb_flow(model, scale=0.1, seed=7):
    torch.manual_seed(seed)
    with torch.no_grad():  # move the zero-initialised output layers off the identity
        for made in model.flow.steps:
            for layer in (made.m, made.s):
                layer.weight.normal_(0, scale)
                layer.bias.normal_(0, scale)


def test_l_b_with_an_identity_flow_is_the_diagonal_models_l_b():
    diag, iaf = _twin_models()
    x = torch.bernoulli(torch.full((5, 10), 0.6, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    for n in (1, 4):  # the flow's Monte-Carlo correction is exactly 0 at the identity
        b_iaf = AnalyticKLELBO()(iaf, x, n, torch.Generator().manual_seed(2))
        b_diag = AnalyticKLELBO()(diag, x, n, torch.Generator().manual_seed(2))
        torch.testing.assert_close(b_iaf, b_diag)


def test_l_b_with_a_flow_is_unbiased_for_the_elbo_and_less_noisy_than_l_a():
    _, iaf = _twin_models(L=3)
    _perturb_flow(iaf)
    with torch.no_grad():  # a confident encoder (sd ~ 0.14), as in a trained model's
        iaf.encoder.net[-1].bias[3 + 2:3 + 2 + 3] -= 4.0  # active dimensions: the logvar half
    x = torch.bernoulli(torch.full((5, 10), 0.6, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    n = 20000
    with torch.no_grad():
        post = iaf.posterior(x, n, torch.Generator().manual_seed(3))
        a_samples = MonteCarloELBO.posterior_log_weights(iaf, x, post)  # (n, B): L_A per draw
        log_lik = iaf.log_likelihood(x, post.z)
        kl = AnalyticKLELBO().kl_dims(post).sum(-1)  # the n-sample mean, (B,)
        flow_terms = (0.5 * (post.z.square() - post.z0.square()) - post.log_det).sum(-1)
        b_samples = log_lik - (kl - flow_terms.mean(0)) - flow_terms  # L_B per draw
        b_mean = AnalyticKLELBO().from_posterior(iaf, x, post)
    torch.testing.assert_close(b_mean, b_samples.mean(0))
    # the same expectation: L_A's plain Monte-Carlo form, from independent draws
    se = torch.sqrt(a_samples.var(0) / n + b_samples.var(0) / n)
    with torch.no_grad():
        a_other = MonteCarloELBO()(iaf, x, n, torch.Generator().manual_seed(4))
    assert torch.all((b_mean - a_other).abs() < 5 * se), (b_mean - a_other, se)
    # the flow moved off the identity, yet L_B's KL draws vary less than the plain
    # Monte-Carlo KL's, log q(z|x) - log p(z) (both have the same mean: checked above)
    assert torch.all(flow_terms.mean(0).abs() > 0.1)
    mc_kl = log_lik - a_samples  # (n, B)
    b_kl = log_lik - b_samples
    assert torch.all(b_kl.var(0) < 0.5 * mc_kl.var(0)), (b_kl.var(0), mc_kl.var(0))


def test_fitted_iaf_model_moves_off_the_identity_and_bounds_are_ordered(digits, tmp_path):
    X = digits.train[:600]
    vae = VAE(4, hidden=(32,), posterior="iaf", flow_steps=2, flow_hidden=(16,),
              flow_context=8, epochs=4, binarize="dynamic", progress=False).fit(X)
    s_weights = [made.s.weight.abs().sum() for made in vae.model_.flow.steps]
    assert all(float(w.detach()) > 0 for w in s_weights)
    Xt = (np.random.default_rng(0).random(digits.test[:100].shape)
          < digits.test[:100]).astype(np.float32)
    elbo = vae.elbo(Xt, "a", n_samples=200).mean()
    ll = log_likelihood(vae, Xt, n_importance=200, random_state=1)
    assert ll.mean > elbo  # IS estimate of log p(x) above the ELBO
    count, activity = active_units(vae, Xt)
    assert activity.shape == (4,) and 0 <= count <= 4
    vae.save(tmp_path)
    loaded = VAE.load(tmp_path)
    assert loaded.architecture_ == vae.architecture_
    assert loaded.get_params()["posterior"] == "iaf"
    again = log_likelihood(loaded, Xt, n_importance=200, random_state=1)
    np.testing.assert_allclose(again.values, ll.values, rtol=1e-6)
