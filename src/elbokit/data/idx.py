"""IDX files (LeCun's format, MNIST and Fashion-MNIST): finding the four files of a
data set and reading one file, gzip-compressed or raw.

The header is read first; the size it implies is compared with the file (raw files)
and with the available memory before anything is allocated, and a gzip stream is
decompressed in chunks up to exactly that size.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..exceptions import DataError, DataFileNotFoundError
from ._reading import brief, byte_count, check_fits, open_binary, read_payload, read_up_to

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# IDX type codes (LeCun's format): code -> numpy dtype (big-endian)
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _search_dirs(spec: str, data_dir) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    if os.environ.get("ELBOKIT_DATA"):
        roots.append(Path(os.environ["ELBOKIT_DATA"]))
    dirs = []
    for root in roots:
        dirs += [root / spec, root]
    if spec == "fashion-mnist":
        dirs.append(DEBIAN_FASHION_MNIST_DIR)
    return dirs


def find_idx(spec: str, data_dir) -> dict[str, Path]:
    """The four IDX files of ``spec`` (keys of :data:`IDX_NAMES`), from the first
    directory that holds them all: ``data_dir``, ``$ELBOKIT_DATA`` (each with a
    ``spec`` sub-folder first), then Debian's Fashion-MNIST folder."""
    searched = _search_dirs(spec, data_dir)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataFileNotFoundError(f"data directory {data_dir} does not exist")
    for directory in searched:
        found = {}
        for key, stems in IDX_NAMES.items():
            for stem in stems:
                for candidate in (directory / (stem + ".gz"), directory / stem):
                    if candidate.is_file():
                        found.setdefault(key, candidate)
        if len(found) == len(IDX_NAMES):
            return found
        if found:  # a partial set is an error worth naming
            missing = sorted(set(IDX_NAMES) - set(found))
            raise DataFileNotFoundError(
                f"{directory} holds some {spec} IDX files but not {missing} "
                f"(expected names like {IDX_NAMES[missing[0]][0]}[.gz])")
    where = ", ".join(str(d) for d in searched) or "(no directory given)"
    hint = ("install Debian's package dataset-fashion-mnist (apt-get install "
            "dataset-fashion-mnist), or pass --data-dir / set ELBOKIT_DATA"
            if spec == "fashion-mnist" else
            "put train-images-idx3-ubyte[.gz] etc. in a directory and pass --data-dir "
            "or set ELBOKIT_DATA")
    raise DataFileNotFoundError(f"{spec} IDX files not found in {where}; {hint}")


def _idx_header(stream, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Read an IDX header: (dtype, shape, header length in bytes)."""
    magic = read_up_to(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {magic.hex()})")
    dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
    dims = read_up_to(stream, 4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise DataError(f"{path} is not a valid IDX file (header of {ndim} dimensions is "
                        "truncated)")
    shape = struct.unpack(f">{ndim}I", dims)
    return dtype, shape, 4 + 4 * ndim


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a numpy array.

    The header is read first; the size it implies is compared with the file (raw
    files) and with the available memory before anything is allocated, and a gzip
    stream is decompressed in chunks up to exactly that size."""
    path = Path(path)
    with open_binary(path, "IDX file") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        try:
            stream = gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle
            return _read_idx_stream(stream, path, compressed, os.fstat(handle.fileno()).st_size)
        except (EOFError, OSError, zlib.error) as exc:
            if not compressed:
                raise DataError(f"cannot read {path}: {brief(exc)}") from None
            raise DataError(f"{path} is a damaged or truncated gzip file "
                            f"({brief(exc)})") from None


def _read_idx_stream(stream, path: Path, compressed: bool, file_size: int) -> np.ndarray:
    dtype, shape, header_len = _idx_header(stream, path)
    count = math.prod(shape)  # Python ints: no overflow
    expected = header_len + count * dtype.itemsize
    if not compressed and file_size != expected:
        raise DataError(f"{path}: the IDX header gives shape {brief(shape)} "
                        f"({byte_count(expected)} bytes) but the file holds {file_size} "
                        "bytes; it is truncated or corrupted")
    if count == 0:
        raise DataError(f"{path}: the IDX header gives shape {brief(shape)}, which holds no data")
    # the raw array and its float32 copy
    check_fits(count * (dtype.itemsize + 4), str(path), f"an IDX array of shape {brief(shape)}")
    payload = read_payload(stream, count * dtype.itemsize, size_is_proven=not compressed)
    if len(payload) < count * dtype.itemsize:
        raise DataError(f"{path}: the IDX header gives shape {brief(shape)} "
                        f"({byte_count(expected)} bytes) but the decompressed stream holds only "
                        f"{header_len + len(payload)} "
                        "bytes; it is truncated or corrupted")
    if compressed and read_up_to(stream, 1):
        raise DataError(f"{path}: the decompressed stream holds more than the {expected} "
                        f"bytes the IDX header's shape {brief(shape)} implies; it is corrupted")
    return payload.view(dtype).reshape(shape)
