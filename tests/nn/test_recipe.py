"""The published training recipe as VAE options (issue 15): gated dense layers, the
log-variance clamp, Polyak averaging, learning-rate warm-up, a wall-clock budget with a
time-based cosine, numpy-drawn dynamic binarization, and the fused Bernoulli
log-likelihood."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import assert_same_weights  # noqa: E402
from elbokit.exceptions import ModelFileError, ParameterError  # noqa: E402
from elbokit.nn import VAE, TrainingConfig  # noqa: E402
from elbokit.nn._math import bernoulli_log_prob, bernoulli_log_prob_sum  # noqa: E402
from elbokit.nn.networks import GatedLinear  # noqa: E402
from elbokit.nn.train import WeightAverage, learning_rate  # noqa: E402
from elbokit.nn.train.device import Binarizer  # noqa: E402


# --------------------------------------------------------------------------- networks

def test_gated_layer_is_the_product_of_a_linear_map_and_a_sigmoid_gate():
    torch.manual_seed(0)
    layer = GatedLinear(5, 3)
    x = torch.randn(4, 5)
    W, b = layer.linear.weight, layer.linear.bias
    expected = (x @ W[:3].T + b[:3]) * torch.sigmoid(x @ W[3:].T + b[3:])
    torch.testing.assert_close(layer(x), expected)


def test_gated_vae_has_gated_hidden_layers_and_a_linear_output(digits, tmp_path):
    vae = VAE(3, hidden=(16, 8), activation="gated", epochs=2, progress=False)
    vae.fit(digits.train[:300])
    layers = list(vae.model_.encoder.net)
    assert [type(m).__name__ for m in layers] == ["GatedLinear", "GatedLinear", "Linear"]
    assert layers[0].linear.out_features == 32 and layers[-1].out_features == 6
    assert type(vae.model_.decoder.net[-1]).__name__ == "Linear"
    vae.save(tmp_path / "m")
    loaded = VAE.load(tmp_path / "m")
    assert loaded.architecture_.activation == "gated"
    np.testing.assert_array_equal(loaded.score_samples(digits.test[:20]),
                                  vae.score_samples(digits.test[:20]))


def test_clamp_logvar_bounds_the_encoder_variance(digits):
    vae = VAE(2, hidden=(8,), epochs=1, clamp_logvar=True, progress=False).fit(digits.train[:200])
    with torch.no_grad():
        vae.model_.encoder.net[-1].bias[2:] = 50.0  # the log-variance half
        _, logvar = vae.model_.encode(torch.as_tensor(digits.test[:10]))
        assert float(logvar.max()) == 2.0
        vae.model_.encoder.net[-1].bias[2:] = -50.0
        _, logvar = vae.model_.encode(torch.as_tensor(digits.test[:10]))
        assert float(logvar.min()) == -6.0


# --------------------------------------------------------------------------- EMA

def test_weight_average_follows_its_recurrence():
    module = torch.nn.Linear(2, 1)
    average = WeightAverage(module, 0.9)
    expected = module.weight.detach().clone()
    for t in range(30):
        with torch.no_grad():
            module.weight.add_(1.0)
        average.update()
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * module.weight.detach()
    torch.testing.assert_close(average.state_dict()["weight"], expected)
    assert average.updates == 30


def test_ema_model_is_the_average_and_resumes_exactly(digits, tmp_path):
    X, V = digits.train[:400], digits.test[:100]
    settings = dict(hidden=(16,), ema=0.99, binarize="dynamic", progress=False)
    full = VAE(2, epochs=4, **settings).fit(X, validation=V, checkpoint_dir=tmp_path / "full")
    # the fitted model is the averaged weights of the checkpoint, not the raw ones
    from elbokit.nn.train.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "full")
    assert_same_weights(saved["ema"], full.model_.state_dict())
    assert not torch.equal(saved["model"]["encoder.net.0.weight"],
                           full.model_.state_dict()["encoder.net.0.weight"])
    VAE(2, epochs=2, **settings).fit(X, validation=V, checkpoint_dir=tmp_path / "cut")
    resumed = VAE(2, epochs=4, **settings).fit(X, validation=V, checkpoint_dir=tmp_path / "cut",
                                               resume=True)
    assert_same_weights(full, resumed)
    # a checkpoint without the average cannot resume an averaged run (the resume rule)
    VAE(2, epochs=1, hidden=(16,), progress=False).fit(X, checkpoint_dir=tmp_path / "plain")
    with pytest.raises(ParameterError, match=r"ema changed from 0.0 \(the checkpoint's\) to "
                                             "0.99"):
        VAE(2, epochs=2, **settings).fit(X, checkpoint_dir=tmp_path / "plain", resume=True)


def test_ema_with_early_stopping_keeps_the_best_average(digits):
    """Validation scores the averaged weights, and early stopping keeps the best of
    them: a fresh evaluation of the fitted model gives the best recorded value."""
    X, V = digits.train[:400], digits.test[:100]
    vae = VAE(2, hidden=(16,), epochs=6, ema=0.9, patience=2, progress=False)
    vae.fit(X, validation=V)
    from elbokit.nn.train import evaluate_elbo

    best = max(h["val_elbo"] for h in vae.history_)
    assert math.isclose(float(evaluate_elbo(vae.model_, torch.as_tensor(V), seed=0).mean()),
                        best, rel_tol=1e-6)


@pytest.mark.parametrize("bad", [1.0, -0.1, True, "0.9"])
def test_bad_ema_is_one_line_error(bad):
    with pytest.raises(ParameterError, match="ema"):
        TrainingConfig(ema=bad)


# --------------------------------------------------------------------------- schedules

def test_learning_rate_warms_up_then_anneals_by_steps_or_time():
    config = TrainingConfig(lr=1.0, lr_warmup=2, epochs=10, lr_schedule="cosine")
    assert learning_rate(config, 0, 5) == pytest.approx(0.1)
    assert learning_rate(config, 9, 5) == pytest.approx(1.0)
    assert learning_rate(config, 10, 5) == pytest.approx(1.0)
    assert learning_rate(config, 30, 5) == pytest.approx(0.5)  # half of the 40 later steps
    assert learning_rate(config, 50, 5) == pytest.approx(0.0)
    timed = TrainingConfig(lr=1.0, epochs=1000, lr_schedule="cosine", max_minutes=2.0)
    assert learning_rate(timed, 1, 5, seconds=60.0) == pytest.approx(0.5)  # half the time
    assert learning_rate(timed, 1, 5, seconds=600.0) == pytest.approx(0.0)
    constant = TrainingConfig(lr=1.0, lr_warmup=1)
    assert learning_rate(constant, 0, 4) == pytest.approx(0.25)
    assert learning_rate(constant, 100, 4) == 1.0


def test_max_minutes_stops_training_and_a_resume_stays_stopped(digits, tmp_path):
    X = digits.train[:300]
    settings = dict(hidden=(8,), epochs=1000, max_minutes=1e-6, progress=False)
    vae = VAE(2, **settings).fit(X, checkpoint_dir=tmp_path)
    # one epoch takes longer than 60 us (at 6 ms, two 2.7 ms epochs of this model fitted)
    assert len(vae.history_) == 1
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["loop_state"]["out_of_time"] is True
    again = VAE(2, **settings).fit(X, checkpoint_dir=tmp_path, resume=True)
    assert len(again.history_) == 1
    with pytest.raises(ParameterError, match="max_minutes"):
        VAE(2, max_minutes=-1.0).fit(X)


def test_max_minutes_counts_validation_and_checkpoints(digits, tmp_path, monkeypatch):
    """The budget is the fit's wall-clock: with validation, checkpoint writes and a
    callback made slow (a sleep each, so the test does not depend on the machine's
    speed), far longer than an epoch's one training step, the fit still ends within the
    budget and one epoch (one step, with its validation, checkpoint and callback)."""
    import time

    from elbokit.nn.callbacks import Callback
    from elbokit.nn.train import checkpoint
    from elbokit.nn.train import loop as train

    delay = 0.04

    def slow(function):
        def slowed(*args, **kwargs):
            time.sleep(delay)
            return function(*args, **kwargs)
        return slowed

    monkeypatch.setattr(train, "_validate", slow(train._validate))
    monkeypatch.setattr(checkpoint, "save_checkpoint", slow(checkpoint.save_checkpoint))

    class SlowCallback(Callback):
        def on_epoch_end(self, epoch, record, model):
            time.sleep(delay)
    X, V = digits.train[:100], digits.train[100:400]  # one training step per epoch
    settings = dict(hidden=(8,), batch_size=100, progress=False)

    def fit(directory, **extra):
        start = time.perf_counter()
        vae = VAE(2, **settings, **extra).fit(X, validation=V, checkpoint_dir=tmp_path /
                                              directory, callbacks=[SlowCallback()])
        return vae, time.perf_counter() - start

    fit("warm", epochs=1)  # the costs of a first fit out of the way
    two, four = fit("two", epochs=2)[1], fit("four", epochs=4)[1]
    # training, validation, checkpoint and callback of one epoch (at least its sleeps)
    epoch = max((four - two) / 2, 3 * delay)
    budget = two + 1.5 * epoch  # room for three epochs
    vae, seconds = fit("timed", epochs=30, max_minutes=budget / 60)
    history = vae.history_
    assert 2 <= len(history) < 30 and seconds <= budget + epoch, (seconds, budget, epoch)
    assert json.loads((tmp_path / "timed" / "checkpoint.json").read_text())[
        "loop_state"]["out_of_time"] is True
    # the history keeps the epochs' training time and their whole wall-clock apart
    walls = [h["wall_seconds"] for h in history]
    assert sum(walls) <= seconds and all(h["seconds"] < w for h, w in zip(history, walls))
    # a resumed fit goes on with the clock of the checkpoint, to the same budget
    fit("cut", epochs=1, max_minutes=budget / 60)
    start = time.perf_counter()
    resumed = VAE(2, **settings, epochs=30, max_minutes=budget / 60).fit(
        X, validation=V, checkpoint_dir=tmp_path / "cut", resume=True,
        callbacks=[SlowCallback()])
    seconds = resumed.history_[0]["wall_seconds"] + time.perf_counter() - start
    assert 2 <= len(resumed.history_) < 30 and seconds <= budget + epoch, (seconds, budget)


def test_a_budget_without_checkpoints_is_spent_and_auto_epochs_fill_it(digits):
    """Without a checkpoint directory the budget's look-ahead counts one epoch, not the
    whole fit so far (which stopped every such fit at half its budget), and
    ``epochs="auto"`` with ``max_minutes`` trains until the budget ends it (auto alone
    gives these 300 rows 100 epochs, ~0.3 s here)."""
    import time

    from elbokit.nn.config import BUDGET_EPOCHS, auto_epochs

    budget = 3.0
    start = time.perf_counter()
    vae = VAE(2, hidden=(8,), max_minutes=budget / 60, validation_fraction=0.0, patience=0,
              progress=False).fit(digits.train[:300])
    seconds = time.perf_counter() - start
    assert vae.training_.epochs == BUDGET_EPOCHS
    assert len(vae.history_) > auto_epochs(300, vae.batch_size)
    assert 0.8 * budget < seconds < budget + 1.0, seconds  # the old look-ahead: ~half
    assert VAE(2, epochs=7, max_minutes=1.0)._training(n_rows=300).epochs == 7  # as given


def test_ema_updates_field_is_checked_on_resume(digits, tmp_path):
    from conftest import edit_json

    X = digits.train[:200]
    settings = dict(hidden=(8,), ema=0.9, progress=False)
    VAE(2, epochs=1, **settings).fit(X, checkpoint_dir=tmp_path)
    edit_json(tmp_path / "checkpoint.json",
              lambda m: m["loop_state"].update(ema_updates="many"))
    with pytest.raises(ModelFileError, match="ema_updates"):
        VAE(2, epochs=2, **settings).fit(X, checkpoint_dir=tmp_path, resume=True)


# --------------------------------------------------------------------------- numerics

def test_dynamic_binarization_draws_bernoulli_pixels_reproducibly():
    x = torch.linspace(0, 1, 50).repeat(4000, 1)
    draw = lambda seed: Binarizer(torch.Generator().manual_seed(seed), 4000, 50)(x)  # noqa
    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    se = torch.sqrt(x[0] * (1 - x[0]) / 4000) + 1e-9
    assert ((a.mean(0) - x[0]).abs() <= 5 * se).all()
    assert a[:, 0].sum() == 0 and a[:, -1].sum() == 4000


def test_fused_bernoulli_log_likelihood_matches_cross_entropy_and_its_gradients():
    torch.manual_seed(0)
    x = torch.rand(6, 9, dtype=torch.float64, requires_grad=True)
    logits = (30 * torch.randn(3, 6, 9, dtype=torch.float64)).requires_grad_()
    ours = bernoulli_log_prob_sum(x, logits)
    reference = bernoulli_log_prob(x, logits).sum(-1)
    torch.testing.assert_close(ours, reference)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad((ours * g).sum(), [x, logits]),
                    torch.autograd.grad((reference * g).sum(), [x, logits])):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(bernoulli_log_prob_sum, (x[:2, :3], logits[:, :2, :3]))
