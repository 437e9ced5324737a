"""The written-out L_B step (elbokit.nn.objectives.fused): autograd's gradients and the same
seeded fit, and autograd's path wherever the step does not cover the model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.objectives.fused import FusedLB, fused_step  # noqa: E402
from elbokit.nn.objectives import get_estimator, training_loss  # noqa: E402
from elbokit.nn.priors import MixtureOfGaussians  # noqa: E402


def _built(X, **settings):
    # float32: autograd's reference runs outside the loop's mixed-precision context
    # (tests/nn/test_precision.py holds the two paths together in bfloat16)
    vae = VAE(**{"latent_dim": 4, "hidden": (16, 8), "epochs": 1, "progress": False,
                 "precision": "float32", **settings})
    vae.fit(X[:64])
    return vae, vae.model_, vae._training()


def _grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters()}


CASES = [
    dict(),
    dict(activation="gated"),
    dict(hidden=(), clamp_logvar=True),  # one linear layer each way
    dict(hidden=(16, 8, 8), activation="gated", clamp_logvar=True, kl_warmup=3, beta=0.5),
    dict(beta=2.0, dtype64=True),
    dict(prior="vamp"),
    dict(prior="vamp", prior_components=3, activation="gated", clamp_logvar=True,
         kl_warmup=3),
    dict(prior="vamp", beta=0.5, dtype64=True),
    dict(prior="mog", prior_components=3, activation="gated", clamp_logvar=True),
    dict(prior="mog", prior_components=2, kl_warmup=3, dtype64=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c) or "default")
def test_gradients_and_losses_equal_autograds(digits, case):
    case = dict(case)
    dtype64 = case.pop("dtype64", False)
    X = digits.train
    vae, model, config = _built(X, **case)
    if dtype64:
        model.double()
    x = torch.as_tensor(X[100:150], dtype=torch.float64 if dtype64 else torch.float32)
    if case.get("clamp_logvar"):  # push some log-variances past both bounds
        with torch.no_grad():
            last = model.encoder.net[-1]
            last.bias[4:6] = 9.0
            last.bias[6:8] = -9.0
    objective = get_estimator("b", config)
    step = fused_step(model, config, objective, distributed=False)
    assert isinstance(step, FusedLB)
    generator = torch.Generator().manual_seed(3)
    loss, neg_elbo = training_loss(objective, model, x, config, generator, 5, 10)
    model.zero_grad(set_to_none=True)
    loss.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)
    generator = torch.Generator().manual_seed(3)
    fused_loss, fused_neg_elbo = step(x, generator, 5, 10)
    got = _grads(model)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype64 else dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fused_loss, loss.detach(), **tol)
    torch.testing.assert_close(fused_neg_elbo, neg_elbo.detach(), **tol)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], **tol, msg=name)
    if case.get("clamp_logvar"):  # the clamped units got no log-variance gradient
        bias = got["encoder.net.%d.bias" % (len(model.encoder.net) - 1)]
        assert torch.all(bias[4:8] == 0) and torch.any(bias[:4] != 0)


@pytest.mark.parametrize("settings", [dict(), dict(activation="gated", ema=0.9,
                                                   clamp_logvar=True, kl_warmup=1),
                                      dict(prior="vamp", prior_components=4),
                                      dict(prior="mog", prior_components=3)])
def test_a_seeded_fit_is_the_same_run_either_way(digits, settings):
    X = digits.train[:400]
    runs = []
    for fused in (True, False):
        vae = VAE(3, hidden=(32,), batch_size=50, binarize="dynamic", epochs=3,
                  progress=False, seed=1, fused_step=fused, precision="float32", **settings)
        vae.fit(X, validation=digits.train[400:500])
        runs.append(vae)
    a, b = (np.array([[h["train_elbo"], h["val_elbo"]] for h in v.history_]) for v in runs)
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(runs[0].transform(X[:20]), runs[1].transform(X[:20]),
                               atol=1e-3)


def test_the_step_is_used_by_fit_and_sets_every_gradient(digits, monkeypatch):
    calls = []
    original = FusedLB.__call__

    def counting(self, *args):
        calls.append(1)
        out = original(self, *args)
        assert all(p.grad is not None for p in self.model.parameters())
        return out

    monkeypatch.setattr(FusedLB, "__call__", counting)
    VAE(3, hidden=(16,), batch_size=100, epochs=2, progress=False).fit(digits.train[:300])
    assert len(calls) == 2 * 3
    calls.clear()
    VAE(3, hidden=(16,), epochs=1, progress=False, fused_step=False).fit(digits.train[:300])
    assert not calls


@pytest.mark.parametrize("settings", [
    dict(likelihood="gaussian"), dict(arch="conv"), dict(posterior="iaf"),
    dict(prior="mog", prior_components=1), dict(objective="a"), dict(objective="iwae"),
    dict(n_samples=2), dict(free_bits=0.1), dict(decoder="linear"),
    dict(fused_step=False),
])
def test_what_the_step_does_not_cover_takes_autograds_path(digits, settings):
    X = digits.train
    vae, model, config = _built(X, **settings)
    objective = get_estimator(config.objective, config)
    assert fused_step(model, config, objective, distributed=False) is None


def test_custom_networks_priors_and_torchrun_take_autograds_path(digits):
    X = digits.train
    vae, model, config = _built(X)
    objective = get_estimator("b", config)
    assert fused_step(model, config, objective, distributed=True) is None
    vae, model, config = _built(X, prior=MixtureOfGaussians(4, 1))
    assert fused_step(model, config, objective, distributed=False) is None

    class Encoder(torch.nn.Module):  # the preset's layout, its own forward: not covered
        config = {}

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(),
                                           torch.nn.Linear(16, 8))

        def forward(self, x):
            mean, logvar = self.net(x).chunk(2, dim=-1)
            return torch.tanh(mean), logvar

    vae, model, config = _built(X, encoder=Encoder())
    assert fused_step(model, config, objective, distributed=False) is None


def test_the_alternating_schedule_freezes_the_other_half_with_the_step(digits):
    X = digits.train[:200]
    vae = VAE(3, hidden=(16,), batch_size=200, epochs=1, progress=False, schedule="alternating",
              e_steps=1, m_steps=1)
    vae.fit(X)  # one step: an E step, the decoder held
    start = VAE(3, hidden=(16,), batch_size=200, epochs=1, progress=False, lr=1e-12)
    start.fit(X)  # same seed: the initial weights, moved by 1e-12 at most
    for a, b in zip(vae.model_.decoder.parameters(), start.model_.decoder.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert any(not torch.allclose(a, b) for a, b in zip(vae.model_.encoder.parameters(),
                                                        start.model_.encoder.parameters()))


def test_the_direct_adam_step_is_optimizer_steps_update_bit_for_bit():
    from elbokit.nn.train import make_optimizer, optimizer_step

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    optimizers = [make_optimizer(net, 1e-2) for net in nets]
    fallbacks = []
    step_method = optimizers[1].step
    optimizers[1].step = lambda: (fallbacks.append(1), step_method())
    for step in range(6):
        x = torch.randn(4, 5)
        for k, (net, optimizer) in enumerate(zip(nets, optimizers)):
            optimizer.zero_grad(set_to_none=True)
            net(x).square().sum().backward()
            if step == 3:  # a frozen layer (the alternating schedule drops its gradient)
                net[2].weight.grad = None
            for group in optimizer.param_groups:
                group["lr"] = 1e-2 / (step + 1)
            optimizer.step() if k == 0 else optimizer_step(optimizer)
        for a, b in zip(nets[0].parameters(), nets[1].parameters()):
            assert torch.equal(a, b)
        for p, q in zip(nets[0].parameters(), nets[1].parameters()):
            sa, sb = optimizers[0].state[p], optimizers[1].state[q]
            assert all(torch.equal(sa[key], sb[key]) for key in ("step", "exp_avg", "exp_avg_sq"))
    assert len(fallbacks) == 1  # the first step, which creates the state; then the direct call


def test_optimizer_hooks_still_run():
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from elbokit.nn.train import make_optimizer, optimizer_step

    net = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(net, 1e-2)
    seen = []
    handle = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: seen.append(1))
    try:
        for _ in range(3):
            optimizer.zero_grad()
            net(torch.ones(1, 3)).sum().backward()
            optimizer_step(optimizer)
    finally:
        handle.remove()
    assert len(seen) == 3  # a global hook: every step takes optimizer.step()
