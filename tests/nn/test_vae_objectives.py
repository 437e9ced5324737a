"""The IWAE objective against a model with a known log p(x), and the KL weighting of
the training loss (beta, warm-up, free bits) with the recorded ELBO unweighted."""

import math

import numpy as np
import pytest
import torch

from elbokit.exceptions import ParameterError
from elbokit.nn import VAE
from elbokit.nn.config import TrainingConfig
from elbokit.nn.objectives import (
    IWAE,
    MonteCarloELBO,
    AnalyticKLELBO,
    kl_weight,
    training_loss,
    weighted_loss,
)

from conftest import shrunk_linear_gaussian_vae


def test_iwae_with_one_sample_is_l_a():
    model = shrunk_linear_gaussian_vae()
    x = torch.randn(50, 5, dtype=torch.float64)
    a = MonteCarloELBO()(model, x, 1, torch.Generator().manual_seed(0))
    iwae = IWAE()(model, x, 1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, iwae)


def test_iwae_rises_with_k_from_the_elbo_towards_log_px():
    model = shrunk_linear_gaussian_vae()
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(20, 2, generator=g, dtype=torch.float64) @ model.W.T + model.b
         + math.sqrt(model.s2) * torch.randn(20, 5, generator=g, dtype=torch.float64))
    log_px = model.log_px(x)  # (20,)
    reps = 2000
    means = []
    for k in (1, 2, 5, 20, 100):
        values = IWAE()(model, x.repeat(reps, 1), k, torch.Generator().manual_seed(k))
        values = values.view(reps, -1)  # (reps, 20): independent IWAE_k estimates
        mean, stderr = values.mean(0), values.std(0) / math.sqrt(reps)
        assert torch.all(mean < log_px + 4 * stderr)  # a lower bound on log p(x)
        means.append((k, mean, stderr))
    elbo = AnalyticKLELBO()(model, x.repeat(reps, 1), 1, torch.Generator().manual_seed(9))
    elbo = elbo.view(reps, -1).mean(0)
    assert torch.all(means[0][1] - elbo < 5 * means[0][2] + 0.02)  # IWAE_1 = ELBO
    for (k1, m1, s1), (k2, m2, s2) in zip(means[:-1], means[1:]):
        assert torch.all(m2 > m1 - 4 * torch.sqrt(s1**2 + s2**2)), (k1, k2)
    gap_1, gap_100 = (log_px - means[0][1]).mean(), (log_px - means[-1][1]).mean()
    assert gap_1 > 0.1 and gap_100 < gap_1 / 10  # the bound closes as k grows


def test_warmup_weight_rises_linearly_to_beta():
    config = TrainingConfig(kl_warmup=2, beta=0.5)
    weights = [kl_weight(config, step, 10) for step in (0, 5, 10, 20, 100)]
    assert weights == pytest.approx([0.0, 0.125, 0.25, 0.5, 0.5])
    assert kl_weight(TrainingConfig(beta=2.0), 0, 10) == 2.0
    assert kl_weight(TrainingConfig(), 7, 10) == 1.0


class _LeafGaussian(torch.nn.Module):
    """The shrunk linear-Gaussian VAE with the posterior parameters as leaves, to read
    their gradients."""

    def __init__(self, B=64):
        super().__init__()
        self.base = shrunk_linear_gaussian_vae(d=5, L=2)
        x = torch.randn(B, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        mean, logvar = self.base.encode(x)
        # dimension 1 is pushed towards the prior: a small KL there
        self.mean = (mean * torch.tensor([1.0, 0.05], dtype=torch.float64)).requires_grad_()
        self.logvar = (logvar * torch.tensor([1.0, 0.02], dtype=torch.float64)).requires_grad_()
        self.x = x

    def encode(self, x):
        return self.mean, self.logvar

    def log_likelihood(self, x, z):
        return self.base.log_likelihood(x, z)


def _grads(model, **kw):
    loss, _ = weighted_loss(AnalyticKLELBO(), model, model.x, 1, torch.Generator().manual_seed(0),
                            **kw)
    return torch.autograd.grad(loss, [model.mean, model.logvar])


def test_free_bits_change_gradients_only_below_lambda():
    model = _LeafGaussian()
    kl = 0.5 * (model.logvar.exp() + model.mean**2 - 1 - model.logvar).mean(0).detach()
    assert kl[0] > 0.5 and kl[1] < 0.05
    plain = _grads(model, weight=1.0)
    recon_only = _grads(model, weight=0.0)
    lam = float(kl[1] + kl[0]) / 2  # between the two dimensions' KL
    free = _grads(model, weight=1.0, free_bits=lam)
    for g_free, g_plain, g_recon in zip(free, plain, recon_only):
        torch.testing.assert_close(g_free[:, 0], g_plain[:, 0])  # above lambda: unchanged
        torch.testing.assert_close(g_free[:, 1], g_recon[:, 1])  # below: no KL gradient
        assert not torch.allclose(g_plain[:, 1], g_recon[:, 1])
    tiny = _grads(model, weight=1.0, free_bits=1e-6)  # lambda below every KL_j
    for g_tiny, g_plain in zip(tiny, plain):
        torch.testing.assert_close(g_tiny, g_plain)


def test_training_loss_weights_the_kl_but_reports_the_unweighted_elbo():
    model = shrunk_linear_gaussian_vae()
    x = torch.randn(30, 5, dtype=torch.float64)
    config = TrainingConfig(objective="b", beta=3.0, free_bits=0.1)
    loss, neg_elbo = training_loss(AnalyticKLELBO(), model, x, config,
                                   torch.Generator().manual_seed(0), 0, 1)
    elbo = AnalyticKLELBO()(model, x, 1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(neg_elbo, -elbo.mean())
    assert float(loss) > float(neg_elbo) + 1.0  # the KL counts three times in the loss


def test_history_elbo_is_the_unweighted_bound(digits):
    X = digits.train[:640]
    common = dict(hidden=(16,), epochs=1, batch_size=64, lr=1e-12, progress=False)
    weighted = VAE(3, beta=4.0, kl_warmup=3, free_bits=0.5, **common).fit(X)
    plain = VAE(3, **common).fit(X)
    # the weights barely move (lr 1e-12) and the noise draws are the same: whatever the
    # training weights, the recorded ELBO is the plain run's ...
    assert weighted.history_[0]["train_elbo"] == pytest.approx(plain.history_[0]["train_elbo"],
                                                               rel=1e-6)
    # ... which an independent evaluation of the bound (other noise) agrees with
    independent = weighted.elbo(X, "b", n_samples=20).mean()
    assert weighted.history_[0]["train_elbo"] == pytest.approx(independent, rel=0.01)


def test_kl_weighting_is_refused_for_objectives_without_a_kl_term():
    with pytest.raises(ParameterError, match="no separate KL term"):
        TrainingConfig(objective="iwae", n_samples=5, kl_warmup=2)
    with pytest.raises(ParameterError, match="free_bits"):
        TrainingConfig(free_bits=-1.0)
    config = TrainingConfig(kl_warmup=3, free_bits=0.25, beta=0.5)
    assert TrainingConfig.from_dict(config.to_dict()) == config


def test_iwae_and_warmup_fits_record_their_settings(digits, tmp_path):
    X = digits.train[:300]
    iwae = VAE(2, hidden=(16,), epochs=1, objective="iwae", n_samples=4, progress=False).fit(X)
    assert np.isfinite(iwae.history_[0]["train_elbo"])
    warm = VAE(2, hidden=(16,), epochs=2, kl_warmup=1, free_bits=0.1, beta=0.9,
               progress=False).fit(X)
    warm.save(tmp_path)
    loaded = VAE.load(tmp_path)
    assert (loaded.training_.kl_warmup, loaded.training_.free_bits,
            loaded.training_.beta) == (1, 0.1, 0.9)
    assert loaded.get_params()["free_bits"] == 0.1
