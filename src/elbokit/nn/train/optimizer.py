"""The optimiser of training: Adam (:func:`make_optimizer`, :func:`optimizer_step`),
the learning rate as a function of the step and the clock (:func:`learning_rate`), and
Polyak averaging of the weights (:class:`WeightAverage`)."""

from __future__ import annotations

import math

import torch
import torch.optim.optimizer as _optim

from ..config import TrainingConfig


def make_optimizer(model, lr: float) -> torch.optim.Optimizer:
    """Adam; PyTorch's fused kernel (the same update in one pass over the parameters,
    about 10% faster per step for an MLP VAE on the CPU) where the device supports it."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``; for PyTorch's fused Adam on the CPU with its default options,
    once its state exists, the same two calls it makes (``_foreach_add_`` of the step counts,
    ``_fused_adam_``) without the Python around them (grouping by device and dtype,
    state look-ups, hooks): about 0.5 ms of a 10 ms step of the benchmark MLP VAE on
    the CPU. The same update, bit for bit (tests/nn/test_fused_step.py)."""
    group = optimizer.param_groups[0] if len(optimizer.param_groups) == 1 else None
    plain = (type(optimizer) is torch.optim.Adam and group is not None
             and group.get("fused") and not group["amsgrad"] and not group["weight_decay"]
             and not group["maximize"] and not group["capturable"]
             and not group["differentiable"] and not group.get("decoupled_weight_decay")
             and not optimizer._optimizer_step_pre_hooks
             and not optimizer._optimizer_step_post_hooks
             and not _optim._global_optimizer_pre_hooks
             and not _optim._global_optimizer_post_hooks
             and not isinstance(group["lr"], torch.Tensor))
    params = [p for p in group["params"] if p.grad is not None] if plain else []
    state = [optimizer.state.get(p) for p in params]
    devices = {(p.device, p.dtype) for p in params}
    if not params or len(devices) != 1 or params[0].device.type != "cpu" or any(
            not s or s["step"].device != params[0].device for s in state):
        optimizer.step()  # the first step (creates the state), a GPU, or anything else
        return
    steps = [s["step"] for s in state]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in state],
                       [s["exp_avg_sq"] for s in state], [], steps, amsgrad=False,
                       lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0,
                       eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


def learning_rate(config: TrainingConfig, step: int, steps_per_epoch: int,
                  seconds: float = 0.0) -> float:
    """The learning rate after ``step`` optimiser steps and ``seconds`` of the fit:
    a linear warm-up from 0 over ``lr_warmup`` epochs, then constant or cosine-annealed
    to 0 over the rest of the ``epochs`` or of ``max_minutes``, whichever is further
    along. A function of the step (and the clock) alone, so a resumed run needs no
    scheduler state."""
    warm = config.lr_warmup * steps_per_epoch
    if step < warm:
        return config.lr * (step + 1) / warm
    if config.lr_schedule == "constant":
        return config.lr
    progress = (step - warm) / max(config.epochs * steps_per_epoch - warm, 1)
    if config.max_minutes:
        progress = max(progress, seconds / (60.0 * config.max_minutes))
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer, config: TrainingConfig, step: int, steps_per_epoch: int,
           seconds: float = 0.0) -> None:
    """Set every parameter group's rate to :func:`learning_rate`."""
    lr = learning_rate(config, step, steps_per_epoch, seconds)
    for group in optimizer.param_groups:
        group["lr"] = lr


class WeightAverage:
    """Polyak averaging (an exponential moving average) of a module's weights:
    after optimiser step t, w_avg <- d_t w_avg + (1 - d_t) w with
    d_t = min(decay, (1 + t) / (10 + t)) (the warm-up of TensorFlow's
    ExponentialMovingAverage, so early averages are not dominated by the random
    start). Buffers (the standardization) are copied as they are. One fused
    ``lerp`` over all parameters per step."""

    def __init__(self, model: torch.nn.Module, decay: float, weights: dict | None = None,
                 updates: int = 0):
        self.decay, self.updates = decay, updates
        self.names = [name for name, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        source = weights if weights is not None else model.state_dict()
        self.weights = {k: v.detach().clone() for k, v in source.items()}
        self._averaged = [self.weights[name] for name in self.names]

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, [p.detach() for p in self.params], 1.0 - decay)
        self.updates += 1

    def state_dict(self) -> dict:
        """The averaged weights, as the model's state dict (buffers current)."""
        return self.weights
