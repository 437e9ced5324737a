"""The one ``model.json`` schema, for every kind of model.

A saved model is a directory with two files: ``weights.safetensors`` (every tensor,
by name) and ``model.json``, written last (the commit record)::

    {"format_version": 2, "kind": "fa", "class": "FactorAnalysis",
     "settings": {...},    # what the model is built from (classical: get_params();
                           #  nn: e.g. {"architecture": ..., "training": ...})
     "fitted": {...},      # fitted scalars and small lists, n_features_in_ and
                           #  feature_names_in_ among them
     "history": [...],     # the training or EM trace, one object per step ([] if none)
     "tensors": {name: {"shape": [...], "dtype": "float64"}},
     "sha256": {"weights.safetensors": hex, "description": hex},
     "extra": {...}}       # the caller's JSON (e.g. the data's names)

:func:`write` writes it; :func:`read` checks every common field, the checksum of the
tensor file, its header against ``tensors`` and the digest of the describing fields
before a tensor is read, and returns a :class:`ModelRecord` whose
:meth:`~ModelRecord.load_tensors` reads the tensors (finite values checked). What a
kind's settings and fitted values must be is checked by the kind's loader, before it
builds anything from them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import ModelFileError
from .checks import check_int, check_keys, check_str_list, check_type, is_shape, short
from .files import (DESCRIPTION_KEY, FORMAT_VERSION, HEX_DIGEST, MODEL_FILE, WEIGHTS_FILE,
                    atomic_write_json, check_checksum, check_description,
                    check_format_version, description_digest, read_json, sha256_file)
from .tensors import (NUMPY_DTYPES, check_header, dtype_name, read_safetensors,
                      read_safetensors_header, write_safetensors)

KEYS = ("format_version", "kind", "class", "settings", "fitted", "history", "tensors",
        "sha256", "extra")
#: the fields whose digest is ``sha256["description"]``: an edit of one is a mismatch
DESCRIBED = ("kind", "class", "settings", "fitted", "history", "tensors")
FEATURE_NAMES = "feature_names_in_"
MAX_HISTORY = 10**7
MAX_FEATURES = 2**40


@dataclass(frozen=True)
class ModelRecord:
    """A model directory whose common fields, tensor header and checksums are checked.

    ``meta``: model.json as read; ``settings``, ``fitted``, ``history``: its fields;
    ``header``: name -> (safetensors dtype, shape) of the tensor file, equal to
    ``meta["tensors"]``; ``path``: model.json; ``weights``: the tensor file."""

    meta: dict
    settings: dict
    fitted: dict
    history: list
    header: dict
    path: Path
    weights: Path

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def cls_name(self) -> str:
        return self.meta["class"]

    @property
    def extra(self) -> dict:
        return self.meta["extra"]

    def load_tensors(self, *, torch: bool = False) -> dict:
        """The tensors, as numpy arrays (``torch=True``: torch tensors), after the
        memory check; a tensor with a NaN or infinite value is refused."""
        load_file = None
        if torch:
            from safetensors.torch import load_file
        tensors = read_safetensors(self.weights, header=self.header, load_file=load_file,
                                   noun="tensor")
        for name, tensor in tensors.items():
            if _has_non_finite(tensor):
                raise ModelFileError(f"tensor {name!r} in {self.weights} holds NaN or inf "
                                     "values")
        return tensors


def _has_non_finite(tensor) -> bool:
    if isinstance(tensor, np.ndarray):
        return tensor.dtype.kind == "f" and not np.isfinite(tensor).all()
    return bool(tensor.is_floating_point() and not tensor.isfinite().all())


# --------------------------------------------------------------------------- writing

def write(directory: str | os.PathLike, *, kind: str, cls_name: str, settings: dict,
          fitted: dict, history: list | None = None, tensors: dict,
          extra: dict | None = None) -> Path:
    """Save a model to ``directory``: ``tensors`` (numpy arrays or torch tensors, by
    name) to ``weights.safetensors``, then model.json (atomic writes; model.json last).
    ``settings``, ``fitted``, ``history`` and ``extra`` must be JSON (numpy scalars and
    tuples are converted; NaN and infinity are written as null). Returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    _write_tensors(weights, tensors)
    meta = {
        "format_version": FORMAT_VERSION, "kind": kind, "class": cls_name,
        "settings": plain(settings), "fitted": plain(fitted),
        "history": plain(history or []),
        "tensors": {name: {"shape": list(t.shape), "dtype": dtype_name(t)}
                    for name, t in tensors.items()},
        "sha256": {WEIGHTS_FILE: sha256_file(weights)},
        "extra": plain(extra or {}),
    }
    meta["sha256"][DESCRIPTION_KEY] = description_digest(meta, DESCRIBED)
    atomic_write_json(directory / MODEL_FILE, meta)  # last: the commit record
    return directory


def _write_tensors(path: Path, tensors: dict) -> None:
    if all(isinstance(t, np.ndarray) for t in tensors.values()):
        write_safetensors(path, {k: np.ascontiguousarray(t) for k, t in tensors.items()})
        return
    import torch
    from safetensors.torch import save_file

    flat = {k: torch.as_tensor(t).detach().to("cpu").contiguous() for k, t in tensors.items()}
    write_safetensors(path, flat, save_file)


def plain(value):
    """``value`` as plain JSON types: numpy scalars as numbers, tuples and arrays as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# --------------------------------------------------------------------------- reading

def read_meta(directory: str | os.PathLike) -> dict:
    """``model.json`` of a model directory, read once and version-checked: what a
    dispatcher reads to find the kind, then passes to :func:`read` as ``meta``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"model directory {directory} does not exist")
    meta = read_json(directory / MODEL_FILE, "model file")
    check_format_version(meta, directory / MODEL_FILE)
    return meta


def read(directory: str | os.PathLike, *, kind: str | None = None,
         meta: dict | None = None) -> ModelRecord:
    """Read and check a model directory (``meta``: its model.json when read already;
    ``kind``: the kind it must hold). Checked before any tensor is read: the format
    version, the schema's fields and their types, ``fitted``'s ``n_features_in_`` and
    ``feature_names_in_``, the history's entries, the tensor file's checksum, its header
    against ``tensors`` and the digest of the describing fields."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    meta = read_meta(directory) if meta is None else meta
    check_format_version(meta, path)
    _check_fields(meta, path, kind)
    weights = directory / WEIGHTS_FILE
    check_checksum(weights, meta["sha256"][WEIGHTS_FILE], recorded_in=f"in {MODEL_FILE}")
    header = read_safetensors_header(weights)
    check_header(header, meta["tensors"], weights)
    check_description(meta, DESCRIBED, path)
    return ModelRecord(meta, meta["settings"], meta["fitted"], meta["history"], header, path,
                       weights)


def _check_fields(meta: dict, path: Path, kind: str | None) -> None:
    check_keys(meta, KEYS, path)
    for key, types in (("kind", str), ("class", str), ("settings", dict), ("fitted", dict),
                       ("history", list), ("tensors", dict), ("sha256", dict),
                       ("extra", dict)):
        check_type(meta.get(key), types, key, path)
    if kind is not None and meta["kind"] != kind:
        raise ModelFileError(f"{path} holds a model of kind {short(meta['kind'])}, not "
                             f"{kind!r}; load it with elbokit.load_model")
    _check_sha256(meta["sha256"], path)
    _check_tensor_specs(meta["tensors"], path)
    check_history(meta["history"], path)
    fitted = meta["fitted"]
    n_features = check_int(fitted.get("n_features_in_"), "fitted.n_features_in_", path, 1,
                           MAX_FEATURES)
    check_str_list(fitted.get(FEATURE_NAMES), f"fitted.{FEATURE_NAMES}", path, n_features)


def _check_sha256(sha: dict, path: Path) -> None:
    check_keys(sha, (WEIGHTS_FILE, DESCRIPTION_KEY), f"{path}: field 'sha256'")
    for name in (WEIGHTS_FILE, DESCRIPTION_KEY):
        if not (isinstance(sha.get(name), str) and HEX_DIGEST.fullmatch(sha[name])):
            raise ModelFileError(f"{path}: field 'sha256' must hold the hex SHA-256 of "
                                 f"{name!r}; got {short(sha.get(name))}")


_DTYPE_NAMES = frozenset(NUMPY_DTYPES.values())


def _check_tensor_specs(tensors: dict, path: Path) -> None:
    for name, spec in tensors.items():
        if not (isinstance(spec, dict) and set(spec) == {"shape", "dtype"}
                and spec["dtype"] in _DTYPE_NAMES and is_shape(spec["shape"])):
            raise ModelFileError(f"{path}: tensor {short(name)} needs a numeric 'dtype' and "
                                 f"a 'shape' of non-negative integers; got {short(spec)}")


def check_history(history: list, path) -> None:
    """A training or EM trace: a list of one object per step, of numbers (null where
    one was not finite). A kind's loader adds its own rules (epoch numbers, ...)."""
    if not isinstance(history, list) or len(history) > MAX_HISTORY or \
            not all(isinstance(h, dict) for h in history):
        raise ModelFileError(f"{path}: field 'history' must be a list of objects")
    for entry in history:
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, type(None))) \
                    or isinstance(value, float) and not math.isfinite(value):
                raise ModelFileError(f"{path}: history field {short(key)} must be a number; "
                                     f"got {short(value)}")
