"""The neural models' saved files on the one model.json schema
(:mod:`elbokit.persistence.model_file`): ``settings`` holds the two configs
(``{"architecture": ..., "training": ...}``), ``fitted`` the number and names of the
features, the tensors the network's state dict (and the Autoencoder's code Gaussian).
:func:`read_model` checks the configs, and the architecture against the weights file's
header, before a tensor is read or a layer built. The tensor checks here serve the
training checkpoints too (:mod:`elbokit.nn.train.checkpoint`). Never pickle.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from ..exceptions import ModelFileError, ParameterError
from ..persistence import (NUMPY_DTYPES, check_checksum, model_file, read_safetensors,
                           write_safetensors)
from ..persistence.checks import check_keys
from .config import ArchitectureConfig, TrainingConfig

SETTINGS = ("architecture", "training")  # model.json's settings of a neural model


# --------------------------------------------------------------------------- tensors

def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    write_safetensors(path, flat, save_file)


def load_tensors(path: Path, expected_sha256: str | None,
                 header: dict | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` as torch tensors, after its checksum (unless
    ``expected_sha256`` is None) and header (``header``, when read already) checks."""
    from safetensors.torch import load_file

    if expected_sha256 is not None:
        check_checksum(path, expected_sha256)
    return read_safetensors(path, header=header, load_file=load_file, noun="tensor")


def check_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where) -> None:
    """Raise :class:`ModelFileError` unless ``tensors`` has exactly the module's names,
    shapes and dtypes (and finite values)."""
    expected = module.state_dict()
    check_names(set(expected), set(tensors), where)
    for name, tensor in tensors.items():
        check_like(tensor, expected[name], f"weight {name!r}", where)


def check_names(expected: set, found: set, where) -> None:
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        raise ModelFileError(f"{where}: the weights do not fit the architecture in the config "
                             f"(missing {missing[:5]}, unexpected {extra[:5]})")


def check_like(tensor: torch.Tensor, reference: torch.Tensor, what: str, where) -> None:
    """``tensor`` must have the shape and dtype of ``reference`` and finite values."""
    if tuple(tensor.shape) != tuple(reference.shape):
        raise ModelFileError(f"{where}: {what} has shape {tuple(tensor.shape)}, "
                             f"the architecture needs {tuple(reference.shape)}")
    if tensor.dtype != reference.dtype:
        raise ModelFileError(f"{where}: {what} has dtype {tensor.dtype}, the architecture "
                             f"needs {reference.dtype}")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ModelFileError(f"{where}: {what} holds NaN or inf values")


def meta_state_dict(architecture: ArchitectureConfig, header: dict, where, prior=None,
                    modules=None, network=None) -> dict:
    """The (shape, dtype) of each tensor of the network ``architecture`` describes, built
    on the meta device (no memory), after checks that keep even that cheap: the network
    cannot have more layers than the file has tensors. Raises ModelFileError unless the
    file's header (``read_safetensors_header``) holds exactly those tensors. ``prior``:
    the caller's object for a model fitted with a custom prior; ``modules``:
    architecture -> the custom networks (keyword arguments of the network), if any;
    ``network``: the module class (default :class:`~elbokit.nn.model.VAENetwork`)."""
    n_tensors = len(header)
    if architecture.flow_steps > n_tensors and architecture.posterior == "iaf" or \
            len(architecture.hidden) > n_tensors or len(architecture.flow_hidden) > n_tensors:
        raise ModelFileError(f"{where}: the architecture has more layers than the weights file "
                             f"has tensors ({n_tensors})")
    from .hierarchical import build_network

    prior = None if prior is None else copy.deepcopy(prior)  # the network attaches to it
    with torch.device("meta"):
        if network is None:
            expected = build_network(architecture, prior,
                                     **(modules(architecture) if modules else {}))
        else:
            expected = network(architecture)
        expected = expected.state_dict()
    custom = [f"{p}_class {getattr(architecture, p + '_module')['class']}"
              for p in ("encoder", "decoder") if getattr(architecture, p) == "custom"]
    if custom:
        where = f"{where} (with {' and '.join(custom)})"
    check_names(set(expected), set(header), where)
    for name, (dtype, shape) in header.items():
        need = expected[name]
        if tuple(shape) != tuple(need.shape):
            raise ModelFileError(f"{where}: weight {name!r} has shape {tuple(shape)}, "
                                 f"the architecture needs {tuple(need.shape)}")
        if NUMPY_DTYPES.get(dtype) != str(need.dtype).removeprefix("torch."):
            raise ModelFileError(f"{where}: weight {name!r} has dtype {dtype}, the "
                                 f"architecture needs {need.dtype}")
    return expected


# --------------------------------------------------------------------------- history

def check_history(history, where, epochs: int | None = None) -> list[dict]:
    """A list of one object per epoch (``epoch`` 1, 2, ...; numbers or null); ``epochs``:
    the length it must have (a checkpoint's epoch)."""
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ModelFileError(f"{where}: 'history' must be a list of objects")
    if epochs is not None and len(history) != epochs:
        raise ModelFileError(f"{where}: 'history' has {len(history)} entries for {epochs} "
                             "epochs")
    for number, entry in enumerate(history, 1):
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
                raise ModelFileError(f"{where}: history field {key!r} must be a number; "
                                     f"got {str(value)[:40]!r}")
        if "epoch" in entry and entry["epoch"] != number:
            raise ModelFileError(f"{where}: history entry {number} has epoch "
                                 f"{entry['epoch']!r}")
        if epochs is not None:  # a checkpoint's: the clock of max_minutes resumes from it
            _check_seconds(entry, "seconds", number, where)
            if "wall_seconds" in entry:  # not in a checkpoint written before it was kept
                _check_seconds(entry, "wall_seconds", number, where)
    return history


def _check_seconds(entry: dict, key: str, number: int, where) -> None:
    seconds = entry.get(key)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ModelFileError(f"{where}: history entry {number} must have {key!r}, a finite "
                             f"number >= 0; got {seconds!r}")


# --------------------------------------------------------------------------- model directory

def save_model(directory, *, kind: str, cls_name: str, model, training: TrainingConfig,
               history: list[dict], fitted: dict, tensors: dict | None = None,
               extra: dict | None = None) -> Path:
    """Write a neural model with :func:`elbokit.persistence.model_file.write`: the
    network's state dict (and ``tensors``), its two configs as ``settings``."""
    settings = {"architecture": model.config.to_dict(), "training": training.to_dict()}
    weights = {**model.state_dict(), **(tensors or {})}
    return model_file.write(directory, kind=kind, cls_name=cls_name, settings=settings,
                            fitted=fitted, history=history, tensors=weights, extra=extra)


def read_model(directory, *, kind: str, meta: dict | None = None, prior=None, modules=None,
               network=None, extra=None):
    """Read and check a saved neural model (``meta``: its model.json, if read already;
    ``prior``: a Prior object, for a model fitted with a custom prior, and only then;
    ``modules``: architecture -> the custom networks; ``network``: the module class,
    default the VAE's; ``extra``: architecture -> {name: (shape, dtype)} of the tensors
    that are not the network's).

    The common fields are :func:`~elbokit.persistence.model_file.read`'s; then the two
    configs (every field), ``fitted`` against the architecture, and the architecture
    against the weights file's header, before a tensor is loaded or a layer built.
    Returns (record, architecture, training, tensors)."""
    record = model_file.read(directory, kind=kind, meta=meta)
    path = record.path
    check_keys(record.settings, SETTINGS, f"{path}: field 'settings'")
    architecture = ArchitectureConfig.from_dict(record.settings.get("architecture"),
                                                f"{path}: settings.architecture")
    training = TrainingConfig.from_dict(record.settings.get("training"),
                                        f"{path}: settings.training")
    names = record.fitted.get(model_file.FEATURE_NAMES)
    if record.fitted.get("n_features_in_") != architecture.n_features or (
            names is not None and tuple(names) != architecture.feature_names):
        raise ModelFileError(f"{path}: field 'fitted' does not match the architecture's "
                             f"{architecture.n_features} features")
    _check_prior_argument(architecture, prior, Path(directory))
    check_history(record.history, path)
    header = dict(record.header)
    for name, (shape, dtype) in (extra(architecture) if extra else {}).items():
        found = header.pop(name, None)
        if found is None or tuple(found[1]) != shape or NUMPY_DTYPES.get(found[0]) != dtype:
            raise ModelFileError(f"{record.weights}: tensor {name!r} must be {dtype} {shape}; "
                                 f"got {found}")
    meta_state_dict(architecture, header, record.weights, prior, modules, network)
    return record, architecture, training, record.load_tensors(torch=True)


def _check_prior_argument(architecture: ArchitectureConfig, prior, directory) -> None:
    """A custom prior needs the caller's object, and only a custom prior takes one."""
    from .priors import Prior

    if architecture.prior == "custom" and prior is None:
        raise ParameterError(f"{directory} was fitted with a custom prior: pass "
                             "VAE.load(directory, prior=MyPrior(...)), built like the one "
                             "it was fitted with")
    if architecture.prior != "custom" and prior is not None:
        raise ParameterError(f"{directory} has the {architecture.prior!r} prior; prior= "
                             "applies to models fitted with a custom Prior object only")
    if prior is not None and not isinstance(prior, Prior):
        raise ParameterError(f"prior must be a Prior object; got {prior!r}")
