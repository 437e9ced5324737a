"""The VAE's default validation split and early stopping on small data (issue 32 item 3),
and the CLI's --threads (item 5)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from elbokit.nn import VAE
from elbokit.nn.config import (AUTO_PATIENCE, AUTO_PATIENCE_STEPS, SMALL_DATA_ROWS,
                               VALIDATION_FRACTION, auto_validation)

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def one_thread():
    """Small fits on one thread (on a busy 2-core machine two make them ~10x slower);
    torch's count restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _table(n: int, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 2)) @ rng.standard_normal((2, d))
            + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def test_auto_holds_out_a_small_table_and_nothing_of_a_large_one():
    for n, batch in ((100, 128), (560, 128), (560, 32), (5000, 128), (SMALL_DATA_ROWS, 64)):
        for given in (False, True):  # given rows: stop on them, nothing held out
            fraction, patience = auto_validation(n, given, batch)
            assert fraction == (0.0 if given else VALIDATION_FRACTION)
            steps = math.ceil(round(n * (1 - fraction)) / batch)  # an epoch's
            # the longer of AUTO_PATIENCE epochs and AUTO_PATIENCE_STEPS steps, no longer
            assert patience >= AUTO_PATIENCE and patience * steps >= AUTO_PATIENCE_STEPS
            assert patience == AUTO_PATIENCE or (patience - 1) * steps < AUTO_PATIENCE_STEPS
    assert auto_validation(560, False)[1] == 50  # 504 rows: 4 steps an epoch
    assert auto_validation(5000, False)[1] == AUTO_PATIENCE  # 36 steps an epoch
    assert auto_validation(SMALL_DATA_ROWS + 1, False) == (0.0, 0)
    assert auto_validation(SMALL_DATA_ROWS + 1, True) == (0.0, 0)


class _Scores:
    """A callback recording each epoch's validation ELBO and the weights after it."""

    def __init__(self):
        self.weights = []

    def on_train_start(self, model, config, data):
        pass

    def on_epoch_end(self, epoch, record, model):
        self.weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    def on_train_end(self, model, history, error=None):
        pass


def test_default_fit_of_a_small_table_keeps_the_best_validation_epoch():
    X = _table(200)
    scores = _Scores()
    vae = VAE(2, likelihood="gaussian", hidden=(16,), epochs=60, lr=1e-2, progress=False,
              device="cpu").fit(X, callbacks=[scores])
    assert vae.training_.validation_fraction == VALIDATION_FRACTION
    assert vae.training_.patience == auto_validation(200, False)[1]
    held = vae.validation_rows_
    assert len(held) == 20 and len(set(held.tolist())) == 20
    val = [h["val_elbo"] for h in vae.history_]
    best = int(np.argmax(val))
    for name, value in vae.model_.state_dict().items():  # the fitted weights are the best's
        torch.testing.assert_close(value, scores.weights[best][name])
    # the validation ELBO is of the held-out rows: recompute it at the kept weights
    assert abs(float(vae.elbo(X[held], "b", n_samples=64).mean()) - val[best]) < 1.0
    # the held-out rows were not fitted: the same fit on the other rows is the same model
    rest = np.setdiff1d(np.arange(len(X)), held)
    again = VAE(2, likelihood="gaussian", hidden=(16,), epochs=60, lr=1e-2, progress=False,
                device="cpu").fit(X[rest], validation=X[held])
    assert [h["val_elbo"] for h in again.history_] == pytest.approx(val)


def test_a_large_table_holds_nothing_out_and_trains_every_epoch(monkeypatch):
    import elbokit.nn.config as config

    monkeypatch.setattr(config, "SMALL_DATA_ROWS", 100)  # "large": more rows than this
    vae = VAE(2, likelihood="gaussian", hidden=(8,), epochs=3, progress=False,
              device="cpu").fit(_table(150))
    assert vae.validation_rows_ is None
    assert vae.training_.validation_fraction == 0 and vae.training_.patience == 0
    assert len(vae.history_) == 3 and "val_elbo" not in vae.history_[0]


def test_explicit_settings_win_and_bad_fractions_are_one_line():
    from elbokit.exceptions import ParameterError

    vae = VAE(2, likelihood="gaussian", hidden=(8,), epochs=2, progress=False, device="cpu",
              validation_fraction=0, patience=0).fit(_table(60))
    assert vae.validation_rows_ is None and len(vae.history_) == 2
    vae = VAE(2, likelihood="gaussian", hidden=(8,), epochs=2, progress=False, device="cpu",
              validation_fraction=0.25).fit(_table(60))
    assert len(vae.validation_rows_) == 15
    for bad in (1.0, -0.1, "half", True):
        with pytest.raises(ParameterError, match="validation_fraction must be a number"):
            VAE(2, likelihood="gaussian", validation_fraction=bad, epochs=1,
                progress=False).fit(_table(20))


def test_conditional_fit_holds_out_rows_with_their_labels():
    X, y = _table(80), np.repeat([0, 1], 40)
    vae = VAE(2, likelihood="gaussian", hidden=(8,), epochs=2, progress=False, device="cpu",
              conditional=True).fit(X, y)
    assert len(vae.validation_rows_) == 8 and "val_elbo" in vae.history_[0]


def test_cli_fit_vae_and_compare_hold_out_by_default_with_threads(tmp_path):
    from typer.testing import CliRunner

    from elbokit.cli import app

    path = tmp_path / "table.npy"
    np.save(path, _table(120))
    out = tmp_path / "vae"
    runner = CliRunner()
    result = runner.invoke(app, ["fit", "vae", "--data", str(path), "--latent", "2",
                                 "--hidden", "8", "--epochs", "3", "--likelihood", "gaussian",
                                 "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    training = json.loads((out / "model.json").read_text())["settings"]["training"]
    assert training["validation_fraction"] == VALIDATION_FRACTION
    assert training["patience"] == auto_validation(120, False)[1]
    assert torch.get_num_threads() == 1
    for command in (["evaluate", str(out), "--data", str(path)],
                    ["report", str(out), "--data", str(path)]):
        torch.set_num_threads(2)
        result = runner.invoke(app, [*command, "--threads", "1"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    result = runner.invoke(app, ["compare", "--data", str(path), "--latent", "2", "--models",
                                 "pca,vae", "--epochs", "2", "--k", "10", "--standardize",
                                 "--validation-fraction", "0.2", "--threads", "1",
                                 "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "cmp" / "vae" / "model.json").read_text())
    assert saved["settings"]["training"]["validation_fraction"] == 0.2
    run = json.loads((tmp_path / "cmp" / "pca" / "run.json").read_text())
    assert run["params"]["standardize"] is True


def test_threads_below_one_is_one_line(tmp_path, capsys):
    from elbokit.cli import main

    assert main(["fit", "pca", "--threads", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--threads must be an integer >= 1" in err, err


def test_auto_threads_are_the_cores_the_load_leaves_idle(monkeypatch):
    import os

    from elbokit.cli import common

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for load, threads in ((0.0, 4), (0.9, 4), (1.2, 3), (3.99, 1), (4.5, 1), (40.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert common.auto_threads() == threads, load
