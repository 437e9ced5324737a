"""Saving and loading VAE weights: safetensors for tensors, JSON for everything else,
never pickle.

A saved model directory holds ``weights.safetensors`` and ``model.json``
(format version, ``"kind": "vae"``, both configs, the history, the shape and the
SHA-256 of the weights). The training checkpoints of a run directory are
:mod:`elbokit.nn.train.checkpoint`'s, which checks their tensors with the functions
here.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from ..exceptions import ModelFileError, ParameterError
from ..persistence import (DESCRIPTION_KEY, FORMAT_VERSION, MODEL_FILE, NUMPY_DTYPES,
                           WEIGHTS_FILE, atomic_write_json, check_checksum, check_description,
                           check_type, description_digest, read_model_file, read_safetensors,
                           read_safetensors_header, sha256_file, write_safetensors)
from .config import ArchitectureConfig, TrainingConfig

KIND = "vae"
_MODEL_DESCRIBED = ("architecture", "tensors")  # the JSON that says what the weights are


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
    _check_names(set(expected), set(tensors), where)
    for name, tensor in tensors.items():
        _check_like(tensor, expected[name], f"weight {name!r}", where)


def _check_names(expected: set, found: set, where) -> None:
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        raise ModelFileError(f"{where}: the weights do not fit the architecture in the config "
                             f"(missing {missing[:5]}, unexpected {extra[:5]})")


def _check_like(tensor: torch.Tensor, reference: torch.Tensor, what: str, where) -> None:
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
                    modules=None) -> dict:
    """The (shape, dtype) of each tensor of the network ``architecture`` describes, built
    on the meta device (no memory), after checks that keep even that cheap: the network
    cannot have more layers than the file has tensors. Raises ModelFileError unless the
    file's header (``read_safetensors_header``) holds exactly those tensors. ``prior``:
    the caller's object for a model fitted with a custom prior; ``modules``:
    architecture -> the custom networks (keyword arguments of the network), if any."""
    n_tensors = len(header)
    if architecture.flow_steps > n_tensors and architecture.posterior == "iaf" or \
            len(architecture.hidden) > n_tensors or len(architecture.flow_hidden) > n_tensors:
        raise ModelFileError(f"{where}: the architecture has more layers than the weights file "
                             f"has tensors ({n_tensors})")
    from .model import VAENetwork

    prior = None if prior is None else copy.deepcopy(prior)  # the network attaches to it
    with torch.device("meta"):
        expected = VAENetwork(architecture, prior, **(modules(architecture) if modules else {}))
        expected = expected.state_dict()
    custom = [f"{p}_class {getattr(architecture, p + '_module')['class']}"
              for p in ("encoder", "decoder") if getattr(architecture, p) == "custom"]
    if custom:
        where = f"{where} (with {' and '.join(custom)})"
    _check_names(set(expected), set(header), where)
    for name, (dtype, shape) in header.items():
        need = expected[name]
        if tuple(shape) != tuple(need.shape):
            raise ModelFileError(f"{where}: weight {name!r} has shape {tuple(shape)}, "
                                 f"the architecture needs {tuple(need.shape)}")
        if NUMPY_DTYPES.get(dtype) != str(need.dtype).removeprefix("torch."):
            raise ModelFileError(f"{where}: weight {name!r} has dtype {dtype}, the "
                                 f"architecture needs {need.dtype}")
    return expected


def _check_tensors_field(recorded, header: dict, where) -> None:
    """model.json's ``tensors`` (name -> shape, or -> {shape, dtype}) against the header."""
    check_type(recorded, dict, "tensors", where)
    if set(recorded) != set(header):
        raise ModelFileError(f"{where}: field 'tensors' lists other tensors than the weights "
                             "file holds")
    for name, (dtype, shape) in header.items():
        entry = recorded[name]
        spec = entry if isinstance(entry, dict) else {"shape": entry}
        if spec.get("shape") != list(shape) or spec.get("dtype", dtype) != dtype:
            raise ModelFileError(f"{where}: field 'tensors' records {name!r} as "
                                 f"{str(entry)[:60]}, the weights file holds {dtype} {shape}")


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

def save_model(directory, model, architecture: ArchitectureConfig, training: TrainingConfig,
               history: list[dict], extra: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(directory / WEIGHTS_FILE, model.state_dict())
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "class": "VAE",
        "architecture": architecture.to_dict(),
        "training": training.to_dict(),
        "history": history,
        "tensors": {k: {"shape": list(v.shape), "dtype": _safetensors_dtype(v)}
                    for k, v in model.state_dict().items()},
        "sha256": {WEIGHTS_FILE: sha256_file(directory / WEIGHTS_FILE)},
        "extra": extra or {},
    }
    meta["sha256"][DESCRIPTION_KEY] = description_digest(meta, _MODEL_DESCRIBED)
    atomic_write_json(directory / MODEL_FILE, meta)  # last: the commit record
    return directory


def _safetensors_dtype(tensor: torch.Tensor) -> str:
    name = str(tensor.dtype).removeprefix("torch.")
    return next(k for k, v in NUMPY_DTYPES.items() if v == name)


def read_model(directory, meta: dict | None = None, prior=None, modules=None):
    """Read and check a saved model directory (``meta``: its model.json, if read already;
    ``prior``: a Prior object, for a model fitted with a custom prior, and only then;
    ``modules``: architecture -> the custom networks, for custom encoders/decoders).

    Every field is checked, and the architecture against the weights file's header
    (read alone, no tensor data), before a tensor is loaded or a layer built.
    Returns (architecture, training, history, tensors)."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if meta is None:
        meta = read_model_file(directory)
    if meta.get("kind") != KIND:
        raise ModelFileError(f"{path} holds a model of kind {str(meta.get('kind'))[:40]!r}, "
                             "not a VAE; load it with elbokit's loader for that kind")
    architecture = ArchitectureConfig.from_dict(meta.get("architecture"), f"{path}: architecture")
    training = TrainingConfig.from_dict(meta.get("training"), f"{path}: training")
    _check_prior_argument(architecture, prior, directory)
    history = check_history(meta.get("history", []), path)
    sha = meta.get("sha256")
    if not isinstance(sha, dict) or not isinstance(sha.get(WEIGHTS_FILE), str):
        raise ModelFileError(f"{path}: field 'sha256' is missing or of the wrong type")
    if meta.get("extra") is not None:
        check_type(meta["extra"], dict, "extra", path)
    weights = directory / WEIGHTS_FILE
    check_checksum(weights, sha[WEIGHTS_FILE])
    header = read_safetensors_header(weights)
    if "tensors" in meta:
        _check_tensors_field(meta["tensors"], header, path)
    meta_state_dict(architecture, header, weights, prior, modules)
    check_description(meta, _MODEL_DESCRIBED, path)
    tensors = load_tensors(weights, None, header)  # header and checksum checked above
    return architecture, training, history, tensors


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
