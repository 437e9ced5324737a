"""What every reader of :mod:`elbokit.data` shares: opening a file, bounded reads of a
(possibly decompressing) stream, the memory check made before anything is allocated
(with the one memory probe, :mod:`elbokit.persistence.memory`), and the wording of
one-line messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import DataError, DataFileNotFoundError
from ..persistence import memory
from ..persistence.files import open_regular

READ_CHUNK = 2**20  # bytes read from a stream at a time

# --------------------------------------------------------------------------- messages

def brief(value, limit: int = 80) -> str:
    """``value`` as text for a one-line message: whitespace collapsed, clipped (a header
    may hold thousands of dimensions, a library error the bytes it choked on)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def brief_error(exc: Exception) -> str:
    """A library's error (Pillow's) for a one-line message: its first 100 characters,
    whitespace collapsed, or its type where it says nothing."""
    text = " ".join(str(exc).split())
    return text[:100] or type(exc).__name__


def byte_count(nbytes: int) -> str:
    """A byte count for a message: exact, or its power of two when absurdly large."""
    return str(nbytes) if nbytes < 10**18 else f"about 2^{nbytes.bit_length() - 1}"


# --------------------------------------------------------------------------- memory

def check_fits(nbytes: int, name: str, what: str) -> None:
    """Refuse, before allocating, what would not fit in the available memory (the one
    probe, :func:`elbokit.persistence.memory.available_memory`; nothing is refused where
    it is unknown)."""
    available = memory.available_memory()
    if available is not None and nbytes > available:
        raise DataError(f"{name}: {what} needs {memory.gib(nbytes)} of memory to load but "
                        f"only {memory.gib(available)} is available")


def float_dtype_for(dtype: np.dtype) -> np.dtype:
    """float32 where it holds every value of ``dtype`` exactly, else float64."""
    exact_in_float32 = (dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize <= 2)
                        or (dtype.kind == "f" and dtype.itemsize <= 4))
    return np.dtype(np.float32 if exact_in_float32 else np.float64)


def load_peak_bytes(count: int, dtype: np.dtype) -> int:
    """Peak memory of reading ``count`` items of ``dtype``, converting them to floats and
    splitting them into train and test (two float copies at most at once)."""
    converted = count * float_dtype_for(dtype).itemsize
    return max(count * dtype.itemsize, converted) + converted


# --------------------------------------------------------------------------- streams

def open_binary(path: Path, what: str):
    """``path`` opened for reading bytes; a missing or unreadable file, or one that is
    not a regular file (a FIFO, a device, a symlink into /proc), is a one-line error
    naming it (``what``: "data file", "IDX file")."""
    if not path.exists():
        raise DataFileNotFoundError(f"{what} {path} does not exist")
    try:
        return open_regular(path, what, error=DataError)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_up_to(stream, nbytes: int) -> bytes:
    """Up to ``nbytes`` bytes of a (possibly decompressing) stream: fewer only at its end."""
    data = stream.read(nbytes)
    return data if data is not None else b""


def read_payload(stream, nbytes: int, size_is_proven: bool) -> np.ndarray:
    """Up to ``nbytes`` bytes of ``stream`` as a uint8 array (shorter only at its end).

    Read in bounded chunks. Where the size is proven (a plain file whose size matches
    its header) the array is allocated at once; for a decompressing stream, whose header
    may claim more than it holds, the buffer grows (doubling) as data arrives, so that a
    false claim costs at most twice what the stream really delivers."""
    buffer = np.empty(nbytes if size_is_proven else min(nbytes, READ_CHUNK), np.uint8)
    filled = 0
    while filled < nbytes:
        if filled == len(buffer):
            grown = np.empty(min(nbytes, 2 * len(buffer)), np.uint8)
            grown[:filled] = buffer
            buffer = grown
        chunk = read_up_to(stream, min(READ_CHUNK, len(buffer) - filled))
        if not chunk:
            break
        buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
        filled += len(chunk)
    return buffer[:filled]
