"""Your own encoder and decoder: the contract a module keeps to be a VAE's network.

``VAE(encoder=my_encoder, decoder=my_decoder, ...)`` takes any ``torch.nn.Module``
pair that keeps the contract of the presets (:mod:`elbokit.nn.networks`); every
estimator of the ELBO, the posteriors (IAF included), importance-sampled
log-likelihoods, checkpoints and resume, and the report's figures then use it
unchanged.

Encoder
    ``forward(x)`` maps x of shape (B, d) (standardized when the model standardizes;
    image rows hold C*H*W values, channel first) to ``(mean, logvar)`` of
    q(z|x) = N(mean, diag exp(logvar)), each (B, n). n is the latent size L; with
    ``posterior="iaf"`` each half is wider, ``n = L + ceil(flow_context / 2)``, and
    the extra columns are the flow's context (:func:`encoder_width`).
Decoder
    ``forward(z)`` maps z of shape (..., L), any leading axes (the samples per point:
    (S, B, L)), to a tuple of the likelihood's ``n_heads`` parameter tensors, each
    (..., d): the logits for ``"bernoulli"`` (1 head, a tensor alone is taken as
    one head), the mean and the variance's pre-activation for ``"gaussian"`` (2), the
    mean for ``"gaussian-fixed"`` (1); see :func:`likelihood_heads`. An optional
    ``init_from_data(x, likelihood)`` is called once before training.
Saving
    Each module says how to build it again: an ``elbokit_config()`` method or a
    ``config`` dict attribute that returns its constructor's keyword arguments, JSON
    values only. ``save`` writes them with the class's name (as a record, never
    imported) and the weights (safetensors); ``VAE.load(path, encoder_class=...,
    decoder_class=...)`` calls ``encoder_class(**args)`` and checks the weights
    against the module it builds.

The shapes are checked when ``fit`` starts, on two rows of the data, with a
one-line error naming the expected shapes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..exceptions import ModelFileError, ParameterError
from .config import json_value
from .likelihoods import build_likelihood

PARTS = ("encoder", "decoder")


def likelihood_heads(likelihood: str) -> int:
    """How many parameter tensors a decoder for ``likelihood`` returns."""
    return build_likelihood(likelihood).n_heads


def encoder_width(latent_dim: int, posterior: str = "gaussian", flow_context: int = 64) -> int:
    """Columns of each half (mean, logvar) an encoder returns: L, or with an IAF
    L + ceil(flow_context / 2) (the context rides on the extra columns)."""
    return latent_dim + (math.ceil(flow_context / 2) if posterior == "iaf" else 0)


def is_module(value) -> bool:
    return isinstance(value, nn.Module)


def module_record(module: nn.Module, part: str) -> dict:
    """``{"class": name, "args": constructor arguments}`` of a custom network, read from
    its ``elbokit_config()`` or its ``config`` dict."""
    name = type(module).__name__
    if callable(getattr(module, "elbokit_config", None)):
        args = module.elbokit_config()
    elif isinstance(getattr(module, "config", None), dict):
        args = module.config
    else:
        raise ParameterError(f"the custom {part} ({name}) must say how to build it again: give "
                             "it an elbokit_config() method or a config dict attribute with "
                             "its constructor's keyword arguments (JSON values)")
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise ParameterError(f"the custom {part} ({name})'s config must be a dict of keyword "
                             f"arguments; got {str(args)[:60]}")
    try:
        args = json_value(args)
    except ParameterError as exc:
        raise ParameterError(f"the custom {part} ({name})'s config holds {exc}") from None
    return {"class": name, "args": args}


def custom_modules(architecture, classes: dict, where) -> dict:
    """The custom encoder/decoder of a saved ``architecture``, built from the caller's
    classes (``{"encoder": cls or None, "decoder": ...}``): keyword arguments of
    :class:`~elbokit.nn.model.VAENetwork`."""
    modules = {}
    for part in PARTS:
        cls, record = classes.get(part), getattr(architecture, f"{part}_module")
        if getattr(architecture, part) != "custom":
            if cls is not None:
                raise ParameterError(f"{part}_class was given, but {where} holds the preset "
                                     f"{part} {getattr(architecture, part)!r}")
            continue
        if cls is None:
            raise ModelFileError(f"{where} holds a custom {part} (class {record['class']}, "
                                 f"arguments {str(record['args'])[:60]}); pass its class: "
                                 f"VAE.load(path, {part}_class={record['class']})")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ParameterError(f"{part}_class must be a torch.nn.Module subclass; got "
                                 f"{str(cls)[:60]}")
        try:
            modules[part] = cls(**record["args"])
        except Exception as exc:  # the caller's code: any error, told in one line
            raise ModelFileError(f"{where}: {cls.__name__}(**{str(record['args'])[:60]}) "
                                 f"failed ({type(exc).__name__}: {str(exc)[:80]})") from None
    return modules


def _shapes(out) -> str:
    if torch.is_tensor(out):
        return str(tuple(out.shape))
    if isinstance(out, (tuple, list)):
        return ", ".join(_shapes(o) for o in out)
    return type(out).__name__


@torch.no_grad()
def check_shapes(model, x: torch.Tensor) -> None:
    """Raise ParameterError unless the model's networks map x (B, d) and z (B, L),
    (S, B, L) to the shapes of the contract above. Runs in eval mode (no running
    statistics change)."""
    config, training = model.config, model.training
    n, d, latent = x.shape[0], x.shape[1], config.latent_dim
    width = encoder_width(latent, config.posterior, config.flow_context)
    heads = model.likelihood.n_heads
    model.eval()
    try:
        out = model.encoder(model.standardized(x))
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(
                torch.is_tensor(t) and tuple(t.shape) == (n, width) for t in out)):
            flow = f" (latent {latent} + flow context {width - latent})" if width > latent \
                else ""
            raise ParameterError(f"the encoder must map x {(n, d)} to (mean, logvar), each "
                                 f"{(n, width)}{flow}; it returned {_shapes(out)}")
        for lead in ((n,), (3, n)):
            out = model.decode(torch.zeros(*lead, latent, device=x.device))
            if len(out) != heads or not all(tuple(t.shape) == (*lead, d) for t in out):
                raise ParameterError(
                    f"the decoder must map z {(*lead, latent)} to {heads} tensor(s) "
                    f"{(*lead, d)} (the parameters of likelihood {config.likelihood!r}); it "
                    f"returned {_shapes(out)}")
    except ParameterError:
        raise
    except RuntimeError as exc:  # a layer of the wrong size
        raise ParameterError(f"the custom networks fail on x {(n, d)} / z {(n, latent)}: "
                             f"{str(exc).splitlines()[0][:160]}") from None
    finally:
        model.train(training)
