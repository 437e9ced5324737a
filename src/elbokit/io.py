"""Saving and loading models: arrays in safetensors, everything else in JSON.

Never pickle: a model directory holds ``model.json`` (format version, kind,
hyper-parameters, scalar fitted attributes, the SHA-256 of each array file) and
``arrays.safetensors``. Every file is written to a temporary name in the same
directory, flushed to disk, and renamed over the old one, so a crash leaves either
the old file or the new one, never half of one. ``model.json`` is written last:
it is the commit record, and its checksums catch an array file from another save.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .exceptions import ModelFileError

FORMAT_VERSION = 1


def _default_mode() -> int:
    """Permissions a new file would get (0o666 less the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()
MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.safetensors"


# --------------------------------------------------------------------------- atomic writes

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Let ``writer(tmp_path)`` write a file, then rename it onto ``path`` atomically.

    For libraries that write to a path themselves (safetensors, matplotlib)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """Read a JSON object, with a clear :class:`ModelFileError` on a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} {path} does not exist")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{what} {path} is not valid JSON ({exc}); the file is "
                             "truncated or corrupted") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{what} {path} must hold a JSON object")
    return obj


def check_format_version(meta: dict, path: Path) -> None:
    """Refuse files written by a newer elbokit (or with no version at all)."""
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path} has no integer 'format_version'; it was not written "
                             "by elbokit or was tampered with")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}, newer than this elbokit "
                             f"reads ({FORMAT_VERSION}); upgrade elbokit to load it")


# --------------------------------------------------------------------------- safetensors

def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Save named numpy arrays as safetensors, atomically."""
    from safetensors.numpy import save_file

    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write_with(path, lambda tmp: save_file(contiguous, tmp))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load named numpy arrays from a safetensors file (no code execution possible)."""
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"array file {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"array file {path} cannot be read ({exc}); it is truncated "
                             "or corrupted") from None


# --------------------------------------------------------------------------- classical models

def _json_scalar(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def save_estimator(estimator, directory: str | os.PathLike, *, kind: str,
                   extra: dict | None = None) -> Path:
    """Save a fitted numpy estimator: its parameters and every fitted attribute
    (names ending in ``_``) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays, scalars = {}, {}
    for name, value in vars(estimator).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif isinstance(value, (int, float, str, bool, np.integer, np.floating)):
            scalars[name] = _json_scalar(value)
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            scalars[name] = [_json_scalar(v) for v in value]  # e.g. loglike_ traces
    params = {k: _json_scalar(v) for k, v in estimator.get_params(deep=False).items()}
    save_arrays(directory / ARRAYS_FILE, arrays)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "class": type(estimator).__name__,
        "params": params,
        "fitted_scalars": scalars,
        "arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype)}
                   for name, a in arrays.items()},
        "sha256": {ARRAYS_FILE: sha256_file(directory / ARRAYS_FILE)},
        "extra": extra or {},
    }
    atomic_write_json(directory / MODEL_FILE, meta)
    return directory


def load_estimator(directory: str | os.PathLike, registry: dict[str, type]):
    """Load an estimator saved by :func:`save_estimator`; ``registry`` maps kind -> class."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"model directory {directory} does not exist")
    meta = read_json(directory / MODEL_FILE, "model file")
    check_format_version(meta, directory / MODEL_FILE)
    kind = meta.get("kind")
    if kind not in registry:
        raise ModelFileError(f"{directory / MODEL_FILE} names an unknown model kind {kind!r}; "
                             f"known kinds: {sorted(registry)}")
    for key, typ in (("params", dict), ("fitted_scalars", dict), ("arrays", dict),
                     ("sha256", dict)):
        if not isinstance(meta.get(key), typ):
            raise ModelFileError(f"{directory / MODEL_FILE}: field {key!r} is missing or "
                                 "of the wrong type")
    array_path = directory / ARRAYS_FILE
    if not array_path.is_file():
        raise ModelFileError(f"array file {array_path} does not exist")
    if sha256_file(array_path) != meta["sha256"].get(ARRAYS_FILE):
        raise ModelFileError(f"{array_path} does not match the checksum in {MODEL_FILE}; "
                             "the files come from different saves or were modified")
    arrays = load_arrays(array_path)
    cls = registry[kind]
    try:
        estimator = cls(**meta["params"])
    except TypeError as exc:
        raise ModelFileError(f"{directory / MODEL_FILE}: bad parameters for {cls.__name__} "
                             f"({exc})") from None
    expected = meta["arrays"]
    if set(expected) != set(arrays):
        raise ModelFileError(f"{array_path} holds arrays {sorted(arrays)}, but {MODEL_FILE} "
                             f"lists {sorted(expected)}")
    for name, array in arrays.items():
        if list(array.shape) != list(expected[name].get("shape", [])):
            raise ModelFileError(f"array {name!r} in {array_path} has shape {array.shape}, "
                                 f"expected {tuple(expected[name].get('shape', []))}")
        setattr(estimator, name, array)
    for name, value in meta["fitted_scalars"].items():
        if not (isinstance(name, str) and name.endswith("_")):
            raise ModelFileError(f"{directory / MODEL_FILE}: bad fitted attribute {name!r}")
        setattr(estimator, name, value)
    if hasattr(estimator, "_check_loaded"):
        estimator._check_loaded()
    return estimator
