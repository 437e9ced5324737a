"""A run directory saved as one commit.

The new run is written into a staging directory beside the old one (the same file
system): ``.{name}.elbokit-new-{pid}-{hex}``, marked as one (``STAGE_MARK``). Every
file is flushed to disk, the manifest
(:func:`~elbokit.persistence.files.write_manifest`, the SHA-256 of each file) is
written last, the directory flushed, and then the two directories are exchanged in
one ``rename`` (Linux ``renameat2(RENAME_EXCHANGE)``). A failure or a kill before the
exchange leaves the old run as it was (the staging directory is removed at once, or at
the next start); after it the run is the new one, whole. The old run's files other
than the run's own (a report, figures, the checkpoints of a fit that trained in the
run directory, files of the user's) are moved into the new one, then the old
directory is removed. Nothing here follows a symbolic link: a link is moved or
unlinked as a link.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import secrets
import shutil
import stat
from pathlib import Path

from .files import MANIFEST_FILE, METRICS_FILE, MODEL_FILE, RUN_FILE, WEIGHTS_FILE

#: the files a committed run is made of (listed in its manifest)
COMMITTED_FILES = (MODEL_FILE, WEIGHTS_FILE, RUN_FILE, METRICS_FILE)
_NEW, _OLD = ".elbokit-new-", ".elbokit-old-"
#: the mark of a staging directory, removed once it is swapped in: a leftover
#: ``.elbokit-new-`` directory without it is the old run of an exchange cut short
STAGE_MARK = ".elbokit-stage"


def new_stage(target: str | os.PathLike) -> Path:
    """Create the staging directory of ``target`` (beside it, its permissions)."""
    target = Path(target)
    stage = _beside(target, _NEW)
    os.mkdir(stage)
    (stage / STAGE_MARK).touch()
    if target.is_dir():
        os.chmod(stage, stat.S_IMODE(target.stat().st_mode))
    return stage


def _beside(target: Path, tag: str) -> Path:
    return target.parent / f".{target.name}{tag}{os.getpid()}-{secrets.token_hex(4)}"


def swap_in(stage: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make the committed ``stage`` the directory ``target``, in one rename; the old
    ``target``'s other files move into it and the old directory is removed."""
    stage, target = Path(stage), Path(target)
    fsync_directory(stage)
    if not target.exists():
        os.rename(stage, target)
    elif not _exchange(stage, target):  # no renameat2: two renames (cleaned at a restart)
        old = _beside(target, _OLD)
        os.rename(target, old)
        os.rename(stage, target)
        stage = old
    fsync_directory(target.parent)
    (target / STAGE_MARK).unlink(missing_ok=True)
    if stage.exists():  # now the old run
        carry_over(stage, target)
        remove_tree(stage)


def _exchange(a: Path, b: Path) -> bool:
    """Exchange two paths atomically; False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def carry_over(old: Path, target: Path) -> None:
    """Move the entries of ``old`` that ``target`` lacks into it; a committed run's own
    files only when ``target`` holds no model (a run restored after a crash)."""
    keep_run_files = not os.path.lexists(target / MODEL_FILE)
    for entry in os.scandir(old):
        if entry.name == STAGE_MARK or \
                entry.name in (*COMMITTED_FILES, MANIFEST_FILE) and not keep_run_files:
            continue
        if not os.path.lexists(target / entry.name):
            os.rename(entry.path, target / entry.name)


def remove_tree(path: Path) -> None:
    """Remove a directory of elbokit's (a symbolic link is unlinked, never followed)."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def clean_stale(target: str | os.PathLike) -> None:
    """Remove what a killed save of ``target`` left (called under its lock): staging
    directories, old directories (their other files moved back first) and the
    temporary files of the run's atomic writes."""
    target = Path(target)
    pattern = glob.escape(f".{target.name}") + ".elbokit-*"
    for left in sorted(target.parent.glob(pattern)):
        old_run = left.is_dir() and not left.is_symlink() and \
            not os.path.lexists(left / STAGE_MARK)  # not a staging directory
        if old_run and target.is_dir():
            carry_over(left, target)
        remove_tree(left)
    if target.is_dir():
        (target / STAGE_MARK).unlink(missing_ok=True)
        for name in (*COMMITTED_FILES, MANIFEST_FILE):
            for partial in target.glob(glob.escape(f".{name}.") + "*"):
                partial.unlink(missing_ok=True)


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries to disk (where the system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
