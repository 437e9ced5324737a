"""Persistence: the one module that owns elbokit's file formats.

Everything that reaches the disk goes through here: the format version and the file
names (model directories, VAE checkpoints, run records), atomic writes, safetensors
reading and writing with header checks, SHA-256 checksums and description digests,
version checks, and the JSON schemas of the classical models' ``model.json`` and of a
run's ``run.json`` and ``metrics.json``. The VAE's torch-specific checks live in
:mod:`elbokit.nn.checkpoint`, which reads and writes through this module.

Never pickle: a classical model directory holds ``model.json`` (format version, kind,
hyper-parameters, scalar fitted attributes, the SHA-256 of each array file) and
``arrays.safetensors``. Every file is written to a temporary name in the same
directory, flushed to disk, and renamed over the old one, so a crash leaves either
the old file or the new one, never half of one. ``model.json`` is written last:
it is the commit record, and its checksums catch an array file from another save.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import tempfile
import threading
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
MODEL_FILE = "model.json"  # every saved model: the commit record, written last
ARRAYS_FILE = "arrays.safetensors"  # a classical model's arrays
WEIGHTS_FILE = "weights.safetensors"  # a VAE's weights
CHECKPOINT_FILE = "checkpoint.json"  # a VAE training checkpoint's record
CHECKPOINT_NAME = re.compile(r"checkpoint-e[0-9]{4,9}\.safetensors")  # its tensor file
RUN_FILE = "run.json"  # a run's resolved settings and key
METRICS_FILE = "metrics.json"  # a run's scores
DESCRIPTION_KEY = "description"  # sha256 entry of the JSON that describes the tensors
MAX_JSON_BYTES = 64 << 20  # no file elbokit writes is near this; a bigger one is not ours
MAX_HEADER_BYTES = 16 << 20  # a safetensors header (JSON): about 100 bytes per tensor
MAX_TENSORS = 100_000
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds

# Set by the CLI's SIGTERM handler. A KeyboardInterrupt raised by the handler can be
# swallowed (raised inside a garbage-collection callback, it is discarded), so every
# atomic write checks this flag before it commits: after a stop nothing new appears.
_STOP = threading.Event()


def request_stop() -> None:
    """Mark the process as stopping: later atomic writes raise KeyboardInterrupt."""
    _STOP.set()


def clear_stop() -> None:
    _STOP.clear()


def stop_requested() -> bool:
    return _STOP.is_set()


# --------------------------------------------------------------------------- atomic writes

def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically. JSON has no NaN or
    infinity (and :func:`read_json` refuses Python's ``NaN``): they are written as null."""
    text = json.dumps(_finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _finite_or_null(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    return obj


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
        if _STOP.is_set():  # a stop whose KeyboardInterrupt was swallowed: commit nothing
            raise KeyboardInterrupt("terminated")
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


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def _loads(text: str):
    """JSON with only finite numbers (no NaN, Infinity or 1e999)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """Read a JSON object, with a clear :class:`ModelFileError` on a missing, oversized
    or bad file. ``NaN``/``Infinity`` (not JSON, but Python writes them) are refused."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} {path} does not exist")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ModelFileError(f"{what} {path} is {size / 2**20:.0f} MiB, more than elbokit "
                             f"ever writes ({MAX_JSON_BYTES >> 20} MiB); it is not elbokit's")
    try:
        obj = _loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{what} {path} is not valid JSON ({reason}); the file is "
                             "truncated or corrupted") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{what} {path} must hold a JSON object")
    return obj


def description_digest(meta: dict, keys) -> str:
    """SHA-256 of the canonical JSON of ``meta``'s fields ``keys``: the part of a JSON
    file that describes tensors, so that an edit of it alone (a shape, an architecture
    size) is caught as a mismatch like an edit of the tensor file. It protects against
    accidents and mixed files, not against someone who recomputes it: the checks of
    every field and tensor do that."""
    described = _finite_or_null({k: meta.get(k) for k in keys})  # as the file holds it
    text = json.dumps(described, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


_IN_SHA256 = object()  # check_description's default: the digest is in meta["sha256"]


def check_description(meta: dict, keys, path, recorded=_IN_SHA256) -> None:
    """Compare the digest of ``keys`` with the one recorded: ``recorded``, or by default
    the ``description`` entry of ``meta["sha256"]`` (a model.json; a checkpoint.json
    passes its ``description_sha256``). Files written before it was recorded have none."""
    if recorded is _IN_SHA256:
        recorded = meta["sha256"].get(DESCRIPTION_KEY)
    if recorded is None:
        return
    if not isinstance(recorded, str) or recorded != description_digest(meta, keys):
        raise ModelFileError(f"{path}: the fields {sorted(keys)} do not match their checksum; "
                             "the file was edited by hand or comes from another save")


# --------------------------------------------------------------------------- schema checks

def check_type(value, types, name: str, where) -> None:
    """Raise ModelFileError unless ``value`` is one of ``types`` (a bool is not a number)."""
    types = _as_tuple(types)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ModelFileError(f"{where}: field {name!r} must be {_type_names(types)}; "
                             f"got {_short(value)}")


def check_int(value, name: str, where, low: int = 0, high: int = 2**62) -> int:
    check_type(value, int, name, where)
    if not low <= value <= high:
        raise ModelFileError(f"{where}: field {name!r} must lie in [{low}, {high}]; got {value}")
    return value


def check_number(value, name: str, where, low: float = -math.inf, high: float = math.inf,
                 *, positive: bool = False) -> float:
    check_type(value, (int, float), name, where)
    if not math.isfinite(value) or not low <= value <= high or (positive and value <= 0):
        bound = "a finite positive number" if positive else f"a finite number in [{low}, {high}]"
        raise ModelFileError(f"{where}: field {name!r} must be {bound}; got {value!r}")
    return float(value)


def check_str_list(value, name: str, where, length: int | None = None) -> list[str] | None:
    """None, or a list of strings (of ``length`` items when given)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelFileError(f"{where}: field {name!r} must be a list of strings or null")
    if length is not None and len(value) != length:
        raise ModelFileError(f"{where}: field {name!r} has {len(value)} names for {length} "
                             "features")
    return value


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- memory

def available_memory() -> int:
    """Bytes of memory available to this process: MemAvailable, or less under a cgroup
    or RLIMIT_AS limit; 2**62 where it cannot be read."""
    limits = [2**62]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, ValueError, OSError):
        pass
    return min(limits)


def check_memory(n_bytes: int | float, what: str, *, error=ModelFileError) -> None:
    """Raise ``error`` if ``what`` (``n_bytes``) would not fit in half the available
    memory: said before anything is allocated."""
    available = available_memory()
    if n_bytes > available / 2:
        raise error(f"{what} needs {n_bytes / 2**30:.3g} GiB; {available / 2**30:.3g} GiB of "
                    "memory is available")


def read_model_file(directory: str | os.PathLike) -> dict:
    """``model.json`` of a model directory, read once and version-checked: the dict a
    loader passes down to the loader of its kind (so no file is read twice)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"model directory {directory} does not exist")
    meta = read_json(directory / MODEL_FILE, "model file")
    check_format_version(meta, directory / MODEL_FILE)
    return meta


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

def write_safetensors(path: str | os.PathLike, tensors: dict,
                      save_file: Callable | None = None) -> None:
    """Write named tensors as a safetensors file, atomically. ``save_file``: the
    framework's writer (``safetensors.numpy``'s by default; :mod:`elbokit.nn.checkpoint`
    passes ``safetensors.torch``'s), called on a temporary path."""
    if save_file is None:
        from safetensors.numpy import save_file
    atomic_write_with(path, lambda tmp: save_file(tensors, tmp))


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Save named numpy arrays as safetensors, atomically."""
    write_safetensors(path, {k: np.ascontiguousarray(v) for k, v in arrays.items()})


def check_checksum(path: str | os.PathLike, expected, *, noun: str = "tensor",
                   recorded_in: str = "recorded next to it") -> None:
    """Raise :class:`ModelFileError` unless ``path`` exists and its SHA-256 is
    ``expected`` (a missing record, None, never matches). ``noun`` and ``recorded_in``
    word the message: "array file ... does not exist", "... the checksum in model.json"."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{noun} file {path} does not exist")
    if sha256_file(path) != expected:
        raise ModelFileError(f"{path} does not match the checksum {recorded_in}; the files "
                             "come from different saves or were modified")


SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2,
                      "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8,
                      "U64": 8, "F64": 8}
NUMPY_DTYPES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
                "F16": "float16", "I32": "int32", "U32": "uint32", "F32": "float32",
                "I64": "int64", "U64": "uint64", "F64": "float64"}


def read_safetensors_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor of a safetensors file, from its header
    alone (8 bytes of length, then JSON; no tensor data is read). The header is checked
    against the file: known dtypes, shapes of non-negative integers, byte ranges that
    tile the data exactly. Raises :class:`ModelFileError` on anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"tensor file {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelFileError(f"tensor file {path} is {size} bytes: truncated")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise ModelFileError(f"tensor file {path}: its header claims {n} bytes, the file "
                                 f"holds {size}; it is truncated or corrupted")
        raw = handle.read(n)
    try:
        header = _loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"tensor file {path}: the header is not valid JSON; the file is "
                             "corrupted") from None
    if not isinstance(header, dict) or len(header) > MAX_TENSORS:
        raise ModelFileError(f"tensor file {path}: the header is not a table of tensors")
    header.pop("__metadata__", None)
    tensors, spans = {}, []
    for name, entry in header.items():
        dtype, shape, offsets = _header_entry(entry, name, path)
        tensors[name] = (dtype, shape)
        spans.append((offsets[0], offsets[1], math.prod(shape) * SAFETENSORS_DTYPES[dtype]))
    position = 0
    for begin, end, n_bytes in sorted(spans):
        if begin != position or end - begin != n_bytes:
            raise ModelFileError(f"tensor file {path}: the header's byte ranges do not fit "
                                 "its shapes; the file is corrupted")
        position = end
    if position != size - 8 - n:
        raise ModelFileError(f"tensor file {path}: the header describes {position} bytes of "
                             f"data, the file holds {size - 8 - n}; it is truncated or corrupted")
    return tensors


def _header_entry(entry, name, path):
    ok = (isinstance(entry, dict) and entry.get("dtype") in SAFETENSORS_DTYPES
          and isinstance(entry.get("shape"), list) and len(entry["shape"]) <= 8
          and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**40
                  for s in entry["shape"])
          and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
          and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0
                  for o in entry["data_offsets"]))
    if not ok or not isinstance(name, str):
        raise ModelFileError(f"tensor file {path}: header entry {_short(name)} is malformed; "
                             "the file is corrupted")
    return entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]


def header_bytes(header: dict) -> int:
    """Bytes the tensors of a header take in memory."""
    return sum(math.prod(shape) * SAFETENSORS_DTYPES[dtype] for dtype, shape in header.values())


def read_safetensors(path: str | os.PathLike, *, header: dict | None = None,
                     load_file: Callable | None = None, noun: str = "array") -> dict:
    """The tensors of a safetensors file (no code execution possible): the header is
    checked first (``header``: :func:`read_safetensors_header`'s result when the caller
    has read it already, so it is read once), and the tensors' size against the
    available memory. ``load_file``: the framework's reader (``safetensors.numpy``'s by
    default, ``safetensors.torch``'s for the VAE)."""
    path = Path(path)
    if header is None:
        header = read_safetensors_header(path)
    check_memory(header_bytes(header), f"the {noun}s of {path}")
    if load_file is None:
        from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{noun} file {path} cannot be read ({exc}); it is truncated "
                             "or corrupted") from None


def load_arrays(path: str | os.PathLike, header: dict | None = None) -> dict[str, np.ndarray]:
    """Load named numpy arrays from a safetensors file (see :func:`read_safetensors`)."""
    return read_safetensors(path, header=header)


# --------------------------------------------------------------------------- classical models

FITTED_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*_")  # plain, one trailing "_"
FEATURE_NAMES = "feature_names_in_"  # an object array of str: saved as a JSON list
_CLASSICAL_KEYS = ("format_version", "kind", "class", "params", "fitted_scalars", "arrays",
                   "sha256", "extra", "feature_names_in")
_DESCRIBED = ("class", "params", "fitted_scalars", "arrays", "feature_names_in")
_FLOAT_DTYPES = ("float16", "float32", "float64")
_NUMERIC_DTYPES = _FLOAT_DTYPES + ("bool", "int8", "int16", "int32", "int64", "uint8",
                                   "uint16", "uint32", "uint64")
POSITIVE_ATTRIBUTES = ("noise_variance_", "tau_")  # variances and precisions: > 0
_CORE = ("n_features_in_", "n_components_", "mean_", "components_", "noise_variance_")
# the fitted attributes each class's methods use (a file without one is incomplete)
REQUIRED_ATTRIBUTES = {
    "PCA": _CORE + ("explained_variance_", "explained_variance_ratio_", "singular_values_"),
    "PPCA": _CORE,
    "FactorAnalysis": _CORE + ("factor_correlation_", "rotation_matrix_"),
    "LinearAutoencoder": _CORE + ("explained_variance_", "weights_"),
    "VBPCA": _CORE + ("alpha_", "loadings_", "loadings_cov_", "mean_var_", "tau_",
                      "active_components_"),
}


def _json_scalar(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def save_estimator(estimator, directory: str | os.PathLike, *, kind: str,
                   extra: dict | None = None) -> Path:
    """Save a fitted numpy estimator: its parameters and every fitted attribute
    (names ending in ``_``) to ``directory``; ``feature_names_in_`` as a JSON list."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays, scalars, feature_names = {}, {}, None
    for name, value in vars(estimator).items():
        if not FITTED_NAME.fullmatch(name):
            continue
        if name == FEATURE_NAMES:
            feature_names = [str(v) for v in value]
        elif isinstance(value, np.ndarray):
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
        "feature_names_in": feature_names,
        "sha256": {ARRAYS_FILE: sha256_file(directory / ARRAYS_FILE)},
        "extra": extra or {},
    }
    meta["sha256"][DESCRIPTION_KEY] = description_digest(meta, _DESCRIBED)
    atomic_write_json(directory / MODEL_FILE, meta)
    return directory


def load_estimator(directory: str | os.PathLike, registry: dict[str, type],
                   meta: dict | None = None):
    """Load an estimator saved by :func:`save_estimator`; ``registry`` maps kind -> class.
    ``meta``: model.json when the caller has read it already (each file is read once).

    Every field is checked before it is used: the class's own parameters only, fitted
    attributes with plain names (``[a-z][a-z0-9_]*_``, no attribute of the class), arrays
    of the recorded numeric dtype and shape, finite, positive variances."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if meta is None:
        meta = read_model_file(directory)
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in registry:
        raise ModelFileError(f"{path} names an unknown model kind {_short(kind)}; "
                             f"known kinds: {sorted(registry)}")
    cls = registry[kind]
    _check_classical_meta(meta, cls, path)
    array_path = directory / ARRAYS_FILE
    check_checksum(array_path, meta["sha256"].get(ARRAYS_FILE), noun="array",
                   recorded_in=f"in {MODEL_FILE}")
    header = read_safetensors_header(array_path)
    _check_header(header, meta["arrays"], array_path)
    check_description(meta, _DESCRIBED, path)
    arrays = load_arrays(array_path, header)
    try:
        estimator = cls(**meta["params"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad parameters for {cls.__name__} ({exc})") from None
    for name, array in arrays.items():
        _check_values(name, array, array_path)
        setattr(estimator, name, array)
    for name, value in meta["fitted_scalars"].items():
        setattr(estimator, name, value)
    if meta.get("feature_names_in") is not None:
        estimator.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    _check_consistent(estimator, path)
    if hasattr(estimator, "_check_loaded"):
        estimator._check_loaded()
    return estimator


def _check_classical_meta(meta: dict, cls: type, path: Path) -> None:
    unknown = sorted(set(meta) - set(_CLASSICAL_KEYS))
    if unknown:
        raise ModelFileError(f"{path} has unknown field(s) {unknown[:5]}; it was not written by "
                             "this elbokit or was edited by hand")
    for key in ("params", "fitted_scalars", "arrays", "sha256"):
        check_type(meta.get(key), dict, key, path)
    if meta.get("extra") is not None:
        check_type(meta["extra"], dict, "extra", path)
    if meta.get("class", cls.__name__) != cls.__name__:
        raise ModelFileError(f"{path}: class {_short(meta.get('class'))} does not match kind "
                             f"{meta['kind']!r} ({cls.__name__})")
    allowed = set(cls().get_params(deep=False))
    for name, value in meta["params"].items():
        if name not in allowed:
            raise ModelFileError(f"{path}: {cls.__name__} has no parameter {_short(name)}")
        check_type(value, (int, float, str, bool, type(None)), f"params.{name}", path)
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelFileError(f"{path}: parameter {name!r} is not finite")
    for name, value in meta["fitted_scalars"].items():
        _check_fitted_name(name, cls, path)
        _check_scalar(name, value, path)
    for name, spec in meta["arrays"].items():
        _check_fitted_name(name, cls, path)
        if not (isinstance(spec, dict) and spec.get("dtype") in _NUMERIC_DTYPES
                and isinstance(spec.get("shape"), list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                        for n in spec["shape"])):
            raise ModelFileError(f"{path}: array {name!r} needs a numeric 'dtype' and a "
                                 f"'shape' of non-negative integers; got {_short(spec)}")
    if set(meta["fitted_scalars"]) & set(meta["arrays"]):
        raise ModelFileError(f"{path}: a fitted attribute is listed as a scalar and an array")
    missing = [name for name in REQUIRED_ATTRIBUTES.get(cls.__name__, _CORE)
               if name not in meta["fitted_scalars"] and name not in meta["arrays"]]
    if missing:
        raise ModelFileError(f"{path}: the fitted attribute(s) {missing} are missing; the file "
                             "is incomplete or was edited")
    names = meta.get("feature_names_in")
    n_features = meta["fitted_scalars"].get("n_features_in_")
    check_str_list(names, "feature_names_in", path,
                   n_features if isinstance(n_features, int) else None)


def _check_fitted_name(name, cls: type, path: Path) -> None:
    if not (isinstance(name, str) and FITTED_NAME.fullmatch(name)) or hasattr(cls, name) \
            or name == FEATURE_NAMES:
        raise ModelFileError(f"{path}: {_short(name)} is not a fitted attribute elbokit "
                             "saves; the file was tampered with")


def _check_scalar(name: str, value, path: Path) -> None:
    """A fitted scalar: a number, string or bool; a list of numbers (a trace; null where
    it was not finite); null for a diagnostic that was NaN. Counts (``n_*``) are
    non-negative integers, variances and precisions positive numbers."""
    vital = name.startswith("n_") or name in POSITIVE_ATTRIBUTES
    if isinstance(value, list) and not vital:
        if len(value) > 10**7 or not all(v is None or isinstance(v, (int, float))
                                          and not isinstance(v, bool) for v in value):
            raise ModelFileError(f"{path}: fitted attribute {name!r} must be a list of numbers")
        return
    if value is None and not vital:
        return
    check_type(value, (int, float, str, bool), f"fitted_scalars.{name}", path)
    if name.startswith("n_") and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value < 2**40):
        raise ModelFileError(f"{path}: fitted attribute {name!r} must be a non-negative "
                             f"integer; got {_short(value)}")
    if name in POSITIVE_ATTRIBUTES and not (isinstance(value, (int, float))
                                            and not isinstance(value, bool) and value > 0):
        raise ModelFileError(f"{path}: {name} must be positive; got {_short(value)} (a zero "
                             "or negative variance gives NaN or infinite log-likelihoods)")


def _check_header(header: dict, expected: dict, path: Path) -> None:
    if set(expected) != set(header):
        raise ModelFileError(f"{path} holds arrays {sorted(header)[:8]}, but {MODEL_FILE} "
                             f"lists {sorted(expected)[:8]}")
    for name, (dtype, shape) in header.items():
        if list(shape) != list(expected[name]["shape"]):
            raise ModelFileError(f"array {name!r} in {path} has shape {shape}, "
                                 f"expected {tuple(expected[name]['shape'])}")
        if NUMPY_DTYPES.get(dtype) != expected[name]["dtype"]:
            raise ModelFileError(f"array {name!r} in {path} has dtype {dtype}, "
                                 f"{MODEL_FILE} records {expected[name]['dtype']}")


def _check_values(name: str, array: np.ndarray, path: Path) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFileError(f"array {name!r} in {path} holds NaN or inf values")
    if name in POSITIVE_ATTRIBUTES and not (array > 0).all():
        raise ModelFileError(f"array {name!r} in {path} must be positive (a zero or negative "
                             "variance gives NaN or infinite log-likelihoods)")


def _check_consistent(estimator, path: Path) -> None:
    """The shapes the fitted attributes must have relative to each other."""
    d = getattr(estimator, "n_features_in_", None)
    L = getattr(estimator, "n_components_", None)
    if not isinstance(d, int) or d < 1:
        raise ModelFileError(f"{path}: n_features_in_ is missing or < 1")
    if L is not None and not isinstance(L, int):
        raise ModelFileError(f"{path}: n_components_ must be an integer")
    expected = {"mean_": (d,)}
    if L is not None:
        expected["components_"] = (L, d)
    noise = getattr(estimator, "noise_variance_", None)
    if isinstance(noise, np.ndarray) and noise.ndim:
        expected["noise_variance_"] = (d,)
    for name, shape in expected.items():
        value = getattr(estimator, name, None)
        if value is not None and getattr(value, "shape", None) != shape:
            raise ModelFileError(f"{path}: {name} has shape {getattr(value, 'shape', None)}, "
                                 f"expected {shape} for {d} features and {L} components")


# --------------------------------------------------------------------------- run records

_RUN_FIELDS = {"kind": str, "data": str, "seed": int, "latent": (int, type(None)),
               "image_shape": (list, type(None)), "params": dict, "key": (dict, type(None)),
               "feature_names": (list, type(None)), "target_names": (list, type(None)),
               "validation_fraction": (int, float), "resumed": bool, "channels": int,
               "load_options": dict}


def read_run(run_dir: str | os.PathLike) -> dict:
    """run.json of ``run_dir``, every field checked (types, ranges)."""
    path = Path(run_dir) / RUN_FILE
    run = read_json(path, "run file")
    for name, types in _RUN_FIELDS.items():
        if name in run:
            check_type(run[name], types, name, path)
    if "seed" in run:
        check_int(run["seed"], "seed", path, 0, MAX_SEED)
    if run.get("latent") is not None:
        check_int(run["latent"], "latent", path, 1, 2**31)
    if run.get("image_shape") is not None:
        shape = run["image_shape"]
        if len(shape) != 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                       and 1 <= s <= 2**16 for s in shape):
            raise ModelFileError(f"{path}: field 'image_shape' must be two positive integers; "
                                 f"got {str(shape)[:40]}")
    for name in ("feature_names", "target_names"):
        check_str_list(run.get(name), name, path)
    if "channels" in run:
        check_int(run["channels"], "channels", path, 1, 4)
    options = run.get("load_options", {})
    resize, crop = options.get("resize"), options.get("crop")
    if set(options) - {"resize", "crop"} or crop not in (None, "center") or resize is not None \
            and not (isinstance(resize, list) and len(resize) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**16
                for v in resize)):
        raise ModelFileError(f"{path}: field 'load_options' must hold resize (two positive "
                             f"integers or null) and crop (\"center\" or null); got "
                             f"{str(options)[:60]}")
    return run


def read_metrics(run_dir: str | os.PathLike) -> dict:
    """metrics.json of ``run_dir``: an object of numbers (finite), strings, booleans
    or null."""
    path = Path(run_dir) / METRICS_FILE
    metrics = read_json(path, "metrics file")
    for name, value in metrics.items():
        if isinstance(value, (list, dict)):
            raise ModelFileError(f"{path}: metric {name[:40]!r} must be a number, a string, "
                                 "true/false or null")
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelFileError(f"{path}: metric {name[:40]!r} is not finite")
    return metrics
