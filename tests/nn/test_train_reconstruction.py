"""The one training loop trains the Autoencoder's network too: objective
"reconstruction" (registered beside the VAE's estimators, not a VAE objective choice),
its history in the data's units, its checkpoints and resume as the VAE's."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.nn.autoencoder import AENetwork  # noqa: E402
from elbokit.nn.config import OBJECTIVES, ArchitectureConfig, TrainingConfig  # noqa: E402
from elbokit.nn.objectives import (ESTIMATORS, OBJECTIVES as REGISTERED,  # noqa: E402
                                   Reconstruction, get_objective)
from elbokit.nn.train import train  # noqa: E402

FAST = dict(batch_size=50, lr=3e-3, seed=0, device="cpu", progress=False,
            precision="float32")


def _network(likelihood="bernoulli", n_features=64, seed=0):
    architecture = ArchitectureConfig(n_features=n_features, latent_dim=3, hidden=(16,),
                                      likelihood=likelihood)
    torch.manual_seed(seed)
    return AENetwork(architecture), architecture


def _digits(digits, rows=200):
    return (digits.train[:rows] / max(1.0, float(digits.train.max()))).astype(np.float32)


def test_reconstruction_is_registered_but_not_a_vae_objective():
    assert isinstance(get_objective("reconstruction"), Reconstruction)
    assert "reconstruction" in REGISTERED and "reconstruction" not in ESTIMATORS
    assert "reconstruction" not in OBJECTIVES  # the VAE's config and CLI do not offer it
    assert set(ESTIMATORS) <= set(REGISTERED)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-fixed"])
def test_the_loop_trains_the_network_and_records_its_loss_in_data_units(digits, likelihood):
    X = _digits(digits)
    network, architecture = _network(likelihood)
    if likelihood != "bernoulli":  # the AE's Gaussian loss sees scaled data
        network.data_mean.copy_(torch.as_tensor(X.mean(0)))
        network.data_scale.fill_(float(np.sqrt(X.var(0).mean())))
    V = X[:60]
    history = train(network, X, TrainingConfig(epochs=4, **FAST), architecture,
                    objective="reconstruction", validation=V)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert all({"train_loss", "val_loss", "seconds", "wall_seconds"} <= set(h)
               for h in history)
    assert not any("train_elbo" in h for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    with torch.no_grad():  # the recorded validation loss: the final weights' error per row
        error = network.loss_in_data_units(torch.as_tensor(V)).mean()
    assert history[-1]["val_loss"] == pytest.approx(float(error), rel=1e-5)


def test_a_resumed_reconstruction_run_ends_with_the_uninterrupted_weights(digits, tmp_path):
    X = _digits(digits)
    whole, architecture = _network()
    train(whole, X, TrainingConfig(epochs=3, **FAST), architecture,
          objective="reconstruction", run_dir=tmp_path / "whole")
    parts, _ = _network()
    train(parts, X, TrainingConfig(epochs=1, **FAST), architecture,
          objective="reconstruction", run_dir=tmp_path / "parts")
    again, _ = _network(seed=1)  # other initial weights: the checkpoint's replace them
    history = train(again, X, TrainingConfig(epochs=3, **FAST), architecture,
                    objective="reconstruction", run_dir=tmp_path / "parts", resume=True)
    assert len(history) == 3
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


def test_early_stopping_keeps_the_lowest_validation_loss(digits):
    X = _digits(digits)
    network, architecture = _network()
    config = TrainingConfig(epochs=6, patience=1, **{**FAST, "lr": 0.05})  # a noisy descent
    history = train(network, X, config, architecture, objective="reconstruction",
                    validation=X[:60])
    best = min(h["val_loss"] for h in history)
    with torch.no_grad():
        kept = float(network.loss_in_data_units(torch.as_tensor(X[:60])).mean())
    assert kept == pytest.approx(best, rel=1e-5)
