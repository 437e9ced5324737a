"""Sizes bounded before they are allocated: the bytes the networks of a config hold
(from a build on torch's ``meta`` device, which allocates nothing) and the bytes a
training step holds, checked against the one memory probe
(:func:`elbokit.persistence.memory.check_memory`) before the real build or the first
step. ``--latent 1e9`` asked the allocator for 3.2 TB, ``--prior-components 100000``
for the (rows, K, L) mixture terms, ``--n-samples 1e7`` for its draws: each is now one
line naming the figure and the setting to lower."""

from __future__ import annotations

import dataclasses
import math

import torch

from ..exceptions import ParameterError
from ..persistence.memory import check_memory, gib
from .config import PRIOR_COMPONENTS
from .flows import IAF
from .likelihoods import build_likelihood
from .networks import build_decoder, build_encoder
from .priors import build_prior

FLOAT_BYTES = 4  # float32 weights, gradients, optimizer state and activations
# per weight during training: the weight, its gradient, Adam's two moments and the copy
# of the last good epoch's weights the loop keeps (one more for EMA, one for the best
# weights of early stopping)
TRAINING_COPIES = 5
# per activation of a step: the forward value autograd keeps, its gradient and a
# temporary of the same size
ACTIVATION_COPIES = 3
SETTINGS_HINT = ("lower latent_dim (--latent), hidden (--hidden), prior_components, "
                 "n_samples or batch_size (an IAF's flow settings, gmm_components)")


def _meta_networks(config, vae: bool) -> list[torch.nn.Module]:
    """The preset parts of ``config``'s network built on the meta device (no memory);
    a custom encoder, decoder or prior is the caller's module, already allocated. An
    IAF is built with one of its ``flow_steps`` steps, all of one size (building 10^12
    of them would not end): :func:`network_bytes` counts it that many times."""
    heads = build_likelihood(config.likelihood, min_variance=config.min_variance,
                             sigma=config.sigma).n_heads if vae else 1
    half = math.ceil(config.flow_context / 2) if vae and config.posterior == "iaf" else 0
    parts = []
    with torch.device("meta"):
        if config.encoder != "custom":
            parts.append(build_encoder(config, config.latent_dim + half))
        if config.decoder != "custom":
            parts.append(build_decoder(config, heads))
        if half:
            parts.append(IAF(config.latent_dim, 1, config.flow_hidden, config.flow_context))
        if vae and config.prior != "custom":
            parts.append(build_prior(config))
    return parts


def _describe(config) -> str:
    hidden = ",".join(map(str, config.hidden)) if config.encoder == config.decoder == "mlp" \
        else None
    text = f"L = {config.latent_dim}"
    if hidden:
        text += f", hidden {hidden}"
    if getattr(config, "prior", "standard") in ("mog", "vamp"):
        text += f", {config.prior_components} prior components"
    if getattr(config, "posterior", "gaussian") == "iaf":
        text += (f", flow_steps {config.flow_steps}, flow_hidden "
                 f"{','.join(map(str, config.flow_hidden))}, flow_context {config.flow_context}")
    if getattr(config, "gmm_components", 0):
        text += f", gmm_components {config.gmm_components}"
    return f"{text}, {config.n_features} features"


def _built(config, vae: bool) -> list[torch.nn.Module]:
    try:
        return _meta_networks(config, vae)
    except (RuntimeError, OverflowError, ValueError, TypeError):
        # sizes beyond what a tensor's shape can hold (torch: "Overflow when unpacking")
        raise ParameterError(f"the networks of {_describe(config)} hold more than 2^63 "
                             f"numbers; {SETTINGS_HINT}") from None


def network_bytes(config, *, vae: bool = True) -> int:
    """Bytes of the weights and buffers of ``config``'s preset networks (float32)."""
    total = sum(t.numel() * FLOAT_BYTES * (config.flow_steps if isinstance(part, IAF) else 1)
                for part in _built(config, vae) for t in (*part.parameters(), *part.buffers()))
    if vae and config.gmm_components:
        total += config.gmm_components * (1 + config.latent_dim + config.latent_dim ** 2) \
            * FLOAT_BYTES
    return total + 2 * config.n_features * FLOAT_BYTES  # the standardization's buffers


def check_network_memory(config, *, vae: bool = True) -> None:
    """Refuse, before the build, networks whose weights would not fit in memory (a
    build on the meta device allocates nothing: a load checks a model.json's sizes
    against its tensor file's header that way, and names the mismatch itself)."""
    if torch.empty(0).device.type == "meta":
        return
    check_memory(network_bytes(config, vae=vae), f"building the networks of {_describe(config)}",
                 error=ParameterError, hint=SETTINGS_HINT)


def activations_per_row(config, *, vae: bool = True) -> int:
    """Numbers one row's forward pass produces in the preset encoder and decoder, an
    upper estimate read off their layers (a forward pass on the meta device would say it
    exactly but costs seconds the first time): each linear layer's outputs, each
    convolution's channels over the image's pixels (a quarter of them for a strided
    one); a custom part counts its output widths only."""
    pixels = math.prod(config.image_shape) if config.image_shape else config.n_features
    total = 2 * config.latent_dim + 2 * config.n_features  # the parts' outputs
    for part in _built(config, vae)[:2]:
        for module in part.modules():
            if isinstance(module, torch.nn.Linear):
                total += module.out_features
            elif isinstance(module, torch.nn.ConvTranspose2d):
                total += module.out_channels * pixels
            elif isinstance(module, torch.nn.Conv2d):
                total += module.out_channels * pixels // 4
    return total


def step_rows(training, n_rows: int | None = None) -> int:
    """Rows of the networks' forward pass in one step: the minibatch times the draws of
    z per row (M x K for the multi-sample bounds that draw M groups)."""
    groups = training.miwae_m if training.objective in ("miwae", "piwae") else 1
    return _batch(training, n_rows) * training.n_samples * groups


def _batch(training, n_rows: int | None) -> int:
    """Rows of a minibatch: batch_size, or all the rows where there are fewer."""
    return training.batch_size if n_rows is None else min(training.batch_size, n_rows)


def training_bytes(architecture, training, *, vae: bool = True, weights: int | None = None,
                   n_rows: int | None = None) -> tuple[int, int]:
    """(weights and optimizer state, one step's activations) in bytes: the peak of a
    training step, before it is taken. ``weights``: the model's weight bytes where it is
    built already (a custom module counted too)."""
    if weights is None:
        weights = network_bytes(architecture, vae=vae)
    copies = TRAINING_COPIES + bool(getattr(training, "ema", 0)) + \
        bool(getattr(training, "patience", 0))
    rows = step_rows(training, n_rows) if vae else _batch(training, n_rows)
    per_row = activations_per_row(architecture, vae=vae)
    if vae and getattr(architecture, "posterior", "gaussian") == "iaf":
        per_row += architecture.flow_steps * (sum(architecture.flow_hidden)
                                              + 3 * architecture.latent_dim)
    if vae and architecture.prior in ("mog", "vamp"):
        # log p(z) of a mixture: (rows, K, L) terms; the VampPrior's encoder pass over its
        # K pseudo-inputs once per step
        per_row += architecture.prior_components * architecture.latent_dim
    step = rows * per_row * ACTIVATION_COPIES * FLOAT_BYTES
    if vae and architecture.prior == "vamp":
        step += architecture.prior_components * activations_per_row(
            dataclasses.replace(architecture, prior="standard"), vae=True) \
            * ACTIVATION_COPIES * FLOAT_BYTES
    return weights * copies, step


def check_training_sizes(architecture, training, n_rows: int, *, vae: bool = True,
                         weights: int | None = None, device=None) -> None:
    """Refuse, before the first step, a mixture prior of more components than training
    rows (beyond the default's), and a training whose optimizer state and one step's
    activations would not fit in the memory left (``weights``: the bytes of the model's
    weights, allocated already; ``device``: the model's, a GPU's free memory being
    what counts there); the message names the figures and the step's rows."""
    k = architecture.prior_components if vae and architecture.prior in ("mog", "vamp") else 0
    if k > max(n_rows, max(PRIOR_COMPONENTS.values())):
        raise ParameterError(f"prior_components = {k} exceeds the {n_rows} training rows: a "
                             f"{architecture.prior} prior of more components than rows has "
                             "components no row can use; choose at most the number of rows")
    state, step = training_bytes(architecture, training, vae=vae, weights=weights,
                                 n_rows=n_rows)
    batch = _batch(training, n_rows)
    rows = f"{batch} rows"
    if vae and step_rows(training, n_rows) != batch:
        rows += f" x {step_rows(training, n_rows) // batch} draws of z"
    what = (f"training the networks of {_describe(architecture)} (weights and optimizer "
            f"state {gib(state)}, one step of {rows} {gib(step)})")
    needed = state - (weights or 0) + step  # the weights themselves are allocated already
    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if needed > free:
            raise ParameterError(f"{what} needs {gib(needed)} more memory on {device} but "
                                 f"only {gib(free)} is free; {SETTINGS_HINT}")
        return
    check_memory(needed, what, error=ParameterError, hint=SETTINGS_HINT)
