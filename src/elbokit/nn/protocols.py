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
    (..., d) (a tensor alone is taken as one head; see :func:`likelihood_heads`). The
    contract of each likelihood:

    ``"bernoulli"`` (1 head)
        the **logits**, any real numbers: p(x_j = 1 | z) = sigmoid(logit_j). A decoder
        must not end in a sigmoid (the PyTorch and pythae examples do): ``fit`` refuses
        one whose outputs on the two check rows all lie in [0, 1].
    ``"gaussian"`` (2 heads)
        the mean and the variance's pre-activation s: v = min_variance + softplus(s).
    ``"gaussian-fixed"`` (1 head)
        the mean (standard deviation ``sigma``).
    ``"logistic"`` (2 heads)
        the discretized logistic's mean mu, in the data's units ([0, 1]; not squashed:
        values outside put their mass on level 0 or 255, so a final sigmoid on it is
        allowed but not needed), and the log-scale's pre-activation r,
        log s = -8 + softplus(r + 8) (no final activation on r).
    ``"poisson"``, ``"nb"`` (1 head), ``"zinb"`` (2 heads)
        the logits h of each feature's share of the row's total count (rates
        l softmax(h), l the row's total; no final activation), and for the ZINB the
        zero-inflation logits g, pi = sigmoid(g). The encoder sees log(1 + x).

    Outputs that are NaN or infinite on the two check rows are refused for every
    likelihood.

    An optional ``init_from_data(x, likelihood)`` is called once before training.
Autoencoder
    :class:`~elbokit.nn.Autoencoder` takes the same modules: its code is the encoder's
    mean half (an encoder may also return the code (B, L) alone), its decoder returns
    one head, the logits for ``"bernoulli"`` and the mean for ``"gaussian"`` (of x
    scaled by the training data's mean and one overall scale); it does not call
    ``init_from_data``.
Saving and loading
    Any module trains and saves. ``save`` writes ``{"class": name, "module": module
    name, "args": ...}`` and the weights (safetensors); ``args`` are the constructor's
    keyword arguments when the module gives them (an ``elbokit_config()`` method or a
    ``config`` dict attribute, JSON values only), else None, and ``save`` warns once
    that loading will need the class to build with no arguments, or the module itself.
    ``VAE.load(path, encoder_class=...)`` builds ``encoder_class(**args)``;
    ``networks=`` takes the dict :func:`import_networks` returns (the CLI's
    ``--networks FILE.py``), looked up by the recorded class name; ``encoder=`` a
    module object, a copy of which gets the weights. No name written in a file is
    ever imported; the weights are checked against the module built.

The shapes (and the Bernoulli logits) are checked when ``fit`` starts, on two rows of
the data, with a one-line error naming the expected shapes.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

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
    """``{"class": name, "module": module name, "args": constructor arguments or None}``
    of a custom network; the arguments are its ``elbokit_config()``'s or its ``config``
    dict, None when it gives neither (it trains and saves; loading then needs the class
    to build with no arguments, or the module itself)."""
    name = type(module).__name__
    if callable(getattr(module, "elbokit_config", None)):
        args = module.elbokit_config()
    elif isinstance(getattr(module, "config", None), dict):
        args = module.config
    else:
        args = None
    if args is not None:
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise ParameterError(f"the custom {part} ({name})'s config must be a dict of "
                                 f"keyword arguments; got {str(args)[:60]}")
        try:
            args = json_value(args)
        except ParameterError as exc:
            raise ParameterError(f"the custom {part} ({name})'s config holds {exc}") from None
    return {"class": name, "module": type(module).__module__, "args": args}


def custom_settings(estimator) -> dict:
    """The config fields of an estimator's module arguments: ``{"encoder": "custom",
    "encoder_module": record}`` for each part given as a module (none for a name)."""
    settings = {}
    for part in PARTS:
        given = getattr(estimator, part)
        if isinstance(given, str) and given == "custom":
            raise ParameterError(f"{part}='custom' stands for a module of your own: pass "
                                 f"the module itself, {part}=my_module")
        if is_module(given):
            settings.update({part: "custom", f"{part}_module": module_record(given, part)})
    return settings


def unbuildable_warning(architecture) -> str | None:
    """What ``save`` warns of when a custom network records no constructor arguments
    (None when each can be rebuilt from its arguments)."""
    parts = [(part, getattr(architecture, f"{part}_module")["class"]) for part in PARTS
             if getattr(architecture, part) == "custom"
             and getattr(architecture, f"{part}_module").get("args") is None]
    if not parts:
        return None
    which = " and ".join(f"{part} {name}" for part, name in parts)
    part, name = parts[0]
    return (f"model.json records no constructor arguments for the custom {which} (no "
            f"config dict or elbokit_config()): loading will need "
            f"{'each class' if len(parts) > 1 else 'the class'} to build with no arguments "
            f"({part}_class={name}, or --networks FILE.py that defines it) or the module "
            f"itself ({part}={name}(...))")


def network_builder(where, noun: str = "VAE", *, networks=None, encoder=None, decoder=None,
                    encoder_class=None, decoder_class=None):
    """``architecture -> {part: module}``, the custom networks of a saved model, from
    the caller's arguments to ``load`` (checked here, before a file is read):
    ``networks`` the dict :func:`import_networks` returns, ``encoder``/``decoder``
    module objects (a copy of each is built), ``*_class`` classes. An object wins
    over a class, a class over ``networks``."""
    if networks is not None and not (isinstance(networks, dict) and all(
            isinstance(c, type) and issubclass(c, nn.Module) for c in networks.values())):
        raise ParameterError("networks must be the dict import_networks returns (class name "
                             f"-> torch.nn.Module subclass); got {str(networks)[:60]}")
    objects = {"encoder": encoder, "decoder": decoder}
    classes = {"encoder": encoder_class, "decoder": decoder_class}
    for part in PARTS:
        if objects[part] is not None and not is_module(objects[part]):
            raise ParameterError(f"{part} must be a torch.nn.Module object ({noun}.load(path, "
                                 f"{part}=My{part.title()}(...))); got {str(objects[part])[:60]}")
        cls = classes[part]
        if cls is not None and not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ParameterError(f"{part}_class must be a torch.nn.Module subclass; got "
                                 f"{str(cls)[:60]}")
        if cls is not None and objects[part] is not None:
            raise ParameterError(f"give {part}= (a module) or {part}_class= (a class), not "
                                 "both")

    def modules(architecture) -> dict:
        built = {}
        for part in PARTS:
            given = objects[part] if objects[part] is not None else classes[part]
            if getattr(architecture, part) != "custom":
                if given is not None:
                    raise ParameterError(f"{part}{'' if is_module(given) else '_class'} was "
                                         f"given, but {where} holds the preset {part} "
                                         f"{getattr(architecture, part)!r}")
                continue
            record = getattr(architecture, f"{part}_module")
            if is_module(given):
                built[part] = copy.deepcopy(given)
            else:
                built[part] = _build(given or _named(networks, record, part, where, noun),
                                     record, part, where, noun)
        return built

    return modules


def _named(networks, record: dict, part: str, where, noun: str) -> type:
    """The class the caller's ``networks`` define under the recorded name."""
    name = record["class"]
    if networks and name in networks:
        return networks[name]
    defined = f"; the networks given define {', '.join(sorted(networks)[:6])}" if networks \
        else ""
    raise ModelFileError(f"{where} holds a custom {part} (class {name}){defined}; pass its "
                         f"class ({noun}.load(path, {part}_class={name})) or, on the command "
                         f"line, --networks FILE.py that defines it")


def _build(cls: type, record: dict, part: str, where, noun: str) -> nn.Module:
    args = record.get("args")
    try:
        return cls(**(args or {}))
    except Exception as exc:  # the caller's code: any error, told in one line
        failed = f"{where}: {cls.__name__}(**{str(args)[:60]}) failed"
        cause = f"({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})"
        if args is None:  # saved without a config: only the caller knows the arguments
            raise ModelFileError(f"{where}: {cls.__name__}() failed {cause}; the file "
                                 f"records no constructor arguments (the module had no "
                                 f"config): pass the module itself, {noun}.load(path, "
                                 f"{part}={cls.__name__}(...))") from None
        raise ModelFileError(f"{failed} {cause}") from None


def import_networks(source: str) -> dict[str, type]:
    """The ``torch.nn.Module`` subclasses ``source`` defines or exposes, by class name.

    ``source`` is ``path/to/file.py``, ``path/to/file.py:ATTR``, ``package.module`` or
    ``package.module:ATTR``: exactly that is imported (a file by its path, under a
    private module name; a module name with ``importlib.import_module``); with
    ``:ATTR``, the class ATTR alone, or the classes in the dict or namespace ATTR.
    Nothing is read from a run directory. Any failure (a missing file, a syntax error,
    an exception while importing, no module classes) is one :class:`ParameterError`
    line naming the source."""
    import importlib

    if not isinstance(source, str) or not source.strip():
        raise ParameterError(f"networks must name a file.py or a module; got {source!r}")
    target, attr = _split_source(source.strip())
    where = f"networks {source!r}"
    try:
        module = _import_file(target, where) if _is_file(target) else \
            importlib.import_module(target)
    except ParameterError:
        raise
    except ModuleNotFoundError as exc:
        raise ParameterError(f"{where}: no module named {exc.name!r} (a file needs its path, "
                             f"e.g. ./nets.py)") from None
    except SyntaxError as exc:
        raise ParameterError(f"{where}: syntax error in {Path(exc.filename or target).name} "
                             f"line {exc.lineno}: {exc.msg}") from None
    except BaseException as exc:  # the user's code, run on import: told in one line
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise ParameterError(f"{where}: importing it raised {type(exc).__name__}: "
                             f"{message}") from None
    found = _module_classes(module, attr, where)
    if not found:
        raise ParameterError(f"{where} defines no torch.nn.Module class")
    return found


def _split_source(source: str) -> tuple[str, str | None]:
    """``"a/b.py:Attr"`` -> ("a/b.py", "Attr"); a colon not followed by a dotted
    identifier (a Windows drive, ``C:\\x.py``) is part of the path."""
    head, colon, tail = source.rpartition(":")
    if colon and head and all(part.isidentifier() for part in tail.split(".")):
        return head, tail
    return source, None


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import_file(target: str, where: str):
    import hashlib
    import importlib.util
    import sys

    path = Path(target).expanduser()
    if not path.is_file():
        raise ParameterError(f"{where}: no file {path}")
    path = path.resolve()
    name = "_elbokit_networks_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ParameterError(f"{where}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # what its classes' __module__ names (pickle, dataclasses)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _module_classes(module, attr: str | None, where: str) -> dict[str, type]:
    value = module
    for name in attr.split(".") if attr else ():
        if not hasattr(value, name):
            raise ParameterError(f"{where}: it has no attribute {name!r}")
        value = getattr(value, name)
    if isinstance(value, type) and issubclass(value, nn.Module):
        return {value.__name__: value}
    if not isinstance(value, dict) and (isinstance(value, type)
                                        or not hasattr(value, "__dict__")):
        raise ParameterError(f"{where}: {attr} is not a torch.nn.Module class, nor a dict "
                             "or namespace of them")
    members = value.values() if isinstance(value, dict) else vars(value).values()
    return {c.__name__: c for c in members if isinstance(c, type) and issubclass(c, nn.Module)}


def _check_values(out: tuple, likelihood: str) -> None:
    """The decoder's outputs on the check rows: finite, and logits under Bernoulli (a
    final sigmoid leaves every output in [0, 1]; 16 values or more, so random logits
    cannot pass for probabilities)."""
    if not all(torch.isfinite(t).all() for t in out):
        raise ParameterError("the decoder returned NaN or inf on the codes of two rows of "
                             "the data")
    head = out[0]
    if likelihood == "bernoulli" and head.numel() >= 16 and \
            bool(((head >= 0) & (head <= 1)).all()):
        raise ParameterError(f"the decoder must return logits under likelihood 'bernoulli' "
                             f"(its outputs on two rows all lie in [{float(head.min()):.2f}, "
                             f"{float(head.max()):.2f}]): drop its final sigmoid")


def _shapes(out) -> str:
    if torch.is_tensor(out):
        return str(tuple(out.shape))
    if isinstance(out, (tuple, list)):
        return ", ".join(_shapes(o) for o in out)
    return type(out).__name__


@torch.no_grad()
def check_shapes(model, x: torch.Tensor) -> None:
    """Raise ParameterError unless the VAE network's modules map x (B, d) and z (B, L),
    (S, B, L) to the shapes of the contract above, with finite outputs (and logits,
    under Bernoulli, from a custom decoder). Runs in eval mode (no running statistics
    change)."""
    config = model.config
    width = encoder_width(config.latent_dim, config.posterior, config.flow_context)
    _check_modules(model, x, lambda x: model.encoder(model.standardized(x)), model.decode,
                   width=width, heads=model.likelihood.n_heads,
                   likelihood=config.likelihood)


@torch.no_grad()
def check_autoencoder_shapes(network, x: torch.Tensor) -> None:
    """:func:`check_shapes` for an :class:`~elbokit.nn.model.AENetwork`: the encoder
    returns (mean, logvar) or the code alone, the decoder one head."""
    config = network.config
    _check_modules(network, x, lambda x: network.encoder(network.scaled(x)),
                   network.decode_heads, width=config.latent_dim, heads=1,
                   likelihood=config.likelihood, code_alone=True)


def _check_modules(model, x, encode, decode, *, width: int, heads: int, likelihood: str,
                   code_alone: bool = False) -> None:
    config, training = model.config, model.training
    n, d, latent = x.shape[0], x.shape[1], config.latent_dim
    model.eval()
    try:
        out = encode(x)
        if code_alone and torch.is_tensor(out) and tuple(out.shape) == (n, width):
            out = (out, out)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(
                torch.is_tensor(t) and tuple(t.shape) == (n, width) for t in out)):
            flow = f" (latent {latent} + flow context {width - latent})" if width > latent \
                else ""
            raise ParameterError(f"the encoder must map x {(n, d)} to (mean, logvar), each "
                                 f"{(n, width)}{flow}; it returned {_shapes(out)}")
        mean = out[0][:, :latent]  # the two rows' codes: what the decoder sees in training
        for z in (mean, mean.expand(3, n, latent)):
            out = decode(z)
            lead = tuple(z.shape[:-1])
            if len(out) != heads or not all(tuple(t.shape) == (*lead, d) for t in out):
                raise ParameterError(
                    f"the decoder must map z {(*lead, latent)} to {heads} tensor(s) "
                    f"{(*lead, d)} (the parameters of likelihood {likelihood!r}); it "
                    f"returned {_shapes(out)}")
        if config.decoder == "custom":
            _check_values(decode(mean), likelihood)
    except ParameterError:
        raise
    except RuntimeError as exc:  # a layer of the wrong size
        raise ParameterError(f"the custom networks fail on x {(n, d)} / z {(n, latent)}: "
                             f"{str(exc).splitlines()[0][:160]}") from None
    finally:
        model.train(training)
