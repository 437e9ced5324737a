"""Training schedules: which parameters an optimiser step updates.

``schedule="joint"`` (the default) steps every parameter on every minibatch: the
simplification the lecture arrives at. ``schedule="alternating"`` is the lecture's
"Using EM for training" (slides "Using EM for training", ../shared/seed/): an
E phase of ``e_steps`` minibatch steps holds theta (the generative model: decoder,
likelihood and prior parameters) fixed and steps phi (the encoder, and the flow of
``posterior="iaf"``) along dL/dphi; an M phase of ``m_steps`` steps holds phi fixed
and steps theta along dL/dtheta; the phases repeat, starting with E. Both use the
same estimator of the ELBO ("instead of fully maximizing at each iteration, we just
take a step in the direction that increases L").

Freezing is exact: the frozen group's gradients are dropped (set to None) before the
optimiser step, so Adam skips those parameters entirely, neither moving them by
their momentum nor advancing their moment estimates or step count (a zero gradient
would do both). The phase is a function of the global step number alone, so a
resumed run continues in the phase it was interrupted in.
"""

from __future__ import annotations

SCHEDULES = ("joint", "alternating")


def phase(config, step: int) -> str:
    """``"joint"``, ``"e"`` or ``"m"``: what global optimiser step ``step`` (0-based,
    counted over the whole run) updates."""
    if config.schedule == "joint":
        return "joint"
    return "e" if step % (config.e_steps + config.m_steps) < config.e_steps else "m"


def encoder_parameters(model) -> list:
    """phi: the parameters of the encoder and of the flow (if any)."""
    parts = [model.encoder] + ([model.flow] if getattr(model, "flow", None) is not None else [])
    return [p for part in parts for p in part.parameters()]


def freeze_gradients(model, config, step: int) -> None:
    """Drop the gradients of the group that step ``step`` holds fixed (call between
    ``backward`` and ``optimizer.step``); nothing for the joint schedule."""
    which = phase(config, step)
    if which == "joint":
        return
    phi = {id(p) for p in encoder_parameters(model)}
    for p in model.parameters():
        if (id(p) in phi) == (which == "m"):  # an encoder weight in M, a decoder one in E
            p.grad = None
