"""The VAE's training objective (:class:`ELBOObjective`): one of the registered
estimators of the ELBO (or a bound beside it), minimised as :func:`.loss.training_loss`
says, by L_B's written-out step where that covers the model (:mod:`.fused`) and
autograd's otherwise; each epoch is validated by L_B's ELBO (:func:`evaluate_elbo`)."""

from __future__ import annotations

import torch

from .base import ELBOEstimator
from .fused import fused_step
from .loss import training_loss
from .single_sample import AnalyticKLELBO
from .step import AutogradStep, TrainingObjective

EVAL_BATCH = 4096  # rows per batch of an evaluation


class ELBOObjective(TrainingObjective):
    """The ELBO of ``estimator`` (an :class:`~.base.ELBOEstimator`), maximised; the
    history records ``train_elbo`` and ``val_elbo`` (nats per sample)."""

    metric, maximised, fits = "elbo", True, "VAE"

    def __init__(self, estimator: ELBOEstimator):
        self.estimator = estimator
        self.name = estimator.name

    def make_step(self, model, config, shard):
        """L_B's written-out step where it computes what autograd would for this run
        (:func:`~.fused.fused_step`), else autograd's."""
        fast = fused_step(model, config, self.estimator, shard.active)
        return fast if fast is not None else AutogradStep(self, model, config, shard)

    def loss(self, model, x, config, generator, step: int, steps_per_epoch: int):
        return training_loss(self.estimator, model, x, config, generator, step,
                             steps_per_epoch)

    def validate(self, model, X: torch.Tensor, seed: int) -> float:
        return float(evaluate_elbo(model, X, seed=seed).mean())

    def __repr__(self) -> str:
        return f"ELBOObjective({self.estimator!r})"


@torch.inference_mode()
def evaluate_elbo(model, X: torch.Tensor, *, estimator: ELBOEstimator | None = None,
                  n_samples: int = 1, seed: int | None = 0) -> torch.Tensor:
    """Per-sample ELBO estimates of X (n, d) in batches, (n,); seeded for repeatability
    (L_B unless ``estimator`` says otherwise).

    X may live on the host while the model is on a GPU: batches are copied over."""
    estimator = estimator or AnalyticKLELBO()
    device = next(model.parameters()).device
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    out = [estimator(model, X[i:i + EVAL_BATCH].to(device), n_samples, generator)
           for i in range(0, X.shape[0], EVAL_BATCH)]
    return torch.cat(out)
