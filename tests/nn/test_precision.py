"""Mixed precision (``precision="bfloat16"``): the training matmuls take bfloat16
operands on both paths (the written-out step and autograd's), everything computed
from the networks' outputs stays float32, and the gradients and fits stay those of
float32 within bfloat16's rounding."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from elbokit.data import load  # noqa: E402
from elbokit.exceptions import ParameterError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.objectives.fused import FusedLB, fused_step  # noqa: E402
from elbokit.nn.objectives import get_estimator, training_loss  # noqa: E402
from elbokit.nn.train.precision import compute_dtype, mixed_precision  # noqa: E402

MATMULS = {"mm", "addmm", "bmm", "baddbmm", "convolution"}
# the ops of the log-densities, the KL and dloss/dlogits
FLOAT32_OPS = {"softplus", "binary_cross_entropy_with_logits", "sigmoid", "exp"}


class _DtypesOf(TorchDispatchMode):
    """Records the dtypes of the floating-point tensor arguments of every aten op."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        dtypes = {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
        self.seen.setdefault(name, set()).update(dtypes)
        return func(*args, **(kwargs or {}))


def _built(X, **settings):
    vae = VAE(**{"latent_dim": 4, "hidden": (16, 8), "epochs": 1, "progress": False,
                 **settings})
    vae.fit(X[:64])
    return vae.model_, vae._training()


def _step_grads(model, config, x, fused):
    """(loss, {name: gradient}) of one step on x, by the fused step or by autograd."""
    objective = get_estimator("b", config)
    generator = torch.Generator().manual_seed(3)
    model.zero_grad(set_to_none=True)
    if fused:
        step = fused_step(model, config, objective, distributed=False)
        assert isinstance(step, FusedLB)
        loss, _ = step(x, generator, 5, 10)
    else:
        with mixed_precision(model, compute_dtype(config.precision)):
            loss, _ = training_loss(objective, model, x, config, generator, 5, 10)
        loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


CASES = [dict(), dict(activation="gated", clamp_logvar=True), dict(prior="vamp",
         prior_components=3), dict(prior="mog", prior_components=3, kl_warmup=3)]
# the VampPrior's gradients of its pseudo-inputs (and of the first layer, which they
# pass through) are differences of nearly equal terms while the prior sits on the
# aggregate posterior: bfloat16's rounding of the components' (m_k, s_k) moves them by
# up to ~25% of their size in one step (measured: 0.23, by either path alike)
TOLERANCE = {"prior.pseudo_inputs": 0.5, "encoder.net.0.weight": 0.2,
             "encoder.net.0.bias": 0.2}


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "autograd"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c) or "default")
def test_bfloat16_gradients_are_float32s_within_rounding(digits, case, fused):
    model, config = _built(digits.train, **case)
    x = torch.as_tensor(digits.train[100:164])
    reference = dataclasses.replace(config, precision="float32")
    loss32, grads32 = _step_grads(model, reference, x, fused=False)
    mixed = dataclasses.replace(config, precision="bfloat16")
    loss16, grads16 = _step_grads(model, mixed, x, fused=fused)
    assert abs(loss16 - loss32) < 1e-2 * abs(loss32)
    differ = False
    for name, g32 in grads32.items():
        g16 = grads16[name]
        assert g16.dtype == torch.float32, name  # the master copy's gradient
        error = float((g16 - g32).norm() / g32.norm().clamp_min(1e-12))
        limit = TOLERANCE.get(name, 0.05) if case.get("prior") == "vamp" else 0.05
        assert error < limit, (name, error)
        differ |= error > 1e-6
    assert differ  # bfloat16 was used: float32's gradients are not reproduced exactly


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c) or "default")
def test_the_fused_and_autograds_bfloat16_steps_agree(digits, case):
    """Both paths round at the same places (the networks' operands and outputs): their
    bfloat16 gradients agree far more closely than either does with float32's."""
    model, config = _built(digits.train, precision="bfloat16", **case)
    x = torch.as_tensor(digits.train[100:164])
    loss_fused, fused = _step_grads(model, config, x, fused=True)
    loss_autograd, autograd = _step_grads(model, config, x, fused=False)
    assert abs(loss_fused - loss_autograd) < 1e-3 * abs(loss_autograd)
    for name, g in autograd.items():
        error = float((fused[name] - g).norm() / g.norm().clamp_min(1e-12))
        assert error < 0.02, (name, error)


@pytest.mark.parametrize("settings", [dict(), dict(fused_step=False),
                                      dict(likelihood="gaussian", fused_step=False),
                                      dict(posterior="iaf", fused_step=False)],
                         ids=["fused", "autograd", "gaussian", "iaf"])
def test_the_matmuls_take_bfloat16_and_the_densities_float32(digits, settings,
                                                             monkeypatch):
    """Every matmul of a bfloat16 fit's training steps has bfloat16 operands; the ops of
    the log-densities and the KL see float32 only."""
    import elbokit.nn.train.loop as train_module

    modes = []
    X = digits.train[:200]
    vae = VAE(3, hidden=(16,), batch_size=100, epochs=1, progress=False,
              precision="bfloat16", **settings)
    original_epoch = train_module._run_epoch

    def recorded_epoch(run, *args, **kwargs):
        with _DtypesOf() as mode:
            modes.append(mode)
            return original_epoch(run, *args, **kwargs)

    monkeypatch.setattr(train_module, "_run_epoch", recorded_epoch)
    vae.fit(X)
    seen = modes[0].seen
    matmuls = {name: seen[name] for name in MATMULS if name in seen}
    assert matmuls and all(dtypes == {torch.bfloat16} for dtypes in matmuls.values()), seen
    for name in FLOAT32_OPS & seen.keys():
        assert torch.bfloat16 not in seen[name], (name, seen[name])
    assert vae.training_.precision == "bfloat16"
    assert all(p.dtype == torch.float32 for p in vae.model_.parameters())
    # the hooks that cast the networks' outputs are gone after the step
    assert not any(module._forward_hooks for module in vae.model_.modules())


@pytest.mark.parametrize("settings", [dict(), dict(prior="vamp", prior_components=4),
                                      dict(fused_step=False, objective="iwae", n_samples=3),
                                      dict(arch="conv", image_shape=(8, 8))],
                         ids=["fused", "vamp", "iwae", "conv"])
def test_a_bfloat16_fit_follows_the_float32_one(digits, settings):
    X = digits.train[:600]
    runs = []
    for precision in ("float32", "bfloat16"):
        vae = VAE(3, hidden=(32,), batch_size=50, binarize="dynamic", epochs=4, seed=1,
                  progress=False, precision=precision, **settings)
        runs.append(vae.fit(X, validation=digits.train[600:800]))
    a, b = (np.array([h["val_elbo"] for h in v.history_]) for v in runs)
    np.testing.assert_allclose(b, a, atol=0.3)  # nats per image, over 64 pixels
    assert not np.array_equal(a, b)


def test_the_gaussian_likelihood_trains_in_bfloat16():
    wine = load("wine")
    scores = []
    for precision in ("float32", "bfloat16"):
        vae = VAE(2, likelihood="gaussian", hidden=(32,), epochs=60, seed=0, progress=False,
                  precision=precision).fit(wine.train)
        scores.append(vae.score(wine.test))
    assert np.isfinite(scores).all()
    assert abs(scores[1] - scores[0]) < 0.05 * abs(scores[0])


def test_precision_is_saved_and_checked(digits, tmp_path):
    vae = VAE(3, hidden=(16,), epochs=1, progress=False, precision="bfloat16")
    vae.fit(digits.train[:100]).save(tmp_path / "m")
    assert VAE.load(tmp_path / "m").training_.precision == "bfloat16"
    with pytest.raises(ParameterError, match="precision"):
        VAE(3, epochs=1, progress=False, precision="float16").fit(digits.train[:100])


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bfloat16_for_images_on_native_hardware_only(digits, monkeypatch, native):
    import elbokit.nn.train.precision as train_module

    monkeypatch.setattr(train_module, "native_bfloat16", lambda device: native)
    resolve = train_module.resolve_precision
    assert resolve("auto", "bernoulli", "cpu") == ("bfloat16" if native else "float32")
    for likelihood in ("gaussian", "gaussian-fixed"):  # tables keep float32 everywhere
        assert resolve("auto", likelihood, "cpu") == "float32"
    for given in ("float32", "bfloat16"):  # a given value is kept as it is
        assert resolve(given, "gaussian", "cpu") == given
    with pytest.raises(ParameterError, match="precision must be one of"):
        resolve("float16", "bernoulli", "cpu")
    # the estimator records the resolved value; its get_params keeps "auto"
    vae = VAE(3, hidden=(8,), epochs=1, progress=False).fit(digits.train[:100])
    assert vae.training_.precision == ("bfloat16" if native else "float32")
    assert vae.get_params()["precision"] == "auto"


def test_native_bfloat16_answers_for_this_machine():
    from elbokit.nn.train import native_bfloat16

    assert isinstance(native_bfloat16(torch.device("cpu")), bool)
    assert native_bfloat16(torch.device("meta")) is False  # neither CPU nor CUDA
