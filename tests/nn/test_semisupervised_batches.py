"""SemiSupervisedVAE's minibatches and validation split: labeled rows in every training
minibatch (the objective's batch order, kept an unbiased estimate of -J / N), the plain
VAE's training unchanged by that hook, and a validation split of unlabeled rows only."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.data import load  # noqa: E402
from elbokit.nn import VAE, SemiSupervisedVAE  # noqa: E402
from elbokit.nn import _vae_settings as settings_of  # noqa: E402
from elbokit.nn.objectives.semisupervised import (  # noqa: E402
    LABELED_SHARE, SemiSupervisedObjective, labeled_per_batch)
from elbokit.nn.train import loop  # noqa: E402

SMALL = dict(hidden=(16,), classifier_hidden=(16,), progress=False)


@pytest.fixture(scope="module")
def digits():
    d = load("digits")
    X, labels = d.train[:400], d.train_labels[:400]
    y = np.full(400, -1)
    y[:30] = labels[:30]  # 30 labeled rows of 400: 0.075 of a uniform minibatch of 32
    return X, labels, y


def _generator(seed=0):
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _coded(n_rows, labeled_rows, k=3):
    """(n, 2 + k) rows whose last k columns are a one-hot code on ``labeled_rows``."""
    X = torch.zeros(n_rows, 2 + k)
    X[:, 0] = torch.arange(n_rows, dtype=torch.float32)
    X[labeled_rows, 2 + torch.as_tensor(labeled_rows) % k] = 1.0
    return X


@pytest.mark.parametrize("n_rows, n_labeled, batch_size", [(1000, 10, 128), (257, 50, 32),
                                                           (300, 200, 64), (65, 3, 64)])
def test_every_minibatch_holds_its_labeled_rows(n_rows, n_labeled, batch_size):
    objective = SemiSupervisedObjective(None, 1.0, n_labeled, n_rows, n_classes=3)
    X = _coded(n_rows, np.arange(n_rows - n_labeled, n_rows))
    labeled = X[:, -3:].sum(-1) > 0
    per_batch = labeled_per_batch(batch_size, n_labeled, n_rows)
    assert per_batch >= math.ceil(LABELED_SHARE * batch_size)
    assert per_batch >= math.ceil(n_labeled / n_rows * batch_size) or per_batch == batch_size - 1
    seen = torch.zeros(n_rows)
    for epoch in range(3):
        order = objective.batch_order(X, batch_size, _generator(epoch))
        assert order.shape == (n_rows,) and order.dtype == torch.long
        for start in range(0, n_rows, batch_size):
            batch = order[start:start + batch_size]
            wanted = max(1, round(per_batch * len(batch) / batch_size))
            assert int(labeled[batch].sum()) == wanted
        n_unlabeled_slots = int((~labeled[order]).sum())
        # within an epoch no unlabeled row repeats before every one came
        assert len(set(order[~labeled[order]].tolist())) == min(n_unlabeled_slots,
                                                                 n_rows - n_labeled)
        seen += torch.bincount(order, minlength=n_rows)
    assert bool((seen[labeled] > 0).all())  # each labeled row drawn


def test_fit_minibatches_hold_labeled_rows(digits, monkeypatch):
    X, _, y = digits
    counts = []
    original = SemiSupervisedObjective.loss

    def counting(self, model, x, *args):
        counts.append((int((x[:, -10:].sum(-1) > 0).sum()), x.shape[0]))
        return original(self, model, x, *args)

    monkeypatch.setattr(SemiSupervisedObjective, "loss", counting)
    SemiSupervisedVAE(2, **SMALL, batch_size=32, epochs=1).fit(X, y)
    per_batch = labeled_per_batch(32, 30, 360)
    assert len(counts) == math.ceil(360 / 32)
    for labeled, size in counts:
        assert labeled == max(1, round(per_batch * size / 32)) >= 1


def test_loss_of_the_whole_data_is_minus_j_over_n(digits):
    """The loss weights each kind of row by its share of the data: on a 'minibatch' of
    every row it is exactly -J / N, the mean of the per-row terms (module docstring)."""
    X, _, y = digits
    m = SemiSupervisedVAE(2, **SMALL, epochs=1, validation_fraction=0.0).fit(X, y)
    objective = m._objective(m.training_)
    assert (objective.n_labeled, objective.n_rows) == (30, 400)
    assert objective.label_weight == pytest.approx(m.semisupervised_.alpha * 400 / 30)
    codes = np.zeros((400, 10), dtype=np.float32)
    codes[np.arange(30), y[:30]] = 1.0
    x = torch.cat([m._tensor(X), torch.as_tensor(codes)], -1)
    deterministic = lambda model, rows, n_samples, generator, encoding=None: -(  # noqa
        rows ** 2).sum(-1)
    objective.estimator = deterministic
    with torch.no_grad():
        loss, _ = objective.loss(m.model_, x, m.training_, _generator(), 0, 1)
        per_row = objective.per_row(m.model_, x, 1, _generator())
        # a minibatch of 15 labeled and 200 unlabeled rows: each kind's mean by its share
        half = torch.cat([x[:15], x[100:300]])
        loss_half, _ = objective.loss(m.model_, half, m.training_, _generator(), 0, 1)
        _, bound_l, log_q_y, bound_u = objective.terms(m.model_, half, 1, _generator())
    torch.testing.assert_close(loss, -per_row.mean(), rtol=1e-6, atol=1e-4)
    by_share = -(30 / 400 * bound_l.mean() + m.semisupervised_.alpha * log_q_y.mean()
                 + 370 / 400 * bound_u.mean())
    torch.testing.assert_close(loss_half, by_share, rtol=1e-6, atol=1e-4)


def test_plain_vae_training_unchanged_by_the_batch_hook(digits, monkeypatch):
    """A VAE (no batch_order on its objective) trains on the seeded permutation the loop
    drew before the hook: the same weights to the bit."""
    X, _, _ = digits
    settings = dict(hidden=(16,), epochs=2, batch_size=64, progress=False)
    hooked = VAE(2, **settings).fit(X[:200])

    def before(run, X):  # the loop's line before the hook
        return torch.randperm(X.shape[0], generator=run.generator, device=run.generator.device)

    monkeypatch.setattr(loop, "_epoch_order", before)
    plain = VAE(2, **settings).fit(X[:200])
    for name, tensor in hooked.model_.state_dict().items():
        assert torch.equal(tensor, plain.model_.state_dict()[name]), name
    assert hooked.history_[-1]["train_elbo"] == plain.history_[-1]["train_elbo"]


def test_validation_split_holds_no_labeled_row(digits):
    X, labels, y = digits
    m = SemiSupervisedVAE(2, **SMALL, epochs=1).fit(X, y)
    vae_training = VAE(2, hidden=(16,), epochs=1, progress=False)._training(n_rows=400)
    held = m.validation_rows_
    assert len(held) == settings_of.held_out_rows(400, vae_training.validation_fraction) == 40
    assert not np.isin(np.flatnonzero(y != -1), held).any()  # every labeled row trains
    assert (m.training_.validation_fraction, m.training_.patience, m.training_.epochs) == (
        vae_training.validation_fraction, vae_training.patience, vae_training.epochs)
    assert "val_elbo" in m.history_[0]
    again = SemiSupervisedVAE(2, **SMALL, epochs=1).fit(X, y)  # seeded
    np.testing.assert_array_equal(again.validation_rows_, held)
    # too few unlabeled rows for the share: all rows, as the VAE
    mostly = np.where(np.arange(400) < 380, labels, -1)
    m = SemiSupervisedVAE(2, **SMALL, epochs=1).fit(X, mostly)
    np.testing.assert_array_equal(m.validation_rows_,
                                  settings_of.split_rows(400, 0.1, m.seed)[1])


def test_resumed_fit_ends_with_the_uninterrupted_weights(digits, tmp_path):
    """The batch order is drawn from the run's checkpointed generator alone: 2 epochs,
    then a resume to 4, give the weights of 4 epochs in one go."""
    X, _, y = digits
    settings = dict(SMALL, patience=0)
    whole = SemiSupervisedVAE(2, epochs=4, **settings).fit(X, y)
    SemiSupervisedVAE(2, epochs=2, **settings).fit(X, y, checkpoint_dir=tmp_path / "run")
    resumed = SemiSupervisedVAE(2, epochs=4, **settings).fit(
        X, y, checkpoint_dir=tmp_path / "run", resume=True)
    for name, tensor in whole.model_.state_dict().items():
        assert torch.equal(tensor, resumed.model_.state_dict()[name]), name
    np.testing.assert_array_equal(whole.validation_rows_, resumed.validation_rows_)
