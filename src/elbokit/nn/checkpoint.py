"""Saving and loading VAE weights, optimiser state and checkpoints: safetensors for
tensors, JSON for everything else, never pickle.

A saved model directory holds ``weights.safetensors`` and ``model.json``
(format version, ``"kind": "vae"``, both configs, the history, the shape and the
SHA-256 of the weights). A run directory's checkpoint is ``checkpoint.json`` plus
``checkpoint-eNNNN.safetensors`` (weights, Adam's moments, the random generator's
state). The tensor file of each epoch has its own name and ``checkpoint.json``,
written last and atomically, names it: a crash at any point leaves the previous
complete checkpoint in place.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import torch

from ..exceptions import ModelFileError, TrainingError
from ..io import (FORMAT_VERSION, atomic_write_json, atomic_write_with, check_format_version,
                  read_json, sha256_file)
from .config import ArchitectureConfig, TrainingConfig

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
CHECKPOINT_FILE = "checkpoint.json"
KIND = "vae"


# --------------------------------------------------------------------------- tensors

def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_with(path, lambda tmp: save_file(flat, tmp))


def load_tensors(path: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelFileError(f"tensor file {path} does not exist")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ModelFileError(f"{path} does not match the checksum recorded next to it; the "
                             "files come from different saves or were modified")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"tensor file {path} cannot be read ({exc}); it is truncated "
                             "or corrupted") from None


def check_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where) -> None:
    """Raise :class:`ModelFileError` unless ``tensors`` has exactly the module's names
    and shapes (and finite values)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{where}: the weights do not fit the architecture in the config "
                             f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelFileError(f"{where}: weight {name!r} has shape {tuple(tensor.shape)}, "
                                 f"the architecture needs {tuple(expected[name].shape)}")
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"{where}: weight {name!r} holds NaN or inf values")


def _prefixed(prefix: str, tensors: dict) -> dict:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def _strip(prefix: str, tensors: dict) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- history

def check_history(history, where) -> list[dict]:
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ModelFileError(f"{where}: 'history' must be a list of objects")
    for entry in history:
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
                raise ModelFileError(f"{where}: history field {key!r} must be a number; "
                                     f"got {value!r}")
    return history


def json_number(value: float) -> float | None:
    """JSON has no NaN/inf: store them as null."""
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------- model directory

def save_model(directory, model, architecture: ArchitectureConfig, training: TrainingConfig,
               history: list[dict]) -> Path:
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
        "tensors": {k: list(v.shape) for k, v in model.state_dict().items()},
        "sha256": {WEIGHTS_FILE: sha256_file(directory / WEIGHTS_FILE)},
    }
    atomic_write_json(directory / MODEL_FILE, meta)  # last: the commit record
    return directory


def read_model(directory):
    """Read and check a saved model directory.

    Returns (architecture, training, history, tensors)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"model directory {directory} does not exist")
    path = directory / MODEL_FILE
    meta = read_json(path, "model file")
    check_format_version(meta, path)
    if meta.get("kind") != KIND:
        raise ModelFileError(f"{path} holds a model of kind {meta.get('kind')!r}, not a VAE; "
                             "load it with elbokit's loader for that kind")
    architecture = ArchitectureConfig.from_dict(meta.get("architecture"), f"{path}: architecture")
    training = TrainingConfig.from_dict(meta.get("training"), f"{path}: training")
    history = check_history(meta.get("history", []), path)
    sha = meta.get("sha256")
    if not isinstance(sha, dict) or not isinstance(sha.get(WEIGHTS_FILE), str):
        raise ModelFileError(f"{path}: field 'sha256' is missing or of the wrong type")
    tensors = load_tensors(directory / WEIGHTS_FILE, sha[WEIGHTS_FILE])
    return architecture, training, history, tensors


# --------------------------------------------------------------------------- checkpoints

def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimiser's state into tensors (for safetensors) and JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer, tensors: dict, meta: dict, where) -> None:
    try:
        state: dict = {}
        for name, value in list(tensors.items()) + list(meta["scalars"].items()):
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: the optimiser state cannot be restored ({exc})") from None


def save_checkpoint(run_dir, *, model, optimizer, generator: torch.Generator,
                    architecture: ArchitectureConfig, training: TrainingConfig, epoch: int,
                    history: list[dict], loop_state: dict,
                    best_weights: dict | None = None) -> Path:
    """Write the checkpoint of ``epoch`` to ``run_dir`` and delete older tensor files."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    optim_tensors, optim_meta = optimizer_tensors(optimizer)
    tensors = {**_prefixed("model.", model.state_dict()), **_prefixed("optim.", optim_tensors),
               "rng.generator": generator.get_state()}
    if best_weights is not None:
        tensors.update(_prefixed("best.", best_weights))
    name = f"checkpoint-e{epoch:04d}.safetensors"
    save_tensors(run_dir / name, tensors)
    meta = {
        "format_version": FORMAT_VERSION, "kind": "vae-checkpoint", "epoch": epoch,
        "architecture": architecture.to_dict(), "training": training.to_dict(),
        "history": history, "optimizer": optim_meta, "loop_state": loop_state,
        "tensor_file": name, "sha256": sha256_file(run_dir / name),
    }
    atomic_write_json(run_dir / CHECKPOINT_FILE, meta)
    for old in run_dir.glob("checkpoint-e*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return run_dir / CHECKPOINT_FILE


def checkpoint_bytes(model: torch.nn.Module, *, with_best: bool = False) -> int:
    """About the size of one checkpoint file: the weights, Adam's two moments (and the
    best weights for early stopping)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return weights * (4 if with_best else 3) + (1 << 16)  # + headers, generator state


def check_writable(run_dir, checkpoint_size: int) -> None:
    """Raise :class:`TrainingError` before training if ``run_dir`` cannot be created or
    written, or its disk has less free space than two checkpoints (a new one is
    written before the old one is deleted) and the saved model need. Removes the
    temporary files a killed run may have left."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"elbokit")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"cannot write checkpoints to {run_dir} "
                            f"({exc.strerror or exc}); choose another output directory") from None
    for partial in run_dir.glob(".checkpoint*"):  # temporary files of a killed run
        partial.unlink(missing_ok=True)
    free = shutil.disk_usage(run_dir).free
    needed = 3 * checkpoint_size
    if free < needed:
        raise TrainingError(f"{run_dir} has {free / 2**20:.1f} MiB free; training needs about "
                            f"{needed / 2**20:.1f} MiB (two checkpoints of "
                            f"{checkpoint_size / 2**20:.1f} MiB and the saved model); free "
                            "space or choose another output directory")


def checkpoint_epoch(run_dir) -> int | None:
    """The epoch of the checkpoint in ``run_dir`` (from its JSON record alone), or None."""
    try:
        epoch = read_json(Path(run_dir) / CHECKPOINT_FILE).get("epoch")
    except ModelFileError:
        return None
    return epoch if isinstance(epoch, int) else None


def has_checkpoint(run_dir) -> bool:
    return run_dir is not None and (Path(run_dir) / CHECKPOINT_FILE).is_file()


def load_checkpoint(run_dir) -> dict:
    """Read a checkpoint: returns a dict with the configs, epoch, history, loop state,
    optimiser JSON, and tensors split into ``model``, ``optim``, ``best`` and ``rng``."""
    path = Path(run_dir) / CHECKPOINT_FILE
    meta = read_json(path, "checkpoint file")
    check_format_version(meta, path)
    if meta.get("kind") != "vae-checkpoint":
        raise ModelFileError(f"{path} is not a VAE checkpoint (kind {meta.get('kind')!r})")
    epoch, name = meta.get("epoch"), meta.get("tensor_file")
    if not isinstance(epoch, int) or not isinstance(name, str) or os.sep in name:
        raise ModelFileError(f"{path}: fields 'epoch' and 'tensor_file' are missing or bad")
    for key in ("optimizer", "loop_state"):
        if not isinstance(meta.get(key), dict):
            raise ModelFileError(f"{path}: field {key!r} is missing or not an object")
    tensors = load_tensors(Path(run_dir) / name, meta.get("sha256"))
    return {
        "epoch": epoch,
        "architecture": ArchitectureConfig.from_dict(meta.get("architecture"),
                                                     f"{path}: architecture"),
        "training": TrainingConfig.from_dict(meta.get("training"), f"{path}: training"),
        "history": check_history(meta.get("history"), path),
        "optimizer": meta["optimizer"],
        "loop_state": meta["loop_state"],
        "model": _strip("model.", tensors),
        "optim": _strip("optim.", tensors),
        "best": _strip("best.", tensors) or None,
        "rng": tensors.get("rng.generator"),
        "path": path,
    }
