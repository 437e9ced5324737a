"""The hierarchical VAE (nn/hierarchical.py, ``top_latent_dim``): a linear-Gaussian
two-layer model against its closed-form log p(x); collapsing the top layer gives the
one-layer model's ELBO; save/load, fit/resume, the CLI flag and the refusals."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import assert_same_weights, one_line_exit_2  # noqa: E402

from elbokit.cli import main  # noqa: E402
from elbokit.exceptions import ParameterError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.config import ArchitectureConfig  # noqa: E402
from elbokit.nn.hierarchical import HierarchicalVAENetwork  # noqa: E402
from elbokit.nn.importance import importance_log_likelihood  # noqa: E402
from elbokit.nn.model import PosteriorSample, VAENetwork  # noqa: E402
from elbokit.nn.objectives import AnalyticKLELBO, ELBOEstimator, MonteCarloELBO  # noqa: E402

FAST = dict(hidden=(16,), epochs=2, batch_size=100, progress=False, validation_fraction=0,
            patience=0)


def _linear_gaussian(seed=0):
    """z2 ~ N(0, 1), z1 | z2 ~ N(A z2 + a, diag S), x | z ~ N(W1 z1 + W2 z2 + b, diag psi)
    (d = 3, L1 = 2, L2 = 1), float64, with its closed-form mean and covariance of x."""
    config = ArchitectureConfig(n_features=3, latent_dim=3, top_latent_dim=1,
                                likelihood="gaussian", encoder="linear", decoder="linear")
    torch.manual_seed(seed)
    net = HierarchicalVAENetwork(config).double()
    g = torch.Generator().manual_seed(seed)
    A, a = torch.randn(2, 1, generator=g, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    log_s = torch.tensor([-0.5, 0.3], dtype=torch.float64)
    W = torch.randn(3, 3, generator=g, dtype=torch.float64)
    b, raw = torch.randn(3, generator=g, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        cond = net.prior.conditional.net[0]  # z2 -> (mean (2), logvar (2))
        cond.weight.copy_(torch.cat([A, torch.zeros(2, 1, dtype=torch.float64)]))
        cond.bias.copy_(torch.cat([a, log_s]))
        net.decoder.linear.weight.copy_(W)
        net.decoder.linear.bias.copy_(b)
        net.decoder.raw_variance.copy_(raw)
        for enc in (net.encoder.net[0], net.bottom_encoder.net[0]):  # a broad, rough q
            enc.weight.mul_(0.3)
            enc.bias.zero_()
    psi = net.likelihood.variance(raw)
    W1, W2 = W[:, :2], W[:, 2:]
    M = W1 @ A + W2
    cov = M @ M.T + W1 @ torch.diag(log_s.exp()) @ W1.T + torch.diag(psi)
    net.marginal = (a, (A.square().sum(1) + log_s.exp()))  # p(z1_j) = N(a_j, A_j^2 + S_j)
    return net.eval(), W1 @ a + b, cov


def test_a_linear_gaussian_two_layer_model_has_its_closed_form_log_likelihood():
    net, mean, cov = _linear_gaussian()
    x = mean + torch.tensor([[0.3, -0.2, 0.5], [-1.0, 0.4, 0.1], [0.0, 0.0, 0.0]],
                           dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(mean, cov).log_prob(x)  # (3,)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        post = net.posterior(x, 20000, g)
        log_w = ELBOEstimator.posterior_log_weights(net, x, post)  # (k, 3)
        k = log_w.shape[0]
        estimate = torch.logsumexp(log_w, 0) - math.log(k)
        w = torch.exp(log_w - log_w.max(0).values)
        se = w.std(0) / (w.mean(0) * math.sqrt(k))  # delta method
        assert torch.all((estimate - exact).abs() < 4 * se + 1e-3), (estimate, exact, se)
        iwae = importance_log_likelihood(net, x, 20000, generator=torch.Generator().manual_seed(2))
        assert torch.all((iwae - exact).abs() < 6 * se + 1e-3)
        # the ELBO (L_A and L_B agree on it) lies below log p(x)
        lb, la = (est(net, x, 20000, torch.Generator().manual_seed(3))
                  for est in (AnalyticKLELBO(), MonteCarloELBO()))
        assert torch.all((lb - la).abs() < 0.1) and torch.all(lb < exact - 0.05)
        # the IS bound rises with k on average (20 repeats of each k)
        bounds = [float((torch.logsumexp(log_w[:k * 20].reshape(20, k, 3), 1)
                         - math.log(k)).mean()) for k in (1, 10, 100)]
        assert bounds[0] < bounds[1] < bounds[2] < float(exact.mean()) + 1e-3


def test_the_priors_marginals_are_the_closed_form_ones():
    net, _, _ = _linear_gaussian()
    mean, var = net.marginal
    z = torch.tensor([[0.0, 0.5, -1.0], [1.5, -2.0, 0.3]], dtype=torch.float64)
    with torch.no_grad():
        got = net.prior.marginal_log_prob_dims(z)  # (2, 3): z1 (Monte Carlo), z2 (exact)
    exact = torch.distributions.Normal(torch.cat([mean, torch.zeros(1, dtype=torch.float64)]),
                                       torch.cat([var, torch.ones(1, dtype=torch.float64)]
                                                 ).sqrt()).log_prob(z)
    torch.testing.assert_close(got[:, 2], exact[:, 2])
    assert (got - exact).abs().max() < 0.1, (got, exact)


def test_collapsing_the_top_layer_gives_the_one_layer_models_elbo():
    """p(z1|z2) = N(0, I), q(z1|x, z2) and the decoder ignoring z2: the two-layer L_B
    and log-weights are the one-layer model's, less KL(q(z2|x) || N(0, I)) in closed form."""
    arch = dict(n_features=64, hidden=(16,), likelihood="bernoulli")
    torch.manual_seed(0)
    one = VAENetwork(ArchitectureConfig(latent_dim=3, **arch)).double().eval()
    two = HierarchicalVAENetwork(ArchitectureConfig(latent_dim=5, top_latent_dim=2, **arch)
                                 ).double().eval()
    with torch.no_grad():
        for p in two.prior.conditional.parameters():
            p.zero_()
        for part in ("encoder", "decoder"):  # z2 enters the bottom encoder / decoder last
            mine = getattr(two, "bottom_encoder" if part == "encoder" else part).net
            theirs = getattr(one, part).net
            for m, t in zip(mine, theirs):
                if isinstance(m, torch.nn.Linear):
                    m.weight.zero_()
                    m.weight[:, :t.weight.shape[1]].copy_(t.weight)
                    m.bias.copy_(t.bias)
    x = torch.rand(7, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).round()
    with torch.no_grad():
        post = two.posterior(x, 5, torch.Generator().manual_seed(5))
        m1, v1 = one.encode(x)
        z1 = post.z[..., :3]
        flat = PosteriorSample(z1, z1, m1, v1)
        top = post.top
        kl_top = 0.5 * (top.logvar.exp() + top.mean ** 2 - 1 - top.logvar).sum(-1)
        log_q2 = -0.5 * (((top.z - top.mean) ** 2) / top.logvar.exp() + top.logvar
                         + math.log(2 * math.pi)).sum(-1)
        log_p2 = -0.5 * (top.z ** 2 + math.log(2 * math.pi)).sum(-1)
        torch.testing.assert_close(
            ELBOEstimator.posterior_log_weights(two, x, post),
            ELBOEstimator.posterior_log_weights(one, x, flat) + log_p2 - log_q2)
        lb = AnalyticKLELBO()
        torch.testing.assert_close(lb.from_posterior(two, x, post),
                                   lb.from_posterior(one, x, flat) - kl_top)


def test_save_load_sample_and_resume(digits, tmp_path):
    settings = dict(top_latent_dim=2, prior="vamp", prior_components=4, **FAST)
    vae = VAE(5, **settings).fit(digits.train[:300], checkpoint_dir=tmp_path / "ck")
    vae.save(tmp_path / "m")
    loaded = VAE.load(tmp_path / "m")
    assert isinstance(loaded.model_, HierarchicalVAENetwork)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["settings"]["architecture"]["top_latent_dim"] == 2
    assert np.array_equal(vae.score_samples(digits.test[:50]),
                          loaded.score_samples(digits.test[:50]))
    assert np.array_equal(vae.sample(4, random_state=1), loaded.sample(4, random_state=1))
    assert vae.encode(digits.test[:3]).shape == (3, 5)
    assert vae.latent_layers_ == (3, 2) == loaded.latent_layers_
    from elbokit.evaluate import active_units, latent_diagnostics

    diag = latent_diagnostics(vae, digits.test[:100])
    _, activity = active_units(vae, digits.test[:100])
    assert diag["active_per_layer"] == [int((activity[:3] > 0.01).sum()),
                                        int((activity[3:] > 0.01).sum())]
    assert "active_per_layer" not in latent_diagnostics(
        VAE(3, **FAST).fit(digits.train[:100]), digits.test[:50])
    whole = VAE(5, **{**settings, "epochs": 3}).fit(digits.train[:300])
    vae.set_params(epochs=3).fit(digits.train[:300], checkpoint_dir=tmp_path / "ck",
                                 resume=True)
    assert_same_weights(whole, vae)


def test_the_cli_flag_and_the_refusals(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", "vae", "--data", "digits", "--latent", "4", "--top-latent", "2",
                 "--hidden", "16", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["settings"]["architecture"]["top_latent_dim"] == 2
    assert main(["report", str(out)]) == 0  # per-dimension KLs, prior moments, samples
    assert "active per layer" in (out / "report.html").read_text()
    one_line_exit_2(["fit", "vae", "--data", "digits", "--latent", "2", "--top-latent", "2",
                     "--out", str(tmp_path / "bad")], capsys, "top_latent_dim must be below")
    x = np.random.default_rng(0).random((40, 64)).round()
    for bad, match in ((dict(posterior="iaf"), "posterior='iaf'"),
                       (dict(gradient="stl", objective="a"), "one-layer")):
        with pytest.raises(ParameterError, match=match):
            VAE(4, top_latent_dim=2, **bad, **FAST).fit(x)
