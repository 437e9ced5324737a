"""A run directory's training checkpoint: ``checkpoint.json`` plus
``checkpoint-eNNNN.safetensors`` (the weights, Adam's moments, the random generator's
state; the best weights of early stopping and the Polyak average when kept).
Safetensors for tensors, JSON for everything else, never pickle. The tensor file of
each epoch has its own name and ``checkpoint.json``, written last and atomically,
names it: a crash at any point leaves the previous complete checkpoint in place.
Everything read back is checked (types, ranges, shapes, checksums) before use.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import torch

from ...exceptions import ModelFileError, TrainingError
from ...persistence import (CHECKPOINT_FILE, CHECKPOINT_NAME, FORMAT_VERSION,
                            atomic_write_json, check_description, check_format_version,
                            check_int, check_number, check_type, description_digest, read_json,
                            sha256_file)
from ..saved import check_history, check_like, check_names, load_tensors, save_tensors
from ..config import ArchitectureConfig, TrainingConfig

_CHECKPOINT_DESCRIBED = ("architecture", "optimizer", "tensor_file", "epoch")


def _prefixed(prefix: str, tensors: dict) -> dict:
    return {f"{prefix}{k}": v for k, v in tensors.items()}


def _strip(prefix: str, tensors: dict) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


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


ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")
_ADAM_NUMBERS = {"lr": (0.0, math.inf), "eps": (0.0, 1.0), "weight_decay": (0.0, math.inf)}


def restore_optimizer(optimizer, tensors: dict, meta: dict, where) -> None:
    """Load a saved Adam state after checking every part of it against ``optimizer``:
    the parameter groups' structure and hyper-parameters (types, ranges), and each
    state tensor's shape, dtype and finiteness against its parameter (``step`` a
    finite non-negative scalar). A moment tensor of the wrong shape would make the
    fused Adam kernel read and write out of bounds."""
    check_type(meta, dict, "optimizer", where)
    check_type(meta.get("scalars", {}), dict, "optimizer.scalars", where)
    groups = _checked_groups(optimizer, meta.get("param_groups"), where)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict = {}
    for name, value in list(tensors.items()) + list(meta.get("scalars", {}).items()):
        index, _, key = name.partition(".")
        if not (index.isdigit() and int(index) < len(params)) or key not in ADAM_STATE:
            raise ModelFileError(f"{where}: unexpected optimiser state entry {name[:40]!r}")
        _check_state_value(key, value, params[int(index)], f"optimiser state {name!r}", where)
        state.setdefault(int(index), {})[key] = value
    for index, slots in state.items():
        if set(slots) != set(ADAM_STATE):
            raise ModelFileError(f"{where}: the optimiser state of parameter {index} has "
                                 f"{sorted(slots)}, Adam needs {list(ADAM_STATE)}")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelFileError(f"{where}: the optimiser state cannot be restored ({exc})") from None


def _checked_groups(optimizer, saved, where) -> list[dict]:
    """The saved parameter groups, checked against the optimiser's own: same number,
    same parameter indices; lr, betas, eps, weight_decay of the right types and ranges.
    Everything else (the flags that pick a kernel: fused, foreach, ...) is kept as the
    optimiser has it, whatever the file says."""
    current = optimizer.state_dict()["param_groups"]
    if not isinstance(saved, list) or len(saved) != len(current) or \
            not all(isinstance(g, dict) for g in saved):
        raise ModelFileError(f"{where}: the optimiser's parameter groups do not match the model")
    groups = []
    for mine, theirs in zip(current, saved):
        # keys of another torch version may differ: only the checked numbers are taken
        if theirs.get("params") != mine["params"]:
            raise ModelFileError(f"{where}: the optimiser's parameter groups do not match the "
                                 "model")
        group = dict(mine)
        for key, (low, high) in _ADAM_NUMBERS.items():
            if key in theirs:
                group[key] = check_number(theirs[key], f"optimizer.{key}", where, low, high)
                if key != "weight_decay" and group[key] <= 0:
                    raise ModelFileError(f"{where}: optimizer.{key} must be positive")
        betas = theirs.get("betas")
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                for b in betas)):
            raise ModelFileError(f"{where}: optimizer.betas must be two numbers in [0, 1)")
        group["betas"] = tuple(float(b) for b in betas)
        groups.append(group)
    return groups


def _check_state_value(key: str, value, param: torch.Tensor, what: str, where) -> None:
    if not torch.is_tensor(value):
        raise ModelFileError(f"{where}: {what} must be a tensor")
    if key == "step":
        if value.ndim != 0 or not value.is_floating_point() or \
                not (torch.isfinite(value) and value >= 0):
            raise ModelFileError(f"{where}: {what} must be a finite non-negative scalar; "
                                 f"got shape {tuple(value.shape)}, dtype {value.dtype}")
        return
    check_like(value, param.detach(), what, where)
    if key == "exp_avg_sq" and (value < 0).any():
        raise ModelFileError(f"{where}: {what} holds negative values")


def restore_generator(generator: torch.Generator, state, where) -> None:
    """Set a random generator's state after checking its size and dtype."""
    reference = generator.get_state()
    if state is None or state.dtype != torch.uint8 or tuple(state.shape) != \
            tuple(reference.shape):
        raise ModelFileError(f"{where}: the random generator state is missing or malformed")
    try:
        generator.set_state(state)
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{where}: the random generator state is malformed ({exc})") \
            from None


def save_checkpoint(run_dir, *, model, optimizer, generator: torch.Generator,
                    architecture: ArchitectureConfig, training: TrainingConfig, epoch: int,
                    history: list[dict], loop_state: dict,
                    best_weights: dict | None = None, ema_weights: dict | None = None) -> Path:
    """Write the checkpoint of ``epoch`` to ``run_dir`` and delete older tensor files
    (``best_weights``: early stopping's; ``ema_weights``: the Polyak average)."""
    run_dir = Path(run_dir)
    check_not_a_link(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    optim_tensors, optim_meta = optimizer_tensors(optimizer)
    tensors = {**_prefixed("model.", model.state_dict()), **_prefixed("optim.", optim_tensors),
               "rng.generator": generator.get_state()}
    if best_weights is not None:
        tensors.update(_prefixed("best.", best_weights))
    if ema_weights is not None:
        tensors.update(_prefixed("ema.", ema_weights))
    name = f"checkpoint-e{epoch:04d}.safetensors"
    save_tensors(run_dir / name, tensors)
    meta = {
        "format_version": FORMAT_VERSION, "kind": "vae-checkpoint", "epoch": epoch,
        "architecture": architecture.to_dict(), "training": training.to_dict(),
        "history": history, "optimizer": optim_meta, "loop_state": loop_state,
        "tensor_file": name, "sha256": sha256_file(run_dir / name),
    }
    meta["description_sha256"] = description_digest(meta, _CHECKPOINT_DESCRIBED)
    atomic_write_json(run_dir / CHECKPOINT_FILE, meta)
    for old in run_dir.glob("checkpoint-e*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return run_dir / CHECKPOINT_FILE


def checkpoint_bytes(model: torch.nn.Module, *, with_best: bool = False,
                     with_ema: bool = False) -> int:
    """About the size of one checkpoint file: the weights, Adam's two moments (and the
    best weights for early stopping, the averaged weights for EMA)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return weights * (3 + with_best + with_ema) + (1 << 16)  # + headers, generator state


def check_writable(run_dir, checkpoint_size: int) -> None:
    """Raise :class:`TrainingError` before training if ``run_dir`` cannot be created or
    written, or its disk has less free space than two checkpoints (a new one is
    written before the old one is deleted) and the saved model need. Removes the
    temporary files a killed run may have left. A checkpoint directory that is a
    symbolic link is refused (old checkpoints are deleted there: never through a link)."""
    run_dir = Path(run_dir)
    check_not_a_link(run_dir)
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


def check_not_a_link(run_dir: Path) -> None:
    """Refuse a checkpoint directory that is a symbolic link (one line naming its
    target): the old checkpoints of the directory are deleted as new ones are written."""
    if run_dir.is_symlink():
        raise TrainingError(f"the checkpoint directory {run_dir} is a symbolic link (to "
                            f"{os.readlink(run_dir)}); old checkpoints are deleted there, so "
                            "elbokit writes them only into a real directory")


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
    optimiser JSON, and tensors split into ``model``, ``optim``, ``best`` and ``rng``.

    Every field of checkpoint.json is checked (types, ranges), the tensor file's name
    and header before its data is read, and the best weights against the model's; the
    model and optimiser tensors are checked against the network by ``train``."""
    path = Path(run_dir) / CHECKPOINT_FILE
    meta = read_json(path, "checkpoint file")
    check_format_version(meta, path)
    if meta.get("kind") != "vae-checkpoint":
        raise ModelFileError(f"{path} is not a VAE checkpoint (kind "
                             f"{str(meta.get('kind'))[:40]!r})")
    epoch, name = meta.get("epoch"), meta.get("tensor_file")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0 or \
            not isinstance(name, str) or not CHECKPOINT_NAME.fullmatch(name):
        raise ModelFileError(f"{path}: fields 'epoch' and 'tensor_file' are missing or bad")
    for key in ("optimizer", "loop_state"):
        if not isinstance(meta.get(key), dict):
            raise ModelFileError(f"{path}: field {key!r} is missing or not an object")
    check_type(meta.get("sha256"), str, "sha256", path)
    architecture = ArchitectureConfig.from_dict(meta.get("architecture"),
                                                f"{path}: architecture")
    training = TrainingConfig.from_dict(meta.get("training"), f"{path}: training")
    check_int(epoch, "epoch", path, 0, training.epochs)
    history = check_history(meta.get("history"), path, epoch)
    loop_state = _checked_loop_state(meta["loop_state"], epoch, path)
    # absent in checkpoints of older versions
    check_description(meta, _CHECKPOINT_DESCRIBED, path, meta.get("description_sha256"))
    tensors = load_tensors(Path(run_dir) / name, meta["sha256"])
    model = _strip("model.", tensors)
    best, ema = _strip("best.", tensors) or None, _strip("ema.", tensors) or None
    for what, extra in (("best", best), ("averaged (EMA)", ema)):
        if extra is not None:
            check_names(set(model), set(extra), f"{path}: {what} weights")
            for key, tensor in extra.items():
                check_like(tensor, model[key], f"{what} weight {key!r}", path)
    return {
        "epoch": epoch, "architecture": architecture, "training": training,
        "history": history, "optimizer": meta["optimizer"], "loop_state": loop_state,
        "model": model, "optim": _strip("optim.", tensors), "best": best, "ema": ema,
        "rng": tensors.get("rng.generator"), "path": path,
    }


def _checked_loop_state(loop_state: dict, epoch: int, where) -> dict:
    for name, value in loop_state.items():  # fields of later versions: plain values only
        if isinstance(value, (dict, list)):
            raise ModelFileError(f"{where}: loop_state field {str(name)[:40]!r} must be a "
                                 "number, a string, true/false or null")
    if loop_state.get("best_elbo") is not None:
        check_number(loop_state["best_elbo"], "loop_state.best_elbo", where)
    check_int(loop_state.get("best_epoch", 0), "loop_state.best_epoch", where, 0, epoch)
    check_type(loop_state.get("stopped_early", False), bool, "loop_state.stopped_early", where)
    return loop_state
