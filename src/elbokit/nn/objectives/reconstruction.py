"""The deterministic autoencoder's objective (:class:`Reconstruction`, registry name
``"reconstruction"``; not a VAE objective: it bounds no log p(x)): the mean of the
network's per-sample ``loss(x)`` (B,), the reconstruction error with z = f(x) and no
KL. Trained by the same loop as the VAE, with autograd's step."""

from __future__ import annotations

import torch

from .elbo import EVAL_BATCH
from .step import TrainingObjective


class Reconstruction(TrainingObjective):
    """Minimise ``model.loss(x).mean()`` for a network with a per-sample ``loss(x)``,
    ``loss_scale`` and ``loss_in_data_units(x)`` (:class:`~elbokit.nn.model.AENetwork`).
    The history records ``train_loss`` and ``val_loss``: the loss per sample in the
    data's units (the Gaussian loss is computed on standardized data, and recorded as
    the squared error of x)."""

    name, metric, maximised, fits = "reconstruction", "loss", False, "Autoencoder"

    def loss(self, model, x, config, generator, step: int, steps_per_epoch: int):
        loss = model.loss(x).mean()
        return loss, loss.detach() * model.loss_scale

    @torch.inference_mode()
    def validate(self, model, X: torch.Tensor, seed: int) -> float:
        device = next(model.parameters()).device
        total = sum(float(model.loss_in_data_units(X[i:i + EVAL_BATCH].to(device)).sum())
                    for i in range(0, X.shape[0], EVAL_BATCH))
        return total / X.shape[0]

    def __repr__(self) -> str:
        return "Reconstruction()"

