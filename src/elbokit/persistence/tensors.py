"""safetensors files: writing them atomically, reading and checking their header
before any tensor data, and reading the tensors within the memory available. No
code can run while a file is read (no pickle)."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Callable

import numpy as np

from ..exceptions import ModelFileError
from .checks import is_shape, short
from .files import atomic_write_with, existing_file, loads, open_regular
from .memory import check_memory

MAX_HEADER_BYTES = 16 << 20  # a safetensors header (JSON): about 100 bytes per tensor
MAX_TENSORS = 100_000
SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2,
                      "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8,
                      "U64": 8, "F64": 8}
NUMPY_DTYPES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
                "F16": "float16", "I32": "int32", "U32": "uint32", "F32": "float32",
                "I64": "int64", "U64": "uint64", "F64": "float64"}


def write_safetensors(path: str | os.PathLike, tensors: dict,
                      save_file: Callable | None = None) -> None:
    """Write named tensors as a safetensors file, atomically. ``save_file``: the
    framework's writer (``safetensors.numpy``'s by default; torch callers pass
    ``safetensors.torch``'s), called on a temporary path."""
    if save_file is None:
        from safetensors.numpy import save_file
    atomic_write_with(path, lambda tmp: save_file(tensors, tmp))


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Save named numpy arrays as safetensors, atomically."""
    write_safetensors(path, {k: np.ascontiguousarray(v) for k, v in arrays.items()})


def read_safetensors_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor of a safetensors file, from its header
    alone (8 bytes of length, then JSON; no tensor data is read). The header is checked
    against the file: known dtypes, shapes of non-negative integers, byte ranges that
    tile the data exactly. Raises :class:`ModelFileError` on anything else."""
    path = existing_file(path, "tensor file")
    size = path.stat().st_size
    with open_regular(path, "tensor file") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelFileError(f"tensor file {path} is {size} bytes: truncated")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise ModelFileError(f"tensor file {path}: its header claims {n} bytes, the file "
                                 f"holds {size}; it is truncated or corrupted")
        raw = handle.read(n)
    try:
        header = loads(raw.decode("utf-8"))
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
          and is_shape(entry.get("shape"))
          and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
          and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0
                  for o in entry["data_offsets"]))
    if not ok or not isinstance(name, str):
        raise ModelFileError(f"tensor file {path}: header entry {short(name)} is malformed; "
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
    default, ``safetensors.torch``'s for torch callers)."""
    path = Path(path)
    if header is None:
        header = read_safetensors_header(path)
    # the file's bytes and the tensors built from them are held at once
    check_memory(2 * header_bytes(header), f"the {noun}s of {path}")
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


def dtype_name(array) -> str:
    """The dtype of a numpy array or torch tensor as model.json records it
    (``"float32"``, ``"int64"``)."""
    return str(array.dtype).removeprefix("torch.")


def check_header(header: dict, recorded: dict, path) -> None:
    """The safetensors ``header`` holds exactly the tensors model.json's ``tensors``
    (``recorded``: name -> {"shape", "dtype"}) lists, with their shapes and dtypes."""
    if set(recorded) != set(header):
        raise ModelFileError(f"{path} holds tensors {sorted(header)[:8]}, but model.json "
                             f"lists {sorted(recorded)[:8]}")
    for name, (dtype, shape) in header.items():
        if list(shape) != list(recorded[name]["shape"]):
            raise ModelFileError(f"tensor {name!r} in {path} has shape {list(shape)}, "
                                 f"model.json records {recorded[name]['shape']}")
        if NUMPY_DTYPES.get(dtype) != recorded[name]["dtype"]:
            raise ModelFileError(f"tensor {name!r} in {path} has dtype {dtype}, "
                                 f"model.json records {recorded[name]['dtype']}")
