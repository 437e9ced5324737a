"""Files on disk: their names, the format version, atomic writes, the stop flag, JSON
reading with limits, SHA-256 checksums, a run's manifest and the digest of a file's
describing fields.

Every file is written to a temporary name in the same directory, flushed to disk and
renamed over the old one, so a crash leaves either the old file or the new one, never
half of one; a write that fails (disk full, ``ulimit -f``, an I/O error, safetensors'
own error) is one :class:`~elbokit.exceptions.SaveError` line naming the file and the
free space. A committed run directory (:mod:`elbokit.persistence.commit`) holds
``manifest.json``, the SHA-256 of each of its files: every JSON file it lists is
checked against it when read (a file from another save is refused), and a file it
lists that is rewritten in place gets its entry rewritten after it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from ..exceptions import ModelFileError, SaveError

#: the version of every file elbokit writes (model.json, checkpoint.json); 2: one
#: model.json schema for every kind (:mod:`elbokit.persistence.model_file`)
FORMAT_VERSION = 2

MODEL_FILE = "model.json"  # every saved model: the commit record, written last
WEIGHTS_FILE = "weights.safetensors"  # every saved model's tensors
CHECKPOINT_FILE = "checkpoint.json"  # a VAE training checkpoint's record
CHECKPOINT_NAME = re.compile(r"checkpoint-e[0-9]{4,9}\.safetensors")  # its tensor file
RUN_FILE = "run.json"  # a run's resolved settings and key
METRICS_FILE = "metrics.json"  # a run's scores
MANIFEST_FILE = "manifest.json"  # a committed run's record: the SHA-256 of each file
DESCRIPTION_KEY = "description"  # sha256 entry of the JSON that describes the tensors
MAX_JSON_BYTES = 64 << 20  # no file elbokit writes is near this; a bigger one is not ours
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")  # a SHA-256 as the files record it


def _default_mode() -> int:
    """Permissions a new file would get (0o666 less the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()

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
    text = json.dumps(finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def finite_or_null(obj):
    """``obj`` with every non-finite float replaced by None (as JSON holds it)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Let ``writer(tmp_path)`` write a file, then rename it onto ``path`` atomically.

    For libraries that write to a path themselves (safetensors, matplotlib)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix,
                                   dir=path.parent)
        os.close(fd)
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        if _STOP.is_set():  # a stop whose KeyboardInterrupt was swallowed: commit nothing
            raise KeyboardInterrupt("terminated")
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if is_write_error(exc) and not isinstance(exc, SaveError):
            raise SaveError(write_failure(path, exc)) from None
        raise
    if path.name != MANIFEST_FILE and listed_in_manifest(path):
        update_manifest(path.parent, [path.name])  # a committed file rewritten in place


def is_write_error(exc: BaseException) -> bool:
    """An error of the disk or of safetensors' writer (which raises its own type
    for an I/O error: "Error while serializing: I/O error: File too large")."""
    return isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError"


def write_failure(path: str | os.PathLike, exc: BaseException) -> str:
    """The one line of a failed write: the file, the reason, the free space of its
    file system and, when one is set, the file-size limit (``ulimit -f``)."""
    reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror else
              str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return f"cannot write {path}: {reason} ({free_space(path)})"


def free_space(path: str | os.PathLike) -> str:
    """"12.3 MiB free on its file system" for the nearest existing folder of ``path``,
    with the file-size limit when one is set."""
    import shutil

    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        text = f"{_size(shutil.disk_usage(folder).free)} free on its file system"
    except OSError:
        text = "free space unknown"
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            text += f"; the file-size limit (ulimit -f) is {_size(limit)}"
    except (ImportError, OSError, ValueError):
        pass
    return text


def _size(n_bytes: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n_bytes >= 1 << shift:
            return f"{n_bytes / (1 << shift):.1f} {unit}"
    return f"{n_bytes} bytes"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a regular file (:func:`open_regular`), of the bytes its size
    gives at the open (a file that grows meanwhile is not read past that)."""
    digest = hashlib.sha256()
    with open_regular(path, "file") as handle:
        left = os.fstat(handle.fileno()).st_size
        while left > 0:
            block = handle.read(min(left, 1 << 20))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


# kernel file systems: their files claim a size of 0 (or none) and can be endless
# (/proc/self/pagemap, /proc/kcore) or block (/dev/stdin): never data
KERNEL_TREES = ("/proc", "/sys", "/dev")


def not_regular(path: str | os.PathLike, mode: int | None = None) -> str | None:
    """Why ``path`` is not a regular file to read (symlinks resolved first): "a FIFO",
    "a directory", "the kernel file /proc/self/pagemap"..., or None when it is one.
    ``mode``: its ``st_mode`` where the caller has it (an open file's ``fstat``)."""
    real = os.path.realpath(path)
    if any(real == tree or real.startswith(tree + "/") for tree in KERNEL_TREES):
        return f"the kernel or device file {real}"
    if mode is None:
        mode = os.stat(real).st_mode
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike, what: str, *, error=ModelFileError):
    """``path`` opened for reading bytes, refused with one line (``error``) unless it
    is a regular file: a FIFO is opened without blocking, checked and refused, a
    symlink into /proc, /sys or /dev is refused before anything is read. A missing
    file raises ``FileNotFoundError`` (the caller words it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        why = not_regular(path, os.fstat(fd).st_mode)
        if why is not None:
            raise error(f"{what} {path} is {why}, not a regular file; refused")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; a one-line :class:`ModelFileError` ("{what} {path} does not
    exist", "... is a FIFO, not a regular file") unless it is a regular file."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{what} {path} does not exist")
    why = not_regular(path)
    if why is not None:
        raise ModelFileError(f"{what} {path} is {why}, not a regular file; refused")
    return path


def check_checksum(path: str | os.PathLike, expected, *, noun: str = "tensor",
                   recorded_in: str = "recorded next to it") -> None:
    """Raise :class:`ModelFileError` unless ``path`` exists and its SHA-256 is
    ``expected`` (a missing record, None, never matches). ``noun`` and ``recorded_in``
    word the message: "tensor file ... does not exist", "... the checksum in model.json"."""
    path = existing_file(path, f"{noun} file")
    if sha256_file(path) != expected:
        raise ModelFileError(f"{path} does not match the checksum {recorded_in}; the files "
                             "come from different saves or were modified")


# --------------------------------------------------------------------------- the manifest

def read_manifest(directory: str | os.PathLike) -> dict[str, str] | None:
    """File name -> hex SHA-256 of a committed run directory (its ``manifest.json``),
    or None for a directory without one (an interrupted save, a run of an older
    elbokit)."""
    path = Path(directory) / MANIFEST_FILE
    if not os.path.lexists(path):
        return None
    meta = read_json(path, "manifest")
    files = meta.get("files")
    if meta.get("kind") != "elbokit-run" or not isinstance(files, dict) or not all(
            isinstance(k, str) and "/" not in k and isinstance(v, str) and HEX_DIGEST.fullmatch(v)
            for k, v in files.items()):
        raise ModelFileError(f"{path} is not a run manifest (kind \"elbokit-run\", files: "
                             "name -> hex SHA-256); it was edited or is not elbokit's")
    return files


def write_manifest(directory: str | os.PathLike, names) -> None:
    """Write ``manifest.json``: the SHA-256 of each file ``names`` of ``directory``
    (written last: the commit record of the files)."""
    directory = Path(directory)
    files = {name: sha256_file(directory / name) for name in sorted(names)}
    atomic_write_json(directory / MANIFEST_FILE, {"format_version": FORMAT_VERSION,
                                                  "kind": "elbokit-run", "files": files})


def update_manifest(directory: str | os.PathLike, names) -> None:
    """Rewrite the entries ``names`` of ``directory``'s manifest from the files now
    on disk (a committed file rewritten in place)."""
    files = dict(read_manifest(directory) or {})
    files.update({name: sha256_file(Path(directory) / name) for name in names})
    write_manifest(directory, files)


def listed_in_manifest(path: Path) -> bool:
    return os.path.lexists(path.parent / MANIFEST_FILE) and \
        path.name in (read_manifest(path.parent) or {})


def check_listed(path: Path, digest: str) -> None:
    """Refuse a file whose directory's manifest lists another digest for it."""
    if path.name == MANIFEST_FILE or not os.path.lexists(path.parent / MANIFEST_FILE):
        return
    expected = (read_manifest(path.parent) or {}).get(path.name)
    if expected is not None and expected != digest:
        raise ModelFileError(mixed_run(path))


def mixed_run(path: Path) -> str:
    return (f"{path} does not match its digest in {path.parent / MANIFEST_FILE}: the run's "
            "files come from different saves or were edited; refit it (--overwrite)")


def check_manifest(directory: str | os.PathLike) -> dict[str, str]:
    """Check every file of a committed run against its manifest (a missing file, or
    one of another save, is a one-line :class:`ModelFileError`); returns the manifest.
    A directory without a manifest is refused: it is not a committed run."""
    directory = Path(directory)
    files = read_manifest(directory)
    if files is None:
        raise ModelFileError(f"{directory} holds no {MANIFEST_FILE}: it is not a run committed "
                             "by elbokit (an interrupted save, or a save of an older elbokit)")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise ModelFileError(f"{path} is listed in {directory / MANIFEST_FILE} and is "
                                 "missing: the run is incomplete; refit it (--overwrite)")
        if sha256_file(path) != digest:
            raise ModelFileError(mixed_run(path))
    return files


# --------------------------------------------------------------------------- JSON

def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def loads(text: str):
    """JSON with only finite numbers (no NaN, Infinity or 1e999)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """Read a JSON object, with a clear :class:`ModelFileError` on a missing, oversized
    or bad file. ``NaN``/``Infinity`` (not JSON, but Python writes them) are refused."""
    path = existing_file(path, what)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ModelFileError(f"{what} {path} is {size / 2**20:.0f} MiB, more than elbokit "
                             f"ever writes ({MAX_JSON_BYTES >> 20} MiB); it is not elbokit's")
    try:
        with open_regular(path, what) as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)  # bounded: the file may have grown
        obj = loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{what} {path} is not valid JSON ({reason}); the file is "
                             "truncated or corrupted") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{what} {path} must hold a JSON object")
    check_listed(path, hashlib.sha256(raw).hexdigest())
    return obj


def check_format_version(meta: dict, path: Path) -> None:
    """Refuse a file of another format version (or with no version at all): a newer one
    needs a newer elbokit, an older one a refit (there are no readers of old formats)."""
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{path} has no integer 'format_version'; it was not written "
                             "by elbokit or was tampered with")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}, newer than this elbokit "
                             f"reads ({FORMAT_VERSION}); upgrade elbokit to load it")
    if version < FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by an older elbokit (format version "
                             f"{version}; this one reads {FORMAT_VERSION}): refit the model")


# --------------------------------------------------------------------------- digests

def description_digest(meta: dict, keys) -> str:
    """SHA-256 of the canonical JSON of ``meta``'s fields ``keys``: the part of a JSON
    file that describes tensors, so that an edit of it alone (a shape, an architecture
    size) is caught as a mismatch like an edit of the tensor file. It protects against
    accidents and mixed files, not against someone who recomputes it: the checks of
    every field and tensor do that."""
    described = finite_or_null({k: meta.get(k) for k in keys})  # as the file holds it
    text = json.dumps(described, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


_IN_SHA256 = object()  # check_description's default: the digest is in meta["sha256"]


def check_description(meta: dict, keys, path, recorded=_IN_SHA256) -> None:
    """Compare the digest of ``keys`` with the one recorded: ``recorded``, or by default
    the ``description`` entry of ``meta["sha256"]`` (a model.json; a checkpoint.json
    passes its ``description_sha256``). ``None`` skips the check: a model.json must
    have its digest (:func:`elbokit.persistence.model_file.read` checks that)."""
    if recorded is _IN_SHA256:
        recorded = meta["sha256"].get(DESCRIPTION_KEY)
    if recorded is None:
        return
    if not isinstance(recorded, str) or recorded != description_digest(meta, keys):
        raise ModelFileError(f"{path}: the fields {sorted(keys)} do not match their checksum; "
                             "the file was edited by hand or comes from another save")
