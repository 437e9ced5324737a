"""What the training loop asks of an objective (:class:`TrainingObjective`): a step
per minibatch that sets the gradients (:meth:`~TrainingObjective.make_step`), the
validation score of an epoch, and the names of the numbers the history records.
Autograd's step (:class:`AutogradStep`) is the default implementation; an objective
with a written-out step for the models it covers (L_B's, :mod:`.fused`) picks it in
its own ``make_step``."""

from __future__ import annotations

import torch

from ..train.precision import compute_dtype, mixed_precision


class TrainingObjective:
    """Base class of what :func:`elbokit.nn.train.train` minimises.

    Subclasses implement :meth:`loss` and :meth:`validate` and set:

    ``name``: the registry name; ``metric``: the history's key stem (``train_<metric>``
    per epoch, ``val_<metric>`` with validation data); ``maximised``: whether the
    recorded metric is minus the minimised value (the ELBO, of -ELBO) or the value
    itself (a loss); ``fits``: what the progress bar names."""

    name = "custom"
    metric = "elbo"
    maximised = True
    fits = "VAE"

    def make_step(self, model, config, shard) -> "AutogradStep":
        """The step of this run: ``step(x, generator, done, steps_per_epoch) -> (loss,
        value)`` sets every parameter's gradient of ``loss`` and returns it and the
        batch's mean minimised value (both detached). ``shard``: the run's
        :class:`~elbokit.nn.distributed.Shard` (torchrun's share of each minibatch)."""
        return AutogradStep(self, model, config, shard)

    def loss(self, model, x, config, generator, step: int, steps_per_epoch: int):
        """(loss to minimise, mean value recorded for the batch) of one step, with
        autograd's graph; ``step``: the optimiser steps before this one."""
        raise NotImplementedError

    def validate(self, model, X: torch.Tensor, seed: int) -> float:
        """The mean metric (as recorded: ``val_<metric>``) of the rows X (n, d), without
        gradients; ``seed``: for an estimate that draws."""
        raise NotImplementedError

    def recorded(self, value: float) -> float:
        """The history's number for a mean minimised value."""
        return -value if self.maximised else value

    def score(self, recorded: float) -> float:
        """Higher is better: what early stopping tracks, from a recorded number."""
        return recorded if self.maximised else -recorded


class AutogradStep:
    """Autograd's step: the objective's :meth:`~TrainingObjective.loss` (wrapped in DDP
    under torchrun; under :func:`~elbokit.nn.train.precision.mixed_precision` with
    ``precision="bfloat16"``), then ``backward``."""

    def __init__(self, objective: TrainingObjective, model, config, shard):
        self.model, self.config = model, config
        self.loss = shard.wrap(objective.loss, model)
        self.dtype = compute_dtype(config.precision)  # None: float32 throughout

    def __call__(self, x: torch.Tensor, generator, step: int, steps_per_epoch: int):
        with mixed_precision(self.model, self.dtype):
            loss, value = self.loss(self.model, x, self.config, generator, step,
                                    steps_per_epoch)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach(), value.detach()
