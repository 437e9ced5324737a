"""The deterministic autoencoder's objective (:class:`Reconstruction`, registry name
``"reconstruction"``; not a VAE objective: it bounds no log p(x)): the mean of the
network's per-sample ``loss(x)`` (B,), the reconstruction error with z = f(x) and no
KL. Trained by the same loop as the VAE, with autograd's step."""

from __future__ import annotations

import torch

from .elbo import EVAL_BATCH
from .step import TrainingObjective


class Reconstruction(TrainingObjective):
    """Minimise ``model.loss(x).mean()`` for a network with ``encode``, ``decode`` and a
    per-sample ``loss(x)`` (:class:`~elbokit.nn.autoencoder.AENetwork`). The history
    records ``train_loss`` and ``val_loss``: the loss per sample in the data's units
    (``model.loss_in_data_units``: the Gaussian loss is computed on standardized data,
    and recorded as the squared error of x)."""

    name, metric, maximised, fits = "reconstruction", "loss", False, "Autoencoder"

    def loss(self, model, x, config, generator, step: int, steps_per_epoch: int):
        loss = model.loss(x).mean()
        return loss, loss.detach() * _data_units(model)

    @torch.inference_mode()
    def validate(self, model, X: torch.Tensor, seed: int) -> float:
        device = next(model.parameters()).device
        total = sum(float(model.loss_in_data_units(X[i:i + EVAL_BATCH].to(device)).sum())
                    for i in range(0, X.shape[0], EVAL_BATCH))
        return total / X.shape[0]

    def __repr__(self) -> str:
        return "Reconstruction()"


def _data_units(model) -> torch.Tensor | float:
    """The factor from ``model.loss`` to ``model.loss_in_data_units`` (1 for the
    Bernoulli cross-entropy, data_scale^2 for the squared error of the scaled data)."""
    return 1.0 if model.config.likelihood == "bernoulli" else model.data_scale.detach() ** 2
